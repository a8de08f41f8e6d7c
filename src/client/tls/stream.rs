//! One TLS connection's state, without I/O: bytes read off the socket go
//! in and come out as reply bytes; request bytes go in and come out as TLS
//! records to write. A batch of requests becomes as few records as it
//! fills (16 KiB each), never one per request.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use super::config::ClientTls;
use super::describe::describe;
use crate::client::error::ClientError;

pub struct TlsStream {
    connection: ClientConnection,
    /// `host:port`, for errors naming the server.
    address: String,
    /// The peer ended the stream (close_notify, or end of the TCP stream).
    closed: bool,
}

impl TlsStream {
    /// A connection to `host` (checked against the certificate; sent as SNI
    /// when it is a name), whose first flight is then ready in `outgoing`.
    pub fn new(tls: &ClientTls, host: &str, address: String) -> Result<Self, ClientError> {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| ClientError::Tls {
            what: format!("{host:?} is not a host name or address TLS can check"),
            address: Some(address.clone()),
            source: Box::new(e),
        })?;
        let mut connection =
            ClientConnection::new(Arc::clone(&tls.config), name).map_err(|e| ClientError::Tls {
                what: describe(&e, true),
                address: Some(address.clone()),
                source: Box::new(e),
            })?;
        // Every write is flushed to the socket at once: no need for rustls
        // to hold back a large batch.
        connection.set_buffer_limit(None);
        Ok(TlsStream {
            connection,
            address,
            closed: false,
        })
    }

    pub fn is_handshaking(&self) -> bool {
        self.connection.is_handshaking()
    }

    /// Whether TLS bytes are waiting to be written (see `outgoing`).
    pub fn wants_write(&self) -> bool {
        self.connection.wants_write()
    }

    /// Whether the peer ended the stream.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Appends the TLS bytes waiting to be written to `out`.
    pub fn outgoing(&mut self, out: &mut Vec<u8>) -> Result<(), ClientError> {
        while self.connection.wants_write() {
            self.connection
                .write_tls(out)
                .map_err(|e| ClientError::Socket(Box::new(e)))?;
        }
        Ok(())
    }

    /// Encrypts `data` and appends the records to `out`.
    pub fn encrypt(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ClientError> {
        if let Err(error) = self.connection.writer().write_all(data) {
            return Err(self.io_failure(error));
        }
        self.outgoing(out)
    }

    /// Takes bytes read off the socket (none: the TCP stream ended) and
    /// hands what they decrypt to in one or more pieces to `sink`; returns
    /// how many plaintext bytes that was. The stream ending during the
    /// handshake is an error; after it, the caller sees `is_closed`.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, ClientError> {
        let mut total = 0;
        if data.is_empty() {
            self.closed = true;
            if self.is_handshaking() {
                return Err(ClientError::Tls {
                    address: Some(self.address.clone()),
                    what: "the server closed the connection during the TLS handshake".to_owned(),
                    source: Box::new(io::Error::from(io::ErrorKind::UnexpectedEof)),
                });
            }
            // Marks the end for rustls, so a close_notify read before counts.
            let _ = self.connection.read_tls(&mut data);
        }
        // rustls takes a few KiB at a time and holds at most 16 KiB of
        // plaintext: decrypted records are handed on as they come.
        while !data.is_empty() {
            if let Err(error) = self.connection.read_tls(&mut data) {
                return Err(self.io_failure(error));
            }
            total += self.process(sink)?;
        }
        Ok(total)
    }

    /// An I/O error of rustls's: the TLS failure it stands for (a
    /// connection that failed before refuses every later write with it),
    /// else a socket error.
    fn io_failure(&self, error: io::Error) -> ClientError {
        match error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            Some(tls) => ClientError::Tls {
                address: Some(self.address.clone()),
                what: describe(tls, false),
                source: Box::new(tls.clone()),
            },
            None => ClientError::Socket(Box::new(error)),
        }
    }

    fn process(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<usize, ClientError> {
        let handshaking = self.is_handshaking();
        if let Err(error) = self.connection.process_new_packets() {
            return Err(ClientError::Tls {
                address: Some(self.address.clone()),
                what: describe(&error, handshaking),
                source: Box::new(error),
            });
        }
        let mut total = 0;
        let mut reader = self.connection.reader();
        loop {
            let taken = match reader.fill_buf() {
                Ok([]) => {
                    self.closed = true;
                    break;
                }
                Ok(data) => {
                    sink(data);
                    data.len()
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The TCP stream ended without close_notify: an end all the
                // same (a reply cut short is the decoder's to notice).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.closed = true;
                    break;
                }
                Err(e) => return Err(ClientError::Socket(Box::new(e))),
            };
            reader.consume(taken);
            total += taken;
        }
        Ok(total)
    }
}
