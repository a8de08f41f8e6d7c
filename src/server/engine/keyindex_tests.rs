//! The keys index as the engine keeps it: written when a seal numbers new
//! keys, trusted at start only when it covers the keys file, rebuilt (with
//! a warning) when missing, stale or damaged, refused when not ours.

use std::fs;
use std::path::Path;
use std::sync::Mutex;

use super::block::tests::TestDir;
use super::keyindex::KeyIndex;
use super::keys::KeysFile;
use super::seal::Sealer;
use super::{Sealed, Storage};
use crate::server::shared::State;
use crate::server::store::Store;

fn open(blocks: &Path) -> (Mutex<State>, Sealer, Vec<String>) {
    let mut store = Store::new();
    let (sealed, keys, warnings) = Sealed::open(blocks, &mut store).unwrap();
    let state = State {
        store,
        journal: None,
        sealed: Some(sealed),
    };
    let sealer = Sealer {
        keys,
        storage: Storage::default(),
    };
    (Mutex::new(state), sealer, warnings)
}

/// Puts one point for each of `keys` and begins a seal, which numbers
/// them; returns the seal's warning.
fn number(state: &Mutex<State>, sealer: &mut Sealer, keys: &[&str]) -> Option<String> {
    for key in keys {
        state.lock().unwrap().store.put(key, 1, 1.0);
    }
    let seal = sealer.begin(1_000_000, || state.lock().unwrap()).unwrap();
    seal.warning
}

/// Every key of the keys file found through the served index at its id,
/// and the head holding none of them after a restart (nothing is read
/// into memory for them).
fn check_index(state: &Mutex<State>, sealer: &Sealer) {
    let state = state.lock().unwrap();
    let sealed = state.sealed.as_ref().unwrap();
    let index = sealed.key_index().expect("an index");
    let (names, _) = sealer.keys.read_all().unwrap();
    assert_eq!(index.keys(), names.len() as u64);
    assert_eq!(sealed.numbered(), names.len());
    for (id, key) in names.iter().enumerate() {
        let found = index
            .candidates(key)
            .unwrap()
            .into_iter()
            .find(|&id| sealer.keys.key_at(index.offset(id).unwrap()).unwrap() == *key);
        assert_eq!(found, Some(id as u64), "{key}");
        assert_eq!(sealed.numbered_id(key).unwrap(), Some(id as u64), "{key}");
        assert_eq!(sealed.key_of(id).unwrap(), *key);
        let other = format!("{key}.not");
        assert_eq!(sealed.numbered_id(&other).unwrap(), None);
    }
    let mut listed = Vec::new();
    sealed
        .each_numbered_key(0, |id, key| {
            listed.push((id, key.to_owned()));
            true
        })
        .unwrap();
    let want: Vec<_> = names.into_iter().enumerate().collect();
    assert_eq!(listed, want);
}

#[test]
fn a_seal_writes_the_index_and_a_restart_trusts_it() {
    let dir = TestDir::new("keyindex-engine");
    let blocks = dir.0.join("blocks");
    let (state, mut sealer, warnings) = open(&blocks);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(number(&state, &mut sealer, &["a", "b", "c"]), None);
    check_index(&state, &sealer);
    let stale = fs::read(blocks.join("keys.index")).unwrap();
    assert_eq!(number(&state, &mut sealer, &["d"]), None);
    check_index(&state, &sealer);
    drop((state, sealer));

    let (state, sealer, warnings) = open(&blocks);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(state.lock().unwrap().store.keys(), 0);
    check_index(&state, &sealer);
    drop((state, sealer));

    // Stale (an index of fewer keys), damaged, missing: rebuilt, said so.
    let good = fs::read(blocks.join("keys.index")).unwrap();
    let mut damaged = good.clone();
    damaged[5000] ^= 0x10;
    let mut header = good.clone();
    header[13] ^= 1;
    for (name, bytes) in [
        ("stale", Some(&stale)),
        ("damaged header", Some(&header)),
        ("missing", None),
    ] {
        match bytes {
            Some(bytes) => fs::write(blocks.join("keys.index"), bytes).unwrap(),
            None => fs::remove_file(blocks.join("keys.index")).unwrap(),
        }
        let (state, sealer, warnings) = open(&blocks);
        assert_eq!(warnings.len(), 1, "{name}: {warnings:?}");
        let said = if name == "stale" {
            "covers 3 of the 4 keys"
        } else {
            "rebuilt from the keys file"
        };
        assert!(warnings[0].contains(said), "{name}: {warnings:?}");
        check_index(&state, &sealer);
        assert_eq!(
            fs::read(blocks.join("keys.index")).unwrap().len(),
            good.len()
        );
    }
    // A damaged page past the header is found when read, never used.
    fs::write(blocks.join("keys.index"), &damaged).unwrap();
    let (keys, _) = KeysFile::open(&blocks.join("keys")).unwrap();
    let index = KeyIndex::open(&blocks.join("keys.index"), &keys.stamp().unwrap()).unwrap();
    assert!(index.candidates("a").is_err());
}

#[test]
fn a_failed_index_write_is_said_and_the_next_seal_rebuilds_it() {
    let dir = TestDir::new("keyindex-fail");
    let blocks = dir.0.join("blocks");
    let (state, mut sealer, _) = open(&blocks);
    assert_eq!(number(&state, &mut sealer, &["a"]), None);
    // Where the temporary file goes, a directory: the write fails.
    fs::create_dir(blocks.join("keys.index.tmp")).unwrap();
    let warning = number(&state, &mut sealer, &["b", "c"]).expect("a warning");
    assert!(warning.contains("keys index"), "{warning}");
    {
        let state = state.lock().unwrap();
        let sealed = state.sealed.as_ref().unwrap();
        assert!(sealed.key_index().is_none());
        assert!(sealed.numbered_id("a").is_err(), "not taken for unnumbered");
    }
    {
        // Until it is rebuilt, a put of a key the head does not hold is
        // refused: its id cannot be known.
        let mut state = state.lock().unwrap();
        let State { store, sealed, .. } = &mut *state;
        let mut restarted = Store::new();
        assert!(sealed.as_ref().unwrap().admit(&mut restarted, "a").is_err());
        assert!(sealed.as_ref().unwrap().admit(store, "a").is_ok(), "held");
    }
    // Rebuilt between seals once it can be written, not only by a seal.
    assert!(sealer.repair_index(|| state.lock().unwrap()).is_err());
    fs::remove_dir(blocks.join("keys.index.tmp")).unwrap();
    assert!(sealer.repair_index(|| state.lock().unwrap()).unwrap());
    assert!(!sealer.repair_index(|| state.lock().unwrap()).unwrap());
    check_index(&state, &sealer);
    {
        let state = state.lock().unwrap();
        let mut restarted = Store::new();
        restarted.set_first_id(3);
        state
            .sealed
            .as_ref()
            .unwrap()
            .admit(&mut restarted, "b")
            .unwrap();
        assert_eq!(restarted.slot("b").and_then(|s| restarted.id(s)), Some(1));
    }
    // No new key: a seal rebuilds it all the same.
    state
        .lock()
        .unwrap()
        .sealed
        .as_mut()
        .unwrap()
        .set_key_index(None);
    assert_eq!(number(&state, &mut sealer, &[]), None);
    check_index(&state, &sealer);
}

#[test]
fn an_index_that_is_not_ours_is_refused_and_left_untouched() {
    let dir = TestDir::new("keyindex-foreign");
    let blocks = dir.0.join("blocks");
    drop(open(&blocks));
    fs::write(blocks.join("keys.index"), b"someone else's").unwrap();
    let Err(error) = Sealed::open(&blocks, &mut Store::new()) else {
        panic!("a foreign index was accepted");
    };
    assert!(error.to_string().contains("not a keys index"), "{error}");
    assert_eq!(
        fs::read(blocks.join("keys.index")).unwrap(),
        b"someone else's"
    );
}

/// A keys file put back in place of another with as many keys: the index
/// of the other is not used to find these keys.
#[test]
fn an_index_of_another_keys_file_with_as_many_keys_is_rebuilt() {
    let dir = TestDir::new("keyindex-other");
    let blocks = dir.0.join("blocks");
    let (state, mut sealer, _) = open(&blocks);
    assert_eq!(number(&state, &mut sealer, &["a", "b"]), None);
    drop((state, sealer));
    let other = TestDir::new("keyindex-other-keys");
    let (mut keys, _) = KeysFile::open(&other.0.join("keys")).unwrap();
    keys.append(&["x", "y"]).unwrap();
    keys.sync().unwrap();
    drop(keys);
    fs::copy(other.0.join("keys"), blocks.join("keys")).unwrap();
    let (state, sealer, warnings) = open(&blocks);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("another keys file"), "{warnings:?}");
    check_index(&state, &sealer);
    let state = state.lock().unwrap();
    assert_eq!(state.sealed.as_ref().unwrap().key_of(0).unwrap(), "x");
}
