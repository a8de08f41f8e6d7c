//! Block file names, and what a directory of blocks holds.
//!
//! A block is `<start>-<seq>.block`: `<start>` is the partition's start as
//! a sign letter and 19 digits, `p` and the value for `start >= 0`, `n` and
//! `start + 2^63` below (so `n` names sort before `p` names, and both in
//! numeric order); `<seq>` is 20 digits. Every field has a fixed width, so
//! the names sort as (start, seq) do, `ls` shows a directory in time order,
//! and each block has exactly one name (no aliases such as `+1` or `01`):
//!
//! ```text
//! p0000000001700000000-00000000000000000003.block   start 1700000000, seq 3
//! n9223372036854772208-00000000000000000000.block   start -3600, seq 0
//! ```
//!
//! A writer's unfinished file is the block's name plus `.tmp`.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use super::BlockError;

const SUFFIX: &str = ".block";
const TEMPORARY_SUFFIX: &str = ".block.tmp";
const START_DIGITS: usize = 19;
const SEQ_DIGITS: usize = 20;
/// `p` or `n`, the start's digits, `-`, the seq's digits.
const STEM_LEN: usize = 1 + START_DIGITS + 1 + SEQ_DIGITS;

/// What a block's file name says: its partition and its place among the
/// partition's blocks (higher `seq` is newer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockName {
    pub partition_start: i64,
    pub seq: u64,
}

impl BlockName {
    pub fn file_name(&self) -> String {
        let (sign, magnitude) = if self.partition_start >= 0 {
            ('p', self.partition_start as u64)
        } else {
            // Below zero: the distance from i64::MIN, which fits 19 digits.
            ('n', self.partition_start.wrapping_sub(i64::MIN) as u64)
        };
        format!("{sign}{magnitude:019}-{:020}{SUFFIX}", self.seq)
    }

    pub fn temporary_name(&self) -> String {
        format!("{}.tmp", self.file_name())
    }

    /// The name of a block file, or `None` for any other name.
    pub fn parse(file_name: &str) -> Option<BlockName> {
        parse_stem(file_name.strip_suffix(SUFFIX)?)
    }
}

fn parse_stem(stem: &str) -> Option<BlockName> {
    let bytes = stem.as_bytes();
    if bytes.len() != STEM_LEN || bytes[1 + START_DIGITS] != b'-' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        let text = &stem[range];
        // `parse` alone would accept a leading `+`.
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse().ok())?
    };
    let magnitude = digits(1..1 + START_DIGITS)?;
    let seq = digits(2 + START_DIGITS..STEM_LEN)?;
    let magnitude = i64::try_from(magnitude).ok()?;
    let partition_start = match bytes[0] {
        b'p' => magnitude,
        b'n' => magnitude.wrapping_add(i64::MIN),
        _ => return None,
    };
    // An `n` start is always below zero, so no block has two names.
    Some(BlockName {
        partition_start,
        seq,
    })
}

/// What a directory entry's name makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Block(BlockName),
    /// An unfinished writer's file: left by a crash (or a writer still
    /// running, which the engine's lock on the directory rules out).
    Temporary(BlockName),
    /// Not a name this module gives.
    Foreign,
}

pub fn classify(file_name: &OsStr) -> NameKind {
    let Some(name) = file_name.to_str() else {
        return NameKind::Foreign;
    };
    if let Some(block) = BlockName::parse(name) {
        return NameKind::Block(block);
    }
    match name.strip_suffix(TEMPORARY_SUFFIX).and_then(parse_stem) {
        Some(block) => NameKind::Temporary(block),
        None => NameKind::Foreign,
    }
}

/// A directory of blocks, sorted out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DirScan {
    /// Block files, in (partition start, seq) order.
    pub blocks: Vec<(BlockName, PathBuf)>,
    /// Unfinished writers' files, to delete.
    pub temporary: Vec<PathBuf>,
    /// Everything else (including directories and symlinks with block
    /// names): to leave untouched and report.
    pub foreign: Vec<PathBuf>,
}

/// Lists `dir` without opening any file.
pub fn scan_dir(dir: &Path) -> Result<DirScan, BlockError> {
    let error = |source| BlockError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut scan = DirScan::default();
    for entry in fs::read_dir(dir).map_err(error)? {
        let entry = entry.map_err(error)?;
        let path = entry.path();
        let regular = entry.file_type().map_err(error)?.is_file();
        match classify(&entry.file_name()) {
            NameKind::Block(name) if regular => scan.blocks.push((name, path)),
            NameKind::Temporary(_) if regular => scan.temporary.push(path),
            _ => scan.foreign.push(path),
        }
    }
    scan.blocks.sort();
    scan.temporary.sort();
    scan.foreign.sort();
    Ok(scan)
}
