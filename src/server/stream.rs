//! A connection's byte stream: the socket itself, or TLS over it. The TLS
//! side is rustls's sans-IO `ServerConnection` fed from and drained to the
//! same non-blocking socket the plain path uses (see `socket`), so both
//! paths share the connection loop, its buffers and its back-pressure.

use std::io::{self, Read, Write};
use std::time::Duration;

use rustls::ServerConnection;
use tokio::io::Interest;

use super::socket::{self, within, Socket, LINGER};
use super::tls::TlsConfig;
use crate::protocol::encode_error;

/// The error reply to a client speaking plain text to a TLS port.
pub const TLS_REQUIRED: &str =
    "this server requires TLS: connect with TLS (Client(..., ssl=True or tls_ca=...), or --tls-ca)";

/// Longest a TLS handshake may take.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of every TLS connection (a handshake record).
const HANDSHAKE_RECORD: u8 = 0x16;

/// What a connection's outgoing TLS buffer starts with: a handshake flight
/// or a few replies, so the usual connection never grows it.
const OUTGOING_CAPACITY: usize = 8 * 1024;

/// Plaintext written at once from which the records go to the socket
/// without being gathered into one buffer (see `TlsStream::flush_direct`).
const DIRECT_WRITE: usize = 16 * 1024;

pub(super) enum Stream {
    Plain(Socket),
    Tls(Box<TlsStream>),
}

pub(super) struct TlsStream {
    sock: Socket,
    tls: ServerConnection,
    /// The peer closed its side of the TCP connection.
    eof: bool,
    /// TLS records on their way to the socket, kept for its capacity: a
    /// flush drains rustls into it and sends it with one `write`, where
    /// rustls's own `write_tls` would `writev` its pieces (one per record
    /// and message) and a reply would cost a gather of several buffers.
    outgoing: Vec<u8>,
    /// How much of `outgoing` the socket has taken (a flush cut short by a
    /// timeout leaves the rest for the next).
    sent: usize,
}

/// Why a TLS connection was not established.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    #[error("the client spoke plain text to the TLS port")]
    PlainText,
    #[error("TLS handshake failed: {0}")]
    Tls(rustls::Error),
    #[error("the client closed the connection during the TLS handshake")]
    Closed,
    #[error("the TLS handshake timed out")]
    TimedOut,
    #[error("TLS handshake: {0}")]
    Io(io::Error),
}

impl Stream {
    /// Performs the TLS handshake (at most `limit` long) when `tls` is set.
    /// A client that spoke plain text is answered, in plain text, with
    /// [`TLS_REQUIRED`]; a failed handshake sends rustls's alert.
    pub(super) async fn open(
        sock: Socket,
        tls: Option<&TlsConfig>,
        limit: Duration,
    ) -> Result<Stream, HandshakeError> {
        let Some(config) = tls else {
            return Ok(Stream::Plain(sock));
        };
        let tls = ServerConnection::new(config.clone()).map_err(HandshakeError::Tls)?;
        let mut stream = TlsStream {
            sock,
            tls,
            eof: false,
            outgoing: Vec::with_capacity(OUTGOING_CAPACITY),
            sent: 0,
        };
        let handshake = tokio::time::timeout(limit, stream.handshake()).await;
        match handshake.unwrap_or(Err(HandshakeError::TimedOut)) {
            Ok(()) => Ok(Stream::Tls(Box::new(stream))),
            Err(HandshakeError::PlainText) => {
                let mut reply = Vec::new();
                encode_error(&mut reply, TLS_REQUIRED);
                if socket::write_all(&stream.sock, &reply, Some(LINGER))
                    .await
                    .is_ok()
                {
                    socket::linger(&stream.sock, &mut [0; 4096]).await;
                }
                Err(HandshakeError::PlainText)
            }
            Err(error) => {
                // The alert rustls queued says why (unknown CA, no
                // certificate...); best effort, the peer may be gone.
                let _ = within(Some(LINGER), stream.flush()).await;
                Err(error)
            }
        }
    }

    /// Reads what is available, waiting for at least one byte or EOF.
    pub(super) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(sock) => socket::read(sock, buf).await,
            Stream::Tls(tls) => tls.read(buf).await,
        }
    }

    /// Reads what is available without waiting (`WouldBlock` if nothing is).
    pub(super) fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(sock) => socket::read_now(sock, buf),
            Stream::Tls(tls) => tls.read_now(buf),
        }
    }

    /// Writes all of `buf`, failing when the peer takes nothing for `idle`.
    pub(super) async fn write_all(&mut self, buf: &[u8], idle: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Plain(sock) => socket::write_all(sock, buf, idle).await,
            Stream::Tls(tls) => tls.write_all(buf, idle).await,
        }
    }

    /// After the last reply: ends the stream (TLS: with `close_notify`),
    /// then drains input for a moment so the peer reads the reply instead
    /// of a reset.
    pub(super) async fn linger(&mut self, buf: &mut [u8]) {
        let sock = match self {
            Stream::Plain(sock) => sock,
            Stream::Tls(tls) => {
                tls.tls.send_close_notify();
                let _ = within(Some(LINGER), tls.flush()).await;
                &tls.sock
            }
        };
        socket::linger(sock, buf).await;
    }
}

impl TlsStream {
    async fn handshake(&mut self) -> Result<(), HandshakeError> {
        let mut first = true;
        while self.tls.is_handshaking() {
            self.flush().await.map_err(HandshakeError::Io)?;
            if !self.tls.wants_read() {
                continue;
            }
            drop(self.sock.readable().await.map_err(HandshakeError::Io)?);
            let received = if first {
                self.receive_first()
            } else {
                self.receive()
            };
            match received {
                Ok(0) => return Err(HandshakeError::Closed),
                Ok(_) => first = false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                    return Err(HandshakeError::PlainText)
                }
                Err(e) => return Err(HandshakeError::Io(e)),
            }
            self.tls
                .process_new_packets()
                .map_err(HandshakeError::Tls)?;
        }
        // The server's last flight (TLS 1.2's Finished, 1.3's tickets).
        self.flush().await.map_err(HandshakeError::Io)
    }

    /// The first bytes of the connection, checked to start a TLS record
    /// (`InvalidInput` if not) before rustls sees them.
    fn receive_first(&mut self) -> io::Result<usize> {
        let mut head = [0u8; 4096];
        let n = self
            .sock
            .try_io(Interest::READABLE, |mut s| s.read(&mut head))?;
        if n == 0 {
            self.eof = true;
            return Ok(0);
        }
        if head[0] != HANDSHAKE_RECORD {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let mut rest = &head[..n];
        while !rest.is_empty() {
            self.tls.read_tls(&mut rest)?;
        }
        Ok(n)
    }

    /// Moves the TLS bytes available on the socket into rustls, without
    /// waiting (`WouldBlock` if there are none); 0 at EOF.
    fn receive(&mut self) -> io::Result<usize> {
        let TlsStream { sock, tls, eof, .. } = self;
        let n = sock.try_io(Interest::READABLE, |mut s| tls.read_tls(&mut s))?;
        if n == 0 {
            *eof = true;
        }
        Ok(n)
    }

    /// Plaintext rustls has decrypted already (`WouldBlock` if none).
    fn plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tls.reader().read(buf) {
            // The peer closed the TCP connection without close_notify:
            // its requests are complete lines or dropped, as in plain text.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.eof => Ok(0),
            other => other,
        }
    }

    fn decrypt(&mut self) -> io::Result<()> {
        self.tls
            .process_new_packets()
            .map(drop)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.plaintext(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            self.receive()?;
            self.decrypt()?;
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.plaintext(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            // Key updates and alerts rustls wants to answer.
            self.flush().await?;
            let TlsStream { sock, tls, eof, .. } = self;
            let mut guard = sock.readable().await?;
            let mut socket = ShortReads {
                socket: guard.get_inner(),
                short: false,
            };
            match guard.try_io(|_| tls.read_tls(&mut socket)) {
                Ok(Ok(0)) => *eof = true,
                // As on the plain path: a short read drained the receive
                // queue, so the next wait goes straight to epoll instead of
                // first failing a read with EAGAIN.
                Ok(Ok(_)) if socket.short => guard.clear_ready(),
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
            drop(guard);
            self.decrypt()?;
        }
    }

    async fn write_all(&mut self, mut buf: &[u8], idle: Option<Duration>) -> io::Result<()> {
        while !buf.is_empty() {
            // rustls takes what fits its buffer limit; flushing makes room.
            let n = self.tls.writer().write(buf)?;
            buf = &buf[n..];
            if n >= DIRECT_WRITE {
                within(idle, self.flush_direct()).await?;
            } else {
                within(idle, self.flush()).await?;
            }
        }
        Ok(())
    }

    /// Writes every TLS record rustls has pending, gathered into
    /// `outgoing` first: one `write` of one buffer.
    async fn flush(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            // Into a Vec: cannot fail, and takes every pending piece.
            self.tls.write_tls(&mut self.outgoing)?;
        }
        self.send_outgoing().await
    }

    /// Writes every TLS record rustls has pending straight from rustls's
    /// buffers (a `writev` of full records): for large writes, which a
    /// copy into `outgoing` would cost more than the gather saves.
    async fn flush_direct(&mut self) -> io::Result<()> {
        // What an earlier flush left comes first.
        self.send_outgoing().await?;
        while self.tls.wants_write() {
            let TlsStream { sock, tls, .. } = self;
            match sock.try_io(Interest::WRITABLE, |mut s| tls.write_tls(&mut s)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(self.sock.writable().await?);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes what `outgoing` holds past `sent`, then empties it.
    async fn send_outgoing(&mut self) -> io::Result<()> {
        let TlsStream {
            sock,
            outgoing,
            sent,
            ..
        } = self;
        while *sent < outgoing.len() {
            match sock.try_io(Interest::WRITABLE, |mut s| s.write(&outgoing[*sent..])) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(sock.writable().await?);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        outgoing.clear();
        *sent = 0;
        Ok(())
    }
}

/// The socket as rustls reads it, noting whether a read returned fewer
/// bytes than asked for.
struct ShortReads<'s> {
    socket: &'s std::net::TcpStream,
    short: bool,
}

impl Read for ShortReads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.socket.read(buf)?;
        self.short = n > 0 && n < buf.len();
        Ok(n)
    }
}
