//! An embedded server for the metrics protocol (the course's week-6 server),
//! sharing the protocol core with the client. No Python here: the pyo3
//! wrapper lives in `crate::python::server`.
//!
//! Threading: worker threads (by default one per two cores, at least one:
//! one on the 2-core target machine), each running its own single-threaded
//! tokio runtime (its own epoll set and task queue); the first also runs the
//! accept loop and hands accepted connections out round-robin, and a
//! connection stays on its worker for its lifetime. A separate thread owns
//! the journal (the data file). Each connection reads what is available, parses
//! every complete line, applies the batch under one short lock and writes
//! all replies in one go, so pipelined input costs one read, one lock and
//! one write per batch. No lock is ever held across I/O: a slow or idle
//! client only parks its own task.
//!
//! Files: `config` (what a server is asked to be), `loading` (starting one:
//! prepare, replay, spawn), `listener` and `workers`
//! (accepting and event loops), `connection` (one client: framing, replies,
//! back-pressure), `budget` (request buffers across connections), `store`
//! (the in-memory series), `journal` (the data file:
//! format, recovery, writer, compaction), `gateway` (the other backend:
//! points kept in Redis, the server stateless), `shared` (what they share
//! under one lock), `log` (diagnostics), `error`.
//!
//! Limits (see [`Limits`]): a request line may be at most 1 MiB; a longer
//! one is answered `error\nline too long\n\n` and the connection is closed.
//! A connection holds a 16 KiB read buffer (growing to the line limit only
//! while a long line arrives) and at most about 64 KiB of pending replies:
//! replies to a `get` are produced in 64 KiB chunks from a cursor into the
//! store, each written before the next is made, so `get *` never copies the
//! data set. A connection beyond `max_connections` is answered
//! `error\ntoo many connections\n\n` and closed; `idle_timeout` closes
//! connections that make no progress. Read buffers grown for long lines
//! share one budget (`budget`); the store counts its memory for
//! `max_memory`, past which puts that need memory are refused.

mod backend;
mod budget;
mod command;
mod config;
mod connection;
pub mod engine;
mod error;
mod gateway;
pub mod graphite;
mod journal;
mod listener;
mod loading;
mod log;
mod shared;
mod socket;
mod store;
mod stream;
mod tls;
mod validity;
mod workers;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use config::{parse_size, Config, Limits, SizeError, TlsFiles};
pub use error::ServerError;
pub use gateway::{GatewayError, StoreAddress, StoreAddressError};
pub use journal::{Durability, Format, FsyncPolicy, Recovery};
pub use log::{stderr_sink, Level, LogSink};
pub use store::{Cursor, Store};

pub use loading::Loading;
use shared::Shared;
pub use stream::TLS_REQUIRED;
use workers::Workers;

/// The message of the error reply to an over-long request line.
pub const LINE_TOO_LONG: &str = "line too long";
/// The message of the error reply to a put past the memory limit.
pub const OUT_OF_MEMORY: &str = "out of memory";
/// The message sent to a connection refused for the connection limit.
pub const TOO_MANY_CONNECTIONS: &str = "too many connections";
/// The message sent to a connection shed because unfinished lines across
/// connections hold more than the request buffer budget.
pub const BUFFERS_FULL: &str = "request buffers full";
/// The message sent to a peer beyond loopback by a server in protected mode
/// (listening beyond loopback without client-certificate authentication).
pub const PROTECTED_MODE: &str = "protected mode: this server listens beyond loopback without \
     client-certificate authentication, so it serves loopback clients only; to serve this \
     client, start it with TLS client authentication (--tls-cert, --tls-key and \
     --tls-client-ca) or, on a trusted network, with --insecure";

/// A running server. Dropping it closes it; call [`Server::close`] to see
/// whether the final flush of the journal succeeded.
pub struct Server {
    address: SocketAddr,
    graphite_address: Option<SocketAddr>,
    http_address: Option<SocketAddr>,
    workers: Option<Workers>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<Result<(), ServerError>>>,
    merger: Option<engine::merge::Merger>,
    recovery: Option<Recovery>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .field("closed", &self.workers.is_none())
            .finish()
    }
}

impl Server {
    /// Replays the journal (if any), binds and starts serving in background
    /// threads. Returns once the server accepts connections.
    pub fn start(config: Config) -> Result<Server, ServerError> {
        Server::prepare(config)?.finish()
    }

    /// The address the server listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Where Graphite plaintext is accepted, when asked for.
    pub fn graphite_addr(&self) -> Option<SocketAddr> {
        self.graphite_address
    }

    /// Where the Graphite HTTP API and the dashboard are served, when asked for.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_address
    }

    /// What replaying the journal found, when there is one.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// Whether the server refuses peers beyond loopback (see
    /// [`Config::insecure`]).
    pub fn is_protected(&self) -> bool {
        self.shared.protected
    }

    pub fn is_closed(&self) -> bool {
        self.workers.is_none()
    }

    /// Points and keys currently stored: points in the head plus those
    /// in blocks (a point sealed while the head still holds it, or sealed
    /// twice before a merge, counts twice), and every key.
    pub fn stats(&self) -> (u64, usize) {
        let state = self.shared.lock();
        let sealed: u64 = state
            .sealed
            .as_ref()
            .map_or(0, |s| s.blocks().map(|b| b.header.points).sum());
        (state.store.points() + sealed, state.store.ids())
    }

    /// Stops accepting, closes every connection, then writes and fsyncs the
    /// journal whatever the fsync policy. Idempotent; blocks until done.
    pub fn close(&mut self) -> Result<(), ServerError> {
        let Some(workers) = self.workers.take() else {
            return Ok(());
        };
        // Tasks are cancelled at their next await; none holds the lock
        // across one, so this is quick.
        workers.stop();
        if let Some(mut merger) = self.merger.take() {
            merger.stop();
        }
        let mut result = Ok(());
        if let Some(writer) = self.writer.take() {
            if let Some(journal) = self.shared.lock().journal.as_mut() {
                journal.close();
            }
            self.shared.wake_journal();
            result = match writer.join() {
                Ok(outcome) => outcome,
                Err(_) => Err(ServerError::Journal(io::Error::other(
                    "the journal writer thread panicked",
                ))),
            };
        }
        self.shared.log(Level::Info, "closed");
        result
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            self.shared.log(Level::Error, &e.to_string());
        }
    }
}

#[cfg(test)]
mod tests;
