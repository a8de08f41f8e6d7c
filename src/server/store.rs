//! The in-memory time series: for each key, its points ordered by timestamp,
//! one value per timestamp (a later put replaces the value).
//!
//! Keys are kept in order of first appearance and never removed, so a key's
//! slot number is stable. That lets a reader walk the data in bounded chunks
//! with a [`Cursor`] and release the lock between chunks: a `get *` of any
//! size is streamed without copying the data and without stalling writers.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use crate::protocol::Selector;

#[derive(Debug, Default)]
pub struct Store {
    index: HashMap<Box<str>, usize>,
    series: Vec<Series>,
    points: u64,
}

#[derive(Debug)]
struct Series {
    key: Box<str>,
    points: BTreeMap<i64, f64>,
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

    /// Stores `value` at `timestamp`; returns whether the point is new
    /// (false when it replaced an earlier value).
    pub fn put(&mut self, key: &str, timestamp: i64, value: f64) -> bool {
        let slot = match self.index.get(key) {
            Some(&slot) => slot,
            None => {
                let slot = self.series.len();
                self.series.push(Series {
                    key: key.into(),
                    points: BTreeMap::new(),
                });
                self.index.insert(key.into(), slot);
                slot
            }
        };
        let new = self.series[slot].points.insert(timestamp, value).is_none();
        self.points += u64::from(new);
        new
    }

    /// Number of stored points (distinct key and timestamp pairs).
    pub fn points(&self) -> u64 {
        self.points
    }

    /// Number of distinct keys.
    pub fn keys(&self) -> usize {
        self.series.len()
    }

    /// A cursor at the start of what `selector` asks for.
    pub fn cursor(&self, selector: Selector<'_>) -> Cursor {
        match selector {
            Selector::All => Cursor::all(),
            Selector::Key(key) => Cursor {
                slot: self.index.get(key).copied(),
                single: true,
                after: None,
            },
        }
    }

    /// Calls `visit(key, timestamp, value)` for points from `cursor` on until
    /// `visit` returns false (after that point) or the walk ends, advancing
    /// the cursor. Returns true when the walk is over.
    pub fn walk(&self, cursor: &mut Cursor, mut visit: impl FnMut(&str, i64, f64) -> bool) -> bool {
        while let Some(slot) = cursor.slot {
            let Some(series) = self.series.get(slot) else {
                cursor.slot = None;
                break;
            };
            let lower = match cursor.after {
                Some(ts) => Bound::Excluded(ts),
                None => Bound::Unbounded,
            };
            for (&ts, &value) in series.points.range((lower, Bound::Unbounded)) {
                cursor.after = Some(ts);
                if !visit(&series.key, ts, value) {
                    return false;
                }
            }
            cursor.after = None;
            cursor.slot = if cursor.single { None } else { Some(slot + 1) };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(store: &Store, mut cursor: Cursor, chunk: usize) -> Vec<(String, i64, f64)> {
        let mut out = Vec::new();
        loop {
            let mut n = 0;
            let done = store.walk(&mut cursor, |k, t, v| {
                out.push((k.to_owned(), t, v));
                n += 1;
                n < chunk
            });
            if done {
                assert!(cursor.is_done());
                return out;
            }
        }
    }

    #[test]
    fn points_are_ordered_and_overwritten() {
        let mut store = Store::new();
        assert!(store.put("test_key", 1503319740, 12.0));
        assert!(store.put("test_key", 1503319739, 13.0));
        assert!(store.put("other", 5, 1.0));
        assert!(!store.put("test_key", 1503319740, 14.0));
        assert_eq!((store.points(), store.keys()), (3, 2));
        let key = store.cursor(Selector::Key("test_key"));
        assert_eq!(
            collect(&store, key, usize::MAX),
            vec![
                ("test_key".into(), 1503319739, 13.0),
                ("test_key".into(), 1503319740, 14.0)
            ]
        );
        let all = store.cursor(Selector::All);
        assert_eq!(collect(&store, all, usize::MAX).len(), 3);
        let missing = store.cursor(Selector::Key("missing"));
        assert!(missing.is_done());
        assert_eq!(collect(&store, missing, 1), vec![]);
    }

    #[test]
    fn chunked_walks_see_every_point_once() {
        let mut store = Store::new();
        for k in 0..7 {
            for t in (0..13).rev() {
                store.put(&format!("k{k}"), t * 3 - 10, (k * 100 + t) as f64);
            }
        }
        let whole = collect(&store, Cursor::all(), usize::MAX);
        assert_eq!(whole.len(), 7 * 13);
        for chunk in 1..20 {
            assert_eq!(collect(&store, Cursor::all(), chunk), whole);
        }
    }

    #[test]
    fn writes_between_chunks_ahead_of_the_cursor_are_seen() {
        let mut store = Store::new();
        store.put("a", 1, 1.0);
        store.put("a", 3, 3.0);
        let mut cursor = Cursor::all();
        let mut seen = Vec::new();
        assert!(!store.walk(&mut cursor, |k, t, _| {
            seen.push((k.to_owned(), t));
            false
        }));
        store.put("a", 0, 0.0); // behind the cursor: not seen
        store.put("a", 2, 2.0); // ahead: seen
        store.put("b", 9, 9.0); // a new key: seen
        assert!(store.walk(&mut cursor, |k, t, _| {
            seen.push((k.to_owned(), t));
            true
        }));
        let want: Vec<(String, i64)> = [("a", 1), ("a", 2), ("a", 3), ("b", 9)]
            .iter()
            .map(|&(k, t)| (k.to_owned(), t))
            .collect();
        assert_eq!(seen, want);
    }
}
