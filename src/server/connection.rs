//! One client connection: read what is available, answer every complete
//! line in order, write the answers, repeat. Stream I/O (plain or TLS) is in
//! `stream`, how a storage backend answers a batch in `backend`, what each
//! command does in `command`; this file holds the loop, the buffers,
//! back-pressure and the acknowledgements that wait for the journal.

use std::io;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use super::backend;
use super::budget::Account;
use super::command::{self, Parsed};
use super::listener::ConnectionSlot;
use super::log::Level;
use super::shared::Shared;
use super::socket::{unless, within, LINGER};
use super::stream::{Stream, HANDSHAKE_TIMEOUT};
use super::tls::TlsConfig;
use super::{Durability, BUFFERS_FULL, LINE_TOO_LONG};
use crate::protocol::{encode_error, LineSplitter};

/// Requests parsed before the store's lock is taken to apply them.
const MAX_OPS: usize = 512;
/// Requests a connection answers before letting the other connections of
/// its worker run: a client pipelining a large `put_many` must not keep
/// another client's single put waiting for its whole batch (tokio's own
/// budget allows 128 reads, tens of thousands of requests).
const FAIR_OPS: usize = 1024;
/// Serves one connection on the current worker (`stream` is non-blocking
/// and registered with no epoll set).
pub(super) async fn serve(std_stream: std::net::TcpStream, slot: ConnectionSlot) {
    let shared = Arc::clone(&slot.0);
    // SAFETY: the std stream owns its descriptor, always reports that same
    // descriptor, and is only closed when the AsyncFd drops it.
    let Ok(sock) = (unsafe { AsyncFd::register(std_stream) }) else {
        return;
    };
    let mut stream = match open(sock, &shared).await {
        Some(stream) => stream,
        None => return,
    };
    let account = shared.budget.open();
    let shed = Arc::clone(&account.shed);
    let mut connection = Connection::new(&shared, account);
    // Errors here are the peer's doing (reset, broken pipe, idle timeout)
    // or shutdown.
    let _ = match unless(connection.run(&mut stream), shed.wait()).await {
        Some(result) => result,
        // Told to shed (other connections need the buffer budget): the
        // run was dropped at an await, where the state is consistent.
        None => connection.shed(&mut stream).await,
    };
    drop(slot);
}

/// The connection's stream, after the TLS handshake when the server has
/// TLS; `None` (logged) when the handshake failed.
async fn open(sock: super::socket::Socket, shared: &Shared) -> Option<Stream> {
    let tls: Option<&TlsConfig> = shared.tls.as_ref();
    let limit = match shared.limits.idle_timeout {
        Some(idle) => idle.min(HANDSHAKE_TIMEOUT),
        None => HANDSHAKE_TIMEOUT,
    };
    let peer = sock.get_ref().peer_addr();
    match Stream::open(sock, tls, limit).await {
        Ok(stream) => Some(stream),
        Err(error) => {
            let peer = peer.map_or_else(|_| "a client".to_string(), |p| p.to_string());
            shared.log(Level::Info, &format!("connection from {peer}: {error}"));
            None
        }
    }
}

/// Refuses a connection the server will not serve: sends `error\n<message>`
/// (over TLS when the server has TLS) and closes, lingering briefly so the
/// client reads the error.
pub(super) async fn refuse(std_stream: std::net::TcpStream, shared: &Shared, message: &str) {
    // SAFETY: as in `serve`.
    let Ok(sock) = (unsafe { AsyncFd::register(std_stream) }) else {
        return;
    };
    let Some(mut stream) = open(sock, shared).await else {
        return;
    };
    let mut reply = Vec::new();
    encode_error(&mut reply, message);
    if stream.write_all(&reply, Some(LINGER)).await.is_ok() {
        stream.linger(&mut [0; 4096]).await;
    }
}

pub(super) struct Connection<'s> {
    pub(super) shared: &'s Shared,
    /// This connection's share of the request buffer budget.
    pub(super) account: Account<'s>,
    /// Unconsumed input is `rbuf[..end]`; the rest is space to read into.
    pub(super) rbuf: Vec<u8>,
    pub(super) end: usize,
    pub(super) wbuf: Vec<u8>,
    pub(super) splitter: LineSplitter,
    pub(super) ops: Vec<Parsed>,
    /// Requests parsed into one batch: `MAX_OPS`, or more for a gateway
    /// (see `backend::redis::BATCH_OPS`).
    max_ops: usize,
    /// Under `fsync=always`, the puts answered `ok` in `wbuf` whose lines
    /// are not known to be durable yet: where the reply starts in `wbuf` and
    /// the journal position the line ends at. Settled before `wbuf` is written.
    pub(super) unsettled: Vec<(usize, u64)>,
    /// The journal's rejection count when the unsettled puts were journaled.
    pub(super) unsettled_rejections: u64,
    pub(super) durable: Option<watch::Receiver<Durability>>,
}

/// What `encode_ok` writes, replaced in place when a put is rejected.
const OK_REPLY: &[u8] = b"ok\n\n";

impl<'s> Connection<'s> {
    fn new(shared: &'s Shared, account: Account<'s>) -> Self {
        let limits = &shared.limits;
        Connection {
            shared,
            account,
            rbuf: vec![0; limits.read_buffer_bytes.clamp(1, limits.max_line_bytes + 1)],
            end: 0,
            wbuf: Vec::new(),
            splitter: LineSplitter::new(limits.max_line_bytes),
            ops: Vec::new(),
            max_ops: match shared.gateway {
                Some(_) => backend::redis::BATCH_OPS,
                None => MAX_OPS,
            },
            unsettled: Vec::new(),
            unsettled_rejections: 0,
            durable: shared.acks_wait_for_fsync().then(|| shared.durability()),
        }
    }

    async fn run(&mut self, stream: &mut Stream) -> io::Result<()> {
        let chunk = self.shared.limits.write_chunk_bytes;
        let idle = self.shared.limits.idle_timeout;
        let mut last_read_filled = false;
        let mut since_yield = 0;
        loop {
            let mut pos = 0;
            let mut too_long = false;
            self.ops.clear();
            while self.ops.len() < self.max_ops {
                match self.splitter.next_line(&self.rbuf[pos..self.end]) {
                    Ok(Some(len)) => {
                        self.ops.push(command::parse(&self.rbuf, pos, len));
                        pos += len + 1;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        too_long = true;
                        break;
                    }
                }
            }
            let more_lines = self.ops.len() == self.max_ops;
            self.execute(stream).await?;
            since_yield += self.ops.len();
            if since_yield >= FAIR_OPS {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
            self.rbuf.copy_within(pos..self.end, 0);
            self.end -= pos;
            if too_long {
                return self.refuse(stream, LINE_TOO_LONG).await;
            }
            if more_lines {
                continue;
            }
            if !self.fit_read_buffer(last_read_filled) {
                return self.refuse(stream, BUFFERS_FULL).await;
            }

            // Replies wait while more pipelined input is likely queued (the
            // last read filled the buffer), so a batch costs one write.
            let n = if !self.wbuf.is_empty() && last_read_filled && self.wbuf.len() < chunk {
                match stream.read_now(&mut self.rbuf[self.end..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.flush(stream).await?;
                        within(idle, stream.read(&mut self.rbuf[self.end..])).await?
                    }
                    Err(e) => return Err(e),
                }
            } else {
                if !self.wbuf.is_empty() {
                    self.flush(stream).await?;
                }
                within(idle, stream.read(&mut self.rbuf[self.end..])).await?
            };
            if n == 0 {
                // The peer finished sending; an unterminated line is dropped.
                if !self.wbuf.is_empty() {
                    self.flush(stream).await?;
                }
                return Ok(());
            }
            last_read_filled = self.end + n == self.rbuf.len();
            self.end += n;
        }
    }

    /// Grows the read buffer when an unfinished line fills it (never past
    /// the line limit), shrinks it back once a long line is consumed.
    /// A gateway's buffer also grows, to `BATCH_READ_BYTES`, while reads
    /// fill it (see `backend::redis`). Returns false when growing would
    /// pass the request buffer budget and this connection holds the most
    /// (it must shed).
    fn fit_read_buffer(&mut self, last_read_filled: bool) -> bool {
        let initial = self.shared.limits.read_buffer_bytes;
        let base = self.rbuf.len().min(initial.max(1));
        let len = self.rbuf.len();
        let gateway = self.shared.gateway.is_some();
        if self.end == len {
            // The splitter refuses a partial line longer than the limit, so
            // a full buffer is at most max_line bytes and can grow.
            let grown = (len * 2).min(self.shared.limits.max_line_bytes + 1);
            debug_assert!(grown > len);
            let grown = grown.max(len + 1);
            // Accounted before allocating, so the budget is never passed.
            if !self.account.hold(grown.saturating_sub(initial)) {
                return false;
            }
            self.rbuf.resize(grown, 0);
        } else if gateway && last_read_filled && len < backend::redis::BATCH_READ_BYTES {
            // Not accounted: at most BATCH_READ_BYTES a connection, as
            // the initial buffer is not.
            self.rbuf
                .resize((len * 2).min(backend::redis::BATCH_READ_BYTES), 0);
        } else if len
            > 4 * initial.max(if gateway {
                backend::redis::BATCH_READ_BYTES
            } else {
                0
            })
            && self.end <= initial
        {
            self.rbuf.truncate(base.max(initial));
            self.rbuf.shrink_to_fit();
            self.account.hold(self.rbuf.len().saturating_sub(initial));
        }
        true
    }

    /// Answers the parsed requests in order, through the server's
    /// storage backend (see `backend`).
    async fn execute(&mut self, stream: &mut Stream) -> io::Result<()> {
        match &self.shared.gateway {
            Some(gateway) => backend::redis::execute(self, gateway, stream).await,
            None => backend::embedded::execute(self, stream).await,
        }
    }

    /// Under `fsync=always`: waits until the journal has settled every
    /// unsettled put, then turns the `ok` of each rejected one into the
    /// error reply saying why.
    pub(super) async fn settle(&mut self) -> io::Result<()> {
        let Some(&(_, need)) = self.unsettled.last() else {
            return Ok(());
        };
        let Some(durable) = self.durable.as_mut() else {
            return Ok(());
        };
        let rejections = durable
            .wait_for(|d| d.settled >= need)
            .await
            .map_err(|_| io::Error::other("server closed"))?
            .rejections;
        if rejections != self.unsettled_rejections {
            let shared = self.shared;
            let state = shared.lock();
            let journal = state
                .journal
                .as_ref()
                .expect("a journal under fsync=always");
            let rejected = journal.rejections();
            match rejected.after(self.unsettled_rejections) {
                Some((durable_to, reason)) => self.reject_replies(durable_to, reason),
                // Too long ago to tell which were durable: answering an
                // error for a stored put is safe (a put can be repeated),
                // an `ok` for a lost one would not be.
                None => self.reject_replies(0, rejected.last_reason().unwrap_or("storage failure")),
            }
        }
        self.unsettled.clear();
        Ok(())
    }

    /// Replaces the `ok` of every unsettled put journaled past `durable_to`
    /// with an error reply.
    fn reject_replies(&mut self, durable_to: u64, reason: &str) {
        let old = std::mem::take(&mut self.wbuf);
        let mut copied = 0;
        for &(at, end) in &self.unsettled {
            if end > durable_to {
                debug_assert_eq!(&old[at..at + OK_REPLY.len()], OK_REPLY);
                self.wbuf.extend_from_slice(&old[copied..at]);
                encode_error(&mut self.wbuf, reason);
                copied = at + OK_REPLY.len();
            }
        }
        self.wbuf.extend_from_slice(&old[copied..]);
    }

    /// Writes pending replies, first settling (under `fsync=always`) the
    /// puts they answer.
    pub(super) async fn flush(&mut self, stream: &mut Stream) -> io::Result<()> {
        self.settle().await?;
        stream
            .write_all(&self.wbuf, self.shared.limits.idle_timeout)
            .await?;
        self.wbuf.clear();
        let chunk = self.shared.limits.write_chunk_bytes;
        if self.wbuf.capacity() > 4 * chunk {
            self.wbuf = Vec::with_capacity(chunk);
        }
        Ok(())
    }

    /// Closes the connection on the budget's request: its run was dropped,
    /// perhaps in the middle of writing replies, so what is pending is
    /// dropped too and only the error is sent.
    async fn shed(&mut self, stream: &mut Stream) -> io::Result<()> {
        self.wbuf.clear();
        self.refuse(stream, BUFFERS_FULL).await
    }

    /// Answers `error\n<message>` (after any pending replies) and closes
    /// the connection, draining input for a moment so the client sees the
    /// error, not a reset.
    async fn refuse(&mut self, stream: &mut Stream, message: &str) -> io::Result<()> {
        encode_error(&mut self.wbuf, message);
        self.flush(stream).await?;
        // The unfinished line's buffer is not needed to drain.
        self.rbuf = vec![0; 4096];
        self.account.hold(0);
        stream.linger(&mut self.rbuf).await;
        Ok(())
    }
}
