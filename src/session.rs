//! One logical connection to a server: connects lazily, reuses the
//! connection while its framing is known, and discards it on any failure.
//!
//! Discarding is what keeps a late reply from being read as the answer to
//! the next request (the redis-py CVE-2023-28858/28859 class of bug): after
//! a timeout, a reset, a malformed reply or an interruption the old stream
//! is dropped and the next call opens a new one. A request is never resent
//! automatically, since the server may already have acted on it.

use std::time::{Duration, Instant};

use crate::error::ClientError;
use crate::protocol::{Expect, Reply, ReplyDecoder};
use crate::transport::{exchange, read_replies, read_reply, Transport};

/// Opens connections; the Python layer calls `socket.create_connection`.
pub trait Connector {
    type Transport: Transport;
    fn connect(&mut self) -> Result<Self::Transport, ClientError>;
}

/// Requests of a pipelined batch are sent in chunks of about this many bytes,
/// reading the replies to one chunk before sending the chunk after next: the
/// server's replies can then never fill both socket buffers and deadlock us.
pub const PIPELINE_CHUNK_BYTES: usize = 64 * 1024;

struct Connection<T> {
    transport: T,
    /// A child process after `fork()` must not use its parent's connection.
    owner_pid: u32,
}

pub struct Session<C: Connector> {
    connector: C,
    connection: Option<Connection<C::Transport>>,
    timeout: Option<Duration>,
    max_reply_bytes: usize,
    closed: bool,
}

impl<C: Connector> Session<C> {
    pub fn new(connector: C, timeout: Option<Duration>, max_reply_bytes: usize) -> Self {
        Session {
            connector,
            connection: None,
            timeout,
            max_reply_bytes,
            closed: false,
        }
    }

    pub fn connector(&self) -> &C {
        &self.connector
    }

    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Opens the connection now if there is none (the constructor does this
    /// so that a wrong address fails at once).
    pub fn connect(&mut self) -> Result<(), ClientError> {
        let connection = self.checkout()?;
        self.connection = Some(connection);
        Ok(())
    }

    /// Drops the connection; later calls fail with `ClosedByUser`.
    pub fn close(&mut self) -> Option<C::Transport> {
        self.closed = true;
        self.connection.take().map(|c| c.transport)
    }

    /// Sends one request and returns its reply; an `error` reply becomes
    /// `ClientError::Server` and leaves the connection usable.
    pub fn request(&mut self, request: &[u8], expect: Expect) -> Result<Reply, ClientError> {
        let limit = self.max_reply_bytes;
        match self.with_connection(|transport| {
            exchange(
                transport,
                request,
                &mut ReplyDecoder::with_limit(expect, limit),
            )
        })? {
            Reply::Error(message) => Err(ClientError::Server(message)),
            reply => Ok(reply),
        }
    }

    /// Sends `data` as is (the course's `client.connection.sendall`).
    pub fn send_raw(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.with_connection(|transport| transport.send_all(data))
    }

    /// Reads one reply without sending anything (the course's `_read()`).
    pub fn read_raw(&mut self, expect: Expect) -> Result<Reply, ClientError> {
        let limit = self.max_reply_bytes;
        match self
            .with_connection(|t| read_reply(t, &mut ReplyDecoder::with_limit(expect, limit)))?
        {
            Reply::Error(message) => Err(ClientError::Server(message)),
            reply => Ok(reply),
        }
    }

    /// Sends many requests without waiting for each reply; `ends[i]` is the
    /// end offset of request `i` in `requests`. Returns one reply per request.
    pub fn pipeline(
        &mut self,
        requests: &[u8],
        ends: &[usize],
        expect: Expect,
    ) -> Result<Vec<Reply>, ClientError> {
        let limit = self.max_reply_bytes;
        self.with_connection(|transport| {
            let mut decoder = ReplyDecoder::with_limit(expect, limit);
            let mut replies = Vec::with_capacity(ends.len());
            let total = ends.len();
            let mut sent = 0;
            while sent < total {
                let start = if sent == 0 { 0 } else { ends[sent - 1] };
                let end = chunk_end(ends, sent, start);
                transport.send_all(&requests[start..ends[end - 1]])?;
                // Replies to every chunk before this one: at most two chunks
                // are ever unanswered.
                read_replies(transport, &mut decoder, &mut replies, sent, total)?;
                sent = end;
            }
            read_replies(transport, &mut decoder, &mut replies, total, total)?;
            Ok(replies)
        })
    }

    /// Runs `call` on a healthy connection, keeping the connection only if
    /// the call left the stream in a known state.
    fn with_connection<R>(
        &mut self,
        call: impl FnOnce(&mut C::Transport) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        // Taken out for the duration of the call: if anything below returns
        // early or unwinds, the connection is simply gone, never half-used.
        let mut connection = self.checkout()?;
        connection
            .transport
            .set_deadline(self.timeout.map(|t| Instant::now() + t));
        let result = call(&mut connection.transport);
        match &result {
            Ok(_) => self.connection = Some(connection),
            Err(e) if e.keeps_connection() => self.connection = Some(connection),
            Err(_) => drop(connection),
        }
        result
    }

    fn checkout(&mut self) -> Result<Connection<C::Transport>, ClientError> {
        if self.closed {
            return Err(ClientError::ClosedByUser);
        }
        let pid = std::process::id();
        if let Some(mut connection) = self.connection.take() {
            if connection.owner_pid == pid && connection.transport.is_reusable() {
                return Ok(connection);
            }
            // Stale (peer closed it, or we are a forked child): drop it. In a
            // child this only closes our copy of the descriptor.
        }
        let transport = self.connector.connect()?;
        Ok(Connection {
            transport,
            owner_pid: pid,
        })
    }
}

/// Index one past the last request of the chunk starting at request `first`
/// (whose bytes start at `start`): at least one request, then as many as fit
/// in `PIPELINE_CHUNK_BYTES`.
fn chunk_end(ends: &[usize], first: usize, start: usize) -> usize {
    let limit = start + PIPELINE_CHUNK_BYTES;
    let fitting = ends[first..].partition_point(|&end| end <= limit);
    first + fitting.max(1)
}
