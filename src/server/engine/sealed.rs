//! The sealed part of the data: the block files of `<data>.blocks/` and the
//! keys file that numbers their series, opened at start and read on demand.
//!
//! A series' number in every block is its key's place in the keys file
//! (its series id). Start-up does not read the keys: the keys index finds
//! a key's id on disk when the head first meets the key again, so the
//! numbering holds across restarts without the keys in memory. Blocks are
//! immutable; a later block of the same
//! partition (a higher `seq`) holds newer values where the two overlap,
//! and the head is newer than every block.
//!
//! Start-up reads each block's header and footer only (its index stays on
//! disk), so it costs the same whatever the blocks hold. A block that is
//! ours but damaged is moved to `quarantine/` with a warning and the rest
//! are served; a file that is not ours is refused, left untouched. The
//! keys index (`keyindex`) is checked against the keys file and rebuilt,
//! with a warning, when it does not match.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::block::{partition_end, scan_dir, Block, BlockError, BlockInfo};
use super::chunk;
use super::keyindex::KeyIndex;
use super::keys::KeysFile;
use super::EngineError;
use crate::protocol::{DecimalText, Point};
use crate::server::store::Store;

/// The keys file's name in the blocks directory.
pub(super) const KEYS: &str = "keys";
/// The keys index's name there, and its temporary file's.
pub(super) const KEY_INDEX: &str = "keys.index";
const KEY_INDEX_TEMPORARY: &str = "keys.index.tmp";
/// Where damaged files go.
const QUARANTINE: &str = "quarantine";
/// The most points a read reserves room for ahead of decoding a chunk.
const RESERVE_POINTS: usize = 1 << 16;

mod numbering;
use numbering::open_keys;
pub use numbering::KeyCursor;

#[derive(Debug)]
pub struct Sealed {
    dir: PathBuf,
    /// In (partition start, seq) order.
    blocks: Vec<Arc<Block>>,
    /// Keys in the keys file: ids below this may have sealed points.
    numbered: usize,
    next_seq: u64,
    /// Bumped whenever the set of blocks changes, so a walk that cached a
    /// series' sealed points knows to read them again.
    generation: u64,
    /// The keys file's index, covering the keys numbered; `None` after a
    /// failed rewrite (the next seal rebuilds it).
    key_index: Option<Arc<KeyIndex>>,
    /// The keys file, open for reading the keys the index points to (the
    /// journal writer's handle appends to it).
    keys_reader: fs::File,
}

impl Sealed {
    /// Opens (creating if needed) the blocks directory `dir` and adds the
    /// keys of its blocks to `store`, which must be empty. Returns the keys
    /// file (for the journal writer, which alone appends to it) and the
    /// warnings to log (quarantined files, a torn keys record).
    pub fn open(
        dir: &Path,
        store: &mut Store,
    ) -> Result<(Sealed, KeysFile, Vec<String>), EngineError> {
        let io_error = |source: io::Error| EngineError::Dir {
            dir: dir.to_path_buf(),
            source,
        };
        debug_assert_eq!(store.keys(), 0);
        match fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => {
                return Err(EngineError::NotADirectory(dir.to_path_buf()))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(dir).map_err(io_error)?;
                sync_dir(dir.parent().unwrap_or(Path::new("."))).map_err(io_error)?;
            }
            Err(e) => return Err(io_error(e)),
        }
        let mut warnings = Vec::new();
        let scan = scan_dir(dir)?;
        let foreign: Vec<PathBuf> = scan
            .foreign
            .into_iter()
            .filter(|path| {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !(name == KEYS
                    || name == KEY_INDEX
                    || name == KEY_INDEX_TEMPORARY
                    || name == QUARANTINE
                    || name.starts_with("keys.quarantine"))
            })
            .collect();
        if !foreign.is_empty() {
            return Err(EngineError::Foreign {
                dir: dir.to_path_buf(),
                files: foreign,
            });
        }
        let (keys, key_index) = open_keys(dir, &mut warnings)?;
        if let Some(torn) = keys.torn() {
            let copy = dir.join(format!("keys.quarantine.{}", torn.offset));
            fs::write(&copy, &torn.bytes).map_err(io_error)?;
            warnings.push(format!(
                "{}: cut a torn final record of {} bytes at offset {} (an unfinished write \
                 from a crash); a copy is in {}",
                keys.path().display(),
                torn.bytes.len(),
                torn.offset,
                copy.display()
            ));
        }
        // New keys take the ids after the numbered ones.
        let numbered = keys.len() as usize;
        store.set_first_id(numbered);
        let keys_reader = fs::File::open(dir.join(KEYS)).map_err(io_error)?;
        for leftover in &scan.temporary {
            // An unfinished block of a seal a crash interrupted: its points
            // are still in the journal.
            fs::remove_file(leftover).map_err(io_error)?;
        }
        let mut blocks = Vec::new();
        let mut next_seq = 0;
        for (name, path) in scan.blocks {
            next_seq = next_seq.max(name.seq + 1);
            match Block::open(&path) {
                Ok(block) => blocks.push(Arc::new(block)),
                Err(BlockError::Corrupt { what, .. }) => {
                    let moved = quarantine(dir, &path).map_err(io_error)?;
                    warnings.push(format!(
                        "block file {} is damaged ({what}); it was moved to {} and its points \
                         are not served",
                        path.display(),
                        moved.display()
                    ));
                }
                Err(other) => return Err(other.into()),
            }
        }
        sync_dir(dir).map_err(io_error)?;
        Ok((
            Sealed {
                dir: dir.to_path_buf(),
                blocks,
                numbered,
                next_seq,
                generation: 0,
                key_index: Some(Arc::new(key_index)),
                keys_reader,
            },
            keys,
            warnings,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn blocks(&self) -> impl Iterator<Item = &BlockInfo> {
        self.blocks.iter().map(|b| b.info())
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Slots below this are numbered in the keys file.
    pub fn numbered(&self) -> usize {
        self.numbered
    }

    /// Records that the keys file now numbers the ids below `n`.
    pub fn numbered_up_to(&mut self, n: usize) {
        self.numbered = self.numbered.max(n);
    }

    /// Sequence numbers for `n` new blocks.
    pub fn take_seqs(&mut self, n: u64) -> u64 {
        let first = self.next_seq;
        self.next_seq += n;
        first
    }

    /// Serves the blocks written by a seal (opened again from disk, so what
    /// is served is what was written); returns them.
    pub fn add(&mut self, written: &[BlockInfo]) -> Result<Vec<Arc<Block>>, BlockError> {
        let mut added = Vec::new();
        for info in written {
            added.push(Arc::new(Block::open(&info.path)?));
        }
        self.blocks.extend(added.iter().cloned());
        self.blocks
            .sort_by_key(|b| (b.info().header.partition_start, b.info().header.seq));
        self.generation += 1;
        Ok(added)
    }

    /// The open blocks, in (partition start, seq) order, to read without
    /// the lock (a merge).
    pub(super) fn shared_blocks(&self) -> &[Arc<Block>] {
        &self.blocks
    }

    /// Serves the merged block `merged` instead of `sources` and deletes
    /// their files (sources already gone, expired meanwhile, are skipped).
    pub(super) fn replace(
        &mut self,
        sources: &[Arc<Block>],
        merged: &BlockInfo,
    ) -> Result<(), BlockError> {
        let block = Arc::new(Block::open(&merged.path)?);
        self.blocks
            .retain(|b| !sources.iter().any(|s| Arc::ptr_eq(s, b)));
        self.blocks.push(block);
        self.blocks
            .sort_by_key(|b| (b.info().header.partition_start, b.info().header.seq));
        self.generation += 1;
        for source in sources {
            let path = &source.info().path;
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(BlockError::Io {
                        path: path.clone(),
                        source,
                    })
                }
            }
        }
        sync_dir(&self.dir).map_err(|source| BlockError::Io {
            path: self.dir.clone(),
            source,
        })
    }

    /// Deletes the blocks whose partition ends at or before `cutoff`;
    /// returns how many.
    pub fn expire(&mut self, cutoff: i64) -> io::Result<usize> {
        let (old, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.blocks)
            .into_iter()
            .partition(|b| block_end(b.info()) <= cutoff);
        self.blocks = kept;
        for block in &old {
            fs::remove_file(&block.info().path)?;
        }
        if !old.is_empty() {
            self.generation += 1;
            sync_dir(&self.dir)?;
        }
        Ok(old.len())
    }

    /// Appends the sealed points of `id` with `from <= t < until` to
    /// `into.points`, by timestamp, one per timestamp (the newest block's
    /// value), and their texts (see [`Reading`]). A damaged chunk is
    /// skipped and reported through `warn`.
    pub fn points(
        &self,
        id: usize,
        from: i64,
        until: Option<i64>,
        into: Reading<'_>,
        warn: &mut dyn FnMut(String),
    ) {
        let Reading {
            points: out,
            mut texts,
        } = into;
        if id >= self.numbered {
            return;
        }
        let start = out.len();
        let mut bytes = Vec::new();
        let mut pieces = 0;
        // Whether each piece began after the one before it ended, as the
        // blocks of different days do: then `out` is in order already.
        let mut ordered = true;
        for block in &self.blocks {
            let info = block.info();
            if info.header.max_ts < from || until.is_some_and(|u| info.header.min_ts >= u) {
                continue;
            }
            let read = block.find(id as u64).and_then(|entry| match entry {
                Some(entry) if entry.last >= from && until.is_none_or(|u| entry.first < u) => {
                    bytes.clear();
                    block.read_chunk(&entry, &mut bytes).map(|()| Some(entry))
                }
                _ => Ok(None),
            });
            match read {
                Ok(None) => {}
                Ok(Some(entry)) => {
                    // Room for the chunk's points at once rather than by
                    // doublings (each a copy of all before), within a
                    // bound, as the count is only the index's word.
                    let room = (entry.count as usize).min(RESERVE_POINTS);
                    out.reserve(room);
                    if let Some(texts) = texts.as_deref_mut() {
                        texts.reserve(room);
                    }
                    let at = out.len();
                    // An exclusive bound of i64::MAX would leave out a
                    // point at i64::MAX itself: that chunk is read whole.
                    let bound = until.or((entry.last < i64::MAX).then_some(i64::MAX));
                    let decoded = match (bound, texts.as_deref_mut()) {
                        (Some(until), Some(texts)) => {
                            chunk::decode_range_texts(&bytes, from, until, out, texts)
                        }
                        (Some(until), None) => chunk::decode_range(&bytes, from, until, out),
                        (None, texts) => chunk::decode(&bytes, out).map(|()| {
                            let keep = out[at..].partition_point(|p| p.0 < from);
                            out.drain(at..at + keep);
                            if let Some(texts) = texts {
                                texts.resize(out.len(), None);
                            }
                        }),
                    };
                    match decoded {
                        Ok(()) => {
                            pieces += 1;
                            let after = |p: &Point| at == start || p.0 > out[at - 1].0;
                            ordered &= out.get(at).is_none_or(after);
                        }
                        Err(e) => {
                            out.truncate(at);
                            warn(format!(
                                "block file {}: series {id} cannot be read ({e}); its points \
                                 there are not served",
                                info.path.display()
                            ));
                        }
                    }
                }
                Err(e) => warn(format!("{e}; those points are not served")),
            }
        }
        if pieces > 1 && !ordered {
            // The texts would have to follow the sort: dropped instead
            // (texts shorter than the points are not used).
            if let Some(texts) = texts {
                texts.clear();
            }
            // Several blocks: later blocks were appended later, so a stable
            // sort keeps their value last among equal timestamps.
            out[start..].sort_by_key(|p| p.0);
            dedup_keep_last(out, start);
        }
    }
}

impl Sealed {
    /// The partitions (start, end) whose blocks hold points of `id` in
    /// `[from, until)`, by their index entries (no chunk is read), in time
    /// order, each with how many points its chunks hold.
    pub fn partitions(&self, id: usize, from: i64, until: Option<i64>) -> Vec<(i64, i64, u64)> {
        let mut out: Vec<(i64, i64, u64)> = Vec::new();
        if id >= self.numbered {
            return out;
        }
        for block in &self.blocks {
            let header = &block.info().header;
            if header.max_ts < from || until.is_some_and(|u| header.min_ts >= u) {
                continue;
            }
            // A damaged index page is reported when the chunks are read.
            let Ok(Some(entry)) = block.find(id as u64) else {
                continue;
            };
            if entry.last < from || until.is_some_and(|u| entry.first >= u) {
                continue;
            }
            let end = block_end(block.info());
            match out.last_mut() {
                Some(last) if last.0 == header.partition_start => last.2 += u64::from(entry.count),
                _ => out.push((header.partition_start, end, u64::from(entry.count))),
            }
        }
        out
    }
}

/// Where a read appends: the points and, when asked for, their values'
/// decimal texts, one per point where the chunks hold every value read as
/// one; otherwise the texts end shorter than the points (not to be used).
pub struct Reading<'a> {
    pub points: &'a mut Vec<Point>,
    pub texts: Option<&'a mut Vec<Option<DecimalText>>>,
}

impl<'a> Reading<'a> {
    /// Points alone.
    pub fn points(points: &'a mut Vec<Point>) -> Reading<'a> {
        Reading {
            points,
            texts: None,
        }
    }
}

/// Removes from `out[start..]` (sorted by timestamp) every point followed
/// by one with the same timestamp.
pub(super) fn dedup_keep_last(out: &mut Vec<Point>, start: usize) {
    let mut write = start;
    for read in start..out.len() {
        if read + 1 < out.len() && out[read + 1].0 == out[read].0 {
            continue;
        }
        out[write] = out[read];
        write += 1;
    }
    out.truncate(write);
}

/// Where a block's partition ends (a block's writer checked that it fits).
fn block_end(info: &BlockInfo) -> i64 {
    partition_end(info.header.partition_start, info.header.partition_len).unwrap_or(i64::MAX)
}

/// Moves a damaged file into `<dir>/quarantine/`; returns where it went.
fn quarantine(dir: &Path, path: &Path) -> io::Result<PathBuf> {
    let target_dir = dir.join(QUARANTINE);
    fs::create_dir_all(&target_dir)?;
    let name = path.file_name().unwrap_or_default();
    let mut target = target_dir.join(name);
    let mut n = 1;
    while target.exists() {
        target = target_dir.join(format!("{}.{n}", name.to_string_lossy()));
        n += 1;
    }
    fs::rename(path, &target)?;
    sync_dir(&target_dir)?;
    Ok(target)
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
