//! The render functions are the query API's code where the semantics are
//! the same: `summarize` is a rollup (aligned to the start with
//! `alignToFrom`), `maxDataPoints` a rollup of averages shifted by one
//! step (graphite-web's nudge), and both decide the consolidation as the
//! query API's `fewest_steps_per_bucket`, equal to graphite-web's doubles.

use super::output::json;
use super::series::{AggFunc, Series};
use super::windows::summarize_values;
use crate::protocol::Point;
use crate::query::{fewest_steps_per_bucket, Agg, Rollup};
use proptest::prelude::*;

const SHARED: [AggFunc; 6] = [
    AggFunc::Average,
    AggFunc::Sum,
    AggFunc::Min,
    AggFunc::Max,
    AggFunc::Count,
    AggFunc::Last,
];

/// A value, now and then NaN or a signed zero (computed series have them:
/// `derivative` of an infinite one), or no value.
fn slot() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        6 => (-1e6f64..1e6).prop_map(Some),
        1 => prop_oneof![Just(f64::NAN), Just(0.0), Just(-0.0)].prop_map(Some),
        1 => Just(None),
    ]
}

/// A fetched series: its start a multiple of its step, up to `slots`
/// values.
fn series(slots: std::ops::Range<usize>) -> impl Strategy<Value = Series> {
    let values = prop::collection::vec(slot(), slots);
    (-60i64..60, 1i64..40, values).prop_map(|(first_slot, step, values)| {
        let start = first_slot * step;
        let end = start + step * values.len() as i64;
        Series {
            values,
            ..Series::fetched("a", "a", start, end, step)
        }
    })
}

/// The query API's rollup of the series' values (those not `None`), each
/// timestamp moved by `shift`, bucket starts moved back.
fn rollup(series: &Series, agg: Agg, step: i64, shift: i64) -> Vec<Point> {
    let mut rollup = Rollup::new(agg, step);
    let mut out = Vec::new();
    for (i, value) in series.values.iter().enumerate() {
        if let Some(value) = *value {
            let t = series.start + i as i64 * series.step;
            out.extend(rollup.push(t + shift, value));
        }
    }
    out.extend(rollup.finish());
    out.into_iter().map(|(t, v)| (t - shift, v)).collect()
}

/// A fixed-step series' values that are not `None`, with their times.
fn points(start: i64, step: i64, values: &[Option<f64>]) -> Vec<Point> {
    let stamps = (0..).map(|i| start + i * step);
    stamps
        .zip(values)
        .filter_map(|(t, v)| v.map(|v| (t, v)))
        .collect()
}

fn same(got: &[Point], want: &[Point]) -> Result<(), TestCaseError> {
    let bits = |p: &[Point]| p.iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>();
    prop_assert_eq!(bits(got), bits(want), "{:?} != {:?}", got, want);
    Ok(())
}

#[test]
fn the_six_aggregations_compare_as_python_does() {
    // Python's max([nan, 1.0]) is nan, max([1.0, nan]) 1.0; min([0.0,
    // -0.0]) is 0.0: the first of equal values stays.
    assert!(AggFunc::Max
        .apply(&[Some(f64::NAN), Some(1.0)])
        .unwrap()
        .is_nan());
    assert_eq!(AggFunc::Max.apply(&[Some(1.0), Some(f64::NAN)]), Some(1.0));
    let min = AggFunc::Min.apply(&[Some(0.0), None, Some(-0.0)]).unwrap();
    assert!(min == 0.0 && min.is_sign_positive());
    let range = AggFunc::Range.apply(&[Some(f64::NAN), Some(2.0), Some(1.0)]);
    assert!(range.unwrap().is_nan());
    for agg in SHARED {
        assert_eq!(agg.shared().map(Agg::name), Some(agg_name(agg)));
    }
}

fn agg_name(agg: AggFunc) -> &'static str {
    match agg {
        AggFunc::Average => "avg",
        AggFunc::Sum => "sum",
        AggFunc::Min => "min",
        AggFunc::Max => "max",
        AggFunc::Count => "count",
        _ => "last",
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `summarize` with one of the six is the query API's rollup of the
    /// values, buckets aligned to multiples of the interval (or to the
    /// start, with `alignToFrom`), empty buckets `None`.
    #[test]
    fn summarize_is_the_query_rollup(
        series in series(0..120),
        interval in 1i64..300,
        align in any::<bool>(),
        which in 0usize..6,
    ) {
        let agg = SHARED[which];
        let (start, end, got) = summarize_values(&series, interval, agg, align).unwrap();
        let origin = if align { series.start } else { 0 };
        prop_assert_eq!((start - origin).rem_euclid(interval), 0);
        prop_assert!(start <= series.start && end >= series.end);
        prop_assert_eq!(got.len() as i64, (end - start + interval - 1) / interval);
        let want = rollup(&series, agg.shared().unwrap(), interval, -origin);
        same(&points(start, interval, &got), &want)?;
    }

    /// `maxDataPoints` (averages) is the query API's rollup of averages
    /// over buckets of the consolidated seconds, each holding the slots
    /// from one step before its time (graphite-web's nudge).
    #[test]
    fn max_data_points_is_the_query_rollup_one_step_early(
        series in series(1..200),
        max in 2i64..50,
    ) {
        let step = series.step;
        let body = json(vec![series.clone()], Some(max), false);
        let text = String::from_utf8(body).unwrap();
        let datapoints = &text[text.find("\"datapoints\": [").unwrap() + 15..text.len() - 3];
        let got: Vec<Point> = datapoints
            .split("], [")
            .map(|p| p.trim_matches(|c| c == '[' || c == ']'))
            .filter(|p| !p.is_empty() && !p.starts_with("null"))
            .map(|p| {
                let (v, t) = p.split_once(", ").unwrap();
                (t.parse().unwrap(), v.parse().unwrap())
            })
            .collect();
        let range = i128::from(series.end - series.start);
        let per = fewest_steps_per_bucket(range, step, max as u64) as i64;
        let want: Vec<Point> = if per == 1 {
            points(series.start, step, &series.values)
        } else {
            let seconds = per * step;
            let new_start = series.start.div_euclid(seconds) * seconds + seconds;
            rollup(&series, Agg::Avg, seconds, step)
                .into_iter()
                .map(|(t, v)| (t + step, v))
                .filter(|&(t, _)| t >= new_start)
                .collect()
        };
        // The JSON has Python's shortest repr of each value: compare the
        // values (NaN is written as null, which both sides leave out).
        let want: Vec<Point> = want.into_iter().filter(|p| !p.1.is_nan()).collect();
        prop_assert_eq!(got, want);
    }

    /// graphite-web consolidates when `maxDataPoints < range / step` and
    /// takes `ceil((range / step) / maxDataPoints)` values per point, in
    /// doubles: the query API's fewest steps per bucket, for ranges below
    /// 2^52 s.
    #[test]
    fn fewest_steps_per_bucket_is_graphite_webs_values_per_point(
        range in 1i64..(1 << 52),
        step in 1i64..(1 << 24),
        max in 1i64..(1 << 40),
    ) {
        let points = range as f64 / step as f64;
        let theirs = if (max as f64) < points { (points / max as f64).ceil() as i128 } else { 1 };
        prop_assert_eq!(fewest_steps_per_bucket(i128::from(range), step, max as u64), theirs);
    }
}
