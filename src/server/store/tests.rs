use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

impl Store {
    /// Recounts every allocation and checks the running count and the
    /// series' invariants.
    pub(super) fn check(&self) {
        let mut points = 0;
        let mut series_bytes = 0;
        for slot in 0..self.series.len() {
            let series = self.series.get(slot).unwrap();
            series.points.check();
            series_bytes += series.points.heap_bytes();
            points += (0..series.points.chunk_count())
                .map(|c| series.points.chunk(c).len())
                .sum::<usize>();
            let key = self.keys.get(series.key);
            assert_eq!(self.find(self.index.hash(key), key), Some(slot));
            assert_eq!(self.slot_of(series.id as usize), Some(slot));
            assert!((series.id as usize) < self.next_id);
        }
        assert_eq!(points as u64, self.points);
        let counted = self.keys.heap_bytes()
            + self.index.heap_bytes()
            + self.ids.heap_bytes()
            + self.series.heap_bytes()
            + series_bytes;
        assert_eq!(counted, self.bytes);
    }
}

/// A put: key number, timestamp, value.
fn puts() -> impl Strategy<Value = Vec<(u8, i64, f64)>> {
    let timestamp = prop_oneof![-300i64..300, any::<i64>(), Just(i64::MIN), Just(i64::MAX),];
    prop::collection::vec((0u8..6, timestamp, -1e3f64..1e3), 0..2000)
}

fn key_name(k: u8) -> String {
    // Some keys long enough for a block of their own.
    match k {
        5 => "L".repeat(5000),
        4 => String::new(),
        _ => format!("key{k}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The store holds what a map of sorted maps holds, walks it in the
    /// same order in chunks of any size, and counts its memory exactly.
    #[test]
    fn behaves_like_a_map_of_sorted_maps(puts in puts(), chunk in 1usize..300) {
        let mut store = Store::new();
        let mut model: Vec<(String, BTreeMap<i64, f64>)> = Vec::new();
        for &(k, ts, value) in &puts {
            let key = key_name(k);
            let series = match model.iter().position(|(name, _)| *name == key) {
                Some(i) => &mut model[i].1,
                None => {
                    model.push((key.clone(), BTreeMap::new()));
                    &mut model.last_mut().unwrap().1
                }
            };
            let want_new = series.insert(ts, value).is_none();
            prop_assert_eq!(store.contains(&key, ts), !want_new);
            prop_assert_eq!(store.put(&key, ts, value), want_new);
            prop_assert!(store.contains(&key, ts));
        }
        store.check();
        prop_assert_eq!(store.keys(), model.len());
        let want: Vec<(String, i64, f64)> = model
            .iter()
            .flat_map(|(key, points)| points.iter().map(|(&t, &v)| (key.clone(), t, v)))
            .collect();
        prop_assert_eq!(collect(&store, Cursor::all(), chunk), want);
        for (key, points) in &model {
            let got = collect(&store, store.cursor(Selector::Key(key)), chunk);
            let want: Vec<_> = points.iter().map(|(&t, &v)| (key.clone(), t, v)).collect();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn runs_of_one_key_and_switches_between_keys_land_in_their_own_series() {
    let mut store = Store::new();
    let puts = [
        ("a", 1),
        ("a", 2),
        ("b", 1),
        ("b", 3),
        ("a", 3),
        ("ab", 1),
        ("b", 2),
    ];
    for (i, &(key, ts)) in puts.iter().enumerate() {
        assert!(store.put(key, ts, i as f64), "{key} {ts}");
    }
    assert!(
        !store.put("a", 2, 9.0),
        "a replaced value is not a new point"
    );
    let mut got = Vec::new();
    store.walk(&mut Cursor::all(), |key, ts, value| {
        got.push((key.to_string(), ts, value));
        true
    });
    let want = [
        ("a", 1, 0.0),
        ("a", 2, 9.0),
        ("a", 3, 4.0),
        ("b", 1, 2.0),
        ("b", 2, 6.0),
        ("b", 3, 3.0),
        ("ab", 1, 5.0),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|&(k, t, v)| (k.to_string(), t, v))
        .collect();
    assert_eq!(got, want);
    assert_eq!((store.points(), store.keys()), (7, 3));
}

#[test]
fn long_series_cost_at_most_32_bytes_per_point() {
    for (name, order) in [("in order", false), ("shuffled", true)] {
        let mut store = Store::new();
        store.put("k", 0, 0.0);
        let before = store.memory();
        let n: i64 = 200_000;
        let mut x: i64 = 1;
        for i in 1..=n {
            let ts = if order {
                // A permutation of 1..=n (n + 1 is prime... close enough:
                // a multiplicative walk modulo a prime above n).
                x = x * 48271 % 200_003;
                x
            } else {
                i
            };
            store.put("k", ts, 1.0);
        }
        store.check();
        let per_point = (store.memory() - before) as f64 / (store.points() - 1) as f64;
        assert!(per_point <= 32.0, "{name}: {per_point} bytes per point");
    }
}

/// Growing never reallocates anything in proportion to the number of
/// keys (which would copy it all under the lock, stalling every client),
/// and a long series only its list of chunks (one entry per 128 points,
/// 2.5 MB at 10 million points): the largest allocation one put makes
/// stays small.
#[test]
fn no_put_allocates_in_proportion_to_the_store() {
    let mut store = Store::new();
    let mut largest = 0;
    for i in 0..300_000 {
        let before = store.memory();
        store.put(&format!("host{i}.cpu"), 1, 1.0);
        largest = largest.max(store.memory() - before);
    }
    for ts in 0..300_000 {
        let before = store.memory();
        store.put("series", ts, 1.0);
        largest = largest.max(store.memory() - before);
    }
    store.check();
    // A segment of slots (4096 x 48 bytes) is the largest step.
    assert!(largest <= 256 << 10, "one put allocated {largest} bytes");
}

#[test]
fn memory_grows_with_keys_and_points() {
    let mut store = Store::new();
    let empty = store.memory();
    assert!(empty > 0);
    for i in 0..10_000 {
        store.put(&format!("key{i}"), 1, 1.0);
    }
    store.check();
    let per_key = (store.memory() - empty) / 10_000;
    assert!((40..=160).contains(&per_key), "{per_key} bytes per key");
}

/// A key's first point, put into the empty slot `slot_for` made (as
/// every put does), takes room for that one point only: most keys of a
/// large store have one point, and room for four would cost 48 bytes more
/// each.
#[test]
fn a_new_key_s_first_point_takes_room_for_one_point() {
    let mut store = Store::new();
    let slots: Vec<usize> = (0..10_000)
        .map(|i| store.slot_for(&format!("key{i}")))
        .collect();
    let empty = store.memory();
    for slot in slots {
        store.put_at(slot, 1, 1.0);
    }
    store.check();
    assert_eq!(
        store.memory() - empty,
        10_000 * memory::heap_of::<(i64, f64)>(1)
    );
}

fn collect(store: &Store, mut cursor: Cursor, chunk: usize) -> Vec<(String, i64, f64)> {
    let mut out = Vec::new();
    loop {
        let mut n = 0;
        let done = store.walk(&mut cursor, |k, t, v| {
            out.push((k.to_owned(), t, v));
            n += 1;
            n < chunk
        });
        if done {
            assert!(cursor.is_done());
            return out;
        }
    }
}

#[test]
fn points_are_ordered_and_overwritten() {
    let mut store = Store::new();
    assert!(store.put("test_key", 1503319740, 12.0));
    assert!(store.put("test_key", 1503319739, 13.0));
    assert!(store.put("other", 5, 1.0));
    assert!(!store.put("test_key", 1503319740, 14.0));
    assert_eq!((store.points(), store.keys()), (3, 2));
    let key = store.cursor(Selector::Key("test_key"));
    assert_eq!(
        collect(&store, key, usize::MAX),
        vec![
            ("test_key".into(), 1503319739, 13.0),
            ("test_key".into(), 1503319740, 14.0)
        ]
    );
    let all = store.cursor(Selector::All);
    assert_eq!(collect(&store, all, usize::MAX).len(), 3);
    let missing = store.cursor(Selector::Key("missing"));
    assert!(missing.is_done());
    assert_eq!(collect(&store, missing, 1), vec![]);
}

#[test]
fn chunked_walks_see_every_point_once() {
    let mut store = Store::new();
    for k in 0..7 {
        for t in (0..13).rev() {
            store.put(&format!("k{k}"), t * 3 - 10, (k * 100 + t) as f64);
        }
    }
    let whole = collect(&store, Cursor::all(), usize::MAX);
    assert_eq!(whole.len(), 7 * 13);
    for chunk in 1..20 {
        assert_eq!(collect(&store, Cursor::all(), chunk), whole);
    }
}

#[test]
fn writes_between_chunks_ahead_of_the_cursor_are_seen() {
    let mut store = Store::new();
    store.put("a", 1, 1.0);
    store.put("a", 3, 3.0);
    let mut cursor = Cursor::all();
    let mut seen = Vec::new();
    assert!(!store.walk(&mut cursor, |k, t, _| {
        seen.push((k.to_owned(), t));
        false
    }));
    store.put("a", 0, 0.0); // behind the cursor: not seen
    store.put("a", 2, 2.0); // ahead: seen
    store.put("b", 9, 9.0); // a new key: seen
    assert!(store.walk(&mut cursor, |k, t, _| {
        seen.push((k.to_owned(), t));
        true
    }));
    let want: Vec<(String, i64)> = [("a", 1), ("a", 2), ("a", 3), ("b", 9)]
        .iter()
        .map(|&(k, t)| (k.to_owned(), t))
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn full_size_chunks_come_from_the_stock_made_ahead_until_it_is_out() {
    use series::CHUNK;
    let mut store = Store {
        ahead: Some(ahead::ChunksAhead::stocked(4)),
        ..Store::default()
    };
    let mut plain = Store::new();
    let put = |store: &mut Store, plain: &mut Store, ts: i64, value: f64| {
        assert_eq!(store.put("k", ts, value), plain.put("k", ts, value));
    };
    // In order: the first chunk grows by itself, each later one starts
    // full-size.
    for i in 0..4 * CHUNK as i64 {
        put(&mut store, &mut plain, i * 10, i as f64);
    }
    let ready = |store: &Store| store.ahead.as_ref().unwrap().ready();
    assert_eq!(ready(&store), 1);
    // A point inside a full chunk splits it, into a full-size tail.
    put(&mut store, &mut plain, 15, -1.0);
    assert_eq!(ready(&store), 0);
    // Out of stock: the store allocates for itself.
    for i in 4 * CHUNK as i64..6 * CHUNK as i64 {
        put(&mut store, &mut plain, i * 10, i as f64);
    }
    store.check();
    assert_eq!(store.memory(), plain.memory());
    assert_eq!(
        collect(&store, Cursor::all(), usize::MAX),
        collect(&plain, Cursor::all(), usize::MAX)
    );
}
