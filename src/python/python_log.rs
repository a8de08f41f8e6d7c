//! Forwards an embedded server's diagnostics to Python's `logging` (logger
//! `client.server`).
//!
//! The server calls its log sink from its own threads, some of them tokio
//! reactors and some while holding the store's lock. Taking the GIL there
//! could stall every connection behind a Python thread, or deadlock against
//! a Python thread that waits for the server (for example `close()` run from
//! a finalizer, which holds the GIL while the server's threads are joined).
//! So the sink only appends to a bounded queue; one thread of our own drains
//! it and is the only one that takes the GIL, and only to call the logger.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::server::{self, Level, LogSink};

/// The logger's name, documented in the README and the class docstring.
const LOGGER: &str = "client.server";

/// Messages kept while the drain thread waits for the GIL; beyond this a
/// flood (say, one warning per refused connection) is counted, not queued,
/// so the server never waits for Python and memory stays bounded.
const CAPACITY: usize = 1024;

/// How long `flush` waits for the drain thread, which may need a GIL held by
/// another Python thread.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Queue {
    pending: VecDeque<(Level, String)>,
    /// Messages refused because `pending` was full, not yet reported.
    dropped: u64,
    /// Messages accepted since the start, and messages handed to the logger.
    accepted: u64,
    forwarded: u64,
    /// The owner is gone: drain what is left, then stop.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Owns the drain thread; dropping it lets the thread finish the queue and
/// exit (it is not joined: it may be waiting for the GIL its dropper holds).
pub(crate) struct PythonLog {
    shared: Arc<Shared>,
}

impl PythonLog {
    /// Starts the drain thread and returns the sink to give the server.
    pub(crate) fn start() -> std::io::Result<(PythonLog, LogSink)> {
        let shared = Arc::new(Shared::default());
        let drain = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("metrics-server-log".into())
            .spawn(move || run(&drain))?;
        let queue = Arc::clone(&shared);
        let sink: LogSink = Arc::new(move |level, message: &str| {
            let mut q = queue.lock();
            if q.pending.len() >= CAPACITY {
                q.dropped += 1;
            } else {
                q.pending.push_back((level, message.to_owned()));
                q.accepted += 1;
            }
            drop(q);
            queue.changed.notify_all();
        });
        Ok((PythonLog { shared }, sink))
    }

    /// Waits (without the GIL) until every message accepted so far has been
    /// handed to the logger, so that what `Server(...)` and `close()` log is
    /// visible when they return. Bounded by `FLUSH_LIMIT`.
    pub(crate) fn flush(&self, py: Python<'_>) {
        py.detach(|| {
            let deadline = Instant::now() + FLUSH_LIMIT;
            let mut q = self.shared.lock();
            let target = q.accepted;
            while q.forwarded < target {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                q = self
                    .shared
                    .changed
                    .wait_timeout(q, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        });
    }
}

impl Drop for PythonLog {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

fn run(shared: &Shared) {
    loop {
        let (batch, dropped) = {
            let mut q = shared.lock();
            while q.pending.is_empty() && q.dropped == 0 && !q.closed {
                q = shared
                    .changed
                    .wait(q)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if q.pending.is_empty() && q.dropped == 0 {
                return; // closed and drained
            }
            (
                std::mem::take(&mut q.pending),
                std::mem::take(&mut q.dropped),
            )
        };
        let count = batch.len() as u64;
        forward(batch, dropped);
        shared.lock().forwarded += count;
        shared.changed.notify_all();
    }
}

/// Hands messages to the logger. When Python cannot be entered (the
/// interpreter is shutting down) or `logging` fails, warnings and errors go
/// to stderr, as Python's last-resort handler would print them.
fn forward(mut messages: VecDeque<(Level, String)>, dropped: u64) {
    if dropped > 0 {
        messages.push_back((
            Level::Warning,
            format!("{dropped} log messages dropped: they came faster than Python logged them"),
        ));
    }
    let _ = Python::try_attach(|py| {
        while let Some((level, message)) = messages.pop_front() {
            if let Err(e) = log(py, level, &message) {
                e.write_unraisable(py, None);
                messages.push_front((level, message));
                return;
            }
        }
    });
    let stderr = server::stderr_sink();
    for (level, message) in messages {
        if level >= Level::Warning {
            stderr(level, &message);
        }
    }
}

fn log(py: Python<'_>, level: Level, message: &str) -> PyResult<()> {
    let number = match level {
        Level::Info => 20,
        Level::Warning => 30,
        Level::Error => 40,
    };
    py.import("logging")?
        .call_method1("getLogger", (LOGGER,))?
        .call_method1("log", (number, message))?;
    Ok(())
}
