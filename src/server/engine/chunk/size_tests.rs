//! Bytes per point on the shapes the codec is designed for. These are
//! deterministic byte counts of fixed inputs (a seeded generator), so they
//! fail only when the design stops compressing as it should.

use super::*;

/// xorshift64*, so the shapes are the same on every run and machine.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

const POINTS: usize = 20_000;
/// 2023-11-14 in milliseconds, a scrape every 10 s.
const START: i64 = 1_700_000_000_000;
const STEP: i64 = 10_000;

fn series(mut value: impl FnMut(usize) -> f64) -> Vec<(i64, f64)> {
    (0..POINTS)
        .map(|i| (START + i as i64 * STEP, value(i)))
        .collect()
}

/// A gauge: a random walk with one decimal, from 50.0.
pub(super) fn random_walk() -> Vec<(i64, f64)> {
    let mut rng = Rng(42);
    let mut v = 50.0f64;
    series(|_| {
        let now = v;
        v = ((v + rng.normal() * 0.5) * 10.0).round() / 10.0;
        now
    })
}

/// A counter rising by 1 to 5 each scrape.
pub(super) fn counter() -> Vec<(i64, f64)> {
    let mut rng = Rng(7);
    let mut v = 0.0f64;
    series(|_| {
        v += (1 + rng.next() % 5) as f64;
        v
    })
}

/// Values of random bits (NaNs and infinities included).
pub(super) fn random_bits() -> Vec<(i64, f64)> {
    let mut rng = Rng(99);
    series(|_| f64::from_bits(rng.next()))
}

/// Encodes `points`, checks they come back, returns bytes per point.
fn bytes_per_point(name: &str, points: &[(i64, f64)]) -> f64 {
    let mut bytes = Vec::new();
    encode(points, &mut bytes).unwrap();
    let mut back = Vec::new();
    decode(&bytes, &mut back).unwrap();
    let bits = |p: &[(i64, f64)]| p.iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(points));
    let per_point = bytes.len() as f64 / points.len() as f64;
    println!("{name}: {} bytes, {per_point:.3} bytes/point", bytes.len());
    per_point
}

#[test]
fn a_random_walk_with_one_decimal_takes_under_a_byte_a_point() {
    // VictoriaMetrics stores this shape in 0.98 bytes/point on disk.
    assert!(bytes_per_point("random walk", &random_walk()) <= 1.0);
}

#[test]
fn a_counter_takes_under_half_a_byte_a_point() {
    assert!(bytes_per_point("counter", &counter()) <= 0.5);
}

#[test]
fn random_bits_cost_little_more_than_themselves() {
    // 8 bytes raw and a few header bytes per segment (Gorilla's XOR alone
    // would take 8.27).
    assert!(bytes_per_point("random bits", &random_bits()) <= 8.05);
}

#[test]
fn a_single_point_takes_at_most_24_bytes() {
    for point in [
        (START, 50.0),
        (i64::MIN, f64::from_bits(0x7ff8_dead_beef_0001)),
        (i64::MAX, -0.0),
    ] {
        let mut bytes = Vec::new();
        encode(&[point], &mut bytes).unwrap();
        println!("single point {point:?}: {} bytes", bytes.len());
        assert!(bytes.len() <= 24);
    }
}

#[test]
fn a_regular_series_costs_no_bits_per_timestamp() {
    let constant = series(|_| 1.0);
    let mut bytes = Vec::new();
    encode(&constant, &mut bytes).unwrap();
    // Headers only: about a dozen bytes per segment of 1024 points.
    let segments = POINTS.div_ceil(SEGMENT_POINTS);
    println!("constant: {} bytes for {segments} segments", bytes.len());
    assert!(bytes.len() <= 16 * segments + 16);
}
