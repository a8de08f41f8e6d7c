use std::fs;

use super::*;
use crate::server::engine::block::tests::TestDir;
use crate::server::engine::keys::KeysFile;

/// A keys file holding `names`, and the offsets of their records.
fn keys_file(dir: &TestDir, names: &[String]) -> (KeysFile, Vec<u64>) {
    let (mut file, _) = KeysFile::open(&dir.0.join("keys")).unwrap();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let offsets = file.append(&refs).unwrap();
    file.sync().unwrap();
    (file, offsets)
}

/// The id of `key` through the index and the keys file.
fn find(index: &KeyIndex, keys: &KeysFile, key: &str) -> Option<u64> {
    let candidates = index.candidates(key).unwrap();
    candidates
        .into_iter()
        .find(|&id| keys.key_at(index.offset(id).unwrap()).unwrap() == key)
}

#[test]
fn every_key_is_found_by_its_text_and_others_are_not() {
    let dir = TestDir::new("keyindex");
    let names: Vec<String> = (0..3000).map(|i| format!("host{i}.cpu")).collect();
    let (keys, offsets) = keys_file(&dir, &names);
    let (_, reread, reread_offsets) = KeysFile::open_with_offsets(&dir.0.join("keys")).unwrap();
    assert_eq!((&reread, &reread_offsets), (&names, &offsets));
    let path = dir.0.join("keys.index");
    let stamp = keys.stamp().unwrap();
    let index = build(&path, &stamp, &names, &offsets).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), file_len(3000));
    let index = {
        drop(index);
        KeyIndex::open(&path, &stamp).unwrap()
    };
    for (id, key) in names.iter().enumerate() {
        assert_eq!(find(&index, &keys, key), Some(id as u64), "{key}");
    }
    for missing in ["host3000.cpu", "", "host1.cpu ", "x"] {
        assert_eq!(find(&index, &keys, missing), None, "{missing}");
    }
}

/// The order pages list the ids by their keys' bytes, across pages.
#[test]
fn the_order_pages_rank_the_keys_by_their_bytes() {
    let dir = TestDir::new("keyindex-order");
    // More keys than one order page holds, numbered out of byte order.
    let names: Vec<String> = (0..2500)
        .map(|i| format!("k{}", (i * 7919) % 2500))
        .collect();
    let (keys, offsets) = keys_file(&dir, &names);
    let path = dir.0.join("keys.index");
    let index = build(&path, &keys.stamp().unwrap(), &names, &offsets).unwrap();
    let ranked: Vec<String> = (0..2500)
        .map(|rank| names[index.ordered(rank).unwrap() as usize].clone())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(ranked, sorted);
    assert!(index.ordered(2500).is_err());
}

/// Colliding hashes (all keys under one hash) still find each key: the
/// candidates span pages and the text decides.
#[test]
fn candidates_spanning_pages_are_all_returned() {
    let dir = TestDir::new("keyindex-collide");
    let path = dir.0.join("keys.index");
    let n = ENTRIES_PER_PAGE as u64 * 3 + 5;
    let hash = hash_key((1, 2), "k");
    // The colliding run starts mid-page, between other hashes.
    let mut entries: Vec<(u64, u32)> = (0..n).map(|i| (hash, i as u32)).collect();
    entries
        .extend((n..n + 10).map(|i| (hash.wrapping_add((i - n) * 31).wrapping_sub(150), i as u32)));
    entries.sort_unstable();
    let offsets: Vec<u64> = (0..n + 10).collect();
    let stamp = Stamp {
        keys: n + 10,
        end: 99,
        tail: vec![1; TAIL],
    };
    let order: Vec<u32> = (0..n as u32 + 10).collect();
    let index = write::write(&path, (1, 2), &stamp, &entries, &offsets, &order).unwrap();
    assert_eq!(index.candidates("k").unwrap(), (0..n).collect::<Vec<_>>());
    assert_eq!(index.offset(n + 9).unwrap(), n + 9);
    assert!(index.offset(n + 10).is_err());
}

#[test]
fn damaged_stale_and_foreign_files_are_told_apart() {
    let dir = TestDir::new("keyindex-damage");
    let names: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let (keys, offsets) = keys_file(&dir, &names);
    let path = dir.0.join("keys.index");
    let stamp = keys.stamp().unwrap();
    drop(build(&path, &stamp, &names, &offsets).unwrap());
    let whole = fs::read(&path).unwrap();
    let untrusted =
        |result: Result<KeyIndex, IndexError>| matches!(result, Err(IndexError::Untrusted { .. }));
    let fewer = Stamp {
        keys: 999,
        ..stamp.clone()
    };
    assert!(untrusted(KeyIndex::open(&path, &fewer)), "stale");
    assert!(
        untrusted(KeyIndex::open(&dir.0.join("none"), &stamp)),
        "missing"
    );
    // As many keys, but another keys file.
    let mut other = stamp.clone();
    other.tail[3] ^= 1;
    assert!(
        untrusted(KeyIndex::open(&path, &other)),
        "another keys file"
    );
    let longer = Stamp {
        end: stamp.end + 1,
        ..stamp.clone()
    };
    assert!(untrusted(KeyIndex::open(&path, &longer)), "another length");
    // A flipped bit in the header or the fences: refused at open.
    for at in [12, whole.len() - 9] {
        let mut bytes = whole.clone();
        bytes[at] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(untrusted(KeyIndex::open(&path, &stamp)), "bit {at}");
    }
    // Cut short.
    fs::write(&path, &whole[..whole.len() - 1]).unwrap();
    assert!(untrusted(KeyIndex::open(&path, &stamp)));
    // A flipped bit in an entry page: opens, but the lookup says so.
    let mut bytes = whole.clone();
    bytes[PAGE + 100] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let index = KeyIndex::open(&path, &stamp).unwrap();
    let failed = (0..1000).any(|i| index.candidates(&format!("k{i}")).is_err());
    assert!(failed, "a damaged page is never read as good");
    // Two pages swapped: each fails its check (the page number is in it).
    let mut bytes = whole.clone();
    let (a, b) = bytes[PAGE..3 * PAGE].split_at_mut(PAGE);
    a.swap_with_slice(b);
    fs::write(&path, &bytes).unwrap();
    let index = KeyIndex::open(&path, &stamp).unwrap();
    assert!(index.entries_of(0, &mut [0; PAGE]).is_err());
    // Not ours: refused, left as it was.
    fs::write(&path, b"hello").unwrap();
    assert!(matches!(
        KeyIndex::open(&path, &stamp),
        Err(IndexError::Foreign { .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), b"hello");
    drop(keys);
}
