//! The keys in byte order, for queries: a glob with a literal prefix looks
//! at the keys with that prefix only, found by binary search, instead of
//! every key. The view holds slot numbers (4 bytes a key, counted in the
//! store's memory) and is brought up to date when a query needs it, not by
//! puts: keys only ever get appended as new slots, so the keys it lacks are
//! exactly the slots past the ones it covers. Those are sorted and inserted
//! (a few, one by one) or merged in (many, in one pass). Puts never pay for
//! it; the first query after a million new keys sorts them (about 0.3 s for
//! a million under the lock, once).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::memory::heap_of;
use super::Store;

/// New keys inserted one by one up to this many; more are merged.
const INSERT_MAX: usize = 64;

#[derive(Debug, Default)]
pub(super) struct SortedKeys {
    view: Mutex<View>,
    /// The view's allocation, readable without its lock (`Store::memory`).
    bytes: AtomicUsize,
}

#[derive(Debug, Default)]
struct View {
    slots: Vec<u32>,
    /// Slots `0..covered` are in `slots`.
    covered: usize,
}

impl SortedKeys {
    pub(super) fn heap_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Store {
    fn key_at(&self, slot: u32) -> &str {
        self.series
            .get(slot as usize)
            .map_or("", |series| self.keys.get(series.key))
    }

    /// Calls `visit(slot)` for every key starting with `prefix`, in byte
    /// order of the keys, until `visit` returns false.
    pub fn keys_with_prefix(&self, prefix: &str, mut visit: impl FnMut(usize, &str) -> bool) {
        let sorted = &self.sorted;
        // The lock is uncontended: the store is under the server's lock.
        let mut view = sorted.view.lock().unwrap_or_else(|e| e.into_inner());
        self.catch_up(&mut view);
        let slots = &view.slots;
        let start = slots.partition_point(|&s| self.key_at(s) < prefix);
        for &slot in &slots[start..] {
            let key = self.key_at(slot);
            if !key.starts_with(prefix) || !visit(slot as usize, key) {
                break;
            }
        }
        sorted
            .bytes
            .store(heap_of::<u32>(view.slots.capacity()), Ordering::Relaxed);
    }

    /// Adds the keys stored since the view was last brought up to date.
    fn catch_up(&self, view: &mut View) {
        let len = self.series.len();
        if view.covered >= len {
            return;
        }
        // Slots are below 2^32 (see `Store::put`).
        let mut fresh: Vec<u32> = (view.covered..len).map(|s| s as u32).collect();
        fresh.sort_unstable_by(|&a, &b| self.key_at(a).cmp(self.key_at(b)));
        if fresh.len() <= INSERT_MAX {
            for slot in fresh {
                let key = self.key_at(slot);
                let at = view.slots.partition_point(|&s| self.key_at(s) < key);
                view.slots.insert(at, slot);
            }
        } else {
            let old = std::mem::take(&mut view.slots);
            let mut merged = Vec::with_capacity(old.len() + fresh.len());
            let (mut i, mut j) = (0, 0);
            while i < old.len() && j < fresh.len() {
                if self.key_at(old[i]) <= self.key_at(fresh[j]) {
                    merged.push(old[i]);
                    i += 1;
                } else {
                    merged.push(fresh[j]);
                    j += 1;
                }
            }
            merged.extend_from_slice(&old[i..]);
            merged.extend_from_slice(&fresh[j..]);
            view.slots = merged;
        }
        view.covered = len;
    }
}
