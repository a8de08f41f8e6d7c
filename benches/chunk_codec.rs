//! The chunk codec on three shapes of 20,000 points at 10 s steps: a
//! gauge (random walk with one decimal), a counter (rising by 1 to 5) and
//! random bits. Prints bytes per point and points per second encoded and
//! decoded (best of the rounds), for a narrow range decoded from a whole
//! chunk, and for the chunk decoded and written as the lines of a `get`
//! reply (what a `get` of a sealed series costs but for the socket).
//!
//! `cargo bench --bench chunk_codec [-- ROUNDS]`

use std::hint::black_box;
use std::time::{Duration, Instant};

use metrics_client::protocol::push_point;
use metrics_client::server::engine::chunk;

const POINTS: usize = 20_000;

/// splitmix64: a fixed sequence, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// About standard normal: the sum of 12 uniforms, less 6.
    fn normal(&mut self) -> f64 {
        (0..12)
            .map(|_| (self.next() >> 11) as f64 / (1u64 << 53) as f64)
            .sum::<f64>()
            - 6.0
    }
}

fn shape(name: &str, rng: &mut Rng) -> Vec<(i64, f64)> {
    let mut v = 50.0f64;
    (0..POINTS as i64)
        .map(|i| {
            let value = match name {
                "gauge" => {
                    v = ((v + rng.normal() * 0.5) * 10.0).round() / 10.0;
                    v
                }
                "counter" => {
                    v += (1 + rng.next() % 5) as f64;
                    v
                }
                _ => f64::from_bits(rng.next()),
            };
            (1_700_000_000_000 + i * 10_000, value)
        })
        .collect()
}

/// The fastest of `rounds` runs of `work`.
fn best(rounds: usize, mut work: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let rounds = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(20);
    let mut rng = Rng(1);
    let per_second = |points: usize, took: Duration| points as f64 / took.as_secs_f64() / 1e6;
    println!("{POINTS} points per chunk, best of {rounds} rounds");
    for name in ["gauge", "counter", "random bits"] {
        let points = shape(name, &mut rng);
        let mut bytes = Vec::new();
        chunk::encode(&points, &mut bytes).unwrap();
        let encode = best(rounds, || {
            let mut out = Vec::with_capacity(bytes.len());
            chunk::encode(black_box(&points), &mut out).unwrap();
            black_box(out);
        });
        let mut out = Vec::with_capacity(POINTS);
        let decode = best(rounds, || {
            out.clear();
            chunk::decode(black_box(&bytes), &mut out).unwrap();
        });
        assert_eq!(out.len(), POINTS);
        // One segment's worth from the middle of the chunk.
        let from = points[POINTS / 2].0;
        let range = best(rounds, || {
            out.clear();
            chunk::decode_range(black_box(&bytes), from, from + 600_000, &mut out).unwrap();
        });
        let mut text = Vec::with_capacity(POINTS * 64);
        let lines = best(rounds, || {
            out.clear();
            text.clear();
            chunk::decode(black_box(&bytes), &mut out).unwrap();
            for &(ts, value) in &out {
                push_point(&mut text, "srv500.cpu", value, ts);
            }
            black_box(&text);
        });
        println!(
            "{name:>12}: {:.3} bytes/point, encode {:.1} M points/s, decode {:.1} M points/s, \
             60-point range {:.1} µs, get lines {:.1} M points/s",
            bytes.len() as f64 / POINTS as f64,
            per_second(POINTS, encode),
            per_second(POINTS, decode),
            range.as_secs_f64() * 1e6,
            per_second(POINTS, lines),
        );
    }
}
