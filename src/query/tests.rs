use super::*;
use crate::protocol::{Match, Query};

fn plan(build: impl FnOnce(&mut Query<&str>)) -> Plan {
    let mut query = Query::new("*");
    build(&mut query);
    Plan::new(&query).unwrap()
}

fn metrics() -> Metrics {
    vec![
        (
            "host01.cpu".into(),
            vec![(0, 1.0), (5, 2.0), (10, 3.0), (10, 4.0), (25, 5.0)],
        ),
        ("host02.cpu".into(), vec![(30, 7.0)]),
        ("host1.cpu".into(), vec![(1, 9.0)]),
        ("host01.mem".into(), vec![(2, 8.0)]),
    ]
}

#[test]
fn ranges_are_from_inclusive_until_exclusive() {
    let answer = plan(|q| {
        q.pattern = "host0*.cpu";
        q.from = Some(5);
        q.until = Some(30);
    })
    .answer(metrics());
    assert_eq!(
        answer,
        vec![(
            "host01.cpu".into(),
            vec![(5, 2.0), (10, 3.0), (10, 4.0), (25, 5.0)]
        )]
    );
    let empty = plan(|q| {
        q.from = Some(10);
        q.until = Some(10);
    });
    assert!(empty.is_empty_range());
    assert_eq!(empty.answer(metrics()), vec![]);
}

#[test]
fn rollups_leave_out_empty_buckets_and_series() {
    let answer = plan(|q| {
        q.pattern = "host01.{cpu,mem}";
        q.step = Some(10);
        q.agg = Some(Agg::Max);
        q.until = Some(20);
    })
    .answer(metrics());
    assert_eq!(
        answer,
        vec![
            ("host01.cpu".into(), vec![(0, 2.0), (10, 4.0)]),
            ("host01.mem".into(), vec![(0, 8.0)]),
        ]
    );
}

#[test]
fn point_limits_pick_the_step_per_series() {
    let answer = plan(|q| {
        q.pattern = "host01.cpu";
        q.points = Some(2);
        q.agg = Some(Agg::Count);
    })
    .answer(metrics());
    // 0..=25 in at most 2 buckets: 13 s (0..13, 13..26).
    assert_eq!(
        answer,
        vec![("host01.cpu".into(), vec![(0, 4.0), (13, 1.0)])]
    );
}

#[test]
fn exact_matching_takes_the_pattern_as_a_key() {
    let mut data = metrics();
    data.push(("host0*.cpu".into(), vec![(1, 1.0)]));
    let answer = plan(|q| {
        q.pattern = "host0*.cpu";
        q.matching = Some(Match::Exact);
    })
    .answer(data);
    assert_eq!(answer, vec![("host0*.cpu".into(), vec![(1, 1.0)])]);
}

#[test]
fn a_bare_star_is_every_key() {
    let answer = plan(|q| q.from = Some(0)).answer(metrics());
    assert_eq!(answer, metrics());
}
