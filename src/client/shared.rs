//! A session shared by threads: calls are serialized on it, and any thread
//! may close it at any time without waiting for a call under way.
//!
//! `close()` never takes the call lock in a blocking way: it trips the close
//! signal (which aborts the connections of calls under way) and closes the
//! idle connection only if no call holds the session. A call that holds it
//! closes its own connection when it sees the signal, and every call checks
//! the signal again after letting go of the session, so a connection put
//! back just before `close()` tripped the signal is still released: whoever
//! leaves the session last after `close()` releases it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::call_lock::CallLock;
use crate::client::closing::CloseSignal;
use crate::client::error::ClientError;
use crate::client::session::{Connector, Session};

pub struct SharedSession<C: Connector> {
    closing: Arc<CloseSignal>,
    timeout: Option<Duration>,
    session: CallLock<Session<C>>,
}

impl<C: Connector> SharedSession<C> {
    pub fn new(session: Session<C>) -> Self {
        SharedSession {
            closing: Arc::clone(session.close_signal()),
            timeout: session.timeout(),
            session: CallLock::new(session),
        }
    }

    /// Runs `call` on the session once the calls before it are done. The
    /// wait counts against the session's timeout, runs `on_wait` every
    /// slice (an error from it ends the wait), and ends as soon as the
    /// session is closed.
    pub fn call<R>(
        &self,
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
            let mut session = self.session.lock(deadline, self.timeout, &mut wait)?;
            session.begin_call(started);
            call(&mut session)
        };
        if self.closing.is_closed() {
            self.release_if_idle();
        }
        result
    }

    /// Closes the session: calls under way are aborted (each raises
    /// `ClosedDuringCall` unless it already finished) and later calls fail
    /// with `ClosedByUser`. Returns without waiting for any call.
    pub fn close(&self) {
        self.closing.close();
        self.release_if_idle();
    }

    pub fn is_closed(&self) -> bool {
        self.closing.is_closed()
    }

    /// Whether the session holds an open connection, or `None` while a call
    /// is under way (never waits).
    pub fn is_connected(&self) -> Option<bool> {
        self.session.try_lock().map(|s| s.is_connected())
    }

    fn release_if_idle(&self) {
        if let Some(mut session) = self.session.try_lock() {
            session.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::transport::Transport;
    use crate::protocol::Expect;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::thread;

    /// A connection whose reply never comes until it is aborted, like a
    /// silent server: `receive` waits on the close signal.
    struct Silent {
        closing: Arc<CloseSignal>,
        sent: mpsc::Sender<()>,
        closes: Arc<AtomicUsize>,
    }

    impl Transport for Silent {
        fn send_all(&mut self, _data: &[u8]) -> Result<(), ClientError> {
            let _ = self.sent.send(());
            Ok(())
        }

        fn receive(&mut self, _sink: &mut dyn FnMut(&[u8])) -> Result<usize, ClientError> {
            for _ in 0..10_000 {
                if self.closing.is_closed() {
                    return Ok(0);
                }
                thread::sleep(Duration::from_millis(1));
            }
            panic!("never aborted");
        }

        fn close(&mut self) {
            self.closes.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct SilentConnector {
        sent: mpsc::Sender<()>,
        closes: Arc<AtomicUsize>,
    }

    impl Connector for SilentConnector {
        type Transport = Silent;
        fn connect(&mut self, closing: &Arc<CloseSignal>) -> Result<Silent, ClientError> {
            Ok(Silent {
                closing: closing.clone(),
                sent: self.sent.clone(),
                closes: self.closes.clone(),
            })
        }
    }

    fn shared() -> (
        Arc<SharedSession<SilentConnector>>,
        mpsc::Receiver<()>,
        Arc<AtomicUsize>,
    ) {
        let (sent, arrived) = mpsc::channel();
        let closes = Arc::new(AtomicUsize::new(0));
        let connector = SilentConnector {
            sent,
            closes: closes.clone(),
        };
        let session = Session::new(connector, CloseSignal::new(), None, 1 << 20);
        (Arc::new(SharedSession::new(session)), arrived, closes)
    }

    fn no_hook() -> impl FnMut() -> Result<(), ClientError> {
        || Ok(())
    }

    #[test]
    fn close_aborts_the_call_under_way_and_the_calls_waiting() {
        let (shared, arrived, closes) = shared();
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || {
                    shared.call(&mut no_hook(), |s| s.request(b"get k\n", Expect::Points))
                })
            })
            .collect();
        // One call has sent its request and waits for the reply; the others
        // wait for the session.
        arrived.recv().unwrap();
        shared.close();
        for call in calls {
            let err = call.join().unwrap().unwrap_err();
            assert!(
                matches!(
                    err,
                    ClientError::ClosedDuringCall | ClientError::ClosedByUser
                ),
                "{err:?}"
            );
        }
        assert_eq!(closes.load(Ordering::SeqCst), 1);
        assert_eq!(shared.is_connected(), Some(false));
        assert!(matches!(
            shared.call(&mut no_hook(), |s| s.request(b"get k\n", Expect::Points)),
            Err(ClientError::ClosedByUser)
        ));
    }
}
