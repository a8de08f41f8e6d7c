//! A TCP socket driven from Rust, so waiting for the server can happen with
//! the Python interpreter released.
//!
//! Waiting is done in short slices (`WAIT_SLICE`) with a hook run between
//! them: the Python layer uses it to deliver Ctrl-C promptly even with no
//! timeout, while the deadline bounds the call as a whole.
//!
//! The stream is shared (`Arc`) with the client's close signal, which shuts
//! it down from the closing thread to wake a blocked read or write; the
//! signal is also checked before every wait, so a reply that keeps
//! streaming in is abandoned too.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Transport;
use crate::client::closing::{Abort, CloseSignal};
use crate::client::error::ClientError;

/// Longest uninterrupted wait before the hook runs again.
pub const WAIT_SLICE: Duration = Duration::from_millis(50);

const RECEIVE_BUFFER: usize = 256 * 1024;

/// Run while waiting; an error from it aborts the call (e.g. KeyboardInterrupt).
pub type WaitHook = Box<dyn FnMut() -> Result<(), ClientError> + Send>;

pub struct NativeSocket {
    stream: Arc<TcpStream>,
    closing: Arc<CloseSignal>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    on_wait: WaitHook,
    buffer: Vec<u8>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl NativeSocket {
    /// Takes over a connected stream, registered with `closing` so that
    /// closing the client aborts it; `timeout` is reported in timeout errors.
    pub fn new(
        stream: TcpStream,
        timeout: Option<Duration>,
        on_wait: WaitHook,
        closing: &Arc<CloseSignal>,
    ) -> Result<Self, ClientError> {
        // Python leaves a socket with a timeout in non-blocking mode; we
        // wait with SO_RCVTIMEO/SO_SNDTIMEO slices instead.
        stream.set_nonblocking(false).map_err(Self::socket_error)?;
        // Each request is one small write answered by the server: Nagle's
        // algorithm would only add latency.
        stream.set_nodelay(true).map_err(Self::socket_error)?;
        let stream = Arc::new(stream);
        let abort: Arc<dyn Abort> = stream.clone();
        closing.register(Arc::downgrade(&abort))?;
        Ok(NativeSocket {
            stream,
            closing: Arc::clone(closing),
            timeout,
            deadline: None,
            on_wait,
            buffer: Vec::new(),
            read_timeout: None,
            write_timeout: None,
        })
    }

    /// How long the next blocking step may wait, or why the call must stop.
    fn next_wait(&self) -> Result<Duration, ClientError> {
        if self.closing.is_closed() {
            return Err(ClientError::ClosedDuringCall);
        }
        match self.deadline {
            None => Ok(WAIT_SLICE),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(ClientError::Timeout {
                        after: self.timeout,
                    })
                } else {
                    Ok(left.min(WAIT_SLICE))
                }
            }
        }
    }

    fn socket_error(error: io::Error) -> ClientError {
        ClientError::Socket(Box::new(error))
    }
}

/// True for the errors that only mean "nothing happened within the slice".
fn is_wait_over(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

impl Transport for NativeSocket {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn send_all(&mut self, mut data: &[u8]) -> Result<(), ClientError> {
        while !data.is_empty() {
            let wait = self.next_wait()?;
            if self.write_timeout != Some(wait) {
                self.stream
                    .set_write_timeout(Some(wait))
                    .map_err(Self::socket_error)?;
                self.write_timeout = Some(wait);
            }
            match (&*self.stream).write(data) {
                Ok(0) => return Err(Self::socket_error(io::ErrorKind::WriteZero.into())),
                Ok(n) => data = &data[n..],
                Err(e) if is_wait_over(&e) => (self.on_wait)()?,
                Err(e) => return Err(Self::socket_error(e)),
            }
        }
        Ok(())
    }

    fn receive(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<usize, ClientError> {
        if self.buffer.is_empty() {
            self.buffer.resize(RECEIVE_BUFFER, 0);
        }
        loop {
            let wait = self.next_wait()?;
            if self.read_timeout != Some(wait) {
                self.stream
                    .set_read_timeout(Some(wait))
                    .map_err(Self::socket_error)?;
                self.read_timeout = Some(wait);
            }
            match (&*self.stream).read(&mut self.buffer) {
                Ok(n) => {
                    sink(&self.buffer[..n]);
                    return Ok(n);
                }
                Err(e) if is_wait_over(&e) => (self.on_wait)()?,
                Err(e) => return Err(Self::socket_error(e)),
            }
        }
    }

    #[cfg(unix)]
    fn is_reusable(&mut self) -> bool {
        use rustix::net::{recv, RecvFlags};
        let mut probe = [0u8; 1];
        // MSG_DONTWAIT keeps the call from blocking whatever the socket's mode.
        match recv(
            &self.stream,
            &mut probe,
            RecvFlags::PEEK | RecvFlags::DONTWAIT,
        ) {
            // Nothing to read (EAGAIN): the normal idle state.
            Err(e) => is_wait_over(&e.into()),
            // 0: the peer closed; more: bytes nobody asked for.
            Ok(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::transport::exchange;
    use crate::protocol::{Expect, Reply, ReplyDecoder};
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
            .stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket.read_timeout = Some(Duration::from_secs(5));
        assert_eq!(socket.stream.peek(&mut probe).unwrap(), 1);
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
