//! Damaged, cut and foreign files: every one is told apart, none panics.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::format::{align_up, FOOTER_LEN, HEADER_LEN};
use super::tests::{make_fifo, verify, write, TestDir};
use super::*;

/// A small block over two index pages, and where its padding lies.
fn small_block(dir: &Path) -> (BlockInfo, std::ops::Range<usize>) {
    let ids: Vec<u64> = (0..ENTRIES_PER_PAGE as u64 + 3).map(|i| i * 2).collect();
    let info = write(dir, 0, &ids);
    let chunks: usize = ids.iter().map(|&id| super::tests::chunk(id).len()).sum();
    let chunks_end = HEADER_LEN + chunks;
    (info, chunks_end..align_up(chunks_end as u64) as usize)
}

#[test]
fn every_flipped_byte_is_caught_except_in_the_padding() {
    let dir = TestDir::new("flip");
    let (info, padding) = small_block(&dir.0);
    let good = fs::read(&info.path).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&info.path).unwrap();
    // Inside the padding, only its ends: the rest is more of the same.
    let skipped = padding.start + 1..padding.end - 1;
    for at in (0..good.len()).filter(|at| !skipped.contains(at)) {
        file.write_all_at(&[good[at] ^ 0x20], at as u64).unwrap();
        let outcome = verify(&info.path);
        file.write_all_at(&good[at..=at], at as u64).unwrap();
        match outcome {
            Err(BlockError::Foreign { .. }) => assert!(at < 8, "{at}"),
            Err(BlockError::Version { .. }) => assert!((8..12).contains(&at), "{at}"),
            Err(BlockError::Corrupt { what, .. }) => assert!(at >= 12, "{at}: {what}"),
            Ok(_) => assert!(padding.contains(&at), "flip at {at} not caught"),
            Err(other) => panic!("flip at {at}: {other}"),
        }
    }
}

#[test]
fn a_flipped_chunk_byte_fails_that_chunk_only() {
    let dir = TestDir::new("chunk");
    let (info, _) = small_block(&dir.0);
    let mut bytes = fs::read(&info.path).unwrap();
    bytes[HEADER_LEN] ^= 1; // the first chunk, series 0's
    fs::write(&info.path, &bytes).unwrap();
    let block = Block::open(&info.path).unwrap();
    let (first, second) = (
        block.find(0).unwrap().unwrap(),
        block.find(2).unwrap().unwrap(),
    );
    let mut out = Vec::new();
    let error = block.read_chunk(&first, &mut out).unwrap_err();
    assert!(
        matches!(&error, BlockError::Corrupt { what, .. } if what.contains("series 0")),
        "{error}"
    );
    assert!(error.to_string().contains(&info.path.display().to_string()));
    block.read_chunk(&second, &mut out).unwrap();
}

#[test]
fn a_damaged_index_page_fails_the_lookups_that_read_it() {
    let dir = TestDir::new("page");
    let (info, _) = small_block(&dir.0);
    let block = Block::open(&info.path).unwrap();
    let index = block.footer.index_offset as usize;
    drop(block);
    let mut bytes = fs::read(&info.path).unwrap();
    // The point count of the second page's first entry: only the page's
    // CRC can tell.
    bytes[index + PAGE_LEN + 20] ^= 1;
    fs::write(&info.path, &bytes).unwrap();
    let block = Block::open(&info.path).unwrap();
    assert!(block.find(0).unwrap().is_some());
    let second_page = 2 * ENTRIES_PER_PAGE as u64;
    let error = block.find(second_page).unwrap_err();
    assert!(
        matches!(&error, BlockError::Corrupt { what, .. } if what.contains("index page 1")),
        "{error}"
    );
    let walked: Vec<_> = block.entries().collect();
    assert_eq!(
        walked.len(),
        ENTRIES_PER_PAGE + 1,
        "a page of entries, then the error"
    );
    assert!(walked.last().unwrap().is_err());
}

#[test]
fn a_file_cut_at_any_length_is_corrupt() {
    let dir = TestDir::new("cut");
    let (info, _) = small_block(&dir.0);
    let good = fs::read(&info.path).unwrap();
    let cut = dir.0.join("cut.block");
    fs::write(&cut, &good).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&cut).unwrap();
    for len in (0..good.len()).rev() {
        file.set_len(len as u64).unwrap();
        match Block::open(&cut) {
            Err(BlockError::Corrupt { .. } | BlockError::Io { .. }) => {}
            other => panic!("cut at {len}: {other:?}"),
        }
    }
    // Bytes added before the footer: the footer checks, the layout not.
    let footer = good.len() - FOOTER_LEN;
    let longer = [&good[..footer], &[0; 100], &good[footer..]].concat();
    fs::write(&cut, &longer).unwrap();
    let refused = Block::open(&cut).unwrap_err();
    assert!(
        matches!(&refused, BlockError::Corrupt { what, .. } if what.contains("layout")),
        "{refused}"
    );
}

#[test]
fn a_foreign_file_is_refused_untouched() {
    let dir = TestDir::new("foreign");
    let path = dir.0.join(
        BlockName {
            partition_start: 0,
            seq: 0,
        }
        .file_name(),
    );
    let content = b"#!/bin/sh\necho this is somebody's script, named like a block\n".repeat(200);
    fs::write(&path, &content).unwrap();
    let modified = fs::metadata(&path).unwrap().modified().unwrap();
    let refused = Block::open(&path).unwrap_err();
    assert!(matches!(refused, BlockError::Foreign { .. }), "{refused}");
    assert!(refused.to_string().contains("left untouched"));
    assert_eq!(fs::read(&path).unwrap(), content);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), modified);
}

#[test]
fn a_block_renamed_to_another_blocks_name_is_corrupt() {
    let dir = TestDir::new("renamed");
    let info = write(&dir.0, 4, &[1]);
    let other = dir.0.join(
        BlockName {
            partition_start: super::tests::START,
            seq: 5,
        }
        .file_name(),
    );
    fs::rename(&info.path, &other).unwrap();
    let refused = Block::open(&other).unwrap_err();
    assert!(
        matches!(&refused, BlockError::Corrupt { what, .. } if what.contains("seq 5")),
        "{refused}"
    );
    // Under a name that is no block's, the header alone says what it is.
    let plain = dir.0.join("copy");
    fs::rename(&other, &plain).unwrap();
    assert_eq!(Block::open(&plain).unwrap().info().header.seq, 4);
}

#[test]
fn another_version_is_told_apart() {
    let dir = TestDir::new("version");
    let info = write(&dir.0, 0, &[1]);
    let mut bytes = fs::read(&info.path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    fs::write(&info.path, &bytes).unwrap();
    let refused = Block::open(&info.path).unwrap_err();
    assert!(
        matches!(refused, BlockError::Version { found: 2, .. }),
        "{refused}"
    );
}

#[test]
fn a_directory_or_fifo_is_foreign_and_the_open_does_not_hang() {
    let dir = TestDir::new("not-regular");
    let directory = dir.0.join(
        BlockName {
            partition_start: 0,
            seq: 0,
        }
        .file_name(),
    );
    fs::create_dir(&directory).unwrap();
    let fifo = dir.0.join(
        BlockName {
            partition_start: 0,
            seq: 1,
        }
        .file_name(),
    );
    make_fifo(&fifo);
    for path in [directory, fifo] {
        let refused = Block::open(&path).unwrap_err();
        assert!(matches!(refused, BlockError::Foreign { .. }), "{refused}");
    }
}
