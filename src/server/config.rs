//! How a server is configured: where it listens, where its data lives, and
//! the bounds on what clients may make it hold.

use std::path::PathBuf;
use std::time::Duration;

use super::gateway::StoreAddress;
use super::journal::FsyncPolicy;
use super::log::LogSink;

/// Bounds on what clients may make the server hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request line in bytes, without its `\n`.
    pub max_line_bytes: usize,
    /// Connections served at once; a connection beyond it is answered
    /// `error\ntoo many connections\n\n` and closed.
    pub max_connections: usize,
    /// Bytes the store may hold (keys and points, as allocated); past it a
    /// put that would add a point is refused with `error\nout of memory\n\n`.
    /// `None`: no limit.
    pub max_memory: Option<usize>,
    /// Bytes of read buffer all connections together may hold beyond their
    /// initial `read_buffer_bytes` (that is, for unfinished long lines).
    /// Past it the connections holding the largest unfinished lines are
    /// answered `error\nrequest buffers full\n\n` and closed.
    pub max_request_buffers: usize,
    /// A connection with no progress in either direction for this long is
    /// closed. `None`: never.
    pub idle_timeout: Option<Duration>,
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
            max_memory: None,
            max_request_buffers: 256 << 20,
            idle_timeout: None,
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
    /// The journal's path; `None` keeps data in memory only.
    pub data: Option<PathBuf>,
    pub fsync: FsyncPolicy,
    /// Compaction is considered once the journal reaches this size.
    pub compact_min_bytes: u64,
    /// How often a long replay of the data file logs its progress.
    pub progress_interval: Duration,
    /// Worker threads, each an event loop of its own; 0 means one per two
    /// available cores, at least one (see the module's notes on threading).
    pub workers: usize,
    pub limits: Limits,
    pub log: Option<LogSink>,
    /// Serve every connection over TLS; `None`: plain text.
    pub tls: Option<TlsFiles>,
    /// Serve peers beyond loopback even without client certificates. Off,
    /// a server bound to a non-loopback address without a client CA is in
    /// protected mode: such peers get an error explaining the fix.
    pub insecure: bool,
    /// Where points are kept: `None` is the embedded store (with `data`'s
    /// journal); `Some` makes the server a gateway to Redis, keeping nothing.
    pub store: Option<StoreAddress>,
    /// Also accept Graphite's plaintext protocol on this port of `host`
    /// (0 picks a free one); `None`: not at all.
    pub graphite_port: Option<u16>,
    /// Also serve Graphite's HTTP API and the dashboard on this port of
    /// `host` (0 picks a free one); `None`: not at all.
    pub http_port: Option<u16>,
    /// How the storage engine seals points into blocks and expires them
    /// (with `data`; the Redis gateway honours the retention too).
    pub storage: crate::server::engine::Storage,
}

/// The PEM files of a TLS server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain, its own certificate first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With it, only clients presenting a certificate signed by one of
    /// these CAs are served (mutual TLS).
    pub client_ca: Option<PathBuf>,
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
            tls: None,
            insecure: false,
            store: None,
            graphite_port: None,
            http_port: None,
            storage: crate::server::engine::Storage::default(),
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
            .field("tls", &self.tls)
            .field("insecure", &self.insecure)
            .field("store", &self.store)
            .field("graphite_port", &self.graphite_port)
            .field("http_port", &self.http_port)
            .field("storage", &self.storage)
            .finish()
    }
}

/// Why a size such as `2GiB` could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("{0:?} is not a size: use a whole number of bytes, optionally followed by KiB, MiB, GiB or TiB")]
    Malformed(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
    #[error("{0:?}: the size must be more than 0")]
    Zero(String),
}

/// Reads a size in bytes: `1048576`, `512KiB`, `64 MiB`, `2GiB` (units are
/// powers of 1024; decimal units such as `GB` are refused as ambiguous).
pub fn parse_size(text: &str) -> Result<usize, SizeError> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let shift = match unit.trim_start() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return Err(SizeError::Malformed(text.to_owned())),
    };
    if number.is_empty() {
        return Err(SizeError::Malformed(text.to_owned()));
    }
    let number: usize = number
        .parse()
        .map_err(|_| SizeError::TooLarge(text.to_owned()))?;
    let bytes = number
        .checked_mul(1 << shift)
        .ok_or_else(|| SizeError::TooLarge(text.to_owned()))?;
    if bytes == 0 {
        return Err(SizeError::Zero(text.to_owned()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_binary_units() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size(" 64 MiB "), Ok(64 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        for bad in ["", "GiB", "2GB", "2 gib", "1.5GiB", "-1", "2GiBs", "0x10"] {
            assert!(
                matches!(parse_size(bad), Err(SizeError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(parse_size("0KiB"), Err(SizeError::Zero(_))));
        assert!(matches!(
            parse_size("99999999999999999999"),
            Err(SizeError::TooLarge(_))
        ));
        assert!(matches!(
            parse_size("99999999999TiB"),
            Err(SizeError::TooLarge(_))
        ));
        assert!(parse_size("0").is_err());
    }
}
