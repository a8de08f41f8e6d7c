//! Reads over the whole data: the head (the store, newest) over the sealed
//! blocks, past the retention cut. Every command reads through a `View`,
//! so `get`, queries and the Graphite API answer the same points.
//!
//! Keys are named by their series ids: the blocks' numbers, which the
//! head's keys carry too. A key numbered on disk with no point in the head
//! is not in memory; its name is read from the keys file when a walk
//! reaches it, and its id looked up through the keys index when asked for
//! by name. Without blocks a view reads the store directly, as before the
//! engine existed (ids are then the store's slots). With blocks, a walk reads each key's points once, when it
//! reaches the key (sealed and head merged, the head's value winning), and
//! reads them again if the set of blocks changes under it (a seal that
//! moved points from the head into a block); so a `get *` of any size
//! sees every point once, in key then timestamp order.

use super::sealed::{KeyCursor, Reading, Sealed};
use crate::protocol::{DecimalText, Point, Selector};
use crate::server::log::{Level, LogSink};
use crate::server::store::{Cursor, Store};

/// The data as the commands read it, under the store's lock.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub head: &'a Store,
    pub sealed: Option<&'a Sealed>,
    /// Points older than this are past the retention: never answered.
    pub cutoff: Option<i64>,
    /// Where a damaged chunk met while reading is reported.
    pub log: Option<&'a LogSink>,
}

/// Where a walk over a view stands between chunks: one position, whether
/// the walk reads the store alone (nothing sealed) or head and blocks, so
/// a walk that the first seal overtakes goes on from where it was.
mod keys;

#[derive(Debug)]
pub struct Walk {
    /// The series id being walked; `None` once the walk is over.
    id: Option<usize>,
    /// Only the one key at `id` (a `get key`), or every key from it on.
    single: bool,
    /// The last timestamp visited in `id`.
    after: Option<i64>,
    /// The key of `id`, once read (`named`).
    name: String,
    named: Option<usize>,
    /// Where the walk reads numbered keys from the keys file.
    keys: KeyCursor,
    /// The points of `id` read but not visited yet, merged
    /// (`points[next..]`); read with blocks only.
    points: Vec<Point>,
    /// The values' decimal texts, when there is one per point of
    /// `points` (see [`Reading`]); otherwise not used.
    texts: Vec<Option<DecimalText>>,
    next: usize,
    /// The blocks' generation `points` were read at.
    generation: Option<u64>,
}

impl Walk {
    pub fn is_done(&self) -> bool {
        self.id.is_none()
    }
}

impl<'a> View<'a> {
    /// A view of the store alone (no blocks, no retention).
    pub fn of(head: &'a Store) -> View<'a> {
        View {
            head,
            sealed: None,
            cutoff: None,
            log: None,
        }
    }

    fn has_blocks(&self) -> bool {
        self.sealed.is_some_and(|s| s.numbered() > 0) || self.cutoff.is_some()
    }

    /// Reports a problem met while reading (the read goes on without it).
    fn warn(&self, what: &str) {
        if let Some(log) = self.log {
            log(Level::Warning, what);
        }
    }

    /// A walk at the start of what `selector` asks for.
    pub fn walk_start(&self, selector: Selector<&str>) -> Walk {
        let (id, single) = match selector {
            Selector::All => (Some(0), false),
            Selector::Key(key) => (self.id(key), true),
        };
        Walk {
            id: id.filter(|&id| id < self.ids()),
            single,
            after: None,
            name: String::new(),
            named: None,
            keys: KeyCursor::default(),
            points: Vec::new(),
            texts: Vec::new(),
            next: 0,
            generation: None,
        }
    }

    /// Calls `visit(key, timestamp, value)` for points from `walk` on until
    /// `visit` returns false (after that point) or the walk ends. Returns
    /// true when the walk is over.
    pub fn walk(&self, walk: &mut Walk, mut visit: impl FnMut(&str, i64, f64) -> bool) -> bool {
        self.walk_texts(walk, |key, ts, value, _| visit(key, ts, value))
    }

    /// [`View::walk`], handing `visit` the value's decimal text too when
    /// the value was decoded from one (see [`Reading`]).
    pub fn walk_texts(
        &self,
        walk: &mut Walk,
        mut visit: impl FnMut(&str, i64, f64, Option<DecimalText>) -> bool,
    ) -> bool {
        if !self.has_blocks() && walk.next == walk.points.len() {
            // Nothing sealed: the store's own walk, from the same position
            // (ids are slots).
            let mut cursor = Cursor::at(walk.id, walk.single, walk.after);
            let done = self
                .head
                .walk(&mut cursor, |key, ts, value| visit(key, ts, value, None));
            (walk.id, walk.after) = cursor.position();
            return done;
        }
        let generation = self.sealed.map_or(0, Sealed::generation);
        while let Some(id) = walk.id {
            if id >= self.ids() {
                walk.id = None;
                break;
            }
            let named = self.name(walk, id);
            if named && (walk.generation != Some(generation) || walk.next == walk.points.len()) {
                // (Re)read what is left of this key: after a change of
                // blocks, or to see puts ahead of the walk.
                walk.points.clear();
                walk.texts.clear();
                walk.next = 0;
                let from = walk.after.map_or(i64::MIN, |t| t.saturating_add(1));
                if walk.after != Some(i64::MAX) {
                    let into = Reading {
                        points: &mut walk.points,
                        texts: Some(&mut walk.texts),
                    };
                    self.read_into(id, from, None, into);
                }
                walk.generation = Some(generation);
            }
            let texts = (walk.texts.len() == walk.points.len()).then_some(&walk.texts);
            while walk.next < walk.points.len() {
                let (ts, value) = walk.points[walk.next];
                let text = texts.and_then(|texts| texts[walk.next]);
                walk.next += 1;
                walk.after = Some(ts);
                if !visit(&walk.name, ts, value, text) {
                    return false;
                }
            }
            walk.points.clear();
            walk.texts.clear();
            walk.next = 0;
            walk.after = None;
            walk.generation = None;
            walk.id = if walk.single || id + 1 >= self.ids() {
                None
            } else {
                Some(id + 1)
            };
        }
        true
    }

    /// The head's slot of series `id`, or one past every slot when the head
    /// does not hold it (the store's reads then find nothing).
    fn head_slot(&self, id: usize) -> usize {
        self.head.slot_of(id).unwrap_or(usize::MAX)
    }

    /// Appends the points of `id` with `from <= t < until`, by timestamp.
    pub fn read(&self, id: usize, from: i64, until: Option<i64>, out: &mut Vec<Point>) {
        self.read_into(id, from, until, Reading::points(out));
    }

    /// [`View::read`], with texts (see [`Reading`]) only when every point
    /// is sealed: the head's values have none.
    fn read_into(&self, id: usize, from: i64, until: Option<i64>, into: Reading<'_>) {
        let Reading {
            points: out,
            mut texts,
        } = into;
        let from = self.cutoff.map_or(from, |c| from.max(c));
        if until.is_some_and(|u| u <= from) {
            return;
        }
        let start = out.len();
        if let Some(sealed) = self.sealed {
            let into = Reading {
                points: out,
                texts: texts.as_deref_mut(),
            };
            sealed.points(id, from, until, into, &mut |w| self.warn(&w));
        }
        if out.len() == start {
            self.head
                .each_in_range(self.head_slot(id), from, until, |ts, value| {
                    out.push((ts, value));
                    true
                });
            return;
        }
        if self.head.bounds(self.head_slot(id), from, until).is_none() {
            return; // nothing newer to merge: the common case once sealed
        }
        if let Some(texts) = texts {
            texts.clear(); // the head's points have none
        }
        let sealed: Vec<Point> = out.drain(start..).collect();
        let mut s = 0;
        self.head
            .each_in_range(self.head_slot(id), from, until, |ts, value| {
                while s < sealed.len() && sealed[s].0 < ts {
                    out.push(sealed[s]);
                    s += 1;
                }
                if s < sealed.len() && sealed[s].0 == ts {
                    s += 1; // the head's value is newer
                }
                out.push((ts, value));
                true
            });
        out.extend_from_slice(&sealed[s..]);
    }

    /// Calls `visit(timestamp, value)` for the points of `id` with `from
    /// <= t < until`, by timestamp, until it returns false.
    pub fn each_in_range(
        &self,
        id: usize,
        from: i64,
        until: Option<i64>,
        mut visit: impl FnMut(i64, f64) -> bool,
    ) {
        if !self.has_blocks() {
            return self
                .head
                .each_in_range(self.head_slot(id), from, until, visit);
        }
        let mut points = Vec::new();
        self.read(id, from, until, &mut points);
        for (ts, value) in points {
            if !visit(ts, value) {
                return;
            }
        }
    }

    /// Appends at most `limit` points of `id` with `from <= t < until`,
    /// by timestamp; returns how many. Only the sealed days needed to find
    /// `limit` points are decoded, so reading a long series `limit` points
    /// at a time costs about its points once, not once per piece.
    pub fn read_some(
        &self,
        id: usize,
        from: i64,
        until: Option<i64>,
        limit: usize,
        out: &mut Vec<Point>,
    ) -> usize {
        let start = out.len();
        let mut from = from;
        loop {
            let want = limit - (out.len() - start);
            let days = self
                .sealed
                .map_or_else(Vec::new, |sealed| sealed.partitions(id, from, until));
            if days.is_empty() {
                // Only the head holds points there: its own bounded read.
                let from = self.cutoff.map_or(from, |c| from.max(c));
                self.head
                    .read_range(self.head_slot(id), from, until, want, out);
                break;
            }
            // The end of the sealed day by which `want` points are covered,
            // if the blocks hold that many before `until`.
            let mut covered = 0u64;
            let cap = days
                .into_iter()
                .find(|&(_, _, count)| {
                    covered += count;
                    covered >= want as u64
                })
                .map(|(_, end, _)| end)
                .filter(|&end| until.is_none_or(|u| end < u));
            self.read(id, from, cap.or(until), out);
            if out.len() - start >= limit {
                out.truncate(start + limit);
                break;
            }
            // Fewer than counted (some points of those days lie before
            // `from`, or were replaced in the head): on from that day's end.
            match cap {
                Some(end) => from = end,
                None => break,
            }
        }
        out.len() - start
    }

    /// The first and last timestamps of `id` within `from <= t < until`:
    /// the head's bounds and those of the first and last sealed days that
    /// hold points there (only those days are decoded).
    pub fn bounds(&self, id: usize, from: i64, until: Option<i64>) -> Option<(i64, i64)> {
        let from = self.cutoff.map_or(from, |c| from.max(c));
        let head = self.head.bounds(self.head_slot(id), from, until);
        if !self.has_blocks() {
            return head;
        }
        let mut first = head.map(|b| b.0);
        let mut last = head.map(|b| b.1);
        if let Some(sealed) = self.sealed {
            let days = sealed.partitions(id, from, until);
            let mut points = Vec::new();
            let within = |(start, end, _): (i64, i64, u64)| {
                (from.max(start), Some(until.map_or(end, |u| u.min(end))))
            };
            for &day in &days {
                let (lo, hi) = within(day);
                points.clear();
                sealed.points(id, lo, hi, Reading::points(&mut points), &mut |_| {});
                if let Some(p) = points.first() {
                    first = Some(first.map_or(p.0, |f| f.min(p.0)));
                    break;
                }
            }
            for &day in days.iter().rev() {
                let (lo, hi) = within(day);
                points.clear();
                sealed.points(id, lo, hi, Reading::points(&mut points), &mut |_| {});
                if let Some(p) = points.last() {
                    last = Some(last.map_or(p.0, |l| l.max(p.0)));
                    break;
                }
            }
        }
        Some((first?, last?))
    }
}
