use super::*;
use crate::client::transport::Transport;
use crate::protocol::{Expect, Reply};
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

/// `size` sessions sharing one close signal, each connecting to a silent
/// server; every request sent is reported on the receiver, every close
/// counted.
fn pool(
    size: usize,
    timeout: Option<Duration>,
) -> (
    Arc<SharedSession<SilentConnector>>,
    mpsc::Receiver<()>,
    Arc<AtomicUsize>,
) {
    let (sent, arrived) = mpsc::channel();
    let closes = Arc::new(AtomicUsize::new(0));
    let closing = CloseSignal::new();
    let sessions = (0..size)
        .map(|_| {
            let connector = SilentConnector {
                sent: sent.clone(),
                closes: closes.clone(),
            };
            Session::new(connector, closing.clone(), timeout, 1 << 20)
        })
        .collect();
    (Arc::new(SharedSession::new(sessions)), arrived, closes)
}

fn no_hook() -> impl FnMut() -> Result<(), ClientError> {
    || Ok(())
}

/// `count` threads, each making one `get` on `shared`.
fn spawn_gets(
    shared: &Arc<SharedSession<SilentConnector>>,
    count: usize,
) -> Vec<thread::JoinHandle<Result<Reply, ClientError>>> {
    (0..count)
        .map(|_| {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.call(&mut no_hook(), |s| s.request(b"get k\n", Expect::Points))
            })
        })
        .collect()
}

/// What a call aborted by `close()` fails with: under way or waiting.
fn assert_closed(err: &ClientError) {
    assert!(
        matches!(
            err,
            ClientError::ClosedDuringCall | ClientError::ClosedByUser
        ),
        "{err:?}"
    );
}

#[test]
fn close_aborts_the_call_under_way_and_the_calls_waiting() {
    let (shared, arrived, closes) = pool(1, None);
    let calls = spawn_gets(&shared, 4);
    // One call has sent its request and waits for the reply; the others
    // wait for the session.
    arrived.recv().unwrap();
    shared.close();
    for call in calls {
        assert_closed(&call.join().unwrap().unwrap_err());
    }
    assert_eq!(closes.load(Ordering::SeqCst), 1);
    assert_eq!(shared.is_connected(), Some(false));
    assert!(matches!(
        shared.call(&mut no_hook(), |s| s.request(b"get k\n", Expect::Points)),
        Err(ClientError::ClosedByUser)
    ));
}

#[test]
fn overlapping_calls_run_on_separate_connections_and_close_aborts_them_all() {
    let (shared, arrived, closes) = pool(3, None);
    let calls = spawn_gets(&shared, 5);
    // Three calls are under way at once, each on its own connection;
    // the other two wait for a session.
    for _ in 0..3 {
        arrived.recv().unwrap();
    }
    assert_eq!(shared.connection_count(), 3);
    assert_eq!(shared.is_connected(), None);
    shared.close();
    for call in calls {
        assert_closed(&call.join().unwrap().unwrap_err());
    }
    assert_eq!(closes.load(Ordering::SeqCst), 3);
    assert!(
        arrived.try_recv().is_err(),
        "a waiting call sent its request"
    );
    assert_eq!(shared.connection_count(), 0);
}

#[test]
fn a_call_waiting_for_a_free_session_times_out_at_its_deadline() {
    let (shared, arrived, _closes) = pool(2, Some(Duration::from_millis(200)));
    let busy = spawn_gets(&shared, 2);
    arrived.recv().unwrap();
    arrived.recv().unwrap();
    let started = Instant::now();
    let err = shared
        .call(&mut no_hook(), |s| s.request(b"get k\n", Expect::Points))
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    shared.close();
    for call in busy {
        assert!(call.join().unwrap().is_err());
    }
}

#[test]
fn retries_wait_between_attempts_and_close_interrupts_the_wait() {
    let (shared, _arrived, _closes) = pool(1, None);
    let policy = RetryPolicy {
        attempts: 4,
        backoff: Duration::from_millis(1),
        cap: Duration::from_millis(1),
    };
    let mut attempts = 0;
    let err = shared
        .call_retrying(&policy, &mut no_hook(), |_| {
            attempts += 1;
            Err::<(), _>(ClientError::Closed { mid_reply: false })
        })
        .unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
    assert_eq!(attempts, 4);
    // An answer of the server is never retried.
    attempts = 0;
    let err = shared
        .call_retrying(&policy, &mut no_hook(), |_| {
            attempts += 1;
            Err::<(), _>(ClientError::Protocol("no".into()))
        })
        .unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    assert_eq!(attempts, 1);
    // A long wait between attempts ends when the client is closed.
    let slow = RetryPolicy {
        attempts: 2,
        backoff: Duration::from_secs(60),
        cap: Duration::from_secs(60),
    };
    let closer = {
        let shared = shared.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            shared.close();
        })
    };
    let started = Instant::now();
    let err = shared
        .call_retrying(&slow, &mut || Ok(()), |_| {
            Err::<(), _>(ClientError::Closed { mid_reply: false })
        })
        .unwrap_err();
    closer.join().unwrap();
    assert_closed(&err);
    assert!(started.elapsed() < Duration::from_secs(10));
}
