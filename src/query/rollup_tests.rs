use super::*;
use proptest::prelude::*;

fn roll(agg: Agg, step: i64, points: &[Point]) -> Vec<Point> {
    let mut rollup = Rollup::new(agg, step);
    let mut out: Vec<Point> = points
        .iter()
        .filter_map(|&(t, v)| rollup.push(t, v))
        .collect();
    out.extend(rollup.finish());
    out
}

#[test]
fn buckets_are_aligned_to_multiples_of_the_step_and_reported_at_their_start() {
    let points = [
        (-7, 1.0),
        (-1, 2.0),
        (0, 3.0),
        (9, 4.0),
        (10, 5.0),
        (25, 6.0),
    ];
    assert_eq!(
        roll(Agg::Sum, 10, &points),
        vec![(-10, 3.0), (0, 7.0), (10, 5.0), (20, 6.0)]
    );
    assert_eq!(roll(Agg::Count, 10, &points)[1], (0, 2.0));
    assert_eq!(roll(Agg::Avg, 10, &points)[1], (0, 3.5));
    assert_eq!(roll(Agg::Min, 10, &points)[0], (-10, 1.0));
    assert_eq!(roll(Agg::Max, 10, &points)[0], (-10, 2.0));
    assert_eq!(roll(Agg::Last, 10, &points)[1], (0, 4.0));
    assert_eq!(roll(Agg::Avg, 10, &[]), vec![]);
}

#[test]
fn equal_timestamps_keep_their_order_for_last() {
    let points = [(5, 1.0), (5, 2.0), (6, 0.5)];
    assert_eq!(roll(Agg::Last, 10, &points), vec![(0, 0.5)]);
    assert_eq!(roll(Agg::Last, 10, &points[..2]), vec![(0, 2.0)]);
}

#[test]
fn sums_past_the_largest_double_are_infinite() {
    let points = [(1, f64::MAX), (2, f64::MAX), (3, -1.0)];
    assert_eq!(roll(Agg::Sum, 10, &points), vec![(0, f64::INFINITY)]);
    assert_eq!(roll(Agg::Avg, 10, &points), vec![(0, f64::INFINITY)]);
    assert_eq!(roll(Agg::Max, 10, &points), vec![(0, f64::MAX)]);
}

#[test]
fn extreme_timestamps_do_not_overflow() {
    assert_eq!(bucket_start(i64::MIN, 3), i64::MIN);
    assert_eq!(bucket_start(i64::MAX, 1), i64::MAX);
    assert_eq!(bucket_start(i64::MAX, i64::MAX), i64::MAX);
    assert_eq!(bucket_start(-1, i64::MAX), -i64::MAX);
    assert_eq!(bucket_start(i64::MIN, i64::MAX), i64::MIN);
    assert_eq!(consolidated_step(1, 1, i64::MIN, i64::MAX), i64::MAX);
    assert_eq!(consolidated_step(i64::MAX, 3, i64::MIN, i64::MAX), i64::MAX);
}

#[test]
fn consolidation_examples() {
    // 360 points at 10 s, at most 100: 4 x 10 s buckets give 90.
    assert_eq!(consolidated_step(10, 100, 3600, 3600 + 3590), 40);
    // Already few enough: the step itself.
    assert_eq!(consolidated_step(60, 1000, 0, 3599), 60);
    assert_eq!(consolidated_step(1, 5, 0, 4), 1);
    // One point: one bucket holding the whole range.
    assert_eq!(consolidated_step(1, 1, 100, 150), 76); // [76, 152)
    assert_eq!(consolidated_step(1, 1, -150, -100), 75); // [-150, -75)
                                                         // Across 0 one bucket is impossible: two.
    assert_eq!(consolidated_step(1, 1, -5, 7), 8);
}

fn count(first: i64, last: i64, step: i64) -> i64 {
    last.div_euclid(step) - first.div_euclid(step) + 1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The consolidated step is a multiple of the step that gives at most
    /// N buckets (two for N = 1 across 0), and no smaller multiple from
    /// the search's start does.
    #[test]
    fn consolidated_steps_give_at_most_n_buckets(
        step in 1i64..50, n in 1u64..40, first in -2000i64..2000, len in 0i64..3000,
    ) {
        let last = first + len;
        let s = consolidated_step(step, n, first, last);
        prop_assert_eq!(s % step, 0);
        let straddles = n == 1 && first < 0 && last >= 0;
        let most = if straddles { 2 } else { n as i64 };
        prop_assert!(count(first, last, s) <= most, "{} buckets of {}", count(first, last, s), s);
        for m in 1..s / step {
            if count(first, last, m * step) <= n as i64 {
                // A smaller multiple would do: only beyond the bounded search.
                let m0 = ((len + 1) as f64 / (n as f64 * step as f64)).ceil() as i64;
                prop_assert!(m < m0 || m >= m0 + 64, "m={} m0={}", m, m0);
            }
        }
    }

    /// Each aggregation agrees with grouping the points by bucket first.
    #[test]
    fn rollups_agree_with_grouping_first(
        mut points in prop::collection::vec((-500i64..500, -1e6f64..1e6), 0..200),
        step in 1i64..120,
    ) {
        points.sort_by_key(|p| p.0);
        for agg in Agg::ALL {
            let mut groups: Vec<(i64, Vec<f64>)> = Vec::new();
            for &(t, v) in &points {
                let start = t.div_euclid(step) * step;
                match groups.last_mut() {
                    Some((s, values)) if *s == start => values.push(v),
                    _ => groups.push((start, vec![v])),
                }
            }
            let want: Vec<Point> = groups.iter().map(|(s, values)| {
                let sum: f64 = values.iter().fold(0.0, |a, b| a + b);
                (*s, match agg {
                    Agg::Avg => sum / values.len() as f64,
                    Agg::Sum => sum,
                    Agg::Count => values.len() as f64,
                    Agg::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                    Agg::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    Agg::Last => *values.last().unwrap(),
                })
            }).collect();
            let got = roll(agg, step, &points);
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(g.0, w.0);
                prop_assert_eq!(g.1.to_bits(), w.1.to_bits(), "{:?}", agg);
            }
        }
    }
}
