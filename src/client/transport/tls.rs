//! TLS framing for the native transport: rustls over the same waiting
//! socket as plain text, so timeouts, Ctrl-C, closing and fork detection
//! are the plain transport's own. Each batch of requests goes out as one
//! write of as few records as it fills.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::native::{Framing, NativeSocket};
use super::socket::{Waiting, WaitingSocket};
use super::WaitHook;
use crate::client::closing::CloseSignal;
use crate::client::error::ClientError;
use crate::client::tls::{ClientTls, TlsStream};

pub struct TlsSocket {
    stream: TlsStream,
    /// TLS bytes on their way to the socket (kept for its capacity).
    outgoing: Vec<u8>,
    /// Plaintext that came with the end of the handshake, for the next read.
    early: Vec<u8>,
}

impl TlsSocket {
    fn flush(&mut self, socket: &mut WaitingSocket) -> Result<(), ClientError> {
        self.outgoing.clear();
        self.stream.outgoing(&mut self.outgoing)?;
        if self.outgoing.is_empty() {
            return Ok(());
        }
        socket.write_all(&self.outgoing)
    }

    fn handshake(
        &mut self,
        socket: &mut WaitingSocket,
        buffer: &mut [u8],
    ) -> Result<(), ClientError> {
        let early = &mut self.early;
        loop {
            self.outgoing.clear();
            self.stream.outgoing(&mut self.outgoing)?;
            socket.write_all(&self.outgoing)?;
            if !self.stream.is_handshaking() {
                return Ok(());
            }
            let n = socket.read(buffer)?;
            self.stream
                .feed(&buffer[..n], &mut |data| early.extend_from_slice(data))?;
        }
    }
}

impl NativeSocket<TlsSocket> {
    /// Takes over a connected stream as `NativeSocket::new` does and does
    /// the TLS handshake with `host` within `timeout`. The handshake failing
    /// on the network is a failure to connect (as the Python path reports
    /// it); a certificate refused is a TLS error.
    #[allow(clippy::too_many_arguments)]
    pub fn handshake(
        stream: TcpStream,
        timeout: Option<Duration>,
        on_wait: WaitHook,
        closing: &Arc<CloseSignal>,
        tls: &ClientTls,
        host: &str,
        address: String,
    ) -> Result<Self, ClientError> {
        let socket = WaitingSocket::new(stream, timeout, on_wait, closing)?;
        let stream = TlsStream::new(tls, host, address.clone())?;
        let framing = TlsSocket {
            stream,
            outgoing: Vec::new(),
            early: Vec::new(),
        };
        let mut native = NativeSocket::framed(socket, framing);
        native
            .socket
            .set_deadline(timeout.map(|t| Instant::now() + t));
        let done = native
            .framing
            .handshake(&mut native.socket, &mut native.buffer);
        native.socket.set_deadline(None);
        match done {
            Ok(()) => Ok(native),
            // `close()` shut the socket down under the handshake.
            Err(_) if closing.is_closed() => Err(ClientError::ClosedDuringCall),
            Err(ClientError::Timeout { .. }) => Err(ClientError::Connect {
                address,
                timed_out: true,
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the TLS handshake timed out",
                )),
            }),
            Err(ClientError::Socket(source)) => Err(ClientError::Connect {
                address,
                timed_out: false,
                source,
            }),
            Err(other) => Err(other),
        }
    }
}

impl Framing for TlsSocket {
    fn send_all(&mut self, socket: &mut WaitingSocket, data: &[u8]) -> Result<(), ClientError> {
        self.outgoing.clear();
        self.stream.encrypt(data, &mut self.outgoing)?;
        socket.write_all(&self.outgoing)
    }

    fn receive(
        &mut self,
        socket: &mut WaitingSocket,
        buffer: &mut [u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, ClientError> {
        if !self.early.is_empty() {
            sink(&self.early);
            let n = self.early.len();
            self.early = Vec::new();
            return Ok(n);
        }
        // Records that hold no reply bytes (session tickets, key updates)
        // are read past: only the end of the stream returns 0.
        while !self.stream.is_closed() {
            let n = socket.read(buffer)?;
            let received = self.stream.feed(&buffer[..n], sink)?;
            if self.stream.wants_write() {
                self.flush(socket)?;
            }
            if received > 0 {
                return Ok(received);
            }
        }
        Ok(0)
    }

    fn is_reusable(&mut self, socket: &mut WaitingSocket, buffer: &mut [u8]) -> bool {
        // The server may send records after the handshake (TLS 1.3 session
        // tickets): they are taken in here, and only reply bytes nobody
        // asked for, or the end of the stream, make the connection unusable.
        let mut unsolicited = !self.early.is_empty();
        for _ in 0..16 {
            match socket.waiting(buffer, false) {
                Waiting::Nothing => return !unsolicited && !self.stream.is_closed(),
                Waiting::Closed => return false,
                Waiting::Bytes(n) => {
                    let fed = self.stream.feed(&buffer[..n], &mut |_| unsolicited = true);
                    if fed.is_err() || unsolicited {
                        return false;
                    }
                }
            }
        }
        false
    }
}
