//! Why a server could not start or could not close cleanly.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: io::Error },
    #[error("data file {}: {source}", .path.display())]
    Data { path: PathBuf, source: io::Error },
    #[error("data file {} is in use by another server", .path.display())]
    DataInUse { path: PathBuf },
    #[error("data file {} is {kind}, not a regular file; refusing to use it", .path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "data file {} does not look like a metrics journal ({detail}); refusing to use it, \
         it was left untouched",
        .path.display()
    )]
    NotAJournal { path: PathBuf, detail: String },
    /// A TLS file (`what`: certificate, key or client CA) cannot be used.
    #[error("TLS {what} file {}: {problem}", .path.display())]
    Tls {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("the server was stopped while it was loading its data file")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] super::gateway::GatewayError),
    #[error("a server storing in Redis keeps no data file: give store or data, not both")]
    StoreWithData,
    #[error("the Graphite ports (graphite_port, http_port) serve the embedded store, not Redis: drop them or store")]
    GraphiteWithStore,
    /// The blocks of the data file cannot be used.
    #[error("data file {}: {source}", .path.display())]
    Blocks {
        path: PathBuf,
        source: super::engine::EngineError,
    },
    #[error("cannot start the server's threads: {0}")]
    Threads(io::Error),
    #[error("the journal failed, some puts may not be on disk: {0}")]
    Journal(io::Error),
    /// Closing could not write or fsync everything: `what` says what is
    /// missing from the file.
    #[error("data file {}: {what}: {source}", .path.display())]
    Unwritten {
        path: PathBuf,
        what: String,
        source: io::Error,
    },
}

impl ServerError {
    /// The data file the error is about, when it is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ServerError::Data { path, .. }
            | ServerError::DataInUse { path }
            | ServerError::NotRegular { path, .. }
            | ServerError::NotAJournal { path, .. }
            | ServerError::Blocks { path, .. }
            | ServerError::Unwritten { path, .. } => Some(path),
            ServerError::Bind { .. }
            | ServerError::Tls { .. }
            | ServerError::Cancelled
            | ServerError::Store(_)
            | ServerError::StoreWithData
            | ServerError::GraphiteWithStore
            | ServerError::Threads(_)
            | ServerError::Journal(_) => None,
        }
    }

    /// The underlying OS error, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            ServerError::Bind { source, .. }
            | ServerError::Data { source, .. }
            | ServerError::Unwritten { source, .. } => Some(source),
            ServerError::Threads(e) | ServerError::Journal(e) => Some(e),
            ServerError::DataInUse { .. }
            | ServerError::NotRegular { .. }
            | ServerError::NotAJournal { .. }
            | ServerError::Blocks { .. }
            | ServerError::Tls { .. }
            | ServerError::Cancelled
            | ServerError::Store(_)
            | ServerError::StoreWithData
            | ServerError::GraphiteWithStore => None,
        }
    }
}
