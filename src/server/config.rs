//! How a server is configured: where it listens, where its data lives, and
//! the bounds on what clients may make it hold.

use std::path::PathBuf;
use std::time::Duration;

use super::journal::FsyncPolicy;
use super::log::LogSink;

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
    /// How often a long replay of the data file logs its progress.
    pub progress_interval: Duration,
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
            progress_interval: Duration::from_secs(3),
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
            .field("progress_interval", &self.progress_interval)
            .field("workers", &self.workers)
            .field("limits", &self.limits)
            .field("log", &self.log.is_some())
            .finish()
    }
}
