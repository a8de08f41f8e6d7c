//! Points whose records wait in the journal's buffer under `fsync=always`:
//! they reach the store only once the file holds them durably, so no reader
//! ever sees a point that a crash or a failed write could still take back.
//! They are applied in the order they were journaled, so the store's
//! order stays the journal's order.

use crate::server::command::put::store_point;
use crate::server::store::Store;

/// Points in journal order; keys share one string so a put costs no allocation.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    keys: String,
    /// Where each point's key ends in `keys`, its timestamp and value.
    points: Vec<(usize, i64, f64)>,
}

impl Deferred {
    pub(crate) fn push(&mut self, key: &str, timestamp: i64, value: f64) {
        self.keys.push_str(key);
        self.points.push((self.keys.len(), timestamp, value));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Puts every point into `store` in journal order and empties the list.
    pub(crate) fn apply(&mut self, store: &mut Store) {
        let mut start = 0;
        for &(end, timestamp, value) in &self.points {
            store_point(store, &self.keys[start..end], timestamp, value);
            start = end;
        }
        self.clear();
    }

    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.points.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Selector;

    #[test]
    fn points_are_applied_in_journal_order() {
        let mut deferred = Deferred::default();
        deferred.push("k", 1, 1.0);
        deferred.push("ключ", 2, 2.0);
        deferred.push("k", 1, 3.0); // a later put for the same second wins
        assert_eq!(deferred.points.len(), 3);
        let mut store = Store::new();
        deferred.apply(&mut store);
        assert!(deferred.is_empty());
        assert_eq!((store.points(), store.keys()), (2, 2));
        let mut seen = Vec::new();
        let mut cursor = store.cursor(Selector::All);
        store.walk(&mut cursor, |key, ts, value| {
            seen.push((key.to_string(), ts, value));
            true
        });
        assert_eq!(
            seen,
            [("k".to_string(), 1, 3.0), ("ключ".to_string(), 2, 2.0)]
        );
    }
}
