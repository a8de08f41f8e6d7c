use std::fs;

use super::*;
use crate::server::engine::block::tests::{make_fifo, TestDir};

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// A keys file with `synced` appended and synced, then `unsynced` appended;
/// returns its path and where the unsynced records start.
fn prepared(dir: &TestDir, synced: &[&str], unsynced: &[&str]) -> (PathBuf, usize) {
    let path = dir.0.join("keys");
    let (mut file, loaded) = KeysFile::open(&path).unwrap();
    assert!(loaded.is_empty() && file.is_empty());
    file.append(synced).unwrap();
    file.sync().unwrap();
    let tail = fs::metadata(&path).unwrap().len() as usize;
    file.append(unsynced).unwrap();
    (path, tail)
}

#[test]
fn keys_round_trip_in_order() {
    let dir = TestDir::new("keys");
    let (path, _) = prepared(&dir, &["a.cpu", "b.mem", "ünïcode.ok"], &["d.unsynced"]);
    let (mut file, loaded) = KeysFile::open(&path).unwrap();
    assert_eq!(
        loaded,
        keys(&["a.cpu", "b.mem", "ünïcode.ok", "d.unsynced"])
    );
    assert_eq!((file.len(), file.torn()), (4, None));
    file.append(&["e"]).unwrap();
    file.sync().unwrap();
    let long = "k".repeat(MAX_KEY_BYTES);
    file.append(&[&long]).unwrap();
    file.sync().unwrap();
    file.sync().unwrap(); // nothing new: no second marker
    drop(file);
    let (file, loaded) = KeysFile::open(&path).unwrap();
    assert_eq!(loaded.len(), 6);
    assert_eq!(loaded[5], long);
    assert_eq!(file.len(), 6);
}

#[test]
fn a_torn_tail_is_returned_and_cut_before_the_next_append() {
    let dir = TestDir::new("torn");
    let (path, tail) = prepared(&dir, &["a", "b"], &["ccc", "dddd"]);
    let whole = fs::read(&path).unwrap();
    // Cut inside the last record at every length; or the unsynced records
    // zeroed (a file system that kept the length but not the data).
    let last = whole.len() - (4 + 4 + 4);
    let mut cases: Vec<(Vec<u8>, usize, &[&str])> = (last + 1..whole.len())
        .map(|len| (whole[..len].to_vec(), last, &["a", "b", "ccc"][..]))
        .collect();
    let zeroed = [&whole[..tail], &vec![0; whole.len() - tail][..]].concat();
    cases.push((zeroed, tail, &["a", "b"]));
    for (bytes, cut_at, want) in cases {
        fs::write(&path, &bytes).unwrap();
        let (mut file, loaded) = KeysFile::open(&path).unwrap();
        assert_eq!(loaded, keys(want), "{} bytes", bytes.len());
        let torn = file.torn().unwrap();
        assert_eq!(
            (torn.offset as usize, &torn.bytes[..]),
            (cut_at, &bytes[cut_at..])
        );
        // Opening changed nothing; appending cuts the tail first.
        assert_eq!(fs::read(&path).unwrap(), bytes);
        file.append(&["new"]).unwrap();
        file.sync().unwrap();
        let (file, loaded) = KeysFile::open(&path).unwrap();
        assert_eq!(loaded.last().map(String::as_str), Some("new"));
        assert_eq!((loaded.len(), file.torn()), (want.len() + 1, None));
    }
}

#[test]
fn unsynced_records_after_a_damaged_one_are_cut_with_it() {
    let dir = TestDir::new("unsynced");
    let (path, tail) = prepared(&dir, &["a"], &["bb", "cc", "dd"]);
    let mut bytes = fs::read(&path).unwrap();
    bytes[tail + 3] ^= 1; // "bb"
    fs::write(&path, &bytes).unwrap();
    let (file, loaded) = KeysFile::open(&path).unwrap();
    assert_eq!(loaded, keys(&["a"]));
    assert_eq!(file.torn().unwrap().offset as usize, tail);
}

#[test]
fn damage_before_a_sync_marker_is_corrupt() {
    let dir = TestDir::new("middle");
    let (path, tail) = prepared(&dir, &["first", "second"], &[]);
    let good = fs::read(&path).unwrap();
    // Every byte of every synced record.
    for at in HEADER_LEN..tail - MARKER_LEN {
        let mut bytes = good.clone();
        bytes[at] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        match KeysFile::open(&path) {
            Err(KeysError::Corrupt { what, .. }) => assert!(what.contains("offset"), "{what}"),
            Ok((_, loaded)) => panic!("flip at {at} loaded {loaded:?}"),
            Err(other) => panic!("flip at {at}: {other}"),
        }
        assert_eq!(fs::read(&path).unwrap(), bytes, "left as it was");
    }
    // A damaged last marker is a torn sync: the keys before it all check.
    let mut bytes = good.clone();
    bytes[tail - 5] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let (file, loaded) = KeysFile::open(&path).unwrap();
    assert_eq!(loaded, keys(&["first", "second"]));
    assert_eq!(file.torn().unwrap().offset as usize, tail - MARKER_LEN);
}

#[test]
fn a_marker_with_the_wrong_count_is_corrupt() {
    let mut bytes = header().to_vec();
    push_record(&mut bytes, "a");
    bytes.extend_from_slice(&marker(2));
    let error = parse(&bytes).unwrap_err();
    assert!(
        matches!(&error, Defect::Corrupt(what) if what.contains("follows 2 keys")),
        "{error:?}"
    );
}

#[test]
fn foreign_short_and_future_files_are_refused_untouched() {
    let dir = TestDir::new("foreign-keys");
    let path = dir.0.join("keys");
    let kind = |error: &KeysError| match error {
        KeysError::Foreign { .. } => "foreign",
        KeysError::Corrupt { .. } => "corrupt",
        KeysError::Version { found: 2, .. } => "version 2",
        _ => "other",
    };
    let cases: [(&[u8], &str); 4] = [
        (b"{\"keys\": []}\n", "foreign"),
        (b"", "corrupt"),
        (&MAGIC[..5], "corrupt"),
        (b"MCKEYS\0\0\x02\0\0\0\0\0\0\0", "version 2"),
    ];
    for (content, expected) in cases {
        fs::write(&path, content).unwrap();
        let error = KeysFile::open(&path).unwrap_err();
        assert_eq!(kind(&error), expected, "{content:?}: {error}");
        assert!(error.to_string().contains(&path.display().to_string()));
        assert_eq!(fs::read(&path).unwrap(), content);
    }
}

#[test]
fn bad_keys_are_refused_and_nothing_is_written() {
    let dir = TestDir::new("bad-keys");
    let (path, _) = prepared(&dir, &["a"], &[]);
    let before = fs::read(&path).unwrap();
    let (mut file, _) = KeysFile::open(&path).unwrap();
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    for bad in ["", "with space", "tab\t", "*", "nul\0", &long] {
        let error = file.append(&["fine", bad]).unwrap_err();
        assert!(
            matches!(error, KeysError::BadKey { .. }),
            "{bad:?}: {error}"
        );
    }
    assert_eq!((file.len(), fs::read(&path).unwrap()), (1, before));
}

#[test]
fn a_directory_or_fifo_is_foreign_and_the_open_does_not_hang() {
    let dir = TestDir::new("keys-not-regular");
    let fifo = dir.0.join("keys");
    make_fifo(&fifo);
    for path in [dir.0.clone(), fifo] {
        let refused = KeysFile::open(&path).unwrap_err();
        assert!(matches!(refused, KeysError::Foreign { .. }), "{refused}");
        assert!(refused.to_string().contains("regular file"), "{refused}");
    }
}

/// Opening past a stamp reads only the records after it, and agrees with
/// a whole read about them, a torn tail included.
#[test]
fn opening_after_a_stamp_reads_only_the_records_past_it() {
    let dir = TestDir::new("keys-after");
    let (path, _) = prepared(&dir, &["a", "b"], &[]);
    let (file, _) = KeysFile::open(&path).unwrap();
    let stamp = file.stamp().unwrap();
    let empty = TestDir::new("keys-after-empty");
    let (fresh, _) = KeysFile::open(&empty.0.join("keys")).unwrap();
    let fresh_stamp = fresh.stamp().unwrap();
    drop((file, fresh));
    let (mut file, none, _) = KeysFile::open_after(&path, &stamp).unwrap().unwrap();
    assert_eq!((none.len(), file.len(), file.torn()), (0, 2, None));
    file.append(&["c", "dd"]).unwrap();
    file.sync().unwrap();
    file.append(&["eee"]).unwrap();
    drop(file);
    let (_, all, offsets) = KeysFile::open_with_offsets(&path).unwrap();
    let (file, after, after_offsets) = KeysFile::open_after(&path, &stamp).unwrap().unwrap();
    assert_eq!(all, keys(&["a", "b", "c", "dd", "eee"]));
    assert_eq!((&after[..], &after_offsets[..]), (&all[2..], &offsets[2..]));
    assert_eq!((file.len(), file.torn()), (5, None));
    let whole = fs::read(&path).unwrap();
    drop(file);
    // From the empty file's stamp (the header alone) too.
    let (_, from_start, _) = KeysFile::open_after(&path, &fresh_stamp).unwrap().unwrap();
    assert_eq!(from_start, all);
    // A torn last record: cut, as a whole read cuts it.
    fs::write(&path, &whole[..whole.len() - 2]).unwrap();
    let (file, after, _) = KeysFile::open_after(&path, &stamp).unwrap().unwrap();
    let (whole_file, _) = KeysFile::open(&path).unwrap();
    assert_eq!(after, keys(&["c", "dd"]));
    assert_eq!(file.torn(), whole_file.torn());
    assert!(file.torn().is_some());
    drop((file, whole_file));
    // Damage after the stamp with a marker after it: corrupt.
    let mut damaged = whole.clone();
    damaged[stamp.end as usize + 4] ^= 1;
    fs::write(&path, &damaged).unwrap();
    assert!(matches!(
        KeysFile::open_after(&path, &stamp),
        Err(KeysError::Corrupt { .. })
    ));
    // Another file (its last covered bytes differ), or shorter: not opened.
    let mut other = whole.clone();
    other[stamp.end as usize - 1] ^= 1;
    fs::write(&path, &other).unwrap();
    assert!(KeysFile::open_after(&path, &stamp).unwrap().is_none());
    fs::write(&path, &whole[..stamp.end as usize - 1]).unwrap();
    assert!(KeysFile::open_after(&path, &stamp).unwrap().is_none());
}

/// Keys opened past a stamp and then synced again are all there for a
/// whole read: the sync marker counts every key, covered or not.
#[test]
fn keys_appended_after_opening_past_a_stamp_are_numbered_on() {
    let dir = TestDir::new("keys-after-append");
    let (path, _) = prepared(&dir, &["a"], &["b"]);
    let (file, _) = KeysFile::open(&path).unwrap();
    let stamp = file.stamp().unwrap();
    drop(file);
    let (mut file, after, _) = KeysFile::open_after(&path, &stamp).unwrap().unwrap();
    assert!(after.is_empty());
    let offsets = file.append(&["c"]).unwrap();
    file.sync().unwrap();
    assert_eq!(file.key_at(offsets[0]).unwrap(), "c");
    drop(file);
    let (file, all) = KeysFile::open(&path).unwrap();
    assert_eq!(all, keys(&["a", "b", "c"]));
    assert_eq!(file.len(), 3);
}
