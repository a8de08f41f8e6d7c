//! What the storage engine needs of the store when it serves as the head
//! (the recent points, in memory): keys known from sealed blocks but with
//! no point in memory, a lower bound on the timestamps held (the cue that
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
    /// Adds `keys` with no points, in slots following the store's last.
    /// Keys of sealed blocks are added in their slot order before the
    /// journal is replayed, so a key keeps its slot (its series number in
    /// the blocks) across restarts. The index is sized once for all of them
    /// (a million keys load at start without a rehash). Stops at the first
    /// key the store holds already and returns its position in `keys`.
    pub fn add_keys<K: AsRef<str>>(&mut self, keys: &[K]) -> Result<(), usize> {
        let hashes: Vec<u64> = keys.iter().map(|k| self.index.hash(k.as_ref())).collect();
        let Store {
            keys: arena,
            index,
            series,
            ..
        } = self;
        self.bytes += index.reserve(&hashes, |slot| {
            series.get(slot).map_or("", |s| arena.get(s.key))
        });
        for (i, (key, &hash)) in keys.iter().zip(&hashes).enumerate() {
            let key = key.as_ref();
            if self.find(hash, key).is_some() {
                return Err(i);
            }
            self.push_key(hash, key, Points::empty(), 0);
        }
        Ok(())
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
    fn keys_without_points_keep_their_slot_and_answer_nothing() {
        let mut store = Store::new();
        assert_eq!(store.add_keys(&["a", "b"]), Ok(()));
        assert_eq!(store.add_keys(&["a"]), Err(0));
        assert_eq!(store.add_keys(&["x", "y", "b", "z"]), Err(2));
        assert_eq!(
            (store.slot("a"), store.slot("b"), store.slot("y")),
            (Some(0), Some(1), Some(3))
        );
        assert_eq!(store.low(), None);
        assert!(all(&store, "a").is_empty());
        assert!(store.put("b", 5, 1.0));
        assert!(store.put("c", 3, 1.0));
        assert_eq!(store.slot("c"), Some(4));
        assert_eq!((store.points(), store.keys(), store.low()), (2, 5, Some(3)));
        store.check();
        let mut cursor = store.cursor(Selector::All);
        let mut seen = Vec::new();
        assert!(store.walk(&mut cursor, |k, t, _| {
            seen.push((k.to_owned(), t));
            true
        }));
        assert_eq!(seen, vec![("b".to_owned(), 5), ("c".to_owned(), 3)]);
    }

    #[test]
    fn many_keys_added_at_once_are_found_and_keep_their_order() {
        let keys: Vec<String> = (0..50_000).map(|i| format!("k{i}")).collect();
        let mut store = Store::new();
        store.add_keys(&keys[..10]).unwrap();
        store.add_keys(&keys[10..]).unwrap();
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(store.slot(key), Some(slot));
        }
        assert_eq!(store.add_keys(&["new", "k49999"]), Err(1));
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
