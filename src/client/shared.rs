//! Sessions shared by threads: a pool of up to `max_connections` sessions,
//! each serializing the calls made on it, and closing from any thread
//! without waiting for a call under way.
//!
//! A call takes a free session that has a connection, else the first free
//! one (which connects), else waits for one to be freed. So a client used
//! by one thread at a time only ever has one connection: more are opened
//! only when calls overlap. A connection is used by one call at a time, so
//! requests never interleave on it; each session discards its connection on
//! failure and after `fork()` just as a lone session does.
//!
//! `close()` never takes a session in a blocking way: it trips the close
//! signal all sessions share (which aborts the connections of calls under
//! way) and closes the idle sessions' connections. A call that holds a
//! session closes its own connection when it sees the signal, and every
//! call checks the signal again after letting go of its session, so a
//! connection put back just before `close()` tripped the signal is still
//! released: whoever leaves a session last after `close()` releases it.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::client::call_lock::{CallGuard, CallLock};
use crate::client::closing::CloseSignal;
use crate::client::error::ClientError;
use crate::client::retry::{jitter, RetryPolicy};
use crate::client::session::{Connector, Session};
use crate::client::transport::WAIT_SLICE;

pub struct SharedSession<C: Connector> {
    closing: Arc<CloseSignal>,
    timeout: Option<Duration>,
    sessions: Vec<CallLock<Session<C>>>,
    /// Counts sessions let go of, so a call waiting for a free session
    /// never misses one freed between its look and its wait.
    freed: Mutex<u64>,
    freed_signal: Condvar,
}

/// A session taken by one call; letting go of it wakes a waiting call.
struct Taken<'a, C: Connector> {
    guard: Option<CallGuard<'a, Session<C>>>,
    pool: &'a SharedSession<C>,
}

impl<C: Connector> Drop for Taken<'_, C> {
    fn drop(&mut self) {
        drop(self.guard.take());
        *self.pool.freed() += 1;
        self.pool.freed_signal.notify_one();
    }
}

impl<C: Connector> SharedSession<C> {
    /// A pool of `sessions` (at least one), which must share one close
    /// signal and one timeout. The first one is used whenever it is free.
    pub fn new(sessions: Vec<Session<C>>) -> Self {
        assert!(!sessions.is_empty(), "a pool needs at least one session");
        let closing = Arc::clone(sessions[0].close_signal());
        let timeout = sessions[0].timeout();
        debug_assert!(sessions
            .iter()
            .all(|s| Arc::ptr_eq(s.close_signal(), &closing) && s.timeout() == timeout));
        SharedSession {
            closing,
            timeout,
            sessions: sessions.into_iter().map(CallLock::new).collect(),
            freed: Mutex::new(0),
            freed_signal: Condvar::new(),
        }
    }

    /// Runs `call` on a free session. Waiting for one counts against the
    /// session's timeout, runs `on_wait` every slice (an error from it ends
    /// the wait), and ends as soon as the client is closed.
    pub fn call<R>(
        &self,
        on_wait: &mut dyn FnMut() -> Result<(), ClientError>,
        call: impl FnOnce(&mut Session<C>) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        self.call_on(None, on_wait, call)
    }

    /// Like `call`, on the first session only: raw writes and the reads of
    /// their replies must meet on one connection.
    pub fn call_first<R>(
        &self,
        on_wait: &mut dyn FnMut() -> Result<(), ClientError>,
        call: impl FnOnce(&mut Session<C>) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        self.call_on(Some(0), on_wait, call)
    }

    /// `call`, sent again after a retryable failure as `policy` says, with
    /// a wait between attempts that `close()` and `on_wait` interrupt. Each
    /// attempt has the whole timeout.
    pub fn call_retrying<R>(
        &self,
        policy: &RetryPolicy,
        on_wait: &mut dyn FnMut() -> Result<(), ClientError>,
        mut call: impl FnMut(&mut Session<C>) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        let mut attempt = 1;
        loop {
            match self.call(on_wait, &mut call) {
                Err(error) if error.is_retryable() && attempt < policy.attempts => {
                    self.pause(policy.delay(attempt, jitter()), on_wait)
                        .map_err(|interrupted| match interrupted {
                            ClientError::ClosedByUser => error.after_close(),
                            other => other,
                        })?;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn pause(
        &self,
        delay: Duration,
        on_wait: &mut dyn FnMut() -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let end = Instant::now() + delay;
        loop {
            if self.closing.is_closed() {
                return Err(ClientError::ClosedByUser);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            // Sleeping on the pool's condition variable: only `close()`
            // would wake it early, and the slices bound that anyway.
            let freed = self.freed();
            drop(
                self.freed_signal
                    .wait_timeout(freed, left.min(WAIT_SLICE))
                    .unwrap_or_else(PoisonError::into_inner),
            );
            on_wait()?;
        }
    }

    fn call_on<R>(
        &self,
        only: Option<usize>,
        on_wait: &mut dyn FnMut() -> Result<(), ClientError>,
        call: impl FnOnce(&mut Session<C>) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        if self.closing.is_closed() {
            return Err(ClientError::ClosedByUser);
        }
        let started = Instant::now();
        let deadline = self.timeout.map(|t| started + t);
        let result = {
            let mut wait = || {
                if self.closing.is_closed() {
                    return Err(ClientError::ClosedByUser);
                }
                on_wait()
            };
            let mut taken = match only {
                Some(index) => Taken {
                    guard: Some(self.sessions[index].lock(deadline, self.timeout, &mut wait)?),
                    pool: self,
                },
                None => self.take(deadline, &mut wait)?,
            };
            let session = taken.guard.as_mut().expect("taken until dropped");
            session.begin_call(started);
            call(session)
        };
        if self.closing.is_closed() {
            self.release_idle();
        }
        result
    }

    /// A free session, preferring one with a connection; waits until
    /// `deadline` for one to be freed.
    fn take(
        &self,
        deadline: Option<Instant>,
        wait: &mut dyn FnMut() -> Result<(), ClientError>,
    ) -> Result<Taken<'_, C>, ClientError> {
        loop {
            let seen = *self.freed();
            let mut unconnected = None;
            for session in &self.sessions {
                if let Some(guard) = session.try_lock() {
                    if guard.is_connected() {
                        return Ok(Taken {
                            guard: Some(guard),
                            pool: self,
                        });
                    }
                    if unconnected.is_none() {
                        unconnected = Some(guard);
                    }
                }
            }
            if let Some(guard) = unconnected {
                return Ok(Taken {
                    guard: Some(guard),
                    pool: self,
                });
            }
            let slice = match deadline {
                None => WAIT_SLICE,
                Some(deadline) => match deadline.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => {
                        return Err(ClientError::Timeout {
                            after: self.timeout,
                        })
                    }
                    left => left.min(WAIT_SLICE),
                },
            };
            let freed = self.freed();
            if *freed == seen {
                drop(
                    self.freed_signal
                        .wait_timeout(freed, slice)
                        .unwrap_or_else(PoisonError::into_inner),
                );
            } else {
                drop(freed);
            }
            // The hook may need the GIL: never run it holding `freed`.
            wait()?;
        }
    }

    /// Closes every session: calls under way are aborted (each raises
    /// `ClosedDuringCall` unless it already finished) and later calls fail
    /// with `ClosedByUser`. Returns without waiting for any call.
    pub fn close(&self) {
        self.closing.close();
        self.release_idle();
        // Wake calls waiting for a session or between retries.
        self.freed_signal.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closing.is_closed()
    }

    /// Whether an idle session holds an open connection, or `None` when
    /// none does and some call is under way (never waits).
    pub fn is_connected(&self) -> Option<bool> {
        let mut busy = false;
        for session in &self.sessions {
            match session.try_lock() {
                Some(s) if s.is_connected() => return Some(true),
                Some(_) => {}
                None => busy = true,
            }
        }
        if busy {
            None
        } else {
            Some(false)
        }
    }

    /// How many sessions hold an open connection now; sessions in use
    /// count as connected (never waits).
    pub fn connection_count(&self) -> usize {
        self.sessions
            .iter()
            .filter(|session| session.try_lock().is_none_or(|s| s.is_connected()))
            .count()
    }

    fn release_idle(&self) {
        for session in &self.sessions {
            if let Some(mut session) = session.try_lock() {
                session.close();
            }
        }
    }

    fn freed(&self) -> std::sync::MutexGuard<'_, u64> {
        // Nothing that can panic runs under this lock.
        self.freed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
