//! One client connection: read what is available, answer every complete
//! line in order, write the answers, repeat.

use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;

use super::listener::ConnectionSlot;
use super::shared::{Shared, State};
use super::store::{Cursor, Store};
use super::{Durability, LINE_TOO_LONG, STORAGE_FAILED};
use crate::protocol::{
    encode_error, encode_ok, encode_points_end, encode_points_start, encode_wrong_command,
    parse_command, push_point, Command, LineSplitter, Selector,
};

/// Requests parsed before the store's lock is taken to apply them.
const MAX_OPS: usize = 512;
/// After refusing an over-long line, input is drained (so the client reads
/// the error instead of a reset) for at most this long or this many bytes.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 16 << 20;

/// A parsed request whose text fields point into the read buffer.
#[derive(Debug)]
enum Op {
    Put {
        key: Range<usize>,
        value: f64,
        value_text: Range<usize>,
        timestamp: i64,
    },
    /// `None` is `get *`.
    Get(Option<Range<usize>>),
    Wrong,
}

/// Serves one connection on the current worker (`stream` is non-blocking
/// and registered with no epoll set).
pub(super) async fn serve(std_stream: std::net::TcpStream, slot: ConnectionSlot) {
    let shared = Arc::clone(&slot.0);
    // SAFETY: the std stream owns its descriptor, always reports that same
    // descriptor, and is only closed when the AsyncFd drops it.
    let Ok(sock) = (unsafe { AsyncFd::register(std_stream) }) else {
        return;
    };
    let mut connection = Connection::new(&shared);
    // Errors here are the peer's doing (reset, broken pipe) or shutdown.
    let _ = connection.run(&sock).await;
    drop(slot);
}

struct Connection<'s> {
    shared: &'s Shared,
    /// Unconsumed input is `rbuf[..end]`; the rest is space to read into.
    rbuf: Vec<u8>,
    end: usize,
    wbuf: Vec<u8>,
    splitter: LineSplitter,
    ops: Vec<Op>,
    /// Log position the replies in `wbuf` wait for (`fsync=always` only).
    need_durable: u64,
    durable: Option<watch::Receiver<Durability>>,
}

fn text<'b>(buf: &'b [u8], range: &Range<usize>) -> &'b str {
    // The range was cut from a string parse_command validated.
    std::str::from_utf8(&buf[range.clone()]).unwrap_or_default()
}

fn parse_op(buf: &[u8], start: usize, len: usize) -> Op {
    let range = |s: &str| {
        let at = s.as_ptr() as usize - buf.as_ptr() as usize;
        at..at + s.len()
    };
    match parse_command(&buf[start..start + len]) {
        Ok(Command::Put {
            key,
            value,
            value_text,
            timestamp,
        }) => Op::Put {
            key: range(key),
            value,
            value_text: range(value_text),
            timestamp,
        },
        Ok(Command::Get(Selector::All)) => Op::Get(None),
        Ok(Command::Get(Selector::Key(key))) => Op::Get(Some(range(key))),
        Err(_) => Op::Wrong,
    }
}

/// Encodes points from `cursor` until `out` holds `chunk` bytes; true when
/// the walk is over.
fn fill(store: &Store, cursor: &mut Cursor, out: &mut Vec<u8>, chunk: usize) -> bool {
    store.walk(cursor, |key, timestamp, value| {
        push_point(out, key, value, timestamp);
        out.len() < chunk
    })
}

/// The connection's socket. `AsyncFd` rather than tokio's `TcpStream` so
/// that a short read can clear readiness: the next wait then goes straight
/// to epoll instead of first failing a `recv` with EAGAIN, saving one system
/// call per request for request-reply clients.
type Socket = AsyncFd<std::net::TcpStream>;

/// Reads what is available, waiting for at least one byte or EOF.
async fn read(sock: &Socket, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = sock.readable().await?;
        match guard.try_io(|s| s.get_ref().read(buf)) {
            Ok(Ok(n)) => {
                // Fewer bytes than asked for: the receive queue was drained
                // at that instant, and data arriving later raises a new
                // edge (with a new tick, so this clear cannot swallow it).
                // Closed states are never cleared.
                if n > 0 && n < buf.len() {
                    guard.clear_ready();
                }
                return Ok(n);
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
}

/// Reads what is available without waiting (`WouldBlock` if nothing is).
fn read_now(sock: &Socket, buf: &mut [u8]) -> io::Result<usize> {
    sock.try_io(Interest::READABLE, |mut s| s.read(buf))
}

async fn write_all(sock: &Socket, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match sock.try_io(Interest::WRITABLE, |mut s| s.write(buf)) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut guard = sock.writable().await?;
                match guard.try_io(|s| s.get_ref().write(buf)) {
                    Ok(Ok(n)) => buf = &buf[n..],
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => {}
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl<'s> Connection<'s> {
    fn new(shared: &'s Shared) -> Self {
        let limits = &shared.limits;
        Connection {
            shared,
            rbuf: vec![0; limits.read_buffer_bytes.clamp(1, limits.max_line_bytes + 1)],
            end: 0,
            wbuf: Vec::new(),
            splitter: LineSplitter::new(limits.max_line_bytes),
            ops: Vec::new(),
            need_durable: 0,
            durable: shared.acks_wait_for_fsync().then(|| shared.durability()),
        }
    }

    async fn run(&mut self, sock: &Socket) -> io::Result<()> {
        let chunk = self.shared.limits.write_chunk_bytes;
        let mut last_read_filled = false;
        loop {
            let mut pos = 0;
            let mut too_long = false;
            self.ops.clear();
            while self.ops.len() < MAX_OPS {
                match self.splitter.next_line(&self.rbuf[pos..self.end]) {
                    Ok(Some(len)) => {
                        self.ops.push(parse_op(&self.rbuf, pos, len));
                        pos += len + 1;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        too_long = true;
                        break;
                    }
                }
            }
            let more_lines = self.ops.len() == MAX_OPS;
            self.execute(sock).await?;
            self.rbuf.copy_within(pos..self.end, 0);
            self.end -= pos;
            if too_long {
                return self.refuse_line(sock).await;
            }
            if more_lines {
                continue;
            }
            self.fit_read_buffer();

            // Replies wait while more pipelined input is likely queued (the
            // last read filled the buffer), so a batch costs one write.
            let n = if !self.wbuf.is_empty() && last_read_filled && self.wbuf.len() < chunk {
                match read_now(sock, &mut self.rbuf[self.end..]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.flush(sock).await?;
                        read(sock, &mut self.rbuf[self.end..]).await?
                    }
                    Err(e) => return Err(e),
                }
            } else {
                if !self.wbuf.is_empty() {
                    self.flush(sock).await?;
                }
                read(sock, &mut self.rbuf[self.end..]).await?
            };
            if n == 0 {
                // The peer finished sending; an unterminated line is dropped.
                if !self.wbuf.is_empty() {
                    self.flush(sock).await?;
                }
                return Ok(());
            }
            last_read_filled = self.end + n == self.rbuf.len();
            self.end += n;
        }
    }

    /// Grows the read buffer when an unfinished line fills it (never past
    /// the line limit), shrinks it back once a long line is consumed.
    fn fit_read_buffer(&mut self) {
        let base = self
            .rbuf
            .len()
            .min(self.shared.limits.read_buffer_bytes.max(1));
        let len = self.rbuf.len();
        if self.end == len {
            // The splitter refuses a partial line longer than the limit, so
            // a full buffer is at most max_line bytes and can grow.
            let grown = (len * 2).min(self.shared.limits.max_line_bytes + 1);
            debug_assert!(grown > len);
            self.rbuf.resize(grown.max(len + 1), 0);
        } else if len > 4 * self.shared.limits.read_buffer_bytes
            && self.end <= self.shared.limits.read_buffer_bytes
        {
            self.rbuf
                .truncate(base.max(self.shared.limits.read_buffer_bytes));
            self.rbuf.shrink_to_fit();
        }
    }

    /// Answers the parsed requests in order. Puts and small gets are done
    /// under one lock; a large get is streamed chunk by chunk, the lock
    /// released while each chunk is written.
    async fn execute(&mut self, sock: &Socket) -> io::Result<()> {
        let chunk = self.shared.limits.write_chunk_bytes;
        let mut i = 0;
        while i < self.ops.len() {
            let mut streaming: Option<Cursor> = None;
            let mut wake = false;
            {
                let mut state = self.shared.lock();
                let State { store, journal } = &mut *state;
                while i < self.ops.len() {
                    let op = &self.ops[i];
                    i += 1;
                    match op {
                        Op::Put {
                            key,
                            value,
                            value_text,
                            timestamp,
                        } => {
                            let key = text(&self.rbuf, key);
                            if let Some(journal) = journal.as_mut() {
                                if journal.failed() {
                                    encode_error(&mut self.wbuf, STORAGE_FAILED);
                                    continue;
                                }
                                wake |= journal.append_put(
                                    key,
                                    text(&self.rbuf, value_text),
                                    *timestamp,
                                );
                                self.need_durable = journal.appended();
                            }
                            store.put(key, *timestamp, *value);
                            encode_ok(&mut self.wbuf);
                        }
                        Op::Get(key) => {
                            let mut cursor = match key {
                                None => store.cursor(Selector::All),
                                Some(key) => store.cursor(Selector::Key(text(&self.rbuf, key))),
                            };
                            encode_points_start(&mut self.wbuf);
                            if fill(store, &mut cursor, &mut self.wbuf, chunk) {
                                encode_points_end(&mut self.wbuf);
                            } else {
                                streaming = Some(cursor);
                                break;
                            }
                        }
                        Op::Wrong => encode_wrong_command(&mut self.wbuf),
                    }
                    if self.wbuf.len() >= chunk {
                        break;
                    }
                }
            }
            if wake {
                self.shared.wake_journal();
            }
            if let Some(mut cursor) = streaming {
                loop {
                    self.flush(sock).await?;
                    let done = fill(
                        &self.shared.lock().store,
                        &mut cursor,
                        &mut self.wbuf,
                        chunk,
                    );
                    if done {
                        encode_points_end(&mut self.wbuf);
                        break;
                    }
                }
            }
            if self.wbuf.len() >= chunk {
                self.flush(sock).await?;
            }
        }
        Ok(())
    }

    /// Writes pending replies, first waiting (under `fsync=always`) until
    /// the puts they acknowledge are on disk.
    async fn flush(&mut self, sock: &Socket) -> io::Result<()> {
        if let Some(durable) = self.durable.as_mut() {
            let need = self.need_durable;
            if durable.borrow().synced < need {
                let synced = durable
                    .wait_for(|d| d.synced >= need || d.failed)
                    .await
                    .map_err(|_| io::Error::other("server closed"))?
                    .synced;
                if synced < need {
                    // Never acknowledge a put that is not on disk.
                    return Err(io::Error::other("the durability log failed"));
                }
            }
        }
        write_all(sock, &self.wbuf).await?;
        self.wbuf.clear();
        let chunk = self.shared.limits.write_chunk_bytes;
        if self.wbuf.capacity() > 4 * chunk {
            self.wbuf = Vec::with_capacity(chunk);
        }
        Ok(())
    }

    /// Answers an over-long line with an error and closes the connection,
    /// draining input for a moment so the client sees the error, not a reset.
    async fn refuse_line(&mut self, sock: &Socket) -> io::Result<()> {
        encode_error(&mut self.wbuf, LINE_TOO_LONG);
        self.flush(sock).await?;
        let _ = sock.get_ref().shutdown(std::net::Shutdown::Write);
        let rbuf = &mut self.rbuf;
        let _ = tokio::time::timeout(LINGER, async {
            let mut drained = 0;
            while drained < LINGER_BYTES {
                match read(sock, rbuf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        })
        .await;
        Ok(())
    }
}
