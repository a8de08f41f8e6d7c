//! The engine end to end, without a server: puts into the head, seals
//! into blocks (what the journal's compaction does), more puts, and every
//! read compared with a map of sorted maps: the course's semantics (any
//! timestamp, in any order; a later put replaces) whatever was sealed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;

use super::block::tests::TestDir;
use super::seal::Sealer;
use super::{Sealed, Storage, View, PARTITION};
use crate::protocol::{Point, Selector};
use crate::server::shared::State;
use crate::server::store::Store;

type Model = BTreeMap<String, BTreeMap<i64, f64>>;

struct Engine {
    state: Mutex<State>,
    sealer: Sealer,
    dir: TestDir,
}

impl Engine {
    fn new(storage: Storage) -> Engine {
        let dir = TestDir::new("view");
        let (state, keys) = Engine::open(&dir);
        Engine {
            state: Mutex::new(state),
            sealer: Sealer { keys, storage },
            dir,
        }
    }

    fn open(dir: &TestDir) -> (State, super::keys::KeysFile) {
        let mut store = Store::new();
        let (sealed, keys, warnings) = Sealed::open(&dir.0.join("blocks"), &mut store).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let state = State {
            store,
            journal: None,
            sealed: Some(sealed),
        };
        (state, keys)
    }

    /// A put as a server makes it: the key admitted first (found among
    /// the numbered keys when the head does not hold it).
    fn put(state: &mut State, key: &str, ts: i64, value: f64) {
        if let Some(sealed) = state.sealed.as_ref() {
            sealed.admit(&mut state.store, key).unwrap();
        }
        state.store.put(key, ts, value);
    }

    /// Stops and starts again as a server does: the blocks opened anew
    /// and the head's points put back in the head's order, as replaying
    /// its journal does.
    fn restart(&mut self) {
        let mut head = Vec::new();
        {
            let state = self.state.lock().unwrap();
            let store = &state.store;
            store.walk(&mut store.cursor(Selector::All), |k, t, v| {
                head.push((k.to_owned(), t, v));
                true
            });
        }
        let (mut state, keys) = Engine::open(&self.dir);
        assert_eq!(state.store.keys(), 0, "nothing of the blocks in memory");
        for (k, t, v) in head {
            Engine::put(&mut state, &k, t, v);
        }
        self.state = Mutex::new(state);
        self.sealer.keys = keys;
    }

    /// Runs a whole seal at `now`; returns the points it sealed.
    fn seal(&mut self, now: i64) -> u64 {
        let state = &self.state;
        let mut seal = self.sealer.begin(now, || state.lock().unwrap()).unwrap();
        let mut state = self.state.lock().unwrap();
        for i in 0..seal.series_count() {
            let slot = seal.slot_at(i).unwrap();
            seal.series(&state.store, slot, &mut |_, _| {}).unwrap();
        }
        let written = seal.write().unwrap();
        let blocks = state.sealed.as_mut().unwrap().add(&written).unwrap();
        let count = seal.sealed;
        drop(state);
        seal.settle(|| self.state.lock().unwrap(), &blocks).unwrap();
        count
    }

    fn all(&self, cutoff: Option<i64>) -> Vec<(String, i64, f64)> {
        let state = self.state.lock().unwrap();
        let view = View {
            head: &state.store,
            sealed: state.sealed.as_ref(),
            cutoff,
            log: None,
        };
        let mut walk = view.walk_start(Selector::All);
        let mut out = Vec::new();
        // In chunks of 7 points, as a streamed reply is.
        loop {
            let mut n = 0;
            let done = view.walk_texts(&mut walk, |k, t, v, text| {
                // A decimal text is the value's own text.
                if let Some(text) = text {
                    let (mut ours, mut float) = (Vec::new(), Vec::new());
                    text.push(&mut ours);
                    crate::protocol::push_py_float(&mut float, v);
                    assert_eq!(ours, float, "{v:?}");
                }
                out.push((k.to_owned(), t, v));
                n += 1;
                n < 7
            });
            if done {
                return out;
            }
        }
    }

    fn range(&self, key: &str, from: i64, until: Option<i64>) -> Vec<Point> {
        let state = self.state.lock().unwrap();
        let view = View {
            head: &state.store,
            sealed: state.sealed.as_ref(),
            cutoff: None,
            log: None,
        };
        let mut out = Vec::new();
        if let Some(id) = view.id(key) {
            view.read(id, from, until, &mut out);
        }
        out
    }
}

impl Engine {
    fn view_of<'s>(state: &'s State) -> View<'s> {
        View {
            head: &state.store,
            sealed: state.sealed.as_ref(),
            cutoff: None,
            log: None,
        }
    }

    /// Reads as a query does: `limit` points at a time, each piece from
    /// after the last point of the one before, until a short piece.
    fn pieces(&self, key: &str, from: i64, until: Option<i64>, limit: usize) -> Vec<Point> {
        let state = self.state.lock().unwrap();
        let view = Engine::view_of(&state);
        let mut out = Vec::new();
        let Some(slot) = view.id(key) else {
            return out;
        };
        let mut from = from;
        loop {
            let read = view.read_some(slot, from, until, limit, &mut out);
            match out.last().and_then(|p| p.0.checked_add(1)) {
                Some(next) if read == limit => from = next,
                _ => return out,
            }
        }
    }

    fn bounds(&self, key: &str, from: i64, until: Option<i64>) -> Option<(i64, i64)> {
        let state = self.state.lock().unwrap();
        let view = Engine::view_of(&state);
        view.bounds(view.id(key)?, from, until)
    }
}

fn flatten(model: &Model, keys: &[String]) -> Vec<(String, i64, f64)> {
    keys.iter()
        .filter_map(|k| model.get(k).map(|points| (k, points)))
        .flat_map(|(k, points)| points.iter().map(move |(&t, &v)| (k.clone(), t, v)))
        .collect()
}

fn storage(head_window: u64) -> Storage {
    Storage {
        head_window: Duration::from_secs(head_window),
        ..Storage::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Puts, seals, restarts and puts again: every answer is the model's.
    #[test]
    fn sealing_never_changes_an_answer(
        rounds in prop::collection::vec(
            (
                prop::collection::vec(
                    (0u8..6, prop_oneof![0i64..40 * PARTITION, -5 * PARTITION..0, any::<i64>()], -50i32..50),
                    0..120,
                ),
                any::<bool>(),
            ),
            1..5,
        ),
        window in prop_oneof![Just(0u64), Just(3 * 86_400)],
    ) {
        let mut engine = Engine::new(storage(window));
        let mut model = Model::new();
        let mut order: Vec<String> = Vec::new();
        let now = 40 * PARTITION;
        for (puts, restart) in &rounds {
            {
                let mut state = engine.state.lock().unwrap();
                for &(k, ts, v) in puts {
                    let key = format!("k{k}");
                    if !order.contains(&key) {
                        order.push(key.clone());
                    }
                    Engine::put(&mut state, &key, ts, f64::from(v) / 4.0);
                    model.entry(key).or_default().insert(ts, f64::from(v) / 4.0);
                }
            }
            engine.seal(now);
            if *restart {
                engine.restart();
            }
            prop_assert_eq!(engine.all(None), flatten(&model, &order));
        }
        for (key, points) in &model {
            let from = 3 * PARTITION;
            let until = Some(20 * PARTITION);
            let want: Vec<Point> = points.range(from..20 * PARTITION).map(|(&t, &v)| (t, v)).collect();
            prop_assert_eq!(engine.range(key, from, until), want.clone());
            // A query reads a few points at a time, from after the last.
            prop_assert_eq!(engine.pieces(key, from, until, 5), want.clone());
            let all: Vec<Point> = points.iter().map(|(&t, &v)| (t, v)).collect();
            prop_assert_eq!(engine.pieces(key, i64::MIN, None, 3), all);
            prop_assert_eq!(
                engine.bounds(key, from, until),
                want.first().zip(want.last()).map(|(f, l)| (f.0, l.0))
            );
        }
    }
}

#[test]
fn sealed_points_leave_the_head_and_recent_ones_stay() {
    let mut engine = Engine::new(storage(3600));
    let now = 100 * PARTITION;
    {
        let mut state = engine.state.lock().unwrap();
        for i in 0..1000 {
            state.store.put("old", now - 3 * PARTITION + i, 1.0);
        }
        state.store.put("new", now - 60, 2.0);
    }
    assert_eq!(engine.seal(now), 1000);
    let state = engine.state.lock().unwrap();
    assert_eq!(
        state.store.points(),
        1,
        "only the recent point stays in memory"
    );
    assert_eq!(state.store.low(), Some(now - 60));
    let sealed = state.sealed.as_ref().unwrap();
    assert_eq!(sealed.blocks().count(), 1);
    drop(state);
    assert_eq!(engine.all(None).len(), 1001);
    // Past a retention cut nothing older is answered.
    assert_eq!(engine.all(Some(now - 3600)).len(), 1);
}

#[test]
fn a_put_into_a_sealed_day_wins_over_the_block_then_merges_into_a_newer_one() {
    let mut engine = Engine::new(storage(0));
    let now = 10 * PARTITION;
    engine.state.lock().unwrap().store.put("k", 5, 1.0);
    engine.seal(now);
    engine.state.lock().unwrap().store.put("k", 5, 2.0);
    assert_eq!(engine.range("k", i64::MIN, None), vec![(5, 2.0)]);
    // A get writes the head's value, not the block's text (`all` checks).
    assert_eq!(engine.all(None), vec![("k".to_owned(), 5, 2.0)]);
    engine.seal(now);
    let state = engine.state.lock().unwrap();
    assert_eq!(state.store.points(), 0);
    assert_eq!(state.sealed.as_ref().unwrap().blocks().count(), 2);
    drop(state);
    assert_eq!(engine.range("k", i64::MIN, None), vec![(5, 2.0)]);
    assert_eq!(engine.all(None), vec![("k".to_owned(), 5, 2.0)]);
}

#[test]
fn the_first_and_last_days_of_the_i64_range_stay_in_the_head() {
    let mut engine = Engine::new(storage(0));
    let now = 10 * PARTITION;
    {
        let mut state = engine.state.lock().unwrap();
        for ts in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            state.store.put("k", ts, ts as f64);
        }
    }
    assert_eq!(engine.seal(now), 3);
    let state = engine.state.lock().unwrap();
    assert_eq!(state.store.points(), 4);
    // Nothing left that a seal could move: no seal is due again.
    assert!(state.store.low().is_none_or(|low| low >= now));
    drop(state);
    let all: Vec<i64> = engine.all(None).iter().map(|p| p.1).collect();
    assert_eq!(
        all,
        [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX]
    );
    assert_eq!(
        engine.range("k", i64::MAX, None),
        vec![(i64::MAX, i64::MAX as f64)]
    );
}

#[test]
fn a_walk_begun_before_the_first_seal_sees_every_point_after_it() {
    let mut engine = Engine::new(storage(0));
    {
        let mut state = engine.state.lock().unwrap();
        for k in 0..3 {
            for t in 0..10 {
                state
                    .store
                    .put(&format!("k{k}"), t, f64::from(k * 10 + t as i32));
            }
        }
    }
    let want = engine.all(None);
    let mut seen = Vec::new();
    let mut walk = {
        let state = engine.state.lock().unwrap();
        let view = View {
            head: &state.store,
            sealed: state.sealed.as_ref(),
            cutoff: None,
            log: None,
        };
        let mut walk = view.walk_start(Selector::All);
        let mut n = 0;
        assert!(!view.walk(&mut walk, |k, t, v| {
            seen.push((k.to_owned(), t, v));
            n += 1;
            n < 5
        }));
        walk
    };
    // The first seal moves every point out of the head between two chunks.
    engine.seal(10 * PARTITION);
    assert_eq!(engine.state.lock().unwrap().store.points(), 0);
    let state = engine.state.lock().unwrap();
    let view = View {
        head: &state.store,
        sealed: state.sealed.as_ref(),
        cutoff: None,
        log: None,
    };
    assert!(view.walk(&mut walk, |k, t, v| {
        seen.push((k.to_owned(), t, v));
        true
    }));
    assert_eq!(seen, want);
}

#[test]
fn a_keys_file_listing_a_key_twice_is_refused() {
    let dir = TestDir::new("keys-twice");
    let blocks = dir.0.join("blocks");
    drop(Sealed::open(&blocks, &mut Store::new()).unwrap());
    let (mut keys, _) = super::keys::KeysFile::open(&blocks.join("keys")).unwrap();
    keys.append(&["a", "b", "a"]).unwrap();
    keys.sync().unwrap();
    drop(keys);
    let Err(error) = Sealed::open(&blocks, &mut Store::new()) else {
        panic!("a key listed twice was accepted");
    };
    assert!(
        error.to_string().contains("key \"a\" is listed twice"),
        "{error}"
    );
}
