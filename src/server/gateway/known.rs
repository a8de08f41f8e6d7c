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
//! It holds a keyed 64-bit hash of each key ([`KeyHasher`]), not the key:
//! no allocation per key, 4 MB for the whole set, allocated once. Two keys
//! of one hash would take the second as indexed; with keys hashed under a
//! key of this process (SipHash), a new key matches one of the set's 2^18
//! by chance once in about 7 * 10^13 lookups, and even then only until the
//! set starts over.
//!
//! The table is open addressing over the hashes themselves (the slot is
//! the hash's top bits, probed linearly, at most half full): a lookup
//! reads one cache line, where a general hash table reads a control byte
//! and then the entry, two misses in a table this size. Misses are what a
//! lookup costs, so a batch's keys are looked up in one tight loop, which
//! lets the processor have several of them in flight.
//!
//! A key is only added once its put was acknowledged (with `wait`, once
//! replicated), so an entry that a failover could still lose is never
//! taken for granted.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

/// Keys remembered at most; then the set starts over.
pub(super) const CAPACITY: usize = 1 << 18;
/// How long a key is taken as indexed before it is indexed again.
pub(super) const REFRESH: Duration = Duration::from_secs(60);

/// The keyed hash of a key the set holds; also the hash a batch groups
/// its puts by, so each key of a batch is hashed once.
pub(super) struct KeyHasher(RandomState);

impl KeyHasher {
    pub(super) fn new() -> KeyHasher {
        KeyHasher(RandomState::new())
    }

    /// Never 0, which marks an empty slot of the table.
    pub(super) fn hash(&self, key: &str) -> u64 {
        self.0.hash_one(key).max(1)
    }
}

pub(super) struct KnownKeys {
    /// Hashes at the slot of their top bits, or after it; 0 is empty.
    slots: Box<[u64]>,
    /// 64 minus the log2 of the slots: a hash's slot is `hash >> shift`.
    shift: u32,
    len: usize,
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
        // Twice the keys, so probes stay short and always end at an empty
        // slot. Sized once: it fills up as a gateway meets new keys.
        let slots = (2 * capacity).next_power_of_two().max(2);
        KnownKeys {
            slots: vec![0; slots].into_boxed_slice(),
            shift: 64 - slots.trailing_zeros(),
            len: 0,
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

    /// Whether the key of `hash` (from [`KeyHasher::hash`]) is known.
    pub(super) fn contains(&self, hash: u64) -> bool {
        self.find(hash).is_ok()
    }

    /// Remembers the key of `hash` as indexed (it was acknowledged).
    pub(super) fn insert(&mut self, hash: u64, now: Instant, failures: u64) {
        if failures != self.failures || self.len >= self.capacity {
            self.start_over(now, failures);
        }
        if let Err(empty) = self.find(hash) {
            self.slots[empty] = hash;
            self.len += 1;
        }
    }

    /// `Ok(slot)` of `hash`, or `Err` of the empty slot ending its probe.
    fn find(&self, hash: u64) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut at = (hash >> self.shift) as usize;
        // At most half full: a probe meets an empty slot well before it
        // has gone round; the bound only guards the loop.
        for _ in 0..self.slots.len() {
            match self.slots[at] {
                0 => return Err(at),
                h if h == hash => return Ok(at),
                _ => at = (at + 1) & mask,
            }
        }
        unreachable!("the known-keys table is never full")
    }

    fn start_over(&mut self, now: Instant, failures: u64) {
        if self.len > 0 {
            self.slots.fill(0);
        }
        self.len = 0;
        self.since = now;
        self.failures = failures;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_keys_until_it_is_old_full_or_the_store_failed() {
        let hasher = KeyHasher::new();
        let h = |key: &str| hasher.hash(key);
        let start = Instant::now();
        let mut known = KnownKeys::with_capacity(2, start);
        known.insert(h("a"), start, 0);
        known.refresh(start + REFRESH / 2, 0);
        assert!(known.contains(h("a")) && !known.contains(h("b")));
        known.refresh(start + REFRESH, 0);
        assert!(!known.contains(h("a")), "forgotten after REFRESH");

        let later = start + REFRESH;
        known.insert(h("a"), later, 0);
        known.insert(h("b"), later, 0);
        known.insert(h("c"), later, 0);
        assert!(
            known.contains(h("c")) && !known.contains(h("a")),
            "full: started over"
        );

        known.refresh(later, 1);
        assert!(!known.contains(h("c")), "forgotten after a store failure");
        known.insert(h("d"), later, 1);
        known.insert(h("e"), later, 2);
        assert!(known.contains(h("e")) && !known.contains(h("d")));
    }

    #[test]
    fn hashes_of_one_slot_are_all_found_past_each_other() {
        let mut known = KnownKeys::with_capacity(8, Instant::now());
        let now = Instant::now();
        // Same top bits: one slot, so each probes past the ones before,
        // and the last slot's probe wraps round to the first.
        let last = u64::MAX - 2;
        let hashes = [1u64 << 60 | 1, 1 << 60 | 2, 1 << 60 | 3, last, last + 1];
        for &hash in &hashes {
            known.insert(hash, now, 0);
            known.insert(hash, now, 0);
        }
        assert_eq!(known.len, hashes.len(), "no hash held twice");
        assert!(hashes.iter().all(|&hash| known.contains(hash)));
        assert!(!known.contains(1 << 60 | 4) && !known.contains(last + 2));
        assert!(KeyHasher::new().hash("") != 0);
    }
}
