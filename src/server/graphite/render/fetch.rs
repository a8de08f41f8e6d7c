//! From stored points to Graphite series. Graphite keeps one value per
//! slot of a fixed step (whisper's retention); this store keeps points at
//! any second, so each series gets the step its points are written at: the
//! most common interval between its points in the range (60 s when the
//! range and the series' first points give none). As whisper reads
//! `[from, until]`, the series covers the slots after `from`'s slot up to
//! and including `until`'s, and a slot's value is the latest point in it.
//! Ranges too long for that step are rolled up to a multiple of it
//! (averages), so one series never exceeds [`MAX_SLOTS`]. The slots are the
//! query API's rollup buckets (see [`fill`]).

use super::series::Series;
use super::RenderError;
use crate::protocol::Point;
use crate::query::{bucket_start, Agg, Rollup};
use crate::server::graphite::glob::PathGlob;
use crate::server::graphite::source::Source;

/// Slots one series may have before its step is widened.
pub const MAX_SLOTS: i64 = 1 << 19;
/// Slots all the series of one request may have together.
pub const MAX_REQUEST_SLOTS: usize = 1 << 23;
/// The step of a series whose interval cannot be seen.
const DEFAULT_STEP: i64 = 60;
/// Points read from a series' start to see its interval.
const PROBE_POINTS: usize = 64;

/// The series `path` matches over `[from, until]`, sorted by name;
/// `budget` is what is left of [`MAX_REQUEST_SLOTS`].
pub fn fetch(
    source: &dyn Source,
    path: &str,
    from: i64,
    until: i64,
    budget: &mut usize,
) -> Result<Vec<Series>, RenderError> {
    let glob = PathGlob::new(path).map_err(RenderError::Path)?;
    let mut keys = Vec::new();
    source.matching_keys(&glob, &mut |key| keys.push(key.to_owned()));
    keys.sort_unstable();
    let mut out = Vec::with_capacity(keys.len());
    let mut raw = Vec::new();
    for key in keys {
        raw.clear();
        let (lo, hi) = (from.saturating_add(1), until.saturating_add(1));
        source.points(&key, lo, hi, &mut |t, v| {
            raw.push((t, v));
            true
        });
        let step = step_of(source, &key, &raw);
        let series = fill(source, &key, path, from, until, step, raw.as_slice());
        *budget = budget
            .checked_sub(series.values.len())
            .ok_or(RenderError::TooManyPoints(MAX_REQUEST_SLOTS))?;
        out.push(series);
    }
    Ok(out)
}

/// The most common interval between consecutive points (the smaller on a
/// tie), from `raw` or else from the series' first points.
fn step_of(source: &dyn Source, key: &str, raw: &[(i64, f64)]) -> i64 {
    if raw.len() >= 2 {
        return mode_interval(raw);
    }
    let mut probe = Vec::with_capacity(PROBE_POINTS);
    source.points(key, i64::MIN, i64::MAX, &mut |t, v| {
        probe.push((t, v));
        probe.len() < PROBE_POINTS
    });
    if probe.len() >= 2 {
        mode_interval(&probe)
    } else {
        DEFAULT_STEP
    }
}

fn mode_interval(points: &[(i64, f64)]) -> i64 {
    let first = points[1].0 - points[0].0;
    if points.windows(2).all(|w| w[1].0 - w[0].0 == first) {
        return first.max(1);
    }
    let mut gaps: Vec<i64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let (mut best, mut best_count) = (gaps[0], 0);
    let mut i = 0;
    while i < gaps.len() {
        let run = gaps[i..].iter().take_while(|&&g| g == gaps[i]).count();
        if run > best_count {
            (best, best_count) = (gaps[i], run);
        }
        i += run;
    }
    best.max(1)
}

/// The series' slots: the query API's rollup at the slot step, whose
/// buckets are the slots (both aligned to multiples of the step), with
/// `last` at the native step (a slot holds the latest point in it) and
/// `avg` when the range is rolled up; a bucket without points is a `None`
/// slot.
fn fill(
    source: &dyn Source,
    key: &str,
    path: &str,
    from: i64,
    until: i64,
    native: i64,
    raw: &[(i64, f64)],
) -> Series {
    let bounds = |step: i64| {
        let start = bucket_start(from, step).saturating_add(step);
        let end = bucket_start(until, step).saturating_add(step);
        // As whisper: a range within one slot still reads that slot.
        (start, end.max(start.saturating_add(step)))
    };
    let mut step = native;
    let (mut start, mut end) = bounds(step);
    let slots = (end - start) / step;
    if slots > MAX_SLOTS {
        step = native.saturating_mul((slots + MAX_SLOTS - 1) / MAX_SLOTS);
        (start, end) = bounds(step);
    }
    let mut series = Series::fetched(key, path, start, end, step);
    let agg = if step == native { Agg::Last } else { Agg::Avg };
    let mut rollup = Rollup::new(agg, step);
    let values = &mut series.values;
    let mut put = |(bucket, value): Point| {
        let slot = usize::try_from((bucket - start) / step).unwrap_or(usize::MAX);
        if let Some(slot) = values.get_mut(slot) {
            *slot = Some(value);
        }
    };
    let mut push = |t: i64, v: f64| {
        if !(start..end).contains(&t) {
            return;
        }
        if let Some(point) = rollup.push(t, v) {
            put(point);
        }
    };
    for &(t, v) in raw {
        push(t, v);
    }
    // Points after `until` that still fall in its slot.
    let tail_from = until.saturating_add(1).max(start);
    source.points(key, tail_from, end, &mut |t, v| {
        push(t, v);
        true
    });
    if let Some(point) = rollup.finish() {
        put(point);
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::Store;

    fn store(points: &[(&str, i64, f64)]) -> Store {
        let mut store = Store::new();
        for &(k, t, v) in points {
            store.put(k, t, v);
        }
        store
    }

    #[test]
    fn slots_follow_whisper() {
        let s = store(&[
            ("a.b", 1000, 1.0),
            ("a.b", 1010, 2.0),
            ("a.b", 1020, 3.0),
            ("a.b", 1030, 4.0),
            ("a.c", 1015, 9.0),
        ]);
        let mut budget = MAX_REQUEST_SLOTS;
        let series = fetch(&s, "a.*", 1000, 1030, &mut budget).unwrap();
        assert_eq!(series.len(), 2);
        let b = &series[0];
        assert_eq!(
            (b.name.as_str(), b.start, b.end, b.step),
            ("a.b", 1010, 1040, 10)
        );
        assert_eq!(b.values, vec![Some(2.0), Some(3.0), Some(4.0)]);
        assert_eq!(b.path_expression, "a.*");
        let c = &series[1];
        assert_eq!((c.start, c.end, c.step), (1020, 1080, 60));
        assert_eq!(c.values, vec![None]);
        assert_eq!(budget, MAX_REQUEST_SLOTS - 4);
        assert!(fetch(&s, "x.*", 0, 10, &mut budget).unwrap().is_empty());
        assert!(matches!(
            fetch(&s, "a.[", 0, 10, &mut budget),
            Err(RenderError::Path(_))
        ));
    }

    #[test]
    fn jitter_keeps_the_common_interval_and_long_ranges_roll_up() {
        let s = store(&[
            ("k", 0, 1.0),
            ("k", 10, 1.0),
            ("k", 19, 1.0),
            ("k", 30, 1.0),
            ("k", 40, 1.0),
        ]);
        let mut budget = MAX_REQUEST_SLOTS;
        assert_eq!(fetch(&s, "k", -1, 50, &mut budget).unwrap()[0].step, 10);
        let s = store(&[("k", 0, 1.0), ("k", 1, 3.0)]);
        let series = &fetch(&s, "k", -1, 3 * MAX_SLOTS - 1, &mut budget).unwrap()[0];
        assert_eq!(series.step, 3);
        assert_eq!(series.values[0], Some(2.0));
        let mut small = 2;
        assert!(matches!(
            fetch(&s, "k", -1, 100, &mut small),
            Err(RenderError::TooManyPoints(_))
        ));
    }
}
