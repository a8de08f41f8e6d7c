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
//! Files: `config` (what a server is asked to be), `listener` and `workers`
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
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::runtime::Runtime;
use tokio::sync::watch;

pub use config::{parse_size, Config, Limits, SizeError, TlsFiles};
pub use error::ServerError;
pub use gateway::{GatewayError, StoreAddress, StoreAddressError};
pub use journal::{Durability, Format, FsyncPolicy, Recovery};
pub use log::{stderr_sink, Level, LogSink};
pub use store::{Cursor, Store};

use journal::Journal;
use listener::{bind, raise_fd_limit};
use shared::{Shared, State};
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

    /// The first half of [`Server::start`]: opens, checks and locks the data
    /// file (without replaying it) and binds the address, so every error
    /// about either comes at once. [`Loading::finish`] does the rest.
    pub fn prepare(config: Config) -> Result<Loading, ServerError> {
        raise_fd_limit();
        let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        if config.store.is_some() && config.data.is_some() {
            return Err(ServerError::StoreWithData);
        }
        if config.store.is_some() && (config.graphite_port.is_some() || config.http_port.is_some())
        {
            return Err(ServerError::GraphiteWithStore);
        }
        let journal = match &config.data {
            Some(path) => Some(journal::open(path)?),
            None => None,
        };
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        };
        let runtimes = (0..workers)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
            })
            .collect::<io::Result<Vec<Runtime>>>()
            .map_err(ServerError::Threads)?;
        let listener = {
            // The listener belongs to the first worker's epoll set.
            let _context = runtimes[0].enter();
            bind(&config.host, config.port)?
        };
        let address = listener.local_addr().map_err(|source| ServerError::Bind {
            address: crate::protocol::host_port(&config.host, config.port),
            source,
        })?;
        let graphite = graphite::Listeners::bind(&config, &runtimes)?;
        Ok(Loading {
            config,
            tls,
            journal,
            runtimes,
            listener,
            address,
            graphite,
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// A server between [`Server::prepare`] and [`Loading::finish`]: its data
/// file is open and locked, its address bound (connections wait in the
/// listen queue), nothing replayed or served yet.
pub struct Loading {
    config: Config,
    tls: Option<tls::TlsConfig>,
    journal: Option<journal::OpenJournal>,
    runtimes: Vec<Runtime>,
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    graphite: graphite::Listeners,
    cancel: Arc<AtomicBool>,
}

impl std::fmt::Debug for Loading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loading")
            .field("address", &self.address)
            .field("data", &self.config.data)
            .finish()
    }
}

impl Loading {
    /// The address the server will serve on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Where Graphite plaintext will be accepted, when asked for.
    pub fn graphite_addr(&self) -> Option<SocketAddr> {
        self.graphite.plaintext_addr()
    }

    /// Where the Graphite HTTP API and the dashboard will be served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.graphite.http_addr()
    }

    /// Whether the server will be in protected mode (see [`Config::insecure`]).
    pub fn is_protected(&self) -> bool {
        is_protected(&self.config, self.address)
    }

    /// A flag that, once set, makes [`Loading::finish`] stop replaying
    /// within a few milliseconds and return [`ServerError::Cancelled`].
    pub fn canceller(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// The second half of [`Server::start`]: replays the data file and
    /// starts serving. Returns [`ServerError::Cancelled`], leaving the data
    /// file as it was, if [`Loading::canceller`] is set meanwhile.
    pub fn finish(self) -> Result<Server, ServerError> {
        let Loading {
            config,
            tls,
            journal,
            runtimes,
            listener,
            address,
            graphite,
            cancel,
        } = self;
        let gateway = match &config.store {
            // Connected on the first worker's runtime, which then drives the
            // client's connection tasks; the other workers use it through
            // its channels.
            Some(address) => Some(runtimes[0].block_on(gateway::Gateway::connect(address))?),
            None => None,
        };
        let mut store = Store::new();
        let mut block_warnings = Vec::new();
        // The blocks first, so that the journal (the head's write-ahead
        // log) replayed on top gives each key the id the blocks know it by.
        let (sealed, keys_file) = match &config.data {
            Some(path) => {
                // Beside the real file when `data` is a symlink, as the
                // journal's own renames are.
                let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                let (sealed, keys_file, warnings) =
                    engine::Sealed::open(&engine::blocks_dir(&real), &mut store).map_err(
                        |source| ServerError::Blocks {
                            path: path.clone(),
                            source,
                        },
                    )?;
                block_warnings = warnings;
                (Some(sealed), Some(keys_file))
            }
            None => (None, None),
        };
        let (journal_file, recovery) = match journal {
            Some(journal) => {
                let (journal_file, recovery) = journal.replay(
                    &mut store,
                    sealed.as_ref(),
                    &cancel,
                    config.log.as_ref(),
                    config.progress_interval,
                )?;
                let mut recovery = recovery;
                recovery.blocks = std::mem::take(&mut block_warnings);
                (Some(journal_file), Some(recovery))
            }
            None => (None, None),
        };

        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                store,
                journal: journal_file.as_ref().map(|_| Journal::new()),
                sealed,
            }),
            journal_wake: Condvar::new(),
            durable: watch::Sender::new(Durability::default()),
            limits: config.limits.clone(),
            storage: config.storage.clone(),
            fsync: journal_file.as_ref().map(|_| config.fsync),
            log: config.log.clone(),
            connections: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
            budget: budget::Budget::new(config.limits.max_request_buffers),
            tls,
            protected: is_protected(&config, address),
            gateway,
        });
        if let Some(recovery) = &recovery {
            for warning in recovery.warnings() {
                shared.log(Level::Warning, &warning);
            }
            shared.log(
                Level::Info,
                &format!("{}, fsync={}", recovery.summary(), config.fsync),
            );
        }
        let writer = match journal_file {
            Some(journal_file) => {
                let shared = Arc::clone(&shared);
                let (policy, compact) = (config.fsync, config.compact_min_bytes);
                let sealer = keys_file.map(|keys| engine::seal::Sealer {
                    keys,
                    storage: config.storage.clone(),
                });
                Some(
                    std::thread::Builder::new()
                        .name("metrics-journal".into())
                        .spawn(move || {
                            journal::run_writer(shared, journal_file, policy, compact, sealer)
                        })
                        .map_err(ServerError::Threads)?,
                )
            }
            None => None,
        };
        // Dropped (stopped) with the rest if the start fails below.
        let merger = match shared.lock().sealed.is_some() {
            true => Some(
                engine::merge::Merger::start(Arc::clone(&shared), config.storage.clone())
                    .map_err(ServerError::Threads)?,
            ),
            false => None,
        };
        let (graphite_address, http_address) = graphite.spawn(&runtimes, &shared);
        let workers = match Workers::start(runtimes, listener, &shared) {
            Ok(workers) => workers,
            Err(e) => {
                // No thread left to serve: stop the journal writer too, so it
                // does not outlive the failed start holding the data file.
                if let Some(writer) = writer {
                    if let Some(journal) = shared.lock().journal.as_mut() {
                        journal.close();
                    }
                    shared.wake_journal();
                    let _ = writer.join();
                }
                return Err(e);
            }
        };
        shared.log(Level::Info, &format!("listening on {address}"));
        if shared.protected {
            shared.log(
                Level::Warning,
                &format!(
                    "protected mode: {address} is beyond loopback and clients are not \
                     authenticated, so only loopback clients are served; enable TLS client \
                     authentication (--tls-cert, --tls-key, --tls-client-ca) or pass --insecure"
                ),
            );
        }
        Ok(Server {
            address,
            graphite_address,
            http_address,
            workers: Some(workers),
            shared,
            writer,
            merger,
            recovery,
        })
    }
}

impl Server {
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

/// Protected mode: listening beyond loopback, with no client CA to
/// authenticate clients, and not told `insecure`.
fn is_protected(config: &Config, address: SocketAddr) -> bool {
    let authenticated = config
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_ca.is_some());
    !address.ip().to_canonical().is_loopback() && !authenticated && !config.insecure
}

#[cfg(test)]
mod tests;
