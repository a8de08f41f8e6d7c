//! The keys a gateway knows are in the index, so that a put of such a key
//! costs one Redis command (its `HSET`) instead of two.
//!
//! What is remembered can go stale: nothing in the protocol removes an
//! index entry, but a `FLUSHALL`, a Redis restarted without its data, or a
//! failover that loses an unreplicated `SADD` (without `wait`) does, and a
//! key whose entry is gone is missed by `get *` (its `get <key>` still
//! works). So the set is forgotten, and every key it held is indexed again
//! by its next put:
//! - after [`REFRESH`]: a lost entry is back within that time of a put;
//! - when the store failed in between (the link's failure count moved): a
//!   restart or failover shows up as failed or retried commands;
//! - when it holds [`CAPACITY`] keys: bounded memory.
//!
//! It holds a keyed 64-bit hash of each key, not the key: no allocation per
//! key, 4.7 MB for the whole set, allocated once. Two keys of one hash would take the second as
//! indexed; with keys hashed under a key of this process (SipHash), a new
//! key matches one of the set's 2^18 by chance once in about 7 * 10^13
//! lookups, and even then only until the set starts over.
//!
//! A key is only added once its put was acknowledged (with `wait`, once
//! replicated), so an entry that a failover could still lose is never
//! taken for granted.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use hashbrown::HashTable;

/// Keys remembered at most; then the set starts over.
pub(super) const CAPACITY: usize = 1 << 18;
/// How long a key is taken as indexed before it is indexed again.
pub(super) const REFRESH: Duration = Duration::from_secs(60);

pub(super) struct KnownKeys {
    hasher: RandomState,
    /// The keys' hashes (uniform already: the table's own hash of each).
    hashes: HashTable<u64>,
    since: Instant,
    /// The link's failure count when the set was started.
    failures: u64,
    capacity: usize,
}

impl KnownKeys {
    pub(super) fn new(now: Instant) -> KnownKeys {
        KnownKeys::with_capacity(CAPACITY, now)
    }

    fn with_capacity(capacity: usize, now: Instant) -> KnownKeys {
        KnownKeys {
            hasher: RandomState::new(),
            // Sized once: it fills up as a gateway meets new keys, and
            // growing would rehash it each time it doubles.
            hashes: HashTable::with_capacity(capacity),
            since: now,
            failures: 0,
            capacity,
        }
    }

    /// Forgets everything if the set is too old, or the store failed since
    /// it was started; call before looking keys up.
    pub(super) fn refresh(&mut self, now: Instant, failures: u64) {
        if now.duration_since(self.since) >= REFRESH || failures != self.failures {
            self.start_over(now, failures);
        }
    }

    pub(super) fn contains(&self, key: &str) -> bool {
        let hash = self.hasher.hash_one(key);
        self.hashes.find(hash, |&h| h == hash).is_some()
    }

    /// Remembers `key` as indexed (it was acknowledged).
    pub(super) fn insert(&mut self, key: &str, now: Instant, failures: u64) {
        if failures != self.failures || self.hashes.len() >= self.capacity {
            self.start_over(now, failures);
        }
        let hash = self.hasher.hash_one(key);
        if self.hashes.find(hash, |&h| h == hash).is_none() {
            self.hashes.insert_unique(hash, hash, |&h| h);
        }
    }

    fn start_over(&mut self, now: Instant, failures: u64) {
        self.hashes.clear();
        self.since = now;
        self.failures = failures;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_keys_until_it_is_old_full_or_the_store_failed() {
        let start = Instant::now();
        let mut known = KnownKeys::with_capacity(2, start);
        known.insert("a", start, 0);
        known.refresh(start + REFRESH / 2, 0);
        assert!(known.contains("a") && !known.contains("b"));
        known.refresh(start + REFRESH, 0);
        assert!(!known.contains("a"), "forgotten after REFRESH");

        let later = start + REFRESH;
        known.insert("a", later, 0);
        known.insert("b", later, 0);
        known.insert("c", later, 0);
        assert!(
            known.contains("c") && !known.contains("a"),
            "full: started over"
        );

        known.refresh(later, 1);
        assert!(!known.contains("c"), "forgotten after a store failure");
        known.insert("d", later, 1);
        known.insert("e", later, 2);
        assert!(known.contains("e") && !known.contains("d"));
    }
}
