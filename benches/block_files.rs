//! Block files with 1 million series: writing one, opening it, lookups per
//! second (dense ids, as the keys file hands them out, and ids spread over
//! all of u64, where the index's interpolation search guesses badly), a
//! walk over the whole index, chunk reads, and what the index costs a
//! series on disk. Also the process's resident memory before and after
//! the lookups, which must not grow: the index stays on disk.
//!
//! `cargo bench --bench block_files [-- SERIES]`

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use metrics_client::server::engine::block::{Block, BlockWriter};

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const CHUNK: [u8; 16] = [7; 16];
const START: i64 = 1_700_000_000;

/// Resident memory in KiB (Linux), or 0 where /proc is not there.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn run(dir: &Path, name: &str, ids: &[u64], seq: u64) {
    let started = Instant::now();
    let mut writer = BlockWriter::create(dir, START, 7200, seq).unwrap();
    for &id in ids {
        writer.add(id, &CHUNK, 4, START, START + 60).unwrap();
    }
    let info = writer.finish().unwrap();
    let written = started.elapsed();
    let series = ids.len() as u64;
    let overhead = (info.file_size - 96 - series * CHUNK.len() as u64) as f64 / series as f64;
    println!(
        "{name}: {series} series written in {:.2} s, {} bytes; index, padding and footer: \
         {overhead:.3} bytes a series",
        written.as_secs_f64(),
        info.file_size
    );

    let started = Instant::now();
    let block = Block::open(&info.path).unwrap();
    println!("  open: {:.1} µs", started.elapsed().as_secs_f64() * 1e6);

    let before = rss_kib();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let lookups = 1_000_000;
    let started = Instant::now();
    for _ in 0..lookups {
        let id = ids[(rng.next() % series) as usize];
        black_box(block.find(id).unwrap().unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "  find (present, random order): {:.0} lookups/s ({:.2} µs each)",
        lookups as f64 / seconds,
        seconds / lookups as f64 * 1e6
    );
    let started = Instant::now();
    for _ in 0..lookups {
        black_box(block.find(rng.next()).unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "  find (random u64, mostly absent): {:.0} lookups/s",
        lookups as f64 / seconds
    );
    println!(
        "  resident memory: {before} KiB before the lookups, {} KiB after",
        rss_kib()
    );

    let started = Instant::now();
    let walked = block
        .entries()
        .try_fold(0, |walked, entry| entry.map(|_| walked + 1))
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "  entries: {walked} in {:.1} ms ({:.0} entries/s)",
        seconds * 1e3,
        walked as f64 / seconds
    );

    let started = Instant::now();
    let mut out = Vec::new();
    for entry in block.entries() {
        block.read_chunk(&entry.unwrap(), &mut out).unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "  entries and read_chunk: {:.0} chunks/s",
        walked as f64 / seconds
    );
}

fn main() {
    let series: u64 = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map_or(1_000_000, |arg| arg.parse().expect("SERIES is a number"));
    let dir = std::env::temp_dir().join(format!("block-files-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dense: Vec<u64> = (0..series).collect();
    run(&dir, "dense ids", &dense, 0);
    let mut rng = Rng(42);
    let mut spread: Vec<u64> = (0..series).map(|_| rng.next()).collect();
    spread.sort_unstable();
    spread.dedup();
    run(&dir, "ids spread over u64", &spread, 1);
    // Ids in clusters far apart: interpolation misleads, bisection rescues.
    let clustered: Vec<u64> = (0..series)
        .map(|i| ((i % 4) << 60) | ((i / 4) * 3))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    run(&dir, "clustered ids", &clustered, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
