//! The budget for request buffers across connections. A connection's read
//! buffer grows past its initial size only while an unfinished long line
//! arrives; many connections doing that at once could hold gigabytes. Each
//! connection declares what it holds beyond its initial buffer; when the
//! total passes the budget, the connections holding the most are told to
//! shed (answer an error and close), largest first, until it fits again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

pub(crate) struct Budget {
    limit: usize,
    ledger: Mutex<Ledger>,
}

#[derive(Default)]
struct Ledger {
    total: usize,
    next_id: u64,
    /// Connections holding more than their initial buffer: bytes, signal.
    holders: HashMap<u64, (usize, Arc<Shed>)>,
}

/// Tells a connection to shed its buffer.
#[derive(Default)]
pub(crate) struct Shed {
    shed: AtomicBool,
    notify: Notify,
}

impl Shed {
    /// Completes once the connection has been told to shed.
    pub(crate) async fn wait(&self) {
        self.notify.notified().await;
    }

    fn tell(&self) {
        self.shed.store(true, Ordering::Relaxed);
        // Stores a permit if the connection is not waiting yet.
        self.notify.notify_one();
    }
}

/// One connection's share of the budget; gives it back when dropped.
pub(crate) struct Account<'b> {
    budget: &'b Budget,
    id: u64,
    pub(crate) shed: Arc<Shed>,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Budget {
            limit,
            ledger: Mutex::new(Ledger::default()),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // The ledger is consistent after every statement that changes it.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn open(&self) -> Account<'_> {
        let mut ledger = self.ledger();
        ledger.next_id += 1;
        Account {
            budget: self,
            id: ledger.next_id,
            shed: Arc::default(),
        }
    }

    #[cfg(test)]
    fn total(&self) -> usize {
        self.ledger().total
    }
}

impl Account<'_> {
    /// Declares that the connection now holds `bytes` beyond its initial
    /// buffer. Returns false when it must shed instead (it holds the most,
    /// or was already told to).
    pub(crate) fn hold(&self, bytes: usize) -> bool {
        if self.shed.shed.load(Ordering::Relaxed) {
            return false;
        }
        let mut ledger = self.budget.ledger();
        let before = ledger.holders.remove(&self.id).map_or(0, |(held, _)| held);
        ledger.total -= before;
        if bytes > 0 {
            ledger.total += bytes;
            ledger
                .holders
                .insert(self.id, (bytes, Arc::clone(&self.shed)));
        }
        while ledger.total > self.budget.limit {
            let Some((&id, _)) = ledger.holders.iter().max_by_key(|(_, (held, _))| *held) else {
                break;
            };
            if let Some((held, shed)) = ledger.holders.remove(&id) {
                ledger.total -= held;
                shed.tell();
            }
        }
        !self.shed.shed.load(Ordering::Relaxed)
    }
}

impl Drop for Account<'_> {
    fn drop(&mut self) {
        let mut ledger = self.budget.ledger();
        if let Some((held, _)) = ledger.holders.remove(&self.id) {
            ledger.total -= held;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_holders_shed_until_the_total_fits() {
        let budget = Budget::new(100);
        let (a, b, c) = (budget.open(), budget.open(), budget.open());
        assert!(a.hold(50));
        assert!(b.hold(30));
        // 110 > 100: `a`, the largest, is told to shed; `c` keeps going.
        assert!(c.hold(30));
        assert!(a.shed.shed.load(Ordering::Relaxed));
        assert!(!a.hold(10), "a shed connection stays shed");
        assert_eq!(budget.total(), 60);
        // The connection that grows may itself be the largest.
        assert!(!c.hold(90));
        assert_eq!(budget.total(), 30);
        assert!(b.hold(0));
        drop(b);
        assert_eq!(budget.total(), 0);
    }
}
