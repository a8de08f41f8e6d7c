//! Chunk buffers made ahead of need by a helper thread. The head grows by
//! a full chunk's buffer (2 KiB) every `CHUNK` points of a series, and
//! each new page of it faults on its first write, the kernel clearing the
//! page then. On a virtual machine that hands free memory back to its host
//! (a balloon with free page reporting, common in clouds) that first write
//! costs the host's fault too, about a nanosecond a byte: under a steady
//! ingest it was a third of the time of the thread that serves the puts.
//! The helper takes those faults instead, on another core when there is
//! one: from the store's first ask on, it allocates buffers, writes them
//! once, and keeps up to `HIGH` ready. It refills in batches, woken once
//! when the stock falls to `LOW`, because a wake-up per chunk costs more
//! than the fault it saves. When the stock is out, the store allocates
//! for itself as before.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use super::series::{Chunk, CHUNK};

/// Most buffers kept ready: 2 MiB, a few milliseconds of ingest at full
/// speed.
const HIGH: usize = 1024;
/// The stock at which the helper is woken to refill.
const LOW: usize = HIGH / 2;
/// Buffers made between two looks at the stock (and at `closed`).
const BATCH: usize = 64;

#[derive(Default)]
struct Stock {
    chunks: Vec<Chunk>,
    /// Set by the first take: a store that never grows by a full chunk
    /// (idle, read-only, small keys) holds no stock.
    wanted: bool,
    closed: bool,
}

#[derive(Default)]
struct Pool {
    stock: Mutex<Stock>,
    /// Signalled on the first take, when the stock falls to `LOW`, and on
    /// close.
    low: Condvar,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Stock> {
        // Nothing in the stock can be left half-changed by a panic.
        self.stock.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The store's side of the pool; dropping it stops the helper.
pub(super) struct ChunksAhead {
    pool: Arc<Pool>,
    helper: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ChunksAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunksAhead")
            .field("ready", &self.ready())
            .finish()
    }
}

impl ChunksAhead {
    /// Starts the helper thread; `None` when the system will not start a
    /// thread, and the store then allocates every chunk itself.
    pub(super) fn start() -> Option<Self> {
        let pool = Arc::<Pool>::default();
        let helper = std::thread::Builder::new()
            .name("metrics-chunks".into())
            .spawn({
                let pool = Arc::clone(&pool);
                move || refill(&pool)
            })
            .ok()?;
        Some(ChunksAhead {
            pool,
            helper: Some(helper),
        })
    }

    /// A stock of `count` buffers and no helper (for tests).
    #[cfg(test)]
    pub(super) fn stocked(count: usize) -> Self {
        let pool = Arc::<Pool>::default();
        let mut stock = pool.lock();
        stock.chunks = (0..count).map(|_| made()).collect();
        stock.wanted = true;
        drop(stock);
        ChunksAhead { pool, helper: None }
    }

    /// An empty buffer with room for `CHUNK` points, its pages written.
    pub(super) fn take(&self) -> Option<Chunk> {
        let mut stock = self.pool.lock();
        if !stock.wanted {
            stock.wanted = true;
            self.pool.low.notify_one();
            return None;
        }
        let chunk = stock.chunks.pop();
        // Once on the way down, not at every take below it.
        if chunk.is_some() && stock.chunks.len() == LOW {
            self.pool.low.notify_one();
        }
        chunk
    }

    /// Buffers ready now.
    pub(super) fn ready(&self) -> usize {
        self.pool.lock().chunks.len()
    }
}

impl Drop for ChunksAhead {
    fn drop(&mut self) {
        self.pool.lock().closed = true;
        self.pool.low.notify_one();
        if let Some(helper) = self.helper.take() {
            // It notices within one batch: microseconds.
            let _ = helper.join();
        }
    }
}

/// A buffer of `CHUNK` points' room, every byte written once so that its
/// pages are in place; its length is 0.
fn made() -> Chunk {
    let mut chunk = Vec::with_capacity(CHUNK);
    chunk.resize(CHUNK, (0, 0.0));
    chunk.clear();
    chunk
}

/// The helper: once the store first asks, fills the stock to `HIGH`,
/// sleeps until it falls to `LOW`, and ends once the store's side is
/// dropped.
fn refill(pool: &Pool) {
    loop {
        let mut left = {
            let mut stock = pool.lock();
            while !stock.closed && (!stock.wanted || stock.chunks.len() > LOW) {
                stock = pool.low.wait(stock).unwrap_or_else(PoisonError::into_inner);
            }
            if stock.closed {
                return;
            }
            HIGH - stock.chunks.len()
        };
        while left > 0 {
            // Made outside the lock: the faults are the slow part.
            let batch: Vec<Chunk> = (0..left.min(BATCH)).map(|_| made()).collect();
            left -= batch.len();
            let mut stock = pool.lock();
            if stock.closed {
                return;
            }
            stock.chunks.extend(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for(ahead: &ChunksAhead, done: impl Fn(usize) -> bool) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = ahead.ready();
            if done(ready) || Instant::now() > deadline {
                return ready;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn the_helper_fills_the_stock_and_refills_it_once_it_falls_to_low() {
        let ahead = ChunksAhead::start().expect("a thread");
        // Nothing is made before the store first asks.
        assert!(ahead.take().is_none());
        assert_eq!(wait_for(&ahead, |ready| ready == HIGH), HIGH);
        for _ in 0..HIGH - LOW - 1 {
            let chunk = ahead.take().expect("in stock");
            assert_eq!((chunk.len(), chunk.capacity()), (0, CHUNK));
        }
        // Above LOW: the helper sleeps, and the stock stays where it is.
        assert_eq!(ahead.ready(), LOW + 1);
        ahead.take().expect("in stock");
        assert_eq!(wait_for(&ahead, |ready| ready == HIGH), HIGH);
    }

    #[test]
    fn an_empty_stock_gives_nothing_and_dropping_stops_the_helper() {
        let ahead = ChunksAhead::stocked(1);
        assert!(ahead.take().is_some());
        assert!(ahead.take().is_none());
        // Dropped while it may be filling: drop joins it, so a helper
        // that missed `closed` would hang this test.
        for _ in 0..20 {
            drop(ChunksAhead::start().expect("a thread"));
        }
    }
}
