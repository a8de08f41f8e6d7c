//! What a query means, without any I/O: used by the server to answer one
//! and by the client to compute the same answer from a plain `get` when the
//! server lacks the extension, so the two can never differ.
//!
//! - `glob`: Graphite globs over keys, with a literal prefix for indexes;
//! - `rollup`: buckets, the six aggregations, the max-points consolidation;
//! - here: a parsed query ([`crate::protocol::Query`]) compiled into a
//!   [`Plan`], and a series' answer point by point ([`SeriesAnswer`]).
//!
//! A series' answer: its points with `from <= timestamp < until`; with a
//! step or a point limit, rolled up (see `rollup`), the step chosen per
//! series from its first and last point in range when there is a limit. A
//! series without points in range is left out.

mod glob;
mod rollup;

pub use glob::{has_metacharacters, Glob, GlobError, MAX_ALTERNATIVES};
pub use rollup::{bucket_start, consolidated_step, fewest_steps_per_bucket, Agg, Rollup};

use crate::protocol::{Metrics, Point, Query, QueryError};

/// A query ready to run: the keys compiled, every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub glob: Glob,
    pub from: Option<i64>,
    pub until: Option<i64>,
    pub step: Option<i64>,
    pub agg: Agg,
    pub points: Option<u64>,
}

impl Plan {
    pub fn new<T: AsRef<str>>(query: &Query<T>) -> Result<Plan, QueryError> {
        Ok(Plan {
            glob: query.glob()?,
            from: query.from,
            until: query.until,
            step: query.step.filter(|&s| s > 0),
            agg: query.agg.unwrap_or_default(),
            points: query.points.filter(|&p| p > 0),
        })
    }

    /// Whether `timestamp` is in `[from, until)`.
    pub fn in_range(&self, timestamp: i64) -> bool {
        self.from.is_none_or(|from| timestamp >= from)
            && self.until.is_none_or(|until| timestamp < until)
    }

    /// True when nothing can be in range (`until <= from`).
    pub fn is_empty_range(&self) -> bool {
        matches!((self.from, self.until), (Some(f), Some(u)) if u <= f)
    }

    /// Whether answers are rolled up (a step or a point limit).
    pub fn rolls_up(&self) -> bool {
        self.step.is_some() || self.points.is_some()
    }

    /// The answer of one series whose points in range run from `first` to
    /// `last` (timestamps).
    pub fn series(&self, first: i64, last: i64) -> SeriesAnswer {
        let step = match (self.step, self.points) {
            (step, Some(points)) => Some(consolidated_step(step.unwrap_or(1), points, first, last)),
            (step, None) => step,
        };
        SeriesAnswer {
            rollup: step.map(|step| Rollup::new(self.agg, step)),
        }
    }

    /// The query's answer computed from every point of the keys it may
    /// match (a plain `get`'s reply, each series sorted by timestamp): what
    /// a client does when the server lacks the extension.
    pub fn answer(&self, metrics: Metrics) -> Metrics {
        if self.is_empty_range() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (key, points) in metrics {
            if !self.glob.matches(&key) {
                continue;
            }
            let start = self.from.map_or(0, |f| points.partition_point(|p| p.0 < f));
            let end = self
                .until
                .map_or(points.len(), |u| points.partition_point(|p| p.0 < u));
            let in_range = &points[start..end.max(start)];
            let (Some(first), Some(last)) = (in_range.first(), in_range.last()) else {
                continue;
            };
            let mut answer = self.series(first.0, last.0);
            let mut series = Vec::new();
            for &(timestamp, value) in in_range {
                answer.push(timestamp, value, |p| series.push(p));
            }
            answer.finish(|p| series.push(p));
            out.push((key, series));
        }
        out
    }
}

/// One series' answer, fed its points in range in timestamp order.
#[derive(Debug, Clone)]
pub struct SeriesAnswer {
    rollup: Option<Rollup>,
}

impl SeriesAnswer {
    /// Feeds a point; `emit` receives each answer point as it is known.
    #[inline]
    pub fn push(&mut self, timestamp: i64, value: f64, mut emit: impl FnMut(Point)) {
        match &mut self.rollup {
            None => emit((timestamp, value)),
            Some(rollup) => {
                if let Some(point) = rollup.push(timestamp, value) {
                    emit(point);
                }
            }
        }
    }

    /// Ends the series (the last bucket, if rolled up).
    pub fn finish(&mut self, mut emit: impl FnMut(Point)) {
        if let Some(point) = self.rollup.as_mut().and_then(Rollup::finish) {
            emit(point);
        }
    }
}

#[cfg(test)]
mod tests;
