//! Inserts per second into the server's in-memory store, in the shapes a
//! journal replay produces (many keys with a few points each, long series
//! in time order, points out of order), side by side with the design it
//! replaced (a hash map from key to slot and a `BTreeMap` per key), which
//! is rebuilt here as the reference. The two take turns, round by round;
//! each figure is a median over the rounds.
//!
//! `cargo bench --bench store_inserts [-- ROUNDS]`

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::Instant;

use metrics_client::server::Store;

/// The previous store: each key twice (index and series), a B-tree per key.
#[derive(Default)]
struct Reference {
    index: HashMap<Box<str>, usize>,
    series: Vec<(Box<str>, BTreeMap<i64, f64>)>,
}

impl Reference {
    fn put(&mut self, key: &str, timestamp: i64, value: f64) -> bool {
        let slot = match self.index.get(key) {
            Some(&slot) => slot,
            None => {
                self.series.push((key.into(), BTreeMap::new()));
                self.index.insert(key.into(), self.series.len() - 1);
                self.series.len() - 1
            }
        };
        self.series[slot].1.insert(timestamp, value).is_none()
    }
}

/// A small deterministic generator (xorshift), so every run inserts the
/// same points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const PUTS: usize = 4_000_000;

/// Feeds one shape's puts to `put`.
fn shape(which: usize, keys: &[String], mut put: impl FnMut(&str, i64, f64)) {
    match which {
        0 => {
            for ts in 0..4 {
                for key in &keys[..PUTS / 4] {
                    put(key, 1_700_000_000 + ts, ts as f64);
                }
            }
        }
        1 => {
            for ts in 0..(PUTS / 100) as i64 {
                for key in &keys[..100] {
                    put(key, 1_700_000_000 + ts, 0.5);
                }
            }
        }
        2 => {
            for ts in 0..PUTS as i64 {
                put("one", ts, 0.5);
            }
        }
        _ => {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            for _ in 0..PUTS {
                let r = rng.next();
                put(
                    &keys[(r % 1000) as usize],
                    (r >> 20) as i64 % 1_000_000,
                    1.0,
                );
            }
        }
    }
}

const SHAPES: [&str; 4] = [
    "1M keys x 4 points, time order",
    "100 keys x 40,000 points, time order",
    "1 key x 4M points, time order",
    "1,000 keys x 4,000 points, random order",
];

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let keys: Vec<String> = (0..PUTS / 4).map(|i| format!("host{i}.cpu")).collect();
    println!(
        "{:<42} {:>12} {:>12} {:>7}",
        "shape (4M puts)", "store M/s", "before M/s", "ratio"
    );
    for (which, name) in SHAPES.iter().enumerate() {
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let time_store = || {
                let mut store = Store::new();
                let start = Instant::now();
                shape(which, &keys, |k, t, v| {
                    store.put(k, t, v);
                });
                let rate = PUTS as f64 / start.elapsed().as_secs_f64() / 1e6;
                black_box(&store);
                rate
            };
            let time_reference = || {
                let mut reference = Reference::default();
                let start = Instant::now();
                shape(which, &keys, |k, t, v| {
                    reference.put(k, t, v);
                });
                let rate = PUTS as f64 / start.elapsed().as_secs_f64() / 1e6;
                black_box(&reference);
                rate
            };
            // Alternate which goes first.
            let (a, b) = if round % 2 == 0 {
                let a = time_store();
                (a, time_reference())
            } else {
                let b = time_reference();
                (time_store(), b)
            };
            ours.push(a);
            theirs.push(b);
            ratios.push(a / b);
        }
        println!(
            "{name:<42} {:>12.2} {:>12.2} {:>6.2}x",
            median(ours),
            median(theirs),
            median(ratios)
        );
    }
}
