//! What the storage engine needs of the store when it serves as the head
//! (the recent points, in memory): series ids that follow the blocks'
//! numbering (a key numbered on disk comes back with its id, new keys take
//! the ids after), a lower bound on the timestamps held (the cue that
//! something is old enough to seal), and removing points once sealed.

use super::series::Points;
use super::{Cursor, Store};
use crate::protocol::Point;

impl Cursor {
    /// A cursor at this position: key `slot` (`None`: the walk is over),
    /// only that key or every key from it on, after timestamp `after`.
    /// With [`Cursor::position`], how a walk over head and blocks moves
    /// between reading the store alone and reading both.
    pub fn at(slot: Option<usize>, single: bool, after: Option<i64>) -> Cursor {
        Cursor {
            slot,
            single,
            after,
        }
    }

    /// The slot and the last timestamp visited in it.
    pub fn position(&self) -> (Option<usize>, Option<i64>) {
        (self.slot, self.after)
    }
}

impl Store {
    /// Makes `n` the first id new keys take: ids below it are numbered in
    /// the blocks. Called on an empty store, before the journal is replayed.
    pub fn set_first_id(&mut self, n: usize) {
        debug_assert_eq!(self.series.len(), 0);
        self.next_id = n;
    }

    /// Adds `key`, not held yet, with no points and the series id `id` it
    /// has in the blocks; returns its slot. A key is looked up on disk and
    /// added this way before its first put, so that it keeps its id.
    pub fn add_key(&mut self, key: &str, id: usize) -> usize {
        let hash = self.index.hash(key);
        debug_assert!(self.find(hash, key).is_none());
        let slot = self.push_key(hash, key, id, Points::empty(), 0);
        self.last = Some(slot); // its put comes next
        slot
    }

    /// The slot of `key`, which is added with no points and the next id
    /// when not held. `put` is this and `put_at`; a journaled put calls
    /// them apart, to journal the key's id before it stores the point.
    pub fn slot_for(&mut self, key: &str) -> usize {
        let last = self.last.filter(|&slot| {
            self.series
                .get(slot)
                .is_some_and(|series| self.keys.get(series.key) == key)
        });
        if let Some(slot) = last {
            return slot;
        }
        let hash = self.index.hash(key);
        let slot = match self.find(hash, key) {
            Some(slot) => slot,
            None => self.push_key(hash, key, self.next_id, Points::empty(), 0),
        };
        self.last = Some(slot);
        slot
    }

    /// `put` into the key at `slot` (from [`Store::slot_for`]).
    pub fn put_at(&mut self, slot: usize, timestamp: i64, value: f64) -> bool {
        self.low = Some(self.low.map_or(timestamp, |low| low.min(timestamp)));
        self.insert_at(slot, timestamp, value)
    }

    /// The series id of the key in `slot`.
    pub fn id(&self, slot: usize) -> Option<usize> {
        self.series.get(slot).map(|series| series.id as usize)
    }

    /// The slot of the key with series id `id`, if held.
    pub fn slot_of(&self, id: usize) -> Option<usize> {
        if !self.sparse {
            return (id < self.series.len()).then_some(id);
        }
        self.ids.find(self.ids.hash_id(id), |slot| {
            self.series.get(slot).is_some_and(|s| s.id as usize == id)
        })
    }

    /// No point held is older than this; `None` when nothing was stored
    /// since [`Store::reset_low`].
    pub fn low(&self) -> Option<i64> {
        self.low
    }

    /// Sets the lower bound after a seal: `low` is what the seal kept
    /// (puts made meanwhile have lowered the bound already, so the new
    /// bound is the lower of the two).
    pub fn reset_low(&mut self, kept: Option<i64>, since: Option<i64>) {
        self.low = match (kept, since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Removes the points of `slot` older than `before` that hold exactly
    /// what `sealed` holds at their timestamp: once a block has them, the
    /// head need not. A point replaced since (a put while sealing) stays,
    /// since it is newer than the block. Returns how many were removed.
    pub fn remove_sealed(&mut self, slot: usize, before: i64, sealed: &[Point]) -> u64 {
        let Some(series) = self.series.get_mut(slot) else {
            return 0;
        };
        let points = &series.points;
        let mut kept: Vec<Point> = Vec::new();
        let mut removed = 0u64;
        let mut s = 0;
        for c in 0..points.chunk_count() {
            for &(ts, value) in points.chunk(c) {
                if ts < before {
                    while s < sealed.len() && sealed[s].0 < ts {
                        s += 1;
                    }
                    let same = sealed
                        .get(s)
                        .is_some_and(|&(t, v)| t == ts && v.to_bits() == value.to_bits());
                    if same {
                        removed += 1;
                        continue;
                    }
                }
                kept.push((ts, value));
            }
        }
        if removed == 0 {
            return 0;
        }
        let before_bytes = points.heap_bytes();
        let (fresh, fresh_bytes) = Points::from_sorted(&kept);
        series.points = fresh;
        self.bytes = self.bytes - before_bytes + fresh_bytes;
        self.points -= removed;
        removed
    }

    /// Removes every point of `slot` older than `cutoff` (past the
    /// retention); returns how many.
    pub fn remove_before(&mut self, slot: usize, cutoff: i64) -> u64 {
        let Some(series) = self.series.get_mut(slot) else {
            return 0;
        };
        let points = &series.points;
        if points.chunk(0).first().is_none_or(|&(ts, _)| ts >= cutoff) {
            return 0;
        }
        let mut kept: Vec<Point> = Vec::new();
        for c in 0..points.chunk_count() {
            kept.extend(points.chunk(c).iter().filter(|p| p.0 >= cutoff));
        }
        let total: usize = (0..points.chunk_count())
            .map(|c| points.chunk(c).len())
            .sum();
        let removed = (total - kept.len()) as u64;
        let before_bytes = points.heap_bytes();
        let (fresh, fresh_bytes) = Points::from_sorted(&kept);
        series.points = fresh;
        self.bytes = self.bytes - before_bytes + fresh_bytes;
        self.points -= removed;
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Selector;

    fn all(store: &Store, key: &str) -> Vec<Point> {
        let mut out = Vec::new();
        if let Some(slot) = store.slot(key) {
            store.read_range(slot, i64::MIN, None, usize::MAX, &mut out);
        }
        out
    }

    #[test]
    fn keys_numbered_on_disk_keep_their_id_and_new_keys_follow_them() {
        let mut store = Store::new();
        store.set_first_id(10);
        assert!(store.put("new", 5, 1.0));
        assert_eq!(store.add_key("old", 3), 1);
        assert!(store.put("old", 7, 2.0));
        assert!(store.put("newer", 1, 1.0));
        assert_eq!(store.add_key("older", 0), 3);
        let ids: Vec<_> = (0..store.keys()).map(|s| store.id(s)).collect();
        assert_eq!(ids, [Some(10), Some(3), Some(11), Some(0)]);
        for (slot, id) in ids.iter().enumerate() {
            assert_eq!(store.slot_of(id.unwrap()), Some(slot));
        }
        assert_eq!(store.slot_of(4), None);
        assert_eq!(store.ids(), 12);
        assert_eq!((store.points(), store.keys(), store.low()), (3, 4, Some(1)));
        assert!(all(&store, "older").is_empty());
        store.check();
        let mut cursor = store.cursor(Selector::All);
        let mut seen = Vec::new();
        assert!(store.walk(&mut cursor, |k, t, _| {
            seen.push((k.to_owned(), t));
            true
        }));
        assert_eq!(
            seen,
            [("new".into(), 5), ("old".into(), 7), ("newer".into(), 1)]
        );
    }

    #[test]
    fn alone_a_store_numbers_keys_by_slot_and_turns_sparse_when_told_otherwise() {
        let mut store = Store::new();
        for i in 0..50_000 {
            store.put(&format!("k{i}"), 1, 1.0);
        }
        assert_eq!(
            (store.slot_of(49_999), store.slot_of(50_000)),
            (Some(49_999), None)
        );
        assert_eq!(store.ids(), 50_000);
        assert_eq!(store.add_key("far", 70_000), 50_000);
        for slot in (0..50_000).step_by(997) {
            assert_eq!(store.slot_of(slot), Some(slot));
        }
        assert_eq!(store.slot_of(70_000), Some(50_000));
        assert!(store.put("next", 1, 1.0));
        assert_eq!(store.id(50_001), Some(70_001));
        store.check();
    }

    #[test]
    fn only_points_the_block_holds_as_they_are_are_removed() {
        let mut store = Store::new();
        for ts in 0..300 {
            store.put("k", ts, ts as f64);
        }
        // Sealed: 0..200, but 7 was replaced since and 150 is missing.
        let sealed: Vec<Point> = (0..200)
            .filter(|&t| t != 150)
            .map(|t| (t, t as f64))
            .collect();
        store.put("k", 7, -1.0);
        let removed = store.remove_sealed(0, 200, &sealed);
        assert_eq!(removed, 198);
        store.check();
        let left = all(&store, "k");
        assert_eq!(left.len(), 102);
        assert_eq!(left[0], (7, -1.0));
        assert_eq!(left[1], (150, 150.0));
        assert_eq!(left[2], (200, 200.0));
        assert_eq!(store.points(), 102);
        assert_eq!(store.remove_sealed(0, 200, &sealed), 0);
        // Everything sealed: the key stays, with no points.
        let rest: Vec<Point> = left.clone();
        assert_eq!(store.remove_sealed(0, i64::MAX, &rest), 102);
        store.check();
        assert_eq!((store.points(), store.keys()), (0, 1));
        assert!(store.put("k", 1, 1.0));
        store.check();
    }

    #[test]
    fn points_past_the_retention_are_dropped() {
        let mut store = Store::new();
        for ts in (0..1000).rev() {
            store.put("k", ts, 1.0);
        }
        assert_eq!(store.remove_before(0, 900), 900);
        store.check();
        assert_eq!(all(&store, "k").first(), Some(&(900, 1.0)));
        assert_eq!(store.remove_before(0, 900), 0);
        assert_eq!(store.remove_before(0, i64::MAX), 100);
        assert_eq!(store.points(), 0);
        store.check();
    }
}
