//! Sealing: moving the head's points older than the head window into block
//! files, one block per day partition touched, inside the journal's
//! compaction. The compaction walks the store key by key; for each key the
//! points to seal go to the blocks, the rest into the new journal. Once the
//! blocks are durable (fsynced, renamed, directory fsynced) they are
//! served; once the new journal has replaced the old one, the sealed
//! points leave the head. A crash at any step leaves either the old
//! journal (which still has every point) or the new journal with the
//! blocks, never neither: a point is always in the journal or a durable
//! block, and duplicates between the two are harmless (the head wins).
//!
//! Points past the retention are neither sealed nor journaled: dropped.

use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};

use super::block::{partition_end, Block, BlockError, BlockInfo, BlockWriter};
use super::keyindex::{self, KeyIndex};
use super::keys::KeysFile;
use super::sealed::KEY_INDEX;
use super::{chunk, EngineError, Storage, PARTITION};
use crate::protocol::Point;
use crate::server::shared::State;
use crate::server::store::Store;

/// Partitions one seal writes blocks for, at most: points of others stay
/// in the head for the next seal (a bound on open files however widely
/// the timestamps spread).
const MAX_PARTITIONS: usize = 64;
/// Points removed from the head per piece of `settle` (under the lock).
const SETTLE_STEP_POINTS: usize = 1 << 16;

/// A seal in progress, owned by the journal writer's compaction.
pub(crate) struct Seal {
    dir: PathBuf,
    before: i64,
    cutoff: Option<i64>,
    /// Ids below this are numbered in the keys file: only they can be
    /// sealed (keys added meanwhile wait for the next seal).
    numbered: usize,
    /// The head's slots when the seal began, in id order: the order
    /// series go into blocks. Keys added meanwhile have their records in
    /// the journal after the seal began, which the new journal copies.
    order: Vec<u32>,
    first_seq: u64,
    writers: Vec<(i64, BlockWriter)>,
    /// The oldest point kept in the head.
    kept_low: Option<i64>,
    /// The store's lower bound when the seal began, for an abandoned seal.
    low_before: Option<i64>,
    points: Vec<Point>,
    chunk: Vec<u8>,
    pub(crate) sealed: u64,
    pub(crate) dropped: u64,
    /// Points looked at so far.
    pub(crate) visited: u64,
    /// What went wrong beside the seal, to log (it goes on regardless).
    pub(crate) warning: Option<String>,
}

/// The day `[start, end)` that holds `ts`, when both ends fit in an i64.
fn partition_of(ts: i64) -> Option<(i64, i64)> {
    let start = ts.div_euclid(PARTITION).checked_mul(PARTITION)?;
    Some((start, partition_end(start, PARTITION as u64)?))
}

/// What the writer keeps between seals.
pub(crate) struct Sealer {
    pub(crate) keys: KeysFile,
    pub(crate) storage: Storage,
}

impl Sealer {
    /// Whether the head holds anything to seal or expire at `now`. Past
    /// half the memory limit, anything older than the head window is
    /// sealed at once, to make room before puts would be refused.
    pub(crate) fn due(&self, store: &Store, now: i64, max_memory: Option<usize>) -> bool {
        let Some(low) = store.low() else {
            return false;
        };
        let pressed = max_memory.is_some_and(|limit| store.memory() >= limit / 2);
        low < self.storage.trigger(now)
            || (pressed && low < self.storage.horizon(now))
            || self.storage.cutoff(now).is_some_and(|c| low < c)
    }

    /// Rebuilds the keys index when the last rewrite failed (it is then
    /// not served, and a put of a key the head does not hold is refused,
    /// since its id cannot be known), without waiting for a seal to be
    /// due. Returns whether it rebuilt it. The keys file is read without
    /// the store's lock.
    pub(crate) fn repair_index<'s>(
        &mut self,
        mut lock: impl FnMut() -> MutexGuard<'s, State>,
    ) -> Result<bool, EngineError> {
        let missing = lock()
            .sealed
            .as_ref()
            .is_some_and(|s| s.key_index().is_none());
        if !missing {
            return Ok(false);
        }
        let index = Arc::new(rewrite_index(&self.keys)?);
        if let Some(sealed) = lock().sealed.as_mut() {
            sealed.set_key_index(Some(index));
        }
        Ok(true)
    }

    /// Begins a seal at `now`: numbers the keys not numbered yet (the keys
    /// file is appended and fsynced without the store's lock). `lock` gives
    /// the store and the sealed blocks.
    pub(crate) fn begin<'s>(
        &mut self,
        now: i64,
        mut lock: impl FnMut() -> MutexGuard<'s, State>,
    ) -> Result<Seal, EngineError> {
        let order: Vec<u32>;
        let (new_keys, numbered, dir, first_seq, low_before, old_index) = {
            let mut state = lock();
            let crate::server::shared::State { store, sealed, .. } = &mut *state;
            let Some(sealed) = sealed.as_mut() else {
                return Err(EngineError::NotSealing);
            };
            let numbered = sealed.numbered();
            // Ids from the numbered ones on name keys only the head holds.
            let new_keys: Vec<String> = (numbered..store.ids())
                .filter_map(|id| store.slot_of(id).and_then(|slot| store.key(slot)))
                .map(str::to_owned)
                .collect();
            debug_assert_eq!(new_keys.len(), store.ids() - numbered);
            let mut by_id: Vec<(u32, u32)> = (0..store.keys())
                .map(|slot| (store.id(slot).unwrap_or(0) as u32, slot as u32))
                .collect();
            by_id.sort_unstable();
            order = by_id.into_iter().map(|(_, slot)| slot).collect();
            let first_seq = sealed.take_seqs(MAX_PARTITIONS as u64);
            let low_before = store.low();
            store.reset_low(None, None);
            (
                new_keys,
                numbered,
                sealed.dir().to_path_buf(),
                first_seq,
                low_before,
                sealed.key_index(),
            )
        };
        let names: Vec<&str> = new_keys.iter().map(String::as_str).collect();
        let result = (|| {
            let offsets = self.keys.append(&names)?;
            self.keys.sync()?;
            Ok::<_, EngineError>(offsets)
        })();
        let mut warning = None;
        let index = match &result {
            Ok(_) if names.is_empty() && old_index.is_some() => old_index,
            Ok(_) => match rewrite_index(&self.keys) {
                Ok(index) => Some(Arc::new(index)),
                Err(e) => {
                    warning = Some(format!(
                        "cannot write the keys index ({e}); the next seal or start rebuilds it"
                    ));
                    None
                }
            },
            Err(_) => old_index,
        };
        let mut state = lock();
        if let Err(e) = result {
            let store = &mut state.store;
            let since = store.low();
            store.reset_low(low_before, since);
            return Err(e);
        }
        if let Some(sealed) = state.sealed.as_mut() {
            sealed.numbered_up_to(numbered + new_keys.len());
            sealed.set_key_index(index);
        }
        Ok(Seal {
            dir,
            before: self.storage.horizon(now),
            cutoff: self.storage.cutoff(now),
            numbered: numbered + new_keys.len(),
            order,
            first_seq,
            writers: Vec::new(),
            kept_low: None,
            low_before,
            points: Vec::new(),
            chunk: Vec::new(),
            sealed: 0,
            dropped: 0,
            visited: 0,
            warning,
        })
    }
}

/// The keys index of `keys` once new keys were appended, built again from
/// every key (one read of the keys file, without the store's lock): the
/// order of the keys by their text takes them all.
fn rewrite_index(keys: &KeysFile) -> Result<KeyIndex, EngineError> {
    let path = keys.path().with_file_name(KEY_INDEX);
    let stamp = keys.stamp()?;
    let (names, offsets) = keys.read_all()?;
    Ok(keyindex::build(&path, &stamp, &names, &offsets)?)
}

impl Seal {
    /// The head slot of the `i`th series to seal, in id order.
    pub(crate) fn slot_at(&self, i: usize) -> Option<usize> {
        self.order.get(i).map(|&slot| slot as usize)
    }

    /// How many series the seal walks.
    pub(crate) fn series_count(&self) -> usize {
        self.order.len()
    }

    /// Seals what is old enough of the key in `slot` and calls `keep` with
    /// every other point (for the new journal). Called with the lock held.
    pub(crate) fn series(
        &mut self,
        store: &Store,
        slot: usize,
        keep: &mut dyn FnMut(i64, f64),
    ) -> Result<(), BlockError> {
        self.points.clear();
        let id = store.id(slot).unwrap_or(usize::MAX);
        let sealable = id < self.numbered;
        let mut kept_low = self.kept_low;
        let (before, cutoff) = (self.before, self.cutoff);
        let mut dropped = 0;
        let points = &mut self.points;
        let mut visited = 0;
        store.each_in_range(slot, i64::MIN, None, |ts, value| {
            visited += 1;
            if cutoff.is_some_and(|c| ts < c) {
                dropped += 1;
            } else if sealable && ts < before {
                points.push((ts, value));
            } else {
                kept_low = Some(kept_low.map_or(ts, |l: i64| l.min(ts)));
                keep(ts, value);
            }
            true
        });
        self.dropped += dropped;
        self.visited += visited;
        self.kept_low = kept_low;
        let mut start = 0;
        while start < self.points.len() {
            let ts = self.points[start].0;
            let bounds = partition_of(ts);
            let end = bounds.map_or(i64::MAX, |(_, end)| end);
            let len = match bounds {
                Some(_) => self.points[start..].partition_point(|p| p.0 < end),
                // The first and last days of the i64 range have no
                // partition a block can name: such points stay in the head
                // (and do not call for another seal).
                None => self.points[start..]
                    .iter()
                    .take_while(|p| partition_of(p.0).is_none() && (ts < 0) == (p.0 < 0))
                    .count(),
            };
            let group = start..start + len;
            start += len;
            let writer = match bounds {
                Some((partition, _)) => self.writer(partition)?,
                None => None,
            };
            let Some(w) = writer else {
                for &(ts, value) in &self.points[group] {
                    if bounds.is_some() {
                        // Too many partitions for one seal: for the next.
                        self.kept_low = Some(self.kept_low.map_or(ts, |l| l.min(ts)));
                    }
                    keep(ts, value);
                }
                continue;
            };
            self.chunk.clear();
            let writer = &mut self.writers[w].1;
            let summary =
                chunk::encode(&self.points[group.clone()], &mut self.chunk).map_err(|e| {
                    BlockError::BadChunk {
                        path: writer.path().to_path_buf(),
                        series: id as u64,
                        what: e.to_string(),
                    }
                })?;
            writer.add(
                id as u64,
                &self.chunk,
                summary.count,
                summary.first,
                summary.last,
            )?;
            self.sealed += u64::from(summary.count);
        }
        Ok(())
    }

    /// Makes the blocks durable (without the lock); returns what they hold.
    pub(crate) fn write(&mut self) -> Result<Vec<BlockInfo>, BlockError> {
        let mut infos = Vec::new();
        for (_, writer) in self.writers.drain(..) {
            infos.push(writer.finish()?);
        }
        Ok(infos)
    }

    /// The writer of `partition` (its index), opened if there is room for
    /// one more.
    fn writer(&mut self, partition: i64) -> Result<Option<usize>, BlockError> {
        if let Some(i) = self.writers.iter().position(|(p, _)| *p == partition) {
            return Ok(Some(i));
        }
        if self.writers.len() == MAX_PARTITIONS {
            return Ok(None);
        }
        let seq = self.first_seq + self.writers.len() as u64;
        let writer = BlockWriter::create(&self.dir, partition, PARTITION as u64, seq)?;
        self.writers.push((partition, writer));
        Ok(Some(self.writers.len() - 1))
    }

    /// After the new journal replaced the old one: removes from the head
    /// the points this seal's `blocks` hold (walking each block's index in
    /// order and reading its chunks without the lock), then what is past
    /// the retention, and expired blocks from disk.
    ///
    /// Done a piece at a time, the lock released between pieces: until a
    /// point is removed, readers find it in both places with the same
    /// value. A stop request ends it early: the head may keep points that
    /// blocks hold, which costs memory until the restart, nothing else.
    pub(crate) fn settle<'s>(
        self,
        lock: impl Fn() -> MutexGuard<'s, State>,
        blocks: &[Arc<Block>],
    ) -> Result<(), BlockError> {
        let stopping = |state: &State| state.journal.as_ref().is_some_and(|j| j.is_closing());
        let mut bytes = Vec::new();
        for block in blocks {
            let mut entries = block.entries();
            loop {
                let mut batch: Vec<(usize, Vec<Point>)> = Vec::new();
                let mut work = 0;
                for entry in entries.by_ref() {
                    let entry = entry?;
                    block.read_chunk(&entry, &mut bytes)?;
                    let mut points = Vec::with_capacity(entry.count as usize);
                    chunk::decode(&bytes, &mut points).map_err(|e| BlockError::Corrupt {
                        path: block.info().path.clone(),
                        what: format!("series {}: {e}", entry.series_id),
                    })?;
                    work += points.len() + 1;
                    batch.push((entry.series_id as usize, points));
                    if work >= SETTLE_STEP_POINTS {
                        break;
                    }
                }
                if batch.is_empty() {
                    break;
                }
                let mut state = lock();
                if stopping(&state) {
                    return Ok(());
                }
                for (id, points) in &batch {
                    if let Some(slot) = state.store.slot_of(*id) {
                        state.store.remove_sealed(slot, self.before, points);
                    }
                }
            }
        }
        if let Some(cutoff) = self.cutoff {
            let mut slot = 0;
            loop {
                let mut state = lock();
                if stopping(&state) {
                    return Ok(());
                }
                let mut work = 0;
                while slot < state.store.keys() && work < SETTLE_STEP_POINTS {
                    work += state.store.remove_before(slot, cutoff) as usize + 1;
                    slot += 1;
                }
                if slot >= state.store.keys() {
                    if let Some(sealed) = state.sealed.as_mut() {
                        sealed.expire(cutoff).map_err(|source| BlockError::Io {
                            path: sealed.dir().to_path_buf(),
                            source,
                        })?;
                    }
                    break;
                }
            }
        }
        let mut state = lock();
        let store = &mut state.store;
        let since = store.low();
        store.reset_low(self.kept_low, since);
        Ok(())
    }

    /// A seal that did not complete: its unfinished blocks are removed
    /// (dropping a writer deletes its file) and the head keeps everything.
    pub(crate) fn abandon(self, store: &mut Store) {
        let since = store.low();
        store.reset_low(self.low_before, since);
    }
}
