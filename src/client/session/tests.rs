use super::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// An in-memory server: answers every complete request line with the
/// reply `answer` gives, and reports how far it has been read.
struct FakeTransport {
    answer: fn(&[u8]) -> Vec<u8>,
    pending: VecDeque<u8>,
    unanswered_bytes: Vec<u8>,
    /// Requests sent but whose replies have not been received yet.
    outstanding: Arc<AtomicUsize>,
    max_outstanding: Arc<AtomicUsize>,
    healthy: bool,
    /// The last byte handed out, so a reply's final `\n\n` split
    /// between two receives is still counted.
    previous: u8,
    /// Tripped by the request `get close` (another thread's `close()`
    /// arriving while the call waits for its reply).
    closing: Arc<CloseSignal>,
    closes: Arc<AtomicUsize>,
    /// Set by the request `get hangup`: once the replies before it are
    /// read, the server closes the connection.
    hung_up: bool,
}

impl Transport for FakeTransport {
    fn send_all(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.unanswered_bytes.extend_from_slice(data);
        while let Some(end) = self.unanswered_bytes.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.unanswered_bytes.drain(..=end).collect();
            if line == b"get close\n" {
                self.closing.close();
                continue;
            }
            if self.hung_up || line == b"get hangup\n" {
                self.hung_up = true;
                continue;
            }
            self.pending.extend((self.answer)(&line));
            let now = self.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_outstanding.fetch_max(now, Ordering::SeqCst);
        }
        Ok(())
    }

    fn receive(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<usize, ClientError> {
        // Hand out at most 7 bytes at a time: replies straddle chunks.
        let n = self.pending.len().min(7);
        let chunk: Vec<u8> = self.pending.drain(..n).collect();
        let mut completed = 0;
        for &byte in &chunk {
            if byte == b'\n' && self.previous == b'\n' {
                completed += 1;
                // A third newline would not end another reply.
                self.previous = 0;
            } else {
                self.previous = byte;
            }
        }
        self.outstanding.fetch_sub(completed, Ordering::SeqCst);
        if n == 0 && self.hung_up {
            return Ok(0);
        }
        if n == 0 {
            return Err(ClientError::Timeout { after: None });
        }
        sink(&chunk);
        Ok(n)
    }

    fn is_reusable(&mut self) -> bool {
        // Like the native socket: waiting bytes look unsolicited.
        self.healthy && self.pending.is_empty()
    }

    fn close(&mut self) {
        self.closes.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct FakeConnector {
    connects: usize,
    outstanding: Arc<AtomicUsize>,
    max_outstanding: Arc<AtomicUsize>,
    closes: Arc<AtomicUsize>,
}

fn answer(line: &[u8]) -> Vec<u8> {
    match line {
        b"get k\n" => b"ok\nk 2.0 2\nk 1.0 1\n\n".to_vec(),
        b"get silent\n" | b"get hangup\n" => Vec::new(),
        b"get garbage\n" => b"what?\n\n".to_vec(),
        l if l.starts_with(b"put bad") => b"error\nwrong command\n\n".to_vec(),
        _ => b"ok\n\n".to_vec(),
    }
}

impl Connector for FakeConnector {
    type Transport = FakeTransport;
    fn connect(&mut self, closing: &Arc<CloseSignal>) -> Result<FakeTransport, ClientError> {
        if closing.is_closed() {
            return Err(ClientError::ClosedByUser);
        }
        self.connects += 1;
        Ok(FakeTransport {
            answer,
            pending: VecDeque::new(),
            unanswered_bytes: Vec::new(),
            outstanding: self.outstanding.clone(),
            max_outstanding: self.max_outstanding.clone(),
            healthy: true,
            previous: 0,
            closing: closing.clone(),
            closes: self.closes.clone(),
            hung_up: false,
        })
    }
}

fn session() -> Session<FakeConnector> {
    Session::new(FakeConnector::default(), CloseSignal::new(), None, 1 << 20)
}

/// A session closed after one connection: that connection closed once,
/// and calls refused without connecting again.
fn assert_closed_for_good(s: &mut Session<FakeConnector>) {
    assert!(!s.is_connected());
    assert_eq!(s.connector().closes.load(Ordering::SeqCst), 1);
    assert!(matches!(
        s.request(b"put a 1 1\n", Expect::Ack),
        Err(ClientError::ClosedByUser)
    ));
    assert_eq!(s.connector().connects, 1);
}

/// `count` puts as one batch, `put <key(i)> i i`: the requests and the end
/// of each.
fn puts(count: usize, key: impl Fn(usize) -> &'static str) -> (Vec<u8>, Vec<usize>) {
    let mut requests = Vec::new();
    let mut ends = Vec::new();
    for i in 0..count {
        requests.extend_from_slice(format!("put {} {i} {i}\n", key(i)).as_bytes());
        ends.push(requests.len());
    }
    (requests, ends)
}

#[test]
fn requests_share_one_connection() {
    let mut s = session();
    s.connect().unwrap();
    assert_eq!(s.request(b"put a 1 1\n", Expect::Ack).unwrap(), Reply::Ack);
    let reply = s.request(b"get k\n", Expect::Points).unwrap();
    assert_eq!(
        reply,
        Reply::Points(vec![("k".into(), vec![(1, 1.0), (2, 2.0)])])
    );
    assert_eq!(s.connector().connects, 1);
}

#[test]
fn an_error_reply_keeps_the_connection() {
    let mut s = session();
    let err = s.request(b"put bad 1 1\n", Expect::Ack).unwrap_err();
    assert!(matches!(err, ClientError::Protocol(ref m) if m == "wrong command"));
    assert!(s.is_connected());
    s.request(b"put a 1 1\n", Expect::Ack).unwrap();
    assert_eq!(s.connector().connects, 1);
}

#[test]
fn failures_discard_the_connection_and_the_next_call_reconnects() {
    let mut s = session();
    assert!(matches!(
        s.request(b"get silent\n", Expect::Points),
        Err(ClientError::Timeout { .. })
    ));
    assert!(!s.is_connected());
    assert!(matches!(
        s.request(b"get garbage\n", Expect::Points),
        Err(ClientError::Reply(_))
    ));
    assert!(!s.is_connected());
    s.request(b"put a 1 1\n", Expect::Ack).unwrap();
    assert_eq!(s.connector().connects, 3);
}

#[test]
fn a_connection_known_to_be_dead_is_replaced_before_use() {
    let mut s = session();
    s.connect().unwrap();
    s.connection.as_mut().unwrap().transport.healthy = false;
    s.request(b"put a 1 1\n", Expect::Ack).unwrap();
    assert_eq!(s.connector().connects, 2);
}

#[test]
fn a_forked_child_does_not_reuse_the_parents_connection() {
    let mut s = session();
    s.connect().unwrap();
    s.connection.as_mut().unwrap().owner_pid = std::process::id().wrapping_add(1);
    s.request(b"put a 1 1\n", Expect::Ack).unwrap();
    assert_eq!(s.connector().connects, 2);
}

#[test]
fn closed_sessions_refuse_calls() {
    let mut s = session();
    s.connect().unwrap();
    s.close();
    assert_closed_for_good(&mut s);
}

#[test]
fn a_call_under_way_when_the_client_is_closed_is_aborted() {
    let mut s = session();
    s.request(b"put a 1 1\n", Expect::Ack).unwrap();
    let err = s.request(b"get close\n", Expect::Points).unwrap_err();
    assert!(matches!(err, ClientError::ClosedDuringCall), "{err:?}");
    assert_closed_for_good(&mut s);
}

#[test]
fn pipelines_answer_every_request_in_order_with_a_bounded_window() {
    let mut s = session();
    let (requests, ends) = puts(20_000, |i| if i % 997 == 0 { "bad" } else { "ok" });
    let replies = s.pipeline(&requests, &ends, Expect::Ack, None).unwrap();
    assert_eq!(replies.len(), ends.len());
    for (i, reply) in replies.iter().enumerate() {
        let want = if i % 997 == 0 {
            Reply::Error("wrong command".into())
        } else {
            Reply::Ack
        };
        assert_eq!(reply, &want, "reply {i}");
    }
    // Two chunks of at most PIPELINE_CHUNK_BYTES of ~15-byte requests.
    let max = s.connector().max_outstanding.load(Ordering::SeqCst);
    assert!(
        max <= 2 * PIPELINE_CHUNK_BYTES / 10,
        "{max} requests were unanswered at once"
    );
    assert!(max > 1, "requests were not pipelined");
}

/// Requests written only when the session asks for them, noting how
/// many were unanswered each time it asked for more.
struct Lazy {
    total: usize,
    requests: Vec<u8>,
    ends: Vec<usize>,
    outstanding: Arc<AtomicUsize>,
    unanswered_when_encoding: Vec<usize>,
}

impl Requests for Lazy {
    fn total(&self) -> usize {
        self.total
    }

    fn encoded(&mut self, upto: usize) -> (&[u8], &[usize]) {
        if self.ends.len() < self.total && self.requests.len() < upto {
            let unanswered = self.outstanding.load(Ordering::SeqCst);
            self.unanswered_when_encoding.push(unanswered);
        }
        while self.ends.len() < self.total && self.requests.len() < upto {
            let i = self.ends.len();
            self.requests
                .extend_from_slice(format!("put ok {i} {i}\n").as_bytes());
            self.ends.push(self.requests.len());
        }
        (&self.requests, &self.ends)
    }
}

#[test]
fn a_pipeline_encodes_each_chunk_while_the_one_before_is_unanswered() {
    let mut s = session();
    let mut source = Lazy {
        total: 50_000,
        requests: Vec::new(),
        ends: Vec::new(),
        outstanding: Arc::clone(&s.connector().outstanding),
        unanswered_when_encoding: Vec::new(),
    };
    let replies = s.pipeline_requests(&mut source, Expect::Ack, None).unwrap();
    assert_eq!(replies.len(), 50_000);
    assert!(replies.iter().all(|r| *r == Reply::Ack));
    let asked = &source.unanswered_when_encoding;
    // One chunk encoded before anything is sent, then one at a time.
    assert!(asked.len() > 5, "encoded in {} pieces", asked.len());
    assert_eq!(asked[0], 0);
    assert!(
        asked[1..].iter().all(|&n| n > 0),
        "a chunk was encoded with nothing in flight: {asked:?}"
    );
}

#[test]
fn a_raw_request_s_reply_waiting_on_the_socket_is_read_not_discarded() {
    let mut s = session();
    s.send_raw(b"put bad 1 1\n").unwrap();
    let err = s.read_raw(Expect::Points).unwrap_err();
    assert!(matches!(err, ClientError::Protocol(ref m) if m == "wrong command"));
    s.send_raw(b"get k\n").unwrap();
    let reply = s.read_raw(Expect::Points).unwrap();
    assert_eq!(
        reply,
        Reply::Points(vec![("k".into(), vec![(1, 1.0), (2, 2.0)])])
    );
    assert_eq!(s.connector().connects, 1);
}

#[test]
fn chunks_hold_at_least_one_request() {
    let ends = [10, PIPELINE_CHUNK_BYTES * 3, PIPELINE_CHUNK_BYTES * 3 + 5];
    assert_eq!(chunk_end(&ends, 0, 0), 1);
    assert_eq!(chunk_end(&ends, 1, 10), 2);
    assert_eq!(chunk_end(&ends, 2, ends[1]), 3);
}

#[test]
fn a_window_bounds_the_requests_in_flight() {
    for window in [1, 2, 5] {
        let mut s = session();
        let (requests, ends) = puts(50, |_| "ok");
        let replies = s
            .pipeline(&requests, &ends, Expect::Ack, Some(window))
            .unwrap();
        assert_eq!(replies, vec![Reply::Ack; 50]);
        let max = s.connector().max_outstanding.load(Ordering::SeqCst);
        assert_eq!(max, window, "window {window}");
    }
}

#[test]
fn a_batch_the_server_stops_answering_says_how_much_was_answered() {
    let mut s = session();
    let requests = b"put ok 1 1\nput ok 2 2\nget silent\nget silent\n";
    let ends = [11, 22, 33, 44];
    let err = s.pipeline(requests, &ends, Expect::Ack, None).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Stalled {
                answered: 2,
                total: 4,
                window: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("may not support pipelining"),
        "{err}"
    );
    assert!(!s.is_connected());
}

#[test]
fn a_batch_cut_short_says_how_many_were_acknowledged() {
    let mut s = session();
    let requests = b"put ok 1 1\nput ok 2 2\nput bad 3 3\nget hangup\nput ok 5 5\n";
    let ends = [11, 22, 34, 45, 56];
    let err = s.pipeline(requests, &ends, Expect::Ack, None).unwrap_err();
    match &err {
        ClientError::CutShort {
            acknowledged: 3,
            total: 5,
            cause,
        } => assert!(matches!(**cause, ClientError::Closed { .. }), "{cause:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "server closed the connection in the middle of a reply; the server acknowledged \
         3 of the 5 points of the batch (resend from point #3)"
    );
    // Retried (when asked) as its cause would be; the connection is gone.
    assert!(err.is_retryable() && err.is_connection_failure());
    assert!(!s.is_connected());
    assert!(matches!(
        err.after_close(),
        ClientError::CutShort { cause, .. } if matches!(*cause, ClientError::ClosedDuringCall)
    ));
}
