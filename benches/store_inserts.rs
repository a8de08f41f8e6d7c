//! Inserts per second into the server's in-memory store, in the shapes a
//! journal replay produces: many keys with a few points each, one long
//! series in time order, and points arriving out of order.
//!
//! `cargo bench --bench store_inserts` (release build; figures vary with
//! the machine's load, so compare runs made side by side).

use std::hint::black_box;
use std::time::Instant;

use metrics_client::server::Store;

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

fn measure(name: &str, points: usize, fill: impl FnOnce(&mut Store)) {
    let mut store = Store::new();
    let start = Instant::now();
    fill(&mut store);
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{name:<44} {:>6.2} M inserts/s  ({points} puts, {} keys, {} points, {:.2} s)",
        points as f64 / seconds / 1e6,
        store.keys(),
        store.points(),
        seconds
    );
    black_box(&store);
}

fn main() {
    let keys: Vec<String> = (0..1_000_000).map(|i| format!("host{i}.cpu")).collect();
    measure("1M keys x 4 points, time order", 4_000_000, |store| {
        for ts in 0..4 {
            for key in &keys {
                store.put(key, 1_700_000_000 + ts, ts as f64);
            }
        }
    });
    measure("100 keys x 40,000 points, time order", 4_000_000, |store| {
        for ts in 0..40_000 {
            for key in &keys[..100] {
                store.put(key, 1_700_000_000 + ts, 0.5);
            }
        }
    });
    measure("1 key x 4M points, time order", 4_000_000, |store| {
        for ts in 0..4_000_000 {
            store.put("one", ts, 0.5);
        }
    });
    measure("1,000 keys x 4,000 points, random order", 4_000_000, |store| {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..4_000_000 {
            let r = rng.next();
            let key = &keys[(r % 1000) as usize];
            store.put(key, (r >> 20) as i64 % 1_000_000, 1.0);
        }
    });
}
