//! Writing and reading blocks, names and directory scans. Damage is in
//! `tests_damage`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A fresh directory under the system's temporary one, removed on drop.
pub(crate) struct TestDir(pub(crate) PathBuf);

impl TestDir {
    pub(crate) fn new(name: &str) -> TestDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "engine-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A FIFO at `path`, made by the `mkfifo` tool (the same on Linux and
/// macOS, where rustix has no mkfifo).
pub(crate) fn make_fifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

pub(super) const START: i64 = 1_700_000_000;
pub(super) const LEN: u64 = 7200;

/// Series `id`'s chunk: a few bytes that differ from id to id.
pub(super) fn chunk(id: u64) -> Vec<u8> {
    let len = (id % 13 + 1) as usize;
    (0..len)
        .map(|i| (id as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

/// The entry's count and timestamps as `write` makes them.
pub(super) fn stats(id: u64) -> (u32, i64, i64) {
    let first = START + (id % 100) as i64;
    ((id % 7 + 1) as u32, first, first + (id % 50) as i64)
}

pub(super) fn write(dir: &Path, seq: u64, ids: &[u64]) -> BlockInfo {
    let mut writer = BlockWriter::create(dir, START, LEN, seq).unwrap();
    for &id in ids {
        let (count, first, last) = stats(id);
        writer.add(id, &chunk(id), count, first, last).unwrap();
    }
    writer.finish().unwrap()
}

/// Everything a reader can check: the index walk, and every chunk.
pub(super) fn verify(path: &Path) -> Result<Vec<IndexEntry>, BlockError> {
    let block = Block::open(path)?;
    let entries = block.entries().collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for entry in &entries {
        block.read_chunk(entry, &mut out)?;
    }
    Ok(entries)
}

fn check_round_trip(ids: &[u64]) {
    let dir = TestDir::new("round-trip");
    let info = write(&dir.0, 3, ids);
    let block = Block::open(&info.path).unwrap();
    assert_eq!(block.info(), &info);
    assert_eq!(info.header.series, ids.len() as u64);
    assert_eq!(
        info.header.points,
        ids.iter().map(|&id| u64::from(stats(id).0)).sum::<u64>()
    );
    assert_eq!(info.file_size, fs::metadata(&info.path).unwrap().len());
    let entries = verify(&info.path).unwrap();
    assert_eq!(entries.iter().map(|e| e.series_id).collect::<Vec<_>>(), ids);
    let mut out = Vec::new();
    for (entry, &id) in entries.iter().zip(ids) {
        assert_eq!(block.find(id).unwrap(), Some(*entry));
        block.read_chunk(entry, &mut out).unwrap();
        assert_eq!(out, chunk(id));
        assert_eq!((entry.count, entry.first, entry.last), stats(id));
        // Every id in a gap, and just past the ends, is absent.
        for absent in [id.wrapping_sub(1), id.wrapping_add(1)] {
            if !ids.contains(&absent) {
                assert_eq!(block.find(absent).unwrap(), None, "{absent}");
            }
        }
    }
    for absent in [0, 1, u64::MAX] {
        if !ids.contains(&absent) {
            assert_eq!(block.find(absent).unwrap(), None);
        }
    }
}

#[test]
fn blocks_round_trip_at_page_boundaries() {
    let per_page = ENTRIES_PER_PAGE as u64;
    for n in [
        0,
        1,
        2,
        per_page - 1,
        per_page,
        per_page + 1,
        3 * per_page,
        1000,
    ] {
        let ids: Vec<u64> = (0..n).map(|i| i * 3 + 7).collect();
        check_round_trip(&ids);
    }
}

#[test]
fn uneven_ids_are_found() {
    // Clusters far apart and ids at both ends of u64: interpolation guesses
    // wrong, the bisections must still find everything.
    let mut ids: Vec<u64> = (0..500).collect();
    ids.extend((0..700).map(|i| (1 << 40) | (i * 2)));
    ids.extend((0..300).map(|i| u64::MAX - 300 + i));
    check_round_trip(&ids);
}

#[test]
fn an_empty_block_has_an_empty_time_range() {
    let dir = TestDir::new("empty");
    let info = write(&dir.0, 0, &[]);
    assert_eq!(
        (info.header.min_ts, info.header.max_ts),
        (i64::MAX, i64::MIN)
    );
    assert_eq!(Block::open(&info.path).unwrap().entries().count(), 0);
}

#[test]
fn a_hundred_thousand_series_round_trip() {
    let dir = TestDir::new("many");
    let ids: Vec<u64> = (0..100_000).collect();
    let info = write(&dir.0, 1, &ids);
    let block = Block::open(&info.path).unwrap();
    let mut out = Vec::new();
    for (entry, id) in block.entries().zip(0..) {
        let entry = entry.unwrap();
        assert_eq!(entry.series_id, id);
        if id % 97 == 0 {
            assert_eq!(block.find(id).unwrap(), Some(entry));
            block.read_chunk(&entry, &mut out).unwrap();
            assert_eq!(out, chunk(id));
        }
    }
    assert_eq!(block.find(100_000).unwrap(), None);
}

#[test]
fn series_out_of_order_are_refused_and_the_writer_goes_on() {
    let dir = TestDir::new("order");
    let mut writer = BlockWriter::create(&dir.0, START, LEN, 0).unwrap();
    writer.add(5, b"a", 1, START, START).unwrap();
    for id in [5, 4] {
        let refused = writer.add(id, b"b", 1, START, START).unwrap_err();
        assert!(
            matches!(refused, BlockError::OutOfOrder { previous: 5, series, .. } if series == id)
        );
        assert!(refused.to_string().contains("increasing"), "{refused}");
    }
    writer.add(6, b"c", 1, START, START).unwrap();
    let info = writer.finish().unwrap();
    let ids: Vec<u64> = verify(&info.path)
        .unwrap()
        .iter()
        .map(|e| e.series_id)
        .collect();
    assert_eq!(ids, [5, 6]);
}

#[test]
fn chunks_that_do_not_belong_are_refused() {
    let dir = TestDir::new("bad-chunk");
    let mut writer = BlockWriter::create(&dir.0, START, LEN, 0).unwrap();
    let end = START + LEN as i64;
    for (count, first, last) in [
        (0, START, START),
        (1, START + 2, START + 1),
        (1, START - 1, START),
        (1, START, end),
    ] {
        let refused = writer.add(1, b"x", count, first, last).unwrap_err();
        assert!(
            matches!(refused, BlockError::BadChunk { series: 1, .. }),
            "{refused}"
        );
    }
    writer.add(1, b"x", 1, START, end - 1).unwrap();
}

#[test]
fn impossible_partitions_are_refused() {
    let dir = TestDir::new("partition");
    for (start, len) in [(0, 0), (i64::MAX, 1), (0, u64::MAX)] {
        let refused = BlockWriter::create(&dir.0, start, len, 0).unwrap_err();
        assert!(
            matches!(refused, BlockError::BadPartition { .. }),
            "{refused}"
        );
    }
    assert!(BlockWriter::create(&dir.0, i64::MIN, u64::MAX >> 1, 0).is_ok());
}

#[test]
fn a_dropped_writer_leaves_no_file() {
    let dir = TestDir::new("drop");
    let mut writer = BlockWriter::create(&dir.0, START, LEN, 0).unwrap();
    writer.add(1, &[7; 100_000], 1, START, START).unwrap();
    let scan = scan_dir(&dir.0).unwrap();
    assert_eq!(scan.temporary.len(), 1, "{scan:?}");
    // A second writer of the same block is refused while the first runs.
    assert!(BlockWriter::create(&dir.0, START, LEN, 0).is_err());
    drop(writer);
    assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 0);
}

#[test]
fn finish_never_replaces_a_block() {
    let dir = TestDir::new("replace");
    let info = write(&dir.0, 0, &[1, 2]);
    let before = fs::read(&info.path).unwrap();
    let mut writer = BlockWriter::create(&dir.0, START, LEN, 0).unwrap();
    writer.add(9, b"new", 1, START, START).unwrap();
    let refused = writer.finish().unwrap_err();
    assert!(
        matches!(&refused, BlockError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{refused}"
    );
    assert_eq!(fs::read(&info.path).unwrap(), before);
    let scan = scan_dir(&dir.0).unwrap();
    assert_eq!((scan.blocks.len(), scan.temporary.len()), (1, 0));
}

#[test]
fn names_round_trip_and_sort_as_their_fields() {
    let starts = [i64::MIN, i64::MIN + 1, -3600, -1, 0, 1, START, i64::MAX];
    let mut names = Vec::new();
    for &partition_start in &starts {
        for seq in [0, 1, u64::MAX] {
            let name = BlockName {
                partition_start,
                seq,
            };
            let text = name.file_name();
            assert_eq!(BlockName::parse(&text), Some(name), "{text}");
            let temporary = name.temporary_name();
            assert_eq!(classify(temporary.as_ref()), NameKind::Temporary(name));
            names.push((text, name));
        }
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, names, "names sort as (start, seq)");
    assert_eq!(
        BlockName {
            partition_start: -3600,
            seq: 3
        }
        .file_name(),
        "n9223372036854772208-00000000000000000003.block"
    );
}

#[test]
fn other_names_are_foreign() {
    let good = BlockName {
        partition_start: START,
        seq: 2,
    }
    .file_name();
    assert_eq!(
        classify(good.as_ref()),
        NameKind::Block(BlockName {
            partition_start: START,
            seq: 2
        })
    );
    let bad = [
        "keys",
        "",
        "p0000000001700000000-00000000000000000002",
        "p0000000001700000000-00000000000000000002.block.bak",
        "P0000000001700000000-00000000000000000002.block",
        "p+000000001700000000-00000000000000000002.block",
        "p000000001700000000-00000000000000000002.block",
        "p9999999999999999999-00000000000000000002.block",
        "p0000000001700000000-99999999999999999999.block",
        "p0000000001700000000_00000000000000000002.block",
        "x0000000001700000000-00000000000000000002.block",
    ];
    for name in bad {
        assert_eq!(classify(name.as_ref()), NameKind::Foreign, "{name}");
    }
}

#[test]
fn a_directory_scan_sorts_out_blocks_leftovers_and_strangers() {
    let dir = TestDir::new("scan");
    let newer = write(&dir.0, 2, &[1]);
    let older = write(&dir.0, 1, &[1]);
    let leftover = dir.0.join(
        BlockName {
            partition_start: 0,
            seq: 0,
        }
        .temporary_name(),
    );
    fs::write(&leftover, b"half").unwrap();
    fs::write(dir.0.join("notes.txt"), b"mine").unwrap();
    let impostor = dir.0.join(
        BlockName {
            partition_start: 5,
            seq: 5,
        }
        .file_name(),
    );
    fs::create_dir(&impostor).unwrap();
    let scan = scan_dir(&dir.0).unwrap();
    let blocks: Vec<&PathBuf> = scan.blocks.iter().map(|(_, path)| path).collect();
    assert_eq!(blocks, [&older.path, &newer.path]);
    assert_eq!(scan.temporary, [leftover]);
    assert_eq!(scan.foreign, [dir.0.join("notes.txt"), impostor]);
}
