//! The transport driven from Rust: a `WaitingSocket` under a framing, plain
//! text or TLS (`super::tls`). The framing only turns request bytes into
//! what goes on the socket and what comes off it back into reply bytes;
//! waiting, timeouts, Ctrl-C and closing are the socket's, the same for both.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::socket::{Waiting, WaitingSocket};
use super::{Transport, WaitHook};
use crate::client::closing::CloseSignal;
use crate::client::error::ClientError;

const RECEIVE_BUFFER: usize = 256 * 1024;

/// What goes on the wire for the bytes of requests and replies.
pub trait Framing: Send {
    /// Sends all of `data` (one batch of requests) on `socket`.
    fn send_all(&mut self, socket: &mut WaitingSocket, data: &[u8]) -> Result<(), ClientError>;

    /// Waits for more reply bytes and hands them to `sink` (in one or more
    /// pieces); returns how many, 0 meaning the peer closed the stream.
    /// `buffer` is the transport's, for what is read off the socket.
    fn receive(
        &mut self,
        socket: &mut WaitingSocket,
        buffer: &mut [u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, ClientError>;

    /// False when the idle connection is known to be unusable; never blocks.
    fn is_reusable(&mut self, socket: &mut WaitingSocket, buffer: &mut [u8]) -> bool;
}

/// Requests and replies as they are.
pub struct Plain;

impl Framing for Plain {
    fn send_all(&mut self, socket: &mut WaitingSocket, data: &[u8]) -> Result<(), ClientError> {
        socket.write_all(data)
    }

    fn receive(
        &mut self,
        socket: &mut WaitingSocket,
        buffer: &mut [u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, ClientError> {
        let n = socket.read(buffer)?;
        sink(&buffer[..n]);
        Ok(n)
    }

    fn is_reusable(&mut self, socket: &mut WaitingSocket, buffer: &mut [u8]) -> bool {
        // 0: the peer closed; bytes: nobody asked for them.
        matches!(socket.waiting(&mut buffer[..1], true), Waiting::Nothing)
    }
}

pub struct NativeSocket<F: Framing = Plain> {
    pub(super) socket: WaitingSocket,
    pub(super) framing: F,
    pub(super) buffer: Vec<u8>,
}

impl NativeSocket<Plain> {
    /// Takes over a connected stream, registered with `closing` so that
    /// closing the client aborts it; `timeout` is reported in timeout errors.
    pub fn new(
        stream: TcpStream,
        timeout: Option<Duration>,
        on_wait: WaitHook,
        closing: &Arc<CloseSignal>,
    ) -> Result<Self, ClientError> {
        let socket = WaitingSocket::new(stream, timeout, on_wait, closing)?;
        Ok(NativeSocket::framed(socket, Plain))
    }
}

impl<F: Framing> NativeSocket<F> {
    pub(super) fn framed(socket: WaitingSocket, framing: F) -> Self {
        NativeSocket {
            socket,
            framing,
            buffer: vec![0; RECEIVE_BUFFER],
        }
    }
}

impl<F: Framing> Transport for NativeSocket<F> {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.socket.set_deadline(deadline);
    }

    fn send_all(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.framing.send_all(&mut self.socket, data)
    }

    fn receive(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<usize, ClientError> {
        self.framing
            .receive(&mut self.socket, &mut self.buffer, sink)
    }

    fn is_reusable(&mut self) -> bool {
        self.framing.is_reusable(&mut self.socket, &mut self.buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::transport::exchange;
    use crate::protocol::{Expect, Reply, ReplyDecoder};
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    fn no_hook() -> WaitHook {
        Box::new(|| Ok(()))
    }

    fn native(stream: TcpStream, timeout: Option<Duration>, hook: WaitHook) -> NativeSocket {
        NativeSocket::new(stream, timeout, hook, &CloseSignal::new()).unwrap()
    }

    #[test]
    fn exchanges_a_request_with_a_real_peer() {
        let (client, mut server) = pair();
        let peer = thread::spawn(move || {
            let mut line = [0u8; 15];
            server.read_exact(&mut line).unwrap();
            assert_eq!(&line, b"put test 0.5 1\n");
            // Reply in two pieces to exercise reassembly.
            server.write_all(b"o").unwrap();
            server.write_all(b"k\n\n").unwrap();
            server
        });
        let mut socket = native(client, None, no_hook());
        let mut decoder = ReplyDecoder::new(Expect::Ack);
        let reply = exchange(&mut socket, b"put test 0.5 1\n", &mut decoder).unwrap();
        assert_eq!(reply, Reply::Ack);
        let _server = peer.join().unwrap();
        assert!(socket.is_reusable());
    }

    #[test]
    fn silence_times_out_and_runs_the_hook_meanwhile() {
        let (client, _server) = pair();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let hook: WaitHook = Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let timeout = Duration::from_millis(200);
        let mut socket = native(client, Some(timeout), hook);
        socket.set_deadline(Some(Instant::now() + timeout));
        let mut decoder = ReplyDecoder::new(Expect::Ack);
        let started = Instant::now();
        let err = exchange(&mut socket, b"get k\n", &mut decoder).unwrap_err();
        assert!(
            matches!(err, ClientError::Timeout { after: Some(t) } if t == timeout),
            "{err:?}"
        );
        assert!(started.elapsed() >= timeout);
        assert!(
            calls.load(Ordering::SeqCst) >= 2,
            "hook should run between slices"
        );
    }

    #[test]
    fn an_error_from_the_hook_aborts_the_wait() {
        let (client, _server) = pair();
        let hook: WaitHook = Box::new(|| Err(ClientError::Foreign("interrupted".into())));
        let mut socket = native(client, None, hook);
        let mut decoder = ReplyDecoder::new(Expect::Ack);
        let err = exchange(&mut socket, b"get k\n", &mut decoder).unwrap_err();
        assert!(matches!(err, ClientError::Foreign(ref e) if e.to_string() == "interrupted"));
    }

    #[test]
    fn closing_aborts_a_call_waiting_for_a_silent_peer() {
        let (client, mut server) = pair();
        let closing = CloseSignal::new();
        let mut socket = NativeSocket::new(client, None, no_hook(), &closing).unwrap();
        let closer = {
            let closing = closing.clone();
            thread::spawn(move || {
                // The request has arrived: the call is waiting for a reply.
                let mut line = [0u8; 6];
                server.read_exact(&mut line).unwrap();
                closing.close();
                server
            })
        };
        let mut decoder = ReplyDecoder::new(Expect::Points);
        let err = exchange(&mut socket, b"get k\n", &mut decoder).unwrap_err();
        // Woken by the shutdown (end of stream), or stopped before the
        // next wait by the flag.
        assert!(
            matches!(
                err,
                ClientError::Closed { mid_reply: false } | ClientError::ClosedDuringCall
            ),
            "{err:?}"
        );
        let _server = closer.join().unwrap();
        // Later waits stop at once.
        let err = exchange(&mut socket, b"get k\n", &mut decoder).unwrap_err();
        assert!(
            matches!(err, ClientError::ClosedDuringCall | ClientError::Socket(_)),
            "{err:?}"
        );
    }

    #[test]
    fn a_closed_signal_refuses_new_sockets() {
        let (client, _server) = pair();
        let closing = CloseSignal::new();
        closing.close();
        let result = NativeSocket::new(client, None, no_hook(), &closing);
        assert!(matches!(result, Err(ClientError::ClosedByUser)));
    }

    #[test]
    fn peer_closing_is_reported_and_detected_when_idle() {
        let (client, server) = pair();
        let mut socket = native(client, None, no_hook());
        assert!(socket.is_reusable());
        drop(server);
        // The FIN arrives asynchronously; reading confirms it deterministically.
        let mut decoder = ReplyDecoder::new(Expect::Ack);
        let err = exchange(&mut socket, b"get k\n", &mut decoder);
        assert!(matches!(
            err,
            Err(ClientError::Closed { mid_reply: false }) | Err(ClientError::Socket(_))
        ));
        assert!(!socket.is_reusable());
    }

    #[test]
    fn unsolicited_bytes_make_an_idle_connection_unusable() {
        let (client, mut server) = pair();
        let mut socket = native(client, None, no_hook());
        server.write_all(b"ok\n\n").unwrap();
        // Wait (bounded) until the bytes are visible to the client.
        let mut probe = [0u8; 1];
        socket
            .socket
            .stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket.socket.read_timeout = Some(Duration::from_secs(5));
        assert_eq!(socket.socket.stream.peek(&mut probe).unwrap(), 1);
        assert!(!socket.is_reusable());
    }

    #[test]
    fn trailing_bytes_after_a_reply_are_an_error() {
        let (client, mut server) = pair();
        // Two replies in one write, already queued before the request goes
        // out, so one read sees both.
        server.write_all(b"ok\n\nok\n\n").unwrap();
        let mut socket = native(client, None, no_hook());
        let mut decoder = ReplyDecoder::new(Expect::Points);
        let err = exchange(&mut socket, b"get k\n", &mut decoder).unwrap_err();
        assert!(
            matches!(err, ClientError::TrailingBytes { extra: 4 }),
            "{err:?}"
        );
    }
}
