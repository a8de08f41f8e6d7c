//! Serializes calls on one client while keeping waiting calls bounded and
//! interruptible: a call queued behind another thread's long call still
//! gives up at its own deadline, and runs a hook (Python's signal check)
//! between short waits, just as a call waiting on the network does.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::ClientError;
use crate::transport::WAIT_SLICE;

pub struct CallLock<T> {
    busy: Mutex<bool>,
    freed: Condvar,
    /// Only ever locked by the holder of `busy`, so never contended.
    value: Mutex<T>,
}

/// Access to the value; dropping it lets the next waiting call in.
pub struct CallGuard<'a, T> {
    lock: &'a CallLock<T>,
    value: MutexGuard<'a, T>,
}

impl<T> CallLock<T> {
    pub fn new(value: T) -> Self {
        CallLock {
            busy: Mutex::new(false),
            freed: Condvar::new(),
            value: Mutex::new(value),
        }
    }

    /// Waits for the value until `deadline` (reported as a timeout of
    /// `timeout`), running `on_wait` every `WAIT_SLICE`; an error from it
    /// ends the wait.
    pub fn lock(
        &self,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
        on_wait: &mut dyn FnMut() -> Result<(), ClientError>,
    ) -> Result<CallGuard<'_, T>, ClientError> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        while *busy {
            let wait = match deadline {
                None => WAIT_SLICE,
                Some(deadline) => match deadline.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => return Err(ClientError::Timeout { after: timeout }),
                    left => left.min(WAIT_SLICE),
                },
            };
            let (guard, _) = self
                .freed
                .wait_timeout(busy, wait)
                .unwrap_or_else(PoisonError::into_inner);
            busy = guard;
            if *busy {
                // The hook may need the GIL: never run it while holding `busy`.
                drop(busy);
                on_wait()?;
                busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
            }
        }
        *busy = true;
        drop(busy);
        Ok(self.enter())
    }

    /// The value if no call holds it now.
    pub fn try_lock(&self) -> Option<CallGuard<'_, T>> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if *busy {
            return None;
        }
        *busy = true;
        drop(busy);
        Some(self.enter())
    }

    fn enter(&self) -> CallGuard<'_, T> {
        // A panic while a call held the value cannot leave it half-updated
        // (a session takes its connection out while using it), so a
        // poisoned value is still consistent.
        let value = self.value.lock().unwrap_or_else(PoisonError::into_inner);
        CallGuard { lock: self, value }
    }
}

impl<T> std::ops::Deref for CallGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> std::ops::DerefMut for CallGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T> Drop for CallGuard<'_, T> {
    fn drop(&mut self) {
        *self
            .lock
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = false;
        self.lock.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::thread;

    fn no_hook() -> impl FnMut() -> Result<(), ClientError> {
        || Ok(())
    }

    #[test]
    fn calls_are_serialized() {
        let lock = Arc::new(CallLock::new(Vec::new()));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let lock = lock.clone();
                thread::spawn(move || {
                    for j in 0..500 {
                        let mut guard = lock.lock(None, None, &mut no_hook()).unwrap();
                        let len = guard.len();
                        guard.push((i, j));
                        assert_eq!(guard.len(), len + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            lock.lock(None, None, &mut no_hook()).unwrap().len(),
            8 * 500
        );
    }

    #[test]
    fn a_waiting_call_times_out_at_its_own_deadline() {
        let lock = CallLock::new(());
        let _held = lock.lock(None, None, &mut no_hook()).unwrap();
        let timeout = Duration::from_millis(120);
        let started = Instant::now();
        let mut hook_runs = 0;
        let err = match lock.lock(Some(started + timeout), Some(timeout), &mut || {
            hook_runs += 1;
            Ok(())
        }) {
            Err(err) => err,
            Ok(_) => panic!("acquired a held lock"),
        };
        assert!(matches!(err, ClientError::Timeout { after: Some(t) } if t == timeout));
        assert!(started.elapsed() >= timeout);
        assert!(hook_runs >= 2, "the hook ran {hook_runs} times");
    }

    #[test]
    fn the_hook_can_abort_a_wait() {
        let lock = CallLock::new(());
        let _held = lock.lock(None, None, &mut no_hook()).unwrap();
        let result = lock.lock(None, None, &mut || {
            Err(ClientError::Foreign("interrupted".into()))
        });
        assert!(matches!(result, Err(ClientError::Foreign(_))));
    }

    #[test]
    fn a_waiter_gets_in_when_the_holder_leaves() {
        let lock = Arc::new(CallLock::new(0));
        let held = lock.lock(None, None, &mut no_hook()).unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let lock = lock.clone();
            thread::spawn(move || {
                tx.send(()).unwrap();
                *lock.lock(None, None, &mut no_hook()).unwrap() += 1;
            })
        };
        rx.recv().unwrap();
        assert!(lock.try_lock().is_none());
        drop(held);
        waiter.join().unwrap();
        assert_eq!(*lock.try_lock().unwrap(), 1);
    }
}
