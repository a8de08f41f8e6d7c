//! Inserts per second into the server's in-memory store, in the shapes a
//! journal replay produces (many keys with a few points each, long series
//! in time order, points out of order), side by side with the design it
//! replaced (a hash map from key to slot and a `BTreeMap` per key), which
//! is rebuilt here as the reference. The two take turns, round by round;
//! each figure is a median over the rounds.
//!
//! Then the pauses of growth: the slowest batch of 512 puts (what a
//! connection applies under one lock) while the store grows to 10 million
//! keys, and while one key grows to 10 million points, for both designs.
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

/// CPU time of this thread in seconds: unlike the wall clock, it does not
/// count the time other processes of a busy machine run instead.
fn cpu_time() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

/// The slowest batch of 512 puts in `total` puts, in milliseconds of CPU
/// time.
fn slowest_batch(total: usize, mut put: impl FnMut(usize)) -> f64 {
    let mut slowest = 0f64;
    for start in (0..total).step_by(512) {
        let t = cpu_time();
        for i in start..(start + 512).min(total) {
            put(i);
        }
        slowest = slowest.max(cpu_time() - t);
    }
    slowest * 1e3
}

/// One pause measurement, run in a process of its own so that one
/// measurement's freeing of millions of blocks (which glibc consolidates
/// on a later allocation) does not land in the next one's figure.
fn pause(what: &str) -> f64 {
    const GROW: usize = 10_000_000;
    match what {
        "keys-store" => {
            let mut store = Store::new();
            slowest_batch(GROW, |i| {
                store.put(&format!("grow.{i}"), 1, 1.0);
            })
        }
        "keys-before" => {
            let mut reference = Reference::default();
            slowest_batch(GROW, |i| {
                reference.put(&format!("grow.{i}"), 1, 1.0);
            })
        }
        "points-store" => {
            let mut store = Store::new();
            slowest_batch(GROW, |i| {
                store.put("series", i as i64, 1.0);
            })
        }
        _ => {
            let mut reference = Reference::default();
            slowest_batch(GROW, |i| {
                reference.put("series", i as i64, 1.0);
            })
        }
    }
}

fn growth_pauses() {
    println!("\nslowest batch of 512 puts while growing (CPU ms)  store   before");
    let run = |what: &str| -> f64 {
        let me = std::env::current_exe().expect("the bench's own path");
        let out = std::process::Command::new(me)
            .args(["pause", what])
            .output()
            .expect("the bench runs itself");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(f64::NAN)
    };
    for (name, shape) in [
        ("to 10M keys, one point each", "keys"),
        ("one key to 10M points", "points"),
    ] {
        let ours = run(&format!("{shape}-store"));
        let theirs = run(&format!("{shape}-before"));
        println!("{name:<48} {ours:>7.1} {theirs:>8.1}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("pause") {
        println!("{}", pause(args.get(2).map_or("", String::as_str)));
        return;
    }
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let keys: Vec<String> = (0..PUTS / 4).map(|i| format!("host{i}.cpu")).collect();
    println!(
        "{:<42} {:>12} {:>12} {:>7}",
        "shape (4M puts)", "store M/s", "before M/s", "ratio"
    );
    // `-- 0` skips the rates and only measures the pauses.
    for (which, name) in SHAPES.iter().enumerate().filter(|_| rounds > 0) {
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
    growth_pauses();
}
