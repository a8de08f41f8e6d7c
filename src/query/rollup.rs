//! Rollups: a series' points in buckets `[k*step, (k+1)*step)` aligned to
//! multiples of the step (`k` by floor division, so negative timestamps
//! bucket the same way), each bucket reported at its start `k*step` with
//! one of six aggregations; empty buckets are not reported. And the
//! consolidation to at most N points per series (Graphite's
//! `maxDataPoints`), which picks the step.
//!
//! Exact rules, which the client's fallback and the tests' reference in
//! Python follow too:
//! - points arrive in timestamp order (equal timestamps in the order given);
//! - `sum` adds left to right in that order in IEEE doubles, `avg` is that
//!   sum divided by the count, so sums past ±1.8e308 are ±inf (as Python's
//!   `sum`, which Graphite uses); `count` is the number of points (a float);
//!   `min`/`max` the smallest/largest value; `last` the value with the
//!   greatest timestamp (of equal ones, the last given);
//! - values are never NaN (every server refuses NaN and infinite puts), so
//!   no aggregation has to choose how to treat one;
//! - a bucket start below `i64::MIN` (only for timestamps within one step
//!   of it) is reported at `i64::MIN`.

use crate::protocol::Point;

/// How the points of one bucket become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Agg {
    #[default]
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Last,
}

impl Agg {
    pub const ALL: [Agg; 6] = [
        Agg::Avg,
        Agg::Min,
        Agg::Max,
        Agg::Sum,
        Agg::Count,
        Agg::Last,
    ];

    /// The name on the wire and in Python.
    pub fn name(self) -> &'static str {
        match self {
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Sum => "sum",
            Agg::Count => "count",
            Agg::Last => "last",
        }
    }

    pub fn from_name(name: &str) -> Option<Agg> {
        Agg::ALL.into_iter().find(|agg| agg.name() == name)
    }

    /// The aggregate of `values` in the order given, as one bucket's
    /// (`None` when there are none): the one implementation of the six,
    /// which Graphite's render functions use too. Their values can be NaN
    /// (computed, not stored); `min`/`max` then compare as Python's `min`
    /// and `max` do (a NaN first stays, a NaN later is passed over), which
    /// is what graphite-web does with them.
    pub fn over(self, values: impl IntoIterator<Item = f64>) -> Option<f64> {
        let mut values = values.into_iter();
        let mut bucket = Bucket::new(0, values.next()?);
        values.for_each(|value| bucket.add(value));
        Some(bucket.value(self))
    }
}

/// The start of the bucket of width `step` (> 0) holding `timestamp`.
pub fn bucket_start(timestamp: i64, step: i64) -> i64 {
    debug_assert!(step > 0);
    let start = i128::from(timestamp.div_euclid(step)) * i128::from(step);
    i64::try_from(start).unwrap_or(i64::MIN)
}

/// The fewest steps per bucket with which `max_points` buckets of
/// `step * m` seconds can cover `span` seconds: `ceil(span / (max_points *
/// step))`, at least 1. Where buckets are aligned to multiples (here) one
/// more may be needed; Graphite's `maxDataPoints` takes it as its
/// `valuesPerPoint` as it is.
pub fn fewest_steps_per_bucket(span: i128, step: i64, max_points: u64) -> i128 {
    debug_assert!(step > 0 && max_points > 0);
    let per_bucket = i128::from(step.max(1)) * i128::from(max_points.max(1));
    (span + per_bucket - 1).div_euclid(per_bucket).max(1)
}

/// How many buckets of width `step` cover the timestamps `first..=last`.
fn buckets(first: i64, last: i64, step: i128) -> i128 {
    i128::from(last).div_euclid(step) - i128::from(first).div_euclid(step) + 1
}

/// The step of the consolidation to at most `max_points` buckets of a
/// series whose points in range lie in `first..=last`: `step * m`, where
/// `m` is the first of `m0, m0 + 1, ..., m0 + 63` that gives at most
/// `max_points` buckets, with `m0 = ceil((last - first + 1) / (max_points *
/// step))` (any smaller `m` always gives too many). When none does (an
/// awkward alignment, rare), `m` is `ceil((last - first + 1) /
/// ((max_points - 1) * step))`, which always does. For `max_points = 1` that
/// fallback is the smallest `m` whose bucket `[0, m*step)` or `[-m*step, 0)`
/// holds the whole range; a range from below 0 to 0 or above cannot be one
/// bucket and gets two, `[-m*step, 0)` and `[0, m*step)`. Saturates at
/// `i64::MAX`.
pub fn consolidated_step(step: i64, max_points: u64, first: i64, last: i64) -> i64 {
    debug_assert!(step > 0 && max_points > 0 && last >= first);
    let span = i128::from(last) - i128::from(first) + 1;
    let m0 = fewest_steps_per_bucket(span, step, max_points);
    let step = i128::from(step.max(1));
    let n = i128::from(max_points.max(1));
    let ceil_div = |a: i128, b: i128| (a + b - 1).div_euclid(b);
    let found = (m0..m0 + 64).find(|&m| buckets(first, last, m * step) <= n);
    let m = found.unwrap_or_else(|| {
        if n >= 2 {
            ceil_div(span, (n - 1) * step)
        } else {
            let below = ceil_div(-i128::from(first), step).max(0);
            let above = i128::from(last).div_euclid(step) + 1;
            below.max(above).max(1)
        }
    });
    i64::try_from(m * step).unwrap_or(i64::MAX)
}

/// One bucket's running aggregate.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    start: i64,
    sum: f64,
    min: f64,
    max: f64,
    count: u64,
    last: f64,
}

impl Bucket {
    fn new(start: i64, value: f64) -> Self {
        Bucket {
            start,
            sum: value,
            min: value,
            max: value,
            count: 1,
            last: value,
        }
    }

    fn add(&mut self, value: f64) {
        self.sum += value;
        // Not f64::min/max: with NaN excluded they agree, and plain
        // comparisons are what the Python reference does.
        if value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
        self.count += 1;
        self.last = value;
    }

    fn value(&self, agg: Agg) -> f64 {
        match agg {
            Agg::Avg => self.sum / self.count as f64,
            Agg::Min => self.min,
            Agg::Max => self.max,
            Agg::Sum => self.sum,
            Agg::Count => self.count as f64,
            Agg::Last => self.last,
        }
    }
}

/// Rolls up one series fed point by point in timestamp order; the state
/// between two points is a single bucket, so a series of any length is
/// rolled up in constant memory, across as many reads as it takes.
#[derive(Debug, Clone)]
pub struct Rollup {
    agg: Agg,
    step: i64,
    open: Option<Bucket>,
}

impl Rollup {
    /// `step` must be positive.
    pub fn new(agg: Agg, step: i64) -> Self {
        debug_assert!(step > 0);
        Rollup {
            agg,
            step: step.max(1),
            open: None,
        }
    }

    pub fn step(&self) -> i64 {
        self.step
    }

    /// Adds a point; returns the bucket it closed, if it began a new one.
    pub fn push(&mut self, timestamp: i64, value: f64) -> Option<Point> {
        let start = bucket_start(timestamp, self.step);
        match &mut self.open {
            Some(bucket) if bucket.start == start => {
                bucket.add(value);
                None
            }
            open => {
                let closed = open.map(|b| (b.start, b.value(self.agg)));
                *open = Some(Bucket::new(start, value));
                closed
            }
        }
    }

    /// The last bucket, once every point has been pushed.
    pub fn finish(&mut self) -> Option<Point> {
        self.open.take().map(|b| (b.start, b.value(self.agg)))
    }
}

#[cfg(test)]
#[path = "rollup_tests.rs"]
mod tests;
