//! Starting a server, in two halves so that a caller can report the bound
//! address (and cancel) while a large data file is replayed:
//! [`Server::prepare`] opens and locks the data file and binds, then
//! [`Loading::finish`] replays the blocks and the journal, builds the shared
//! state and starts the journal writer, the merger, the Graphite listeners
//! and the workers.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};

use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::journal::{self, Journal};
use super::listener::{bind, raise_fd_limit};
use super::shared::{Shared, State};
use super::workers::Workers;
use super::{budget, engine, gateway, graphite, tls};
use super::{Config, Durability, Level, Server, ServerError, Store};

impl Server {
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
        // A gateway keeps its points in Redis: its store stays empty and
        // needs no helper thread.
        let mut store = if gateway.is_some() {
            Store::new()
        } else {
            Store::with_chunks_ahead()
        };
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
                journal: recovery.as_ref().map(|r| Journal::new(r.id_base)),
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

/// Protected mode: listening beyond loopback, with no client CA to
/// authenticate clients, and not told `insecure`.
fn is_protected(config: &Config, address: SocketAddr) -> bool {
    let authenticated = config
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_ca.is_some());
    !address.ip().to_canonical().is_loopback() && !authenticated && !config.insecure
}
