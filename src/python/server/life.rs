//! A `Server`'s life: the replay in a thread of its own, waiting for it
//! with Python signals delivered, and closing. Nothing here is seen from
//! Python; the class's methods (`mod.rs`) call it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::{warn, Server};
use crate::server::{self, ServerError};

/// Where a server is in its life.
pub(super) enum State {
    /// Replaying the journal in a thread of its own.
    Loading {
        thread: JoinHandle<Result<server::Server, ServerError>>,
        cancel: Arc<AtomicBool>,
    },
    Running(Box<server::Server>),
    /// The replay or the start after it failed; raised by every `wait`.
    Failed(ServerError),
    Closed,
}

/// Set by the loading thread when it is done, so waiters wake at once.
#[derive(Default)]
pub(super) struct Loaded {
    pub(super) done: Mutex<bool>,
    pub(super) wake: Condvar,
}

/// How long a wait sleeps between checks for Python signals.
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

impl Server {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands what the server logged so far to `logging` before returning to
    /// Python. Never called with the state locked: the log thread needs the
    /// GIL, which a Python thread waiting for that lock would be holding.
    pub(super) fn flush_log(&self, py: Python<'_>) {
        if let Some(python_log) = &self.python_log {
            python_log.flush(py);
        }
    }

    /// Once the loading thread is done, takes its result: the server, or the
    /// error to raise from now on. Warns about what recovery found.
    pub(super) fn settle(&self, py: Python<'_>) -> PyResult<()> {
        if !*self
            .loaded
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            return Ok(());
        }
        let mut state = self.lock();
        if !matches!(*state, State::Loading { .. }) {
            return Ok(());
        }
        let State::Loading { thread, .. } = std::mem::replace(&mut *state, State::Closed) else {
            unreachable!("checked above");
        };
        let result = py.detach(|| thread.join());
        *state = match result {
            Ok(Ok(server)) => State::Running(Box::new(server)),
            Ok(Err(error)) => State::Failed(error),
            Err(_) => State::Failed(ServerError::Threads(std::io::Error::other(
                "the thread replaying the data file panicked",
            ))),
        };
        let warnings = match &*state {
            State::Running(server) => server.recovery().map(|r| r.warnings()).unwrap_or_default(),
            _ => Vec::new(),
        };
        drop(state);
        for warning in warnings {
            warn(py, &warning)?;
        }
        Ok(())
    }

    /// Waits until loading is done or `timeout` passes, in slices, running
    /// Python's signal handlers between them (their exception is raised).
    /// Returns whether the server is serving; raises the start's error.
    pub(super) fn wait_inner(&self, py: Python<'_>, timeout: Option<Duration>) -> PyResult<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.settle(py)?;
            let outcome = match &*self.lock() {
                State::Running(_) => Some(Ok(true)),
                State::Failed(error) => Some(Err(PyErr::from(error))),
                State::Closed => Some(Ok(false)),
                State::Loading { .. } => None,
            };
            if let Some(outcome) = outcome {
                self.flush_log(py);
                return outcome;
            }
            let slice = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    left.min(SIGNAL_SLICE)
                }
                None => SIGNAL_SLICE,
            };
            py.detach(|| {
                let done = self
                    .loaded
                    .done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let _ = self
                    .loaded
                    .wake
                    .wait_timeout_while(done, slice, |done| !*done);
            });
            py.check_signals()?;
        }
    }

    pub(super) fn close_inner(&self, py: Python<'_>) -> PyResult<()> {
        let result = py.detach(|| {
            let mut state = self.lock();
            match std::mem::replace(&mut *state, State::Closed) {
                State::Loading { thread, cancel } => {
                    cancel.store(true, Ordering::Relaxed);
                    match thread.join() {
                        Ok(Ok(mut server)) => server.close(),
                        _ => Ok(()),
                    }
                }
                State::Running(mut server) => server.close(),
                State::Failed(_) | State::Closed => Ok(()),
            }
        });
        self.flush_log(py);
        result.map_err(PyErr::from)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A replay still running must not go on to serve with no owner.
        let state = std::mem::replace(
            self.state.get_mut().unwrap_or_else(PoisonError::into_inner),
            State::Closed,
        );
        if let State::Loading { thread, cancel } = state {
            cancel.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}
