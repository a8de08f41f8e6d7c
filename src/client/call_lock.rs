//! Serializes calls on one client while keeping waiting calls bounded and
//! interruptible: a call queued behind another thread's long call still
//! gives up at its own deadline, and runs a hook (Python's signal check)
//! between short waits, just as a call waiting on the network does.

use std::cell::UnsafeCell;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::client::error::ClientError;
use crate::client::transport::WAIT_SLICE;

pub struct CallLock<T> {
    /// The process id of the call holding the value, if any. After `fork()`
    /// a child inherits "held" from a parent thread that does not exist in
    /// the child: a holder from another process counts as gone.
    holder: Mutex<Option<u32>>,
    freed: Condvar,
    /// Accessed only by the call recorded in `holder` (see `CallGuard`).
    value: UnsafeCell<T>,
}

// SAFETY: `value` is reached only through a `CallGuard`, and at most one
// guard per process exists at a time (`holder`); a guard from a parent
// thread never runs in a forked child. So `T` is never shared, only sent.
unsafe impl<T: Send> Sync for CallLock<T> {}

/// Access to the value; dropping it lets the next waiting call in.
pub struct CallGuard<'a, T> {
    lock: &'a CallLock<T>,
}

/// True when `holder` marks the value as in use by a call of this process.
fn held_here(holder: &Option<u32>) -> bool {
    *holder == Some(std::process::id())
}

impl<T> CallLock<T> {
    pub fn new(value: T) -> Self {
        CallLock {
            holder: Mutex::new(None),
            freed: Condvar::new(),
            value: UnsafeCell::new(value),
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
        let mut holder = self.holder();
        while held_here(&holder) {
            let wait = match deadline {
                None => WAIT_SLICE,
                Some(deadline) => match deadline.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => return Err(ClientError::Timeout { after: timeout }),
                    left => left.min(WAIT_SLICE),
                },
            };
            let (guard, _) = self
                .freed
                .wait_timeout(holder, wait)
                .unwrap_or_else(PoisonError::into_inner);
            holder = guard;
            if held_here(&holder) {
                // The hook may need the GIL: never run it holding `holder`.
                drop(holder);
                on_wait()?;
                holder = self.holder();
            }
        }
        Ok(self.enter(holder))
    }

    /// The value if no call holds it now.
    pub fn try_lock(&self) -> Option<CallGuard<'_, T>> {
        let holder = self.holder();
        if held_here(&holder) {
            return None;
        }
        Some(self.enter(holder))
    }

    fn holder(&self) -> MutexGuard<'_, Option<u32>> {
        // Nothing that can panic runs while `holder` is locked, so a
        // poisoned lock still holds a meaningful value.
        self.holder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self, mut holder: MutexGuard<'_, Option<u32>>) -> CallGuard<'_, T> {
        *holder = Some(std::process::id());
        CallGuard { lock: self }
    }
}

impl<T> std::ops::Deref for CallGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one of this process (`holder`).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> std::ops::DerefMut for CallGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this access unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for CallGuard<'_, T> {
    fn drop(&mut self) {
        *self.lock.holder() = None;
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
    fn a_holder_from_another_process_counts_as_gone() {
        // What a child sees after fork() while a parent thread held the lock.
        let lock = CallLock::new(5);
        *lock.holder() = Some(std::process::id().wrapping_add(1));
        let guard = lock.try_lock().expect("a foreign holder must not block");
        assert_eq!(*guard, 5);
        drop(guard);
        *lock.holder() = Some(std::process::id().wrapping_add(1));
        assert_eq!(*lock.lock(None, None, &mut no_hook()).unwrap(), 5);
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
