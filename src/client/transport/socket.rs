//! A TCP socket driven from Rust, waiting in short slices so that waiting
//! for the server can happen with the Python interpreter released.
//!
//! Waiting is done in slices (`WAIT_SLICE`) with a hook run between them:
//! the Python layer uses it to deliver Ctrl-C promptly even with no
//! timeout, while the deadline bounds the call as a whole.
//!
//! The stream is shared (`Arc`) with the client's close signal, which shuts
//! it down from the closing thread to wake a blocked read or write; the
//! signal is also checked before every wait, so a reply that keeps
//! streaming in is abandoned too. Plain text and TLS (`framing`) both read
//! and write through this one socket, so they wait, time out and stop alike.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::closing::{Abort, CloseSignal};
use crate::client::error::ClientError;

/// Longest uninterrupted wait before the hook runs again.
pub const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Run while waiting; an error from it aborts the call (e.g. KeyboardInterrupt).
pub type WaitHook = Box<dyn FnMut() -> Result<(), ClientError> + Send>;

pub struct WaitingSocket {
    pub(super) stream: Arc<TcpStream>,
    closing: Arc<CloseSignal>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    on_wait: WaitHook,
    pub(super) read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

/// What a socket that nobody is reading from holds right now.
pub enum Waiting {
    /// Nothing: the normal idle state.
    Nothing,
    /// The peer closed the connection, or it failed.
    Closed,
    /// This many bytes were read (into the buffer given).
    Bytes(usize),
}

impl WaitingSocket {
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
        stream.set_nonblocking(false).map_err(socket_error)?;
        // Each request is one small write answered by the server: Nagle's
        // algorithm would only add latency.
        stream.set_nodelay(true).map_err(socket_error)?;
        let stream = Arc::new(stream);
        let abort: Arc<dyn Abort> = stream.clone();
        closing.register(Arc::downgrade(&abort))?;
        Ok(WaitingSocket {
            stream,
            closing: Arc::clone(closing),
            timeout,
            deadline: None,
            on_wait,
            read_timeout: None,
            write_timeout: None,
        })
    }

    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// The timeout the client was given, for errors that report it.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
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

    /// Writes all of `data`, waiting in slices.
    pub fn write_all(&mut self, mut data: &[u8]) -> Result<(), ClientError> {
        while !data.is_empty() {
            let wait = self.next_wait()?;
            if self.write_timeout != Some(wait) {
                self.stream
                    .set_write_timeout(Some(wait))
                    .map_err(socket_error)?;
                self.write_timeout = Some(wait);
            }
            match (&*self.stream).write(data) {
                Ok(0) => return Err(socket_error(io::ErrorKind::WriteZero.into())),
                Ok(n) => data = &data[n..],
                Err(e) if is_wait_over(&e) => (self.on_wait)()?,
                Err(e) => return Err(socket_error(e)),
            }
        }
        Ok(())
    }

    /// Waits for bytes and reads what has come into `buffer`; 0 means the
    /// peer closed the stream.
    pub fn read(&mut self, buffer: &mut [u8]) -> Result<usize, ClientError> {
        loop {
            let wait = self.next_wait()?;
            if self.read_timeout != Some(wait) {
                self.stream
                    .set_read_timeout(Some(wait))
                    .map_err(socket_error)?;
                self.read_timeout = Some(wait);
            }
            match (&*self.stream).read(buffer) {
                Ok(n) => return Ok(n),
                Err(e) if is_wait_over(&e) => (self.on_wait)()?,
                Err(e) => return Err(socket_error(e)),
            }
        }
    }

    /// What is waiting on the idle socket, never blocking: with `PEEK` the
    /// bytes stay for a later read, else they are read into `buffer`.
    #[cfg(unix)]
    pub fn waiting(&self, buffer: &mut [u8], peek: bool) -> Waiting {
        use rustix::net::{recv, RecvFlags};
        // MSG_DONTWAIT keeps the call from blocking whatever the socket's mode.
        let mut flags = RecvFlags::DONTWAIT;
        if peek {
            flags |= RecvFlags::PEEK;
        }
        match recv(&self.stream, buffer, flags) {
            Err(e) if is_wait_over(&e.into()) => Waiting::Nothing,
            Err(_) | Ok((0, _)) => Waiting::Closed,
            Ok((n, _)) => Waiting::Bytes(n),
        }
    }
}

pub(super) fn socket_error(error: io::Error) -> ClientError {
    ClientError::Socket(Box::new(error))
}

/// True for the errors that only mean "nothing happened within the slice".
fn is_wait_over(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
