//! The plaintext listener: accepts on `graphite_port` with the metrics
//! port's protections (protected mode, the connection limit, TLS, the idle
//! timeout) and stores every good line through the put path (`put::apply`
//! under the shared lock: the same journal, fsync policy and memory limit).
//! Nothing is replied. A bad line is counted, logged with its reason and
//! skipped; a line longer than the limit is skipped up to its end. Neither
//! ends the connection or touches the lines around it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::unix::AsyncFd;
use tokio::net::TcpListener;

use super::plaintext::parse_line;
use crate::protocol::Put;
use crate::server::command::put::{self, Outcome};
use crate::server::listener::ConnectionSlot;
use crate::server::log::Level;
use crate::server::shared::Shared;
use crate::server::socket::within;
use crate::server::stream::{Stream, HANDSHAKE_TIMEOUT};

/// Longest plaintext line (as carbon's receiver, twisted's 16 KiB), or
/// the server's line limit when that is smaller.
pub const MAX_PLAINTEXT_LINE: usize = 16 << 10;
/// Bad lines of one connection logged one by one; later ones are counted
/// and reported when the connection ends.
const LOGGED_BAD_LINES: u64 = 20;
/// Lines stored under one lock.
const BATCH: usize = 512;

pub(in crate::server) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // As the metrics port: a failed accept concerns one connection,
            // or descriptors are short and a pause lets them free up.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        if shared.protected && !peer.ip().to_canonical().is_loopback() {
            shared.log(
                Level::Info,
                &format!("protected mode: refusing a Graphite plaintext connection from {peer}"),
            );
            continue;
        }
        let open = shared.connections.fetch_add(1, Ordering::Relaxed);
        let slot = ConnectionSlot(Arc::clone(&shared));
        if open >= shared.limits.max_connections {
            shared.log(
                Level::Warning,
                &format!(
                    "refusing a Graphite plaintext connection from {peer}: {} connections open",
                    shared.limits.max_connections
                ),
            );
            continue;
        }
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        drop(tokio::spawn(serve(stream, peer.to_string(), slot)));
    }
}

async fn serve(std_stream: std::net::TcpStream, peer: String, slot: ConnectionSlot) {
    let shared = Arc::clone(&slot.0);
    // SAFETY: as in `connection::serve`: the std stream owns its
    // descriptor and only the AsyncFd closes it.
    let Ok(sock) = (unsafe { AsyncFd::register(std_stream) }) else {
        return;
    };
    let limit = shared
        .limits
        .idle_timeout
        .map_or(HANDSHAKE_TIMEOUT, |idle| idle.min(HANDSHAKE_TIMEOUT));
    let mut stream = match Stream::open(sock, shared.tls.as_ref(), limit).await {
        Ok(stream) => stream,
        Err(error) => {
            shared.log(
                Level::Info,
                &format!("Graphite plaintext connection from {peer}: {error}"),
            );
            return;
        }
    };
    let mut reader = Reader::new(&shared, peer);
    let outcome = reader.run(&mut stream).await;
    reader.finish(outcome);
    drop(slot);
}

struct Reader<'s> {
    shared: &'s Shared,
    peer: String,
    buf: Vec<u8>,
    end: usize,
    max_line: usize,
    /// Inside a line past the limit: dropping bytes up to its `\n`.
    skipping: bool,
    stored: u64,
    bad: u64,
    refused: u64,
}

impl<'s> Reader<'s> {
    fn new(shared: &'s Shared, peer: String) -> Self {
        let max_line = MAX_PLAINTEXT_LINE.min(shared.limits.max_line_bytes).max(1);
        Reader {
            shared,
            peer,
            buf: vec![0; max_line + 1],
            end: 0,
            max_line,
            skipping: false,
            stored: 0,
            bad: 0,
            refused: 0,
        }
    }

    async fn run(&mut self, stream: &mut Stream) -> std::io::Result<()> {
        let idle = self.shared.limits.idle_timeout;
        loop {
            let n = within(idle, stream.read(&mut self.buf[self.end..])).await?;
            if n == 0 {
                // An unterminated last line is a line, as carbon reads it.
                if self.end > 0 && !self.skipping {
                    let last = self.buf[..self.end].to_vec();
                    self.store(&[last.as_slice()]);
                }
                return Ok(());
            }
            self.end += n;
            self.consume();
            tokio::task::yield_now().await;
        }
    }

    /// Stores every complete line in the buffer and keeps the rest.
    fn consume(&mut self) {
        let mut pos = 0;
        let data = std::mem::take(&mut self.buf);
        let mut lines: Vec<&[u8]> = Vec::with_capacity(BATCH);
        while let Some(i) = memchr::memchr(b'\n', &data[pos..self.end]) {
            if self.skipping {
                self.skipping = false;
            } else {
                lines.push(&data[pos..pos + i]);
                if lines.len() == BATCH {
                    self.store(&lines);
                    lines.clear();
                }
            }
            pos += i + 1;
        }
        self.store(&lines);
        drop(lines);
        self.buf = data;
        let rest = self.end - pos;
        if rest > self.max_line {
            // No `\n` within the limit: this line is skipped to its end.
            if !self.skipping {
                self.bad_line(&format!(
                    "line longer than {} bytes, skipped",
                    self.max_line
                ));
            }
            self.skipping = true;
            self.end = 0;
        } else {
            self.buf.copy_within(pos..self.end, 0);
            self.end = rest;
        }
    }

    fn store(&mut self, lines: &[&[u8]]) {
        if lines.is_empty() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mut puts: Vec<Put<&str>> = Vec::with_capacity(lines.len());
        for line in lines {
            match parse_line(line, now) {
                Ok(Some(put)) => puts.push(put),
                Ok(None) => {}
                Err(error) => self.bad_line(&error.to_string()),
            }
        }
        if puts.is_empty() {
            return;
        }
        let shared = self.shared;
        let defer = shared.acks_wait_for_fsync();
        let mut wake = false;
        let mut refusal: Option<String> = None;
        {
            let mut state = shared.lock();
            for put in &puts {
                match put::apply(&mut state, put, shared.limits.max_memory, defer, &mut wake) {
                    Outcome::Stored | Outcome::Deferred { .. } => self.stored += 1,
                    Outcome::Refused(reason) => {
                        self.refused += 1;
                        if refusal.is_none() {
                            refusal = Some(reason.into_owned());
                        }
                    }
                }
            }
        }
        if wake {
            shared.wake_journal();
        }
        if let Some(reason) = refusal {
            shared.log(
                Level::Warning,
                &format!(
                    "Graphite plaintext from {}: points refused: {reason}",
                    self.peer
                ),
            );
        }
    }

    fn bad_line(&mut self, reason: &str) {
        self.bad += 1;
        if self.bad <= LOGGED_BAD_LINES {
            self.shared.log(
                Level::Warning,
                &format!(
                    "Graphite plaintext from {}: bad line {} skipped: {reason}",
                    self.peer, self.bad
                ),
            );
        }
    }

    fn finish(&self, outcome: std::io::Result<()>) {
        let how = match outcome {
            Ok(()) => String::from("closed"),
            Err(e) => format!("ended ({e})"),
        };
        let level = if self.bad > 0 || self.refused > 0 {
            Level::Warning
        } else {
            Level::Info
        };
        self.shared.log(
            level,
            &format!(
                "Graphite plaintext connection from {} {how}: {} points stored, {} bad lines skipped, {} points refused",
                self.peer, self.stored, self.bad, self.refused
            ),
        );
    }
}
