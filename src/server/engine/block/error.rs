//! Why a block could not be written or read.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::format::{Defect, VERSION};

#[derive(Debug, Error)]
pub enum BlockError {
    /// Not a block of ours (no block magic at its start, or not a regular
    /// file): to be refused and left untouched.
    #[error("{} is not a block file ({detail}); left untouched", .path.display())]
    Foreign { path: PathBuf, detail: &'static str },
    /// Ours but damaged: to be quarantined.
    #[error("block file {}: {what}", .path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("block file {} has format version {found}; this build reads version {}", .path.display(), VERSION)]
    Version { path: PathBuf, found: u32 },
    #[error("block file {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "block file {}: series {series} added after series {previous}; series must be added \
         in increasing id order",
        .path.display()
    )]
    OutOfOrder {
        path: PathBuf,
        previous: u64,
        series: u64,
    },
    /// A chunk that cannot belong in the block (no points, timestamps out
    /// of order or outside the partition, longer than 4 GiB).
    #[error("block file {}: chunk of series {series} refused: {what}", .path.display())]
    BadChunk {
        path: PathBuf,
        series: u64,
        what: String,
    },
    #[error(
        "block file {}: partition of length {len} from {start} is empty or ends past the \
         largest timestamp",
        .path.display()
    )]
    BadPartition { path: PathBuf, start: i64, len: u64 },
}

impl BlockError {
    pub(super) fn io(path: &Path) -> impl FnOnce(io::Error) -> BlockError + '_ {
        move |source| BlockError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(super) fn corrupt(path: &Path, what: impl Into<String>) -> BlockError {
        BlockError::Corrupt {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    pub(super) fn from_defect(path: &Path, defect: Defect) -> BlockError {
        let path = path.to_path_buf();
        match defect {
            Defect::Foreign => BlockError::Foreign {
                path,
                detail: "it does not start with the block magic",
            },
            Defect::Version(found) => BlockError::Version { path, found },
            Defect::Corrupt(what) => BlockError::Corrupt { path, what },
        }
    }
}
