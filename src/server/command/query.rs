//! `get <pattern> <option>=<value> ...`: a query, answered in the shape of
//! a get's reply (or, with `format=columns`, as the columns frame: the same
//! points through the protocol's other writer), streamed in chunks like
//! `get *`: the connection writes
//! each chunk with the lock released before asking for the next, and
//! nothing is copied but the points of one read (at most `READ` of them).
//!
//! The storage is reached through [`Source`], a small read interface that
//! each storage engine implements (the in-memory [`Store`] below). What the
//! answer means is `crate::query`'s, shared with the client's fallback.
//!
//! Like `get *`, a query is not a point-in-time snapshot: points stored
//! between two chunks ahead of where the answer is are seen. (A series'
//! consolidated step is chosen from its points when the series begins.)

use crate::protocol::{
    encode_points_end, encode_points_start, push_series, Point, Query, ReplyFormat,
};
use std::borrow::Cow;

use crate::query::{Glob, Plan, SeriesAnswer};
use crate::server::engine::View;
use crate::server::store::Store;

/// Points read from the source at a time.
const READ: usize = 4096;
/// Keys looked at per call when a pattern has no literal prefix.
const SCAN: usize = 4096;
/// Keys looked at and points read, at most, per chunk: bounds how long
/// the lock is held even when little of what is read is answered.
const WORK: usize = 1 << 16;

/// What a query reads from a storage engine. Keys are named by a number
/// (`usize`) the engine chooses; "key order" is the order of first
/// appearance, which is `get *`'s.
pub(in crate::server) trait Source {
    /// Appends to `out`, in key order, the keys `glob` matches among those
    /// from position `from` on, looking at about `budget` keys at most.
    /// Returns the position to go on from, or `None` once every key has
    /// been looked at. An engine with a sorted index may answer a glob with
    /// a literal prefix (or a literal key) in one call.
    fn keys(&self, glob: &Glob, from: usize, budget: usize, out: &mut Vec<usize>) -> Option<usize>;
    /// The name of key `key`.
    fn key(&self, key: usize) -> Option<Cow<'_, str>>;
    /// The first and last timestamps of `key` with `from <= t < until`.
    fn bounds(&self, key: usize, from: i64, until: Option<i64>) -> Option<(i64, i64)>;
    /// Appends the points of `key` with `from <= t < until` in timestamp
    /// order, at most `limit`; returns how many.
    fn read(
        &self,
        key: usize,
        from: i64,
        until: Option<i64>,
        limit: usize,
        out: &mut Vec<Point>,
    ) -> usize;
}

impl Source for Store {
    fn keys(&self, glob: &Glob, from: usize, budget: usize, out: &mut Vec<usize>) -> Option<usize> {
        if let Some(key) = glob.literal() {
            out.extend(self.slot(key).filter(|&slot| slot >= from));
            return None;
        }
        let prefix = glob.literal_prefix();
        if !prefix.is_empty() {
            let start = out.len();
            self.keys_with_prefix(prefix, |slot, key| {
                if slot >= from && glob.matches(key) {
                    out.push(slot);
                }
                true
            });
            out[start..].sort_unstable();
            return None;
        }
        let end = from.saturating_add(budget.max(1)).min(self.keys());
        out.extend((from..end).filter(|&slot| self.key(slot).is_some_and(|k| glob.matches(k))));
        (end < self.keys()).then_some(end)
    }

    fn key(&self, key: usize) -> Option<Cow<'_, str>> {
        Store::key(self, key).map(Cow::Borrowed)
    }

    fn bounds(&self, key: usize, from: i64, until: Option<i64>) -> Option<(i64, i64)> {
        Store::bounds(self, key, from, until)
    }

    fn read(
        &self,
        key: usize,
        from: i64,
        until: Option<i64>,
        limit: usize,
        out: &mut Vec<Point>,
    ) -> usize {
        self.read_range(key, from, until, limit, out)
    }
}

/// The whole data: keys are series ids (those the blocks number, then the
/// head's new ones), points the head's over the blocks'.
impl Source for View<'_> {
    fn keys(&self, glob: &Glob, from: usize, budget: usize, out: &mut Vec<usize>) -> Option<usize> {
        let numbered = self.sealed.map_or(0, |s| s.numbered());
        if numbered == 0 {
            // Nothing numbered: ids are the store's slots.
            return Source::keys(self.head, glob, from, budget, out);
        }
        if let Some(key) = glob.literal() {
            out.extend(self.id(key).filter(|&id| id >= from));
            return None;
        }
        let prefix = glob.literal_prefix();
        if !prefix.is_empty() {
            let start = out.len();
            self.keys_with_prefix(prefix, |id, key| {
                if id >= from && glob.matches(key) {
                    out.push(id);
                }
            });
            out[start..].sort_unstable();
            return None;
        }
        let end = from.saturating_add(budget.max(1)).min(self.ids());
        self.each_key(from, end, |id, key| {
            if glob.matches(key) {
                out.push(id);
            }
        });
        (end < self.ids()).then_some(end)
    }

    fn key(&self, key: usize) -> Option<Cow<'_, str>> {
        View::key(self, key)
    }

    fn bounds(&self, key: usize, from: i64, until: Option<i64>) -> Option<(i64, i64)> {
        View::bounds(self, key, from, until)
    }

    fn read(
        &self,
        key: usize,
        from: i64,
        until: Option<i64>,
        limit: usize,
        out: &mut Vec<Point>,
    ) -> usize {
        self.read_some(key, from, until, limit, out)
    }
}

/// Where a streamed answer stands between chunks.
#[derive(Debug)]
pub(in crate::server) struct Cursor {
    plan: Plan,
    /// Matched keys not answered yet (`keys[next..]`).
    keys: Vec<usize>,
    next: usize,
    /// Where the search for more matching keys goes on, if it does.
    scan: Option<usize>,
    series: Option<Series>,
    points: Vec<Point>,
    /// The answer points of one read, written together.
    answered: Vec<Point>,
    format: ReplyFormat,
}

#[derive(Debug)]
struct Series {
    key: usize,
    /// The next timestamp to read from.
    from: i64,
    answer: SeriesAnswer,
}

/// Starts the reply to `query` in `out`, filling it until it holds `chunk`
/// bytes. Returns the cursor to go on from when the reply is not complete
/// (continue with [`fill`], then [`finish`]). A query that is not valid
/// (only possible for one not checked by the parser) is answered with the
/// error reply.
pub(in crate::server) fn start(
    source: &impl Source,
    query: &Query<&str>,
    out: &mut Vec<u8>,
    chunk: usize,
) -> Option<Cursor> {
    let plan = match Plan::new(query) {
        Ok(plan) => plan,
        Err(error) => {
            crate::protocol::encode_error(out, &format!("bad query: {error}"));
            return None;
        }
    };
    let scan = (!plan.is_empty_range()).then_some(0);
    let mut cursor = Cursor {
        plan,
        keys: Vec::new(),
        next: 0,
        scan,
        series: None,
        points: Vec::new(),
        answered: Vec::new(),
        format: query.format.unwrap_or_default(),
    };
    encode_points_start(out, cursor.format);
    if fill(source, &mut cursor, out, chunk) {
        finish(&cursor, out);
        None
    } else {
        Some(cursor)
    }
}

/// Encodes answer points from `cursor` until `out` holds `chunk` bytes (or
/// a bounded amount of work is done); true when the answer is over.
pub(in crate::server) fn fill(
    source: &impl Source,
    cursor: &mut Cursor,
    out: &mut Vec<u8>,
    chunk: usize,
) -> bool {
    let mut work = 0;
    while out.len() < chunk && work < WORK {
        let Some(series) = &mut cursor.series else {
            if cursor.next == cursor.keys.len() {
                let Some(from) = cursor.scan else {
                    return true;
                };
                cursor.keys.clear();
                cursor.next = 0;
                cursor.scan = source.keys(&cursor.plan.glob, from, SCAN, &mut cursor.keys);
                work += SCAN.min(cursor.keys.len().max(1));
                continue;
            }
            let key = cursor.keys[cursor.next];
            cursor.next += 1;
            let from = cursor.plan.from.unwrap_or(i64::MIN);
            if let Some((first, last)) = source.bounds(key, from, cursor.plan.until) {
                cursor.series = Some(Series {
                    key,
                    from: first,
                    answer: cursor.plan.series(first, last),
                });
            }
            work += 1;
            continue;
        };
        let Some(name) = source.key(series.key) else {
            cursor.series = None;
            continue;
        };
        cursor.points.clear();
        let read = source.read(
            series.key,
            series.from,
            cursor.plan.until,
            READ,
            &mut cursor.points,
        );
        work += read.max(1);
        let answered = &mut cursor.answered;
        answered.clear();
        for &(timestamp, value) in &cursor.points {
            series
                .answer
                .push(timestamp, value, |point| answered.push(point));
        }
        let next = cursor.points.last().and_then(|p| p.0.checked_add(1));
        match next {
            Some(from) if read == READ => series.from = from,
            _ => {
                series.answer.finish(|point| answered.push(point));
                cursor.series = None;
            }
        }
        push_series(out, cursor.format, &name, answered);
    }
    false
}

/// Ends a reply whose answer is over.
pub(in crate::server) fn finish(cursor: &Cursor, out: &mut Vec<u8>) {
    encode_points_end(out, cursor.format);
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
