//! An embedded server for the metrics protocol (the course's week-6 server),
//! sharing the protocol core with the client. No Python here: the pyo3
//! wrapper lives in `crate::python::server`.
//!
//! Threading: worker threads (by default one per two cores, at least one:
//! one on the 2-core target machine), each running its own single-threaded
//! tokio runtime (its own epoll set and task queue); the first also runs the
//! accept loop and hands accepted connections out round-robin, and a
//! connection stays on its worker for its lifetime. A separate thread owns
//! the durability log. Each connection reads what is available, parses
//! every complete line, applies the batch under one short lock and writes
//! all replies in one go, so pipelined input costs one read, one lock and
//! one write per batch. No lock is ever held across I/O: a slow or idle
//! client only parks its own task.
//!
//! Why this shape (measured with benches/run.py, 50 request-reply
//! connections, 2 cores shared with the load generator): about 90% of the
//! server's CPU time is the kernel's (a loopback `send` runs the peer's whole
//! receive path), so what decides throughput is how many requests each wake
//! of an event loop serves and whether server threads preempt their clients.
//! - tokio's multi-thread runtime shares one epoll set between its workers;
//!   a readiness event found by one worker often wakes the other (a futex
//!   wake and a context switch) to run the task: about 10% more CPU per
//!   request than one event loop.
//! - A loop per core with no core spare is worse still (about a third more
//!   CPU per request with 2 loops on 2 cores): each loop finds half the ready
//!   connections per `epoll_wait`, and the loops and the clients take turns
//!   on the same cores.
//! - One single-threaded loop that runs every ready connection per pass, as
//!   redis' event loop does, serves about 45 requests per `epoll_wait` and
//!   almost never sleeps under load.
//!
//! The embedded server runs inside a Python process, usually next to its
//! clients, so by default it leaves half the cores to them. Per-worker loops
//! never wake each other; the price is that a connection cannot migrate to
//! an idle worker, which round-robin placement and short requests make rare.
//!
//! Limits (see [`Limits`]): a request line may be at most 1 MiB; a longer
//! one is answered `error\nline too long\n\n` and the connection is closed.
//! A connection holds a 16 KiB read buffer (growing to the line limit only
//! while a long line arrives) and at most about 64 KiB of pending replies:
//! replies to a `get` are produced in 64 KiB chunks from a cursor into the
//! store, each written before the next is made, so `get *` never copies the
//! data set. Connections beyond `max_connections` are closed on accept.

mod connection;
mod journal;
mod store;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};

pub use journal::{Durability, FsyncPolicy, Recovery};
pub use store::{Cursor, Store};

use journal::Journal;

/// The message of the error reply to an over-long request line.
pub const LINE_TOO_LONG: &str = "line too long";
/// The message of the error reply to a put the log could not record.
pub const STORAGE_FAILED: &str = "storage failure";

/// Bounds on what one connection may make the server hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request line in bytes, without its `\n`.
    pub max_line_bytes: usize,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// Initial read buffer of a connection.
    pub read_buffer_bytes: usize,
    /// Replies are written once this many bytes are pending; also the size
    /// of one chunk of a streamed `get`.
    pub write_chunk_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: crate::protocol::DEFAULT_MAX_LINE_BYTES,
            max_connections: 10_000,
            read_buffer_bytes: 16 << 10,
            write_chunk_bytes: 64 << 10,
        }
    }
}

/// Severity of a log message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// Where the server's messages go. Called from server threads; must not block
/// for long.
pub type LogSink = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// A sink writing `metrics-server: LEVEL: message` lines to stderr.
pub fn stderr_sink() -> LogSink {
    Arc::new(|level, message| {
        use std::io::Write;
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "metrics-server: {}: {message}", level.as_str());
        let _ = err.flush();
    })
}

/// How to run a server. `Config::default()` listens on 127.0.0.1 on a free
/// port, keeps data in memory only and logs nothing.
#[derive(Clone)]
pub struct Config {
    pub host: String,
    /// 0 picks a free port; see [`Server::local_addr`].
    pub port: u16,
    /// The durability log; `None` keeps data in memory only.
    pub data: Option<PathBuf>,
    pub fsync: FsyncPolicy,
    /// Compaction is considered once the log reaches this size.
    pub compact_min_bytes: u64,
    /// Worker threads, each an event loop of its own; 0 means one per two
    /// available cores, at least one (see the module's notes on threading).
    pub workers: usize,
    pub limits: Limits,
    pub log: Option<LogSink>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 0,
            data: None,
            fsync: FsyncPolicy::default(),
            compact_min_bytes: 64 << 20,
            workers: 0,
            limits: Limits::default(),
            log: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("data", &self.data)
            .field("fsync", &self.fsync)
            .field("compact_min_bytes", &self.compact_min_bytes)
            .field("workers", &self.workers)
            .field("limits", &self.limits)
            .field("log", &self.log.is_some())
            .finish()
    }
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: io::Error },
    #[error("data file {}: {source}", .path.display())]
    Data { path: PathBuf, source: io::Error },
    #[error("data file {} is in use by another server", .path.display())]
    DataInUse { path: PathBuf },
    #[error("cannot start the server's threads: {0}")]
    Threads(io::Error),
    #[error("the durability log failed, some puts may not be on disk: {0}")]
    Journal(io::Error),
}

impl ServerError {
    /// The underlying OS error, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            ServerError::Bind { source, .. } | ServerError::Data { source, .. } => Some(source),
            ServerError::Threads(e) | ServerError::Journal(e) => Some(e),
            ServerError::DataInUse { .. } => None,
        }
    }
}

/// Everything connections share. The store and the log buffer sit under one
/// lock so that the log records puts in exactly the order they were applied.
pub(crate) struct Shared {
    state: Mutex<State>,
    journal_wake: Condvar,
    durable: watch::Sender<Durability>,
    pub(crate) limits: Limits,
    fsync: Option<FsyncPolicy>,
    log: Option<LogSink>,
    connections: AtomicUsize,
}

pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) journal: Option<Journal>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the store half-updated
        // in a way later readers would trip on (each put is one insert).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wake_journal(&self) {
        self.journal_wake.notify_one();
    }

    fn journal_wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.journal_wake
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn journal_wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.journal_wake
            .wait_timeout(guard, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    fn publish(&self, durability: Durability) {
        self.durable.send_replace(durability);
    }

    fn fail_journal(&self) {
        if let Some(journal) = self.lock().journal.as_mut() {
            journal.fail();
        }
        self.durable.send_modify(|d| d.failed = true);
    }

    /// Whether acknowledgements must wait for the log to be fsynced.
    pub(crate) fn acks_wait_for_fsync(&self) -> bool {
        self.fsync == Some(FsyncPolicy::Always)
    }

    pub(crate) fn durability(&self) -> watch::Receiver<Durability> {
        self.durable.subscribe()
    }

    pub(crate) fn log(&self, level: Level, message: &str) {
        if let Some(sink) = &self.log {
            sink(level, message);
        }
    }
}

/// A running server. Dropping it closes it; call [`Server::close`] to see
/// whether the final flush of the log succeeded.
pub struct Server {
    address: SocketAddr,
    workers: Option<Workers>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<io::Result<()>>>,
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
    /// Replays the log (if any), binds and starts serving in background
    /// threads. Returns once the server accepts connections.
    pub fn start(config: Config) -> Result<Server, ServerError> {
        raise_fd_limit();
        let mut store = Store::new();
        let (logfile, recovery) = match &config.data {
            Some(path) => {
                let (logfile, recovery) = journal::open(path, &mut store)?;
                (Some(logfile), Some(recovery))
            }
            None => (None, None),
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
            address: format!("{}:{}", config.host, config.port),
            source,
        })?;

        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                store,
                journal: logfile.as_ref().map(|_| Journal::new()),
            }),
            journal_wake: Condvar::new(),
            durable: watch::Sender::new(Durability::default()),
            limits: config.limits.clone(),
            fsync: logfile.as_ref().map(|_| config.fsync),
            log: config.log.clone(),
            connections: AtomicUsize::new(0),
        });
        if let Some(recovery) = &recovery {
            for warning in recovery.warnings() {
                shared.log(Level::Warning, &warning);
            }
            shared.log(
                Level::Info,
                &format!(
                    "{}: replayed {} puts ({} bytes), fsync={}",
                    recovery.path.display(),
                    recovery.replayed,
                    recovery.bytes,
                    config.fsync
                ),
            );
        }
        let writer = match logfile {
            Some(logfile) => {
                let shared = Arc::clone(&shared);
                let (policy, compact) = (config.fsync, config.compact_min_bytes);
                Some(
                    std::thread::Builder::new()
                        .name("metrics-journal".into())
                        .spawn(move || journal::run_writer(shared, logfile, policy, compact))
                        .map_err(ServerError::Threads)?,
                )
            }
            None => None,
        };
        let workers = match Workers::start(runtimes, listener, &shared) {
            Ok(workers) => workers,
            Err(e) => {
                // No thread left to serve: stop the log writer too, so it
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
        Ok(Server {
            address,
            workers: Some(workers),
            shared,
            writer,
            recovery,
        })
    }

    /// The address the server listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// What replaying the log found, when there is a log.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    pub fn is_closed(&self) -> bool {
        self.workers.is_none()
    }

    /// Points and keys currently stored.
    pub fn stats(&self) -> (u64, usize) {
        let state = self.shared.lock();
        (state.store.points(), state.store.keys())
    }

    /// Stops accepting, closes every connection, then writes and fsyncs the
    /// log whatever the fsync policy. Idempotent; blocks until done.
    pub fn close(&mut self) -> Result<(), ServerError> {
        let Some(workers) = self.workers.take() else {
            return Ok(());
        };
        // Tasks are cancelled at their next await; none holds the lock
        // across one, so this is quick.
        workers.stop();
        let mut result = Ok(());
        if let Some(writer) = self.writer.take() {
            if let Some(journal) = self.shared.lock().journal.as_mut() {
                journal.close();
            }
            self.shared.wake_journal();
            result = match writer.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(ServerError::Journal(e)),
                Err(_) => Err(ServerError::Journal(io::Error::other(
                    "the log writer thread panicked",
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

fn bind(host: &str, port: u16) -> Result<TcpListener, ServerError> {
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let fail = |source| ServerError::Bind {
        address: address.clone(),
        source,
    };
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
    for addr in (host, port).to_socket_addrs().map_err(fail)? {
        let attempt = (|| {
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(1024)
        })();
        match attempt {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(fail(last))
}

/// Lifts the soft limit on open files to the hard limit (as Go's runtime
/// does), so the default 1024 does not cap concurrent connections.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max.min(1 << 20);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Decrements the connection count when a connection task ends.
struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The worker threads, each running a single-threaded runtime until told
/// to stop.
struct Workers {
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

/// Connections accepted by the first worker, on their way to another one.
type Handoff = mpsc::UnboundedSender<(std::net::TcpStream, ConnectionSlot)>;

impl Workers {
    /// Starts one thread per runtime; the first accepts on `listener`.
    fn start(
        runtimes: Vec<Runtime>,
        listener: TcpListener,
        shared: &Arc<Shared>,
    ) -> Result<Workers, ServerError> {
        let (stop, _) = watch::channel(false);
        let mut workers = Workers {
            stop,
            threads: Vec::with_capacity(runtimes.len()),
        };
        let mut handoffs = Vec::with_capacity(runtimes.len());
        let mut runtimes = runtimes.into_iter();
        let first = runtimes.next().expect("at least one worker");
        for runtime in runtimes {
            let (handoff, mut arrivals) = mpsc::unbounded_channel();
            handoffs.push(handoff);
            runtime.spawn(async move {
                while let Some((stream, slot)) = arrivals.recv().await {
                    tokio::spawn(connection::serve(stream, slot));
                }
            });
            // On failure `workers` drops here and stops the threads started.
            workers.spawn(runtime)?;
        }
        first.spawn(accept_loop(listener, Arc::clone(shared), handoffs));
        workers.spawn(first)?;
        Ok(workers)
    }

    fn spawn(&mut self, runtime: Runtime) -> Result<(), ServerError> {
        let mut stop = self.stop.subscribe();
        let thread = std::thread::Builder::new()
            .name("metrics-server".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stop.wait_for(|&stop| stop).await;
                });
                // Drops every task of this worker, closing its connections.
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .map_err(ServerError::Threads)?;
        self.threads.push(thread);
        Ok(())
    }

    /// Stops every worker and waits for them.
    fn stop(mut self) {
        self.stop.send_replace(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, handoffs: Vec<Handoff>) {
    // Round-robin over this worker (turn 0) and the others.
    let mut turn = 0;
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let open = shared.connections.fetch_add(1, Ordering::Relaxed);
                let slot = ConnectionSlot(Arc::clone(&shared));
                if open >= shared.limits.max_connections {
                    shared.log(
                        Level::Warning,
                        &format!(
                            "refusing a connection: {} connections open",
                            shared.limits.max_connections
                        ),
                    );
                    drop((stream, slot));
                    continue;
                }
                let _ = stream.set_nodelay(true);
                // Leaves this worker's epoll set; the worker that serves the
                // connection registers it with its own.
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                turn = (turn + 1) % (handoffs.len() + 1);
                match turn.checked_sub(1) {
                    None => drop(tokio::spawn(connection::serve(stream, slot))),
                    Some(i) => {
                        // A worker that has stopped takes no connections;
                        // the server is closing and dropping this one is right.
                        let _ = handoffs[i].send((stream, slot));
                    }
                }
            }
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning;
                // other errors concern one aborted connection only.
                let resource = matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                );
                if resource {
                    shared.log(Level::Error, &format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn ask(stream: &mut std::net::TcpStream, request: &str) -> String {
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = Vec::new();
        let mut byte = [0];
        while !reply.ends_with(b"\n\n") {
            assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed early");
            reply.push(byte[0]);
        }
        String::from_utf8(reply).unwrap()
    }

    /// Connections handed out round-robin to several workers are all served,
    /// share one store, and are all closed by `close`.
    #[test]
    fn several_workers_share_the_store_and_close() {
        let mut server = Server::start(Config {
            workers: 3,
            ..Config::default()
        })
        .unwrap();
        let mut streams: Vec<_> = (0..7)
            .map(|_| std::net::TcpStream::connect(server.local_addr()).unwrap())
            .collect();
        for _round in 0..2 {
            for (i, stream) in streams.iter_mut().enumerate() {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                assert_eq!(ask(stream, &format!("put k{i} {i}.5 {i}\n")), "ok\n\n");
            }
        }
        for (i, stream) in streams.iter_mut().enumerate() {
            let want = format!("ok\nk{i} {i}.5 {i}\n\n");
            assert_eq!(ask(stream, &format!("get k{i}\n")), want);
        }
        assert_eq!(server.stats(), (7, 7));
        server.close().unwrap();
        assert!(server.is_closed());
        for stream in &mut streams {
            let mut rest = Vec::new();
            // EOF, or a reset if the close raced the last ack.
            let closed = matches!(stream.read_to_end(&mut rest), Ok(0) | Err(_));
            assert!(closed);
        }
    }
}
