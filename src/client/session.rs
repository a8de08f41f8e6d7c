//! One logical connection to a server: connects lazily, reuses the
//! connection while its framing is known, and discards it on any failure.
//!
//! Discarding is what keeps a late reply from being read as the answer to
//! the next request (the redis-py CVE-2023-28858/28859 class of bug): after
//! a timeout, a reset, a malformed reply or an interruption the old stream
//! is dropped and the next call opens a new one. A session never resends a
//! request (the server may already have acted on it); retries, when the
//! caller asks for them, are made above it (`shared`, `retry`).
//!
//! Closing goes through the close signal, which another thread may trip at
//! any time (see `closing`): a call under way then ends with
//! `ClosedDuringCall`, and its connection is closed rather than kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::closing::CloseSignal;
use crate::client::error::ClientError;
use crate::client::requests::{Encoded, Requests};
use crate::client::transport::{exchange, read_replies, read_reply, Transport};
use crate::protocol::{Expect, Reply, ReplyDecoder};

/// Opens connections; the Python layer calls `socket.create_connection`.
pub trait Connector {
    type Transport: Transport;
    /// A new connection, registered with `closing` so that closing the
    /// client can abort it (failing with `ClosedByUser` once it is closed).
    fn connect(&mut self, closing: &Arc<CloseSignal>) -> Result<Self::Transport, ClientError>;
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
    closing: Arc<CloseSignal>,
    /// When the current call began, if it began before the session was
    /// reached (waiting for another thread's call counts against `timeout`).
    call_started: Option<Instant>,
    /// `send_raw` wrote bytes whose reply `read_raw` has not read yet: bytes
    /// waiting on the idle connection are that reply, not unsolicited.
    raw_reply_pending: bool,
}

impl<C: Connector> Session<C> {
    /// A session closed by `closing` (which it may share with others).
    pub fn new(
        connector: C,
        closing: Arc<CloseSignal>,
        timeout: Option<Duration>,
        max_reply_bytes: usize,
    ) -> Self {
        Session {
            connector,
            connection: None,
            timeout,
            max_reply_bytes,
            closing,
            raw_reply_pending: false,
            call_started: None,
        }
    }

    pub fn connector(&self) -> &C {
        &self.connector
    }

    pub fn close_signal(&self) -> &Arc<CloseSignal> {
        &self.closing
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
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

    /// Closes the session and its idle connection; later calls fail with
    /// `ClosedByUser`. (A call under way holds its connection: the signal
    /// aborts it, and the call closes the connection when it ends.)
    pub fn close(&mut self) {
        self.closing.close();
        self.release_connection();
    }

    fn release_connection(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            connection.transport.close();
        }
    }

    /// Marks when the next call began, if earlier than now (it waited for
    /// the session): the call's deadline counts from then.
    pub fn begin_call(&mut self, started: Instant) {
        self.call_started = Some(started);
    }

    /// Sends one request and returns its reply; an `error` reply becomes
    /// `ClientError::Protocol` and leaves the connection usable.
    pub fn request(&mut self, request: &[u8], expect: Expect) -> Result<Reply, ClientError> {
        let limit = self.max_reply_bytes;
        match self.with_connection(|transport| {
            exchange(
                transport,
                request,
                &mut ReplyDecoder::with_limit(expect, limit),
            )
        })? {
            Reply::Error(message) => Err(ClientError::Protocol(message)),
            reply => Ok(reply),
        }
    }

    /// Sends `data` as is (the course's `client.connection.sendall`).
    pub fn send_raw(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.with_connection(|transport| transport.send_all(data))?;
        self.raw_reply_pending = true;
        Ok(())
    }

    /// Reads one reply without sending anything (the course's `_read()`).
    pub fn read_raw(&mut self, expect: Expect) -> Result<Reply, ClientError> {
        let limit = self.max_reply_bytes;
        let result =
            self.with_connection(|t| read_reply(t, &mut ReplyDecoder::with_limit(expect, limit)));
        self.raw_reply_pending = false;
        match result? {
            Reply::Error(message) => Err(ClientError::Protocol(message)),
            reply => Ok(reply),
        }
    }

    /// Sends many requests without waiting for each reply; `ends[i]` is the
    /// end offset of request `i` in `requests`. At most `window` requests
    /// are unanswered at any time (`None`: as many as two chunks hold).
    /// Returns one reply per request. A server that answers some requests
    /// and then falls silent until the timeout gives `Stalled`, which says
    /// how many were answered; a connection lost part-way gives `CutShort`,
    /// which says how many replies had arrived.
    pub fn pipeline(
        &mut self,
        requests: &[u8],
        ends: &[usize],
        expect: Expect,
        window: Option<usize>,
    ) -> Result<Vec<Reply>, ClientError> {
        self.pipeline_requests(&mut Encoded { requests, ends }, expect, window)
    }

    /// `pipeline` of requests encoded as they are needed: the next chunk
    /// is encoded right after one is sent, while the server works on it.
    pub fn pipeline_requests(
        &mut self,
        source: &mut impl Requests,
        expect: Expect,
        window: Option<usize>,
    ) -> Result<Vec<Reply>, ClientError> {
        let limit = self.max_reply_bytes;
        let window = window.unwrap_or(usize::MAX).max(1);
        let total = source.total();
        let mut most_in_flight = 0;
        let mut replies = Vec::with_capacity(total);
        let mut began = false;
        let result = self.with_connection(|transport| {
            began = true;
            let mut decoder = ReplyDecoder::with_limit(expect, limit);
            let mut sent = 0;
            let mut start = 0;
            while sent < total {
                let (requests, ends) = source.encoded(start + PIPELINE_CHUNK_BYTES);
                // `replies.len() + window > sent` holds here (see below).
                let end = chunk_end(ends, sent, start).min(replies.len().saturating_add(window));
                if let Err(error) = transport.send_all(&requests[start..ends[end - 1]]) {
                    if matches!(error, ClientError::Socket(_)) {
                        // The server may have answered more before it went
                        // away: those replies wait unread in our receive
                        // buffer, and a peer that is gone cannot make the
                        // read wait. Counting them keeps `acknowledged`
                        // exact, so a caller resends no more than needed.
                        let _ = read_replies(transport, &mut decoder, &mut replies, total, total);
                    }
                    return Err(error);
                }
                start = ends[end - 1];
                // The next chunk, encoded while the server parses this one.
                source.encoded(start + PIPELINE_CHUNK_BYTES);
                most_in_flight = most_in_flight.max(end - replies.len());
                // Replies to every chunk before this one (at most two
                // chunks are ever unanswered), and enough replies to this
                // one for the next request to fit in the window.
                let needed = sent.max((end + 1).saturating_sub(window)).min(total);
                read_replies(transport, &mut decoder, &mut replies, needed, total)?;
                sent = end;
            }
            read_replies(transport, &mut decoder, &mut replies, total, total)
        });
        match result {
            Ok(()) => Ok(replies),
            Err(ClientError::Timeout { after }) if total > 1 => Err(ClientError::Stalled {
                answered: replies.len(),
                total,
                window: most_in_flight,
                after,
            }),
            // (Not when the connection could not be had: nothing was sent.)
            Err(e) if began && e.is_connection_failure() => Err(ClientError::CutShort {
                acknowledged: replies.len(),
                total,
                cause: Box::new(e),
            }),
            Err(e) => Err(e),
        }
    }

    /// Runs `call` on a healthy connection, keeping the connection only if
    /// the call left the stream in a known state.
    fn with_connection<R>(
        &mut self,
        call: impl FnOnce(&mut C::Transport) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        let started = self.call_started.take().unwrap_or_else(Instant::now);
        // Taken out for the duration of the call: if anything below returns
        // early or unwinds, the connection is simply gone, never half-used.
        let mut connection = self.checkout()?;
        connection
            .transport
            .set_deadline(self.timeout.map(|t| started + t));
        let result = call(&mut connection.transport);
        if self.closing.is_closed() {
            // Closed while the call was under way: whatever state the
            // stream is in, nobody may use it any more.
            connection.transport.close();
            return result.map_err(ClientError::after_close);
        }
        match &result {
            Ok(_) => self.connection = Some(connection),
            Err(e) if e.keeps_connection() => self.connection = Some(connection),
            Err(_) => drop(connection),
        }
        result
    }

    fn checkout(&mut self) -> Result<Connection<C::Transport>, ClientError> {
        if self.closing.is_closed() {
            self.release_connection();
            return Err(ClientError::ClosedByUser);
        }
        let pid = std::process::id();
        if let Some(mut connection) = self.connection.take() {
            // After `send_raw`, bytes waiting are the reply `read_raw` wants.
            if connection.owner_pid == pid
                && (self.raw_reply_pending || connection.transport.is_reusable())
            {
                return Ok(connection);
            }
            // Stale (peer closed it, or we are a forked child): drop it. In a
            // child this only closes our copy of the descriptor.
        }
        // A new connection owes us no reply.
        self.raw_reply_pending = false;
        let transport = self.connector.connect(&self.closing)?;
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

#[cfg(test)]
mod tests;
