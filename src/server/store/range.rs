//! Read-only access for queries: a key's slot and name, a series' points in
//! a time range found by binary search over its chunks (the cost grows
//! with the points read, not the points stored), and the first and last
//! timestamps in a range.

use super::series::Points;
use super::Store;
use crate::protocol::Point;

impl Store {
    /// The slot of `key`, if stored.
    pub fn slot(&self, key: &str) -> Option<usize> {
        self.find(self.index.hash(key), key)
    }

    /// Whether `key` is held. The last put's key is tried first, as a put
    /// tries it, and a key found through the index becomes the last: the
    /// put that follows then finds it without a second probe.
    pub fn holds(&mut self, key: &str) -> bool {
        let last = self.last.and_then(|slot| self.series.get(slot));
        if last.is_some_and(|series| self.keys.get(series.key) == key) {
            return true;
        }
        let found = self.slot(key);
        if found.is_some() {
            self.last = found;
        }
        found.is_some()
    }

    /// The key in `slot`.
    pub fn key(&self, slot: usize) -> Option<&str> {
        self.series
            .get(slot)
            .map(|series| self.keys.get(series.key))
    }

    /// Calls `visit(timestamp, value)` for the points of the key in `slot`
    /// with `from <= timestamp < until` (`None`: no upper bound), in
    /// timestamp order, until `visit` returns false.
    pub fn each_in_range(
        &self,
        slot: usize,
        from: i64,
        until: Option<i64>,
        mut visit: impl FnMut(i64, f64) -> bool,
    ) {
        let Some(series) = self.series.get(slot) else {
            return;
        };
        let points = &series.points;
        let (first_chunk, mut at) = points.first_at(from);
        for c in first_chunk..points.chunk_count() {
            for &(ts, value) in &points.chunk(c)[at..] {
                if until.is_some_and(|u| ts >= u) || !visit(ts, value) {
                    return;
                }
            }
            at = 0;
        }
    }

    /// Appends to `out` the points of the key in `slot` with `from <=
    /// timestamp < until` (`None`: no upper bound), in timestamp order, at
    /// most `limit` of them; returns how many.
    pub fn read_range(
        &self,
        slot: usize,
        from: i64,
        until: Option<i64>,
        limit: usize,
        out: &mut Vec<Point>,
    ) -> usize {
        let mut read = 0;
        if limit == 0 {
            return 0;
        }
        self.each_in_range(slot, from, until, |ts, value| {
            out.push((ts, value));
            read += 1;
            read < limit
        });
        read
    }

    /// The first and last timestamps of the key in `slot` within `from <=
    /// timestamp < until`, if it has any there.
    pub fn bounds(&self, slot: usize, from: i64, until: Option<i64>) -> Option<(i64, i64)> {
        let points = &self.series.get(slot)?.points;
        let first = point_at(points, points.first_at(from))?.0;
        let last = match until {
            None => last_point(points)?.0,
            Some(until) => before(points, points.first_at(until))?.0,
        };
        (until.is_none_or(|u| first < u) && last >= first).then_some((first, last))
    }
}

fn point_at(points: &Points, (c, at): (usize, usize)) -> Option<Point> {
    (c < points.chunk_count())
        .then(|| points.chunk(c).get(at).copied())
        .flatten()
}

fn last_point(points: &Points) -> Option<Point> {
    points.chunk(points.chunk_count() - 1).last().copied()
}

/// The point just before position `(c, at)`.
fn before(points: &Points, (c, at): (usize, usize)) -> Option<Point> {
    if at > 0 {
        return points.chunk(c).get(at - 1).copied();
    }
    if c == 0 {
        return None;
    }
    points.chunk(c - 1).last().copied()
}
