//! From key to slot: hash tables holding only slot numbers (the key is
//! compared through the arena, so it is stored once), split into many
//! shards by hash. A table doubles when full and rehashes everything in it;
//! with 1024 shards each rehash touches about a thousandth of the keys, so
//! the store grows to tens of millions of keys without a long pause (the
//! same aim as redis' incremental rehashing).
//!
//! Shards of equal size would all fill up, and rehash, at about the same
//! moment: hundreds of rehashes within a few thousand puts. So shards get
//! unequal shares of the keys, growing geometrically from shard to shard
//! by a factor of two overall: each reaches its next doubling at a
//! different store size, spreading the rehashes evenly over the growth.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

/// Shards; a power of two.
const SHARDS: usize = 1024;

#[derive(Debug)]
pub(super) struct Index {
    /// Keyed per store (SipHash), so clients cannot pick colliding keys.
    hasher: RandomState,
    shards: Box<[HashTable<u32>]>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
        }
    }
}

impl Index {
    pub(super) fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(hash: u64) -> usize {
        // 24 bits the tables do not use for themselves (they take the low
        // bits for the bucket and the top seven for the control byte), as a
        // fraction u in [0, 1). Shard i takes the u with S log2(1 + u) in
        // [i, i + 1): a share growing as 2^(i/S). The quadratic stands in
        // for log2(1 + u) (within 0.01, and exact at both ends), which is
        // what costs here: a put computes this once.
        let u = ((hash >> 33) & 0xFF_FFFF) as f64 / f64::from(1 << 24);
        let log = u * (1.3465 - 0.3465 * u);
        ((log * SHARDS as f64) as usize).min(SHARDS - 1)
    }

    /// The slot of the key with this `hash` for which `is_key` holds.
    pub(super) fn find(&self, hash: u64, is_key: impl Fn(usize) -> bool) -> Option<usize> {
        self.shards[Self::shard(hash)]
            .find(hash, |&slot| is_key(slot as usize))
            .map(|&slot| slot as usize)
    }

    /// The hash of a series id, for an index from ids to slots.
    pub(super) fn hash_id(&self, id: usize) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Adds `slot` under `hash`; `key_of(slot)` gives the key of any slot
    /// already present (to rehash it). Returns the bytes newly allocated.
    pub(super) fn insert<'k>(
        &mut self,
        hash: u64,
        slot: u32,
        key_of: impl Fn(usize) -> &'k str,
    ) -> usize {
        let Index { hasher, shards } = self;
        let table = &mut shards[Self::shard(hash)];
        let before = table.allocation_size();
        table.insert_unique(hash, slot, |&slot| hasher.hash_one(key_of(slot as usize)));
        table.allocation_size() - before
    }

    /// [`Index::insert`] for an index of ids: `id_of(slot)` gives the id
    /// of any slot already present.
    pub(super) fn insert_id(
        &mut self,
        slot: u32,
        id: usize,
        id_of: impl Fn(usize) -> usize,
    ) -> usize {
        let Index { hasher, shards } = self;
        let hash = hasher.hash_one(id);
        let table = &mut shards[Self::shard(hash)];
        let before = table.allocation_size();
        table.insert_unique(hash, slot, |&slot| hasher.hash_one(id_of(slot as usize)));
        table.allocation_size() - before
    }

    /// The bytes the index takes however many keys it holds.
    pub(super) fn fixed_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.shards)
    }

    /// Bytes of the shards' tables, counted from scratch.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.shards.iter().map(HashTable::allocation_size).sum()
    }
}
