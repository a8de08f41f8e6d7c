use super::*;
use crate::protocol::{Match, Metrics, Query};
use crate::query::Agg;
use crate::server::store::Cursor as StoreCursor;
use proptest::prelude::*;

/// The whole reply, asked for in chunks of `chunk` bytes.
fn reply(store: &Store, query: &Query<&str>, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(mut cursor) = start(store, query, &mut out, chunk) else {
        return out;
    };
    let mut rounds = 0;
    loop {
        let limit = out.len().saturating_add(chunk);
        if fill(store, &mut cursor, &mut out, limit) {
            break;
        }
        rounds += 1;
        assert!(rounds < 1_000_000, "the answer never ends");
    }
    finish(&mut out);
    out
}

/// What a plain `get *` returns, as the client groups it.
fn everything(store: &Store) -> Metrics {
    let mut metrics: Metrics = Vec::new();
    store.walk(&mut StoreCursor::all(), |key, t, v| {
        match metrics.last_mut() {
            Some((k, points)) if k == key => points.push((t, v)),
            _ => metrics.push((key.to_owned(), vec![(t, v)])),
        }
        true
    });
    metrics
}

fn encode(metrics: &Metrics) -> Vec<u8> {
    let mut out = b"ok\n".to_vec();
    for (key, points) in metrics {
        for &(t, v) in points {
            push_point(&mut out, key, v, t);
        }
    }
    out.push(b'\n');
    out
}

#[test]
fn a_query_answers_what_the_plan_computes_from_everything() {
    let mut store = Store::new();
    for i in 0..2000i64 {
        store.put(
            &format!("host{}.{}", i % 13, ["cpu", "mem"][(i % 2) as usize]),
            i * 7 % 1000,
            i as f64,
        );
    }
    let query = Query {
        from: Some(100),
        until: Some(900),
        step: Some(60),
        agg: Some(Agg::Max),
        ..Query::new("host1*.cpu")
    };
    let want = encode(&Plan::new(&query).unwrap().answer(everything(&store)));
    assert!(want.len() > 100);
    for chunk in [1, 64, 4096, usize::MAX / 2] {
        assert_eq!(reply(&store, &query, chunk), want, "chunk {chunk}");
    }
}

#[test]
fn nothing_matched_is_an_empty_get_reply() {
    let mut store = Store::new();
    store.put("a", 1, 1.0);
    for query in [
        Query {
            from: Some(5),
            ..Query::new("a")
        },
        Query {
            from: Some(5),
            until: Some(5),
            ..Query::new("*")
        },
        Query {
            matching: Some(Match::Glob),
            ..Query::new("b*")
        },
        Query {
            matching: Some(Match::Exact),
            ..Query::new("a*")
        },
    ] {
        assert_eq!(reply(&store, &query, 64), b"ok\n\n", "{query:?}");
    }
}

#[test]
fn a_long_series_is_read_in_bounded_pieces() {
    let mut store = Store::new();
    for t in 0..100_000 {
        store.put("k", t, 1.0);
    }
    let query = Query {
        from: Some(50_000),
        until: Some(50_360),
        ..Query::new("k")
    };
    let text = String::from_utf8(reply(&store, &query, 1 << 16)).unwrap();
    assert_eq!(text.lines().count(), 1 + 360 + 1);
    let query = Query {
        step: Some(1000),
        agg: Some(Agg::Count),
        ..Query::new("k")
    };
    let text = String::from_utf8(reply(&store, &query, 64)).unwrap();
    assert_eq!(text.lines().nth(1), Some("k 1000.0 0"));
    assert_eq!(text.lines().count(), 1 + 100 + 1);
}

#[test]
fn keys_stored_between_queries_are_found_by_prefix() {
    let mut store = Store::new();
    store.put("b.1", 1, 1.0);
    let query = Query {
        from: Some(0),
        ..Query::new("a.*")
    };
    assert_eq!(reply(&store, &query, 64), b"ok\n\n");
    for i in (0..200).rev() {
        store.put(&format!("a.{i}"), 1, i as f64);
    }
    store.put("a.x.y", 1, 0.0);
    let text = String::from_utf8(reply(&store, &query, 64)).unwrap();
    // Key order is the order of first appearance, not the index's.
    assert!(
        text.starts_with("ok\na.199 199.0 1\na.198 198.0 1\n"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 202);
}

fn puts() -> impl Strategy<Value = Vec<(u8, i64, f64)>> {
    prop::collection::vec((0u8..8, -50i64..50, -100f64..100.0), 0..300)
}

const KEYS: [&str; 8] = [
    "a.cpu", "a.mem", "b.cpu", "ab.cpu", "a.b.cpu", "b", "a", "c.d",
];
const PATTERNS: [&str; 9] = [
    "*",
    "a*",
    "a.*",
    "*.cpu",
    "{a,b}.cpu",
    "a?.cpu",
    "[ab]*",
    "a.b.cpu",
    "z*",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn streamed_answers_equal_the_plan_over_a_plain_get(
        puts in puts(),
        pattern in proptest::sample::select(PATTERNS.to_vec()),
        from in proptest::option::of(-60i64..60),
        until in proptest::option::of(-60i64..60),
        step in proptest::option::of(1i64..40),
        agg in proptest::sample::select(Agg::ALL.to_vec()),
        points in proptest::option::of(1u64..10),
        chunk in 1usize..200,
    ) {
        let mut store = Store::new();
        for (k, t, v) in puts {
            store.put(KEYS[k as usize], t, v);
        }
        let query = Query {
            from, until, step, agg: Some(agg), points, ..Query::new(pattern)
        };
        let want = encode(&Plan::new(&query).unwrap().answer(everything(&store)));
        prop_assert_eq!(
            String::from_utf8(reply(&store, &query, chunk)).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
