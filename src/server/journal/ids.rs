//! Maps keyed by the ids of the journal's frame records, for
//! replay: a lookup for every record, and an insert for every key a write
//! defines, millions of them in a large journal. SipHash (std's default)
//! made these about a third of a replay's time; ids need only a keyed
//! multiply-fold, since they are integers a file holds, not keys a client
//! picks (a file crafted to collide would only slow its own replay down).

use std::hash::{BuildHasher, Hasher, RandomState};

/// Builds [`IdHasher`]s with a seed drawn once per map.
#[derive(Debug, Clone)]
pub(super) struct Ids {
    seed: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            seed: RandomState::new().hash_one(0u64),
        }
    }
}

impl BuildHasher for Ids {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            seed: self.seed,
            hash: 0,
        }
    }
}

/// Hashes one u64: the high and low halves of its 128-bit product with an
/// odd constant, folded together, so every input bit reaches both the low
/// bits the table indexes by and the top bits it keeps as tags.
#[derive(Debug)]
pub(super) struct IdHasher {
    seed: u64,
    hash: u64,
}

impl Hasher for IdHasher {
    fn write_u64(&mut self, n: u64) {
        let product = u128::from(n ^ self.seed ^ self.hash) * 0x9E37_79B9_7F4A_7C15;
        self.hash = (product as u64) ^ ((product >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used for ids; correct for any input all the same.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(super) type IdMap<V> = hashbrown::HashMap<u64, V, Ids>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread_over_buckets_and_tags() {
        // Fixed seeds: with a random one the count of distinct low bits
        // is itself random (a random function gives about 2,590 of 4,096,
        // give or take 25), and a bound near it would fail now and then.
        for k in 0..32u64 {
            let ids = Ids {
                seed: k.wrapping_mul(0xD1B5_4A32_D192_ED03),
            };
            let hashes: Vec<u64> = (1_000_000u64..1_004_096).map(|n| ids.hash_one(n)).collect();
            let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 4095).collect();
            let top: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
            assert!(
                low.len() > 2400,
                "seed {k}: {} distinct low bits",
                low.len()
            );
            assert_eq!(top.len(), 128, "seed {k}: every 7-bit tag used");
        }
    }

    #[test]
    fn a_map_finds_what_was_put() {
        let mut map: IdMap<u32> = IdMap::default();
        for n in 0..10_000u64 {
            map.insert(n * 7919 + (1 << 40), n as u32);
        }
        assert!((0..10_000u64).all(|n| map.get(&(n * 7919 + (1 << 40))) == Some(&(n as u32))));
        assert_eq!(map.get(&3), None);
    }
}
