//! The in-memory time series: for each key, its points ordered by timestamp,
//! one value per timestamp (a later put replaces the value).
//!
//! Keys are kept in order of first appearance and never removed, so a key's
//! slot number is stable. That lets a reader walk the data in bounded chunks
//! with a [`Cursor`] and release the lock between chunks: a `get *` of any
//! size is streamed without copying the data and without stalling writers.
//!
//! Each key also carries its series id: its number in the storage engine's
//! blocks, which outlives the head. Alone, a store numbers its keys by
//! their slots. As the engine's head it holds only the keys with points in
//! memory: a key already numbered on disk is added with its id
//! ([`Store::add_key`]), a key never seen takes the next id after the
//! numbered ones, and an index from id to slot is kept beside the keys'.
//!
//! Nothing here grows by copying everything at once, so no single put pauses
//! the server as the store grows: keys are packed in an arena of fixed
//! blocks (`arena`), looked up through many small hash tables (`index`),
//! their series kept in a segmented vector (`slots`), and a series' points
//! in chunks of at most 128 (`series`). The store counts the bytes it has
//! allocated (`memory`), for the server's memory limit. Queries read
//! through `range` (time ranges by binary search) and `sorted` (the keys in
//! byte order, for glob prefixes); neither changes what puts do.

mod ahead;
mod arena;
mod head;
mod index;
mod memory;
mod range;
mod series;
mod slots;
mod sorted;

use crate::protocol::Selector;

use arena::{Arena, KeyRef};
use index::Index;
use series::Points;
use slots::Slots;

#[derive(Debug, Default)]
pub struct Store {
    keys: Arena,
    index: Index,
    series: Slots<Series>,
    points: u64,
    /// Bytes allocated for keys and points, kept up to date by every put.
    bytes: usize,
    /// The keys in byte order, built for queries (`sorted`).
    sorted: sorted::SortedKeys,
    /// No point stored is older than this (`None`: none stored since the
    /// bound was last reset); the storage engine's cue to seal (`head`).
    low: Option<i64>,
    /// Series id to slot, once ids and slots differ (`sparse`).
    ids: Index,
    sparse: bool,
    /// The id the next new key takes.
    next_id: usize,
    /// Full chunks made ahead by a helper thread (`ahead`): the server's
    /// head has them, other stores allocate their own.
    ahead: Option<ahead::ChunksAhead>,
    /// The slot the last put went to: puts come in runs of one key (a
    /// client's batch per series), and checking that key first saves the
    /// hash and the probe into the index, which misses the cache with many
    /// series. Checked against the key, so never wrong, only a guess.
    last: Option<usize>,
}

#[derive(Debug)]
struct Series {
    key: KeyRef,
    /// Below 2^32, as slots are (see `push_key`).
    id: u32,
    points: Points,
}

/// Where a chunked walk over the store stands. Points added behind the
/// cursor during the walk are not seen, points ahead of it are: every point
/// is visited at most once, in key order then timestamp order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The slot being walked; `None` once the walk is over.
    slot: Option<usize>,
    /// Only the one key at `slot` (a `get key`), or every key from it on.
    single: bool,
    /// The last timestamp visited in the current slot.
    after: Option<i64>,
}

impl Cursor {
    /// A walk over every key.
    pub fn all() -> Self {
        Cursor {
            slot: Some(0),
            single: false,
            after: None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.slot.is_none()
    }
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose full chunks are made ahead by a helper thread, which
    /// takes their first page faults off the thread that puts (`ahead`):
    /// the server's head.
    pub fn with_chunks_ahead() -> Self {
        Store {
            ahead: ahead::ChunksAhead::start(),
            ..Self::default()
        }
    }

    fn find(&self, hash: u64, key: &str) -> Option<usize> {
        self.index.find(hash, |slot| {
            self.series
                .get(slot)
                .is_some_and(|series| self.keys.get(series.key) == key)
        })
    }

    /// Stores `value` at `timestamp`; returns whether the point is new
    /// (false when it replaced an earlier value).
    pub fn put(&mut self, key: &str, timestamp: i64, value: f64) -> bool {
        let slot = self.slot_for(key);
        self.put_at(slot, timestamp, value)
    }

    /// `put` into the series at `slot`.
    fn insert_at(&mut self, slot: usize, timestamp: i64, value: f64) -> bool {
        let Some(series) = self.series.get_mut(slot) else {
            return false; // the index only holds slots that exist
        };
        let new = series
            .points
            .insert(timestamp, value, &mut self.bytes, self.ahead.as_ref());
        self.points += u64::from(new);
        new
    }

    /// Adds a key not stored yet, with series id `id` and `points`;
    /// returns its slot.
    fn push_key(
        &mut self,
        hash: u64,
        key: &str,
        id: usize,
        points: Points,
        point_bytes: usize,
    ) -> usize {
        // Slots and ids are below 2^32: each key costs tens of bytes, and
        // 2^32 of them would be hundreds of gigabytes.
        let id32 = u32::try_from(id).unwrap_or(u32::MAX);
        let (at, key_bytes) = self.keys.push(key);
        let (slot, slot_bytes) = self.series.push(Series {
            key: at,
            id: id32,
            points,
        });
        self.next_id = self.next_id.max(id + 1);
        let slot32 = u32::try_from(slot).unwrap_or(u32::MAX);
        if id != slot && !self.sparse {
            self.make_sparse();
        }
        let Store {
            keys,
            index,
            ids,
            series,
            sparse,
            ..
        } = self;
        let index_bytes = index.insert(hash, slot32, |slot| {
            series.get(slot).map_or("", |s| keys.get(s.key))
        });
        let id_bytes = if *sparse {
            ids.insert_id(slot32, id, |slot| {
                series.get(slot).map_or(0, |s| s.id as usize)
            })
        } else {
            0
        };
        self.bytes += key_bytes + point_bytes + slot_bytes + index_bytes + id_bytes;
        slot
    }

    /// Starts the index from ids to slots, once a key's id is not its slot.
    fn make_sparse(&mut self) {
        self.sparse = true;
        let Store { ids, series, .. } = self;
        for slot in 0..series.len() {
            let id = series.get(slot).map_or(0, |s| s.id as usize);
            self.bytes += ids.insert_id(slot as u32, id, |slot| {
                series.get(slot).map_or(0, |s| s.id as usize)
            });
        }
    }

    /// Whether `key` has a point at `timestamp`.
    pub fn contains(&self, key: &str, timestamp: i64) -> bool {
        self.find(self.index.hash(key), key)
            .and_then(|slot| self.series.get(slot))
            .is_some_and(|series| series.points.contains(timestamp))
    }

    /// Number of stored points (distinct key and timestamp pairs).
    pub fn points(&self) -> u64 {
        self.points
    }

    /// Number of keys held (slots).
    pub fn keys(&self) -> usize {
        self.series.len()
    }

    /// The id the next new key takes: every id below it is numbered on
    /// disk or held here.
    pub fn ids(&self) -> usize {
        self.next_id
    }

    /// Bytes the store has allocated for its keys and points (as the
    /// allocator counts them, headers and rounding included), plus its
    /// fixed overhead. Chunk buffers made ahead count once the store takes
    /// them; the helper's stock (at most 2 MiB, whatever the data) is a
    /// fixed cost of the process, like its threads' stacks.
    pub fn memory(&self) -> usize {
        self.bytes
            + self.sorted.heap_bytes()
            + self.index.fixed_bytes()
            + self.ids.fixed_bytes()
            + std::mem::size_of::<Self>()
    }

    /// A cursor at the start of what `selector` asks for.
    pub fn cursor(&self, selector: Selector<&str>) -> Cursor {
        match selector {
            Selector::All => Cursor::all(),
            Selector::Key(key) => Cursor {
                slot: self.find(self.index.hash(key), key),
                single: true,
                after: None,
            },
        }
    }

    /// Calls `visit` with every key, in order of first appearance.
    pub fn each_key(&self, mut visit: impl FnMut(&str)) {
        for slot in 0..self.series.len() {
            if let Some(series) = self.series.get(slot) {
                visit(self.keys.get(series.key));
            }
        }
    }

    /// Calls `visit(key, timestamp, value)` for points from `cursor` on until
    /// `visit` returns false (after that point) or the walk ends, advancing
    /// the cursor. Returns true when the walk is over.
    pub fn walk(&self, cursor: &mut Cursor, mut visit: impl FnMut(&str, i64, f64) -> bool) -> bool {
        self.walk_ids(cursor, |_, key, ts, value| visit(key, ts, value))
    }

    /// `walk`, also giving each key's series id.
    pub fn walk_ids(
        &self,
        cursor: &mut Cursor,
        mut visit: impl FnMut(usize, &str, i64, f64) -> bool,
    ) -> bool {
        while let Some(slot) = cursor.slot {
            let Some(series) = self.series.get(slot) else {
                cursor.slot = None;
                break;
            };
            let (id, key) = (series.id as usize, self.keys.get(series.key));
            let points = &series.points;
            let (first_chunk, mut at) = points.first_after(cursor.after);
            for c in first_chunk..points.chunk_count() {
                for &(ts, value) in &points.chunk(c)[at..] {
                    cursor.after = Some(ts);
                    if !visit(id, key, ts, value) {
                        return false;
                    }
                }
                at = 0;
            }
            cursor.after = None;
            cursor.slot = if cursor.single { None } else { Some(slot + 1) };
        }
        true
    }
}

#[cfg(test)]
mod tests;
