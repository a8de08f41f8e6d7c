//! How the metrics are laid out in Redis.
//!
//! - Each metric key is one hash, `m:<key>`: field = the timestamp in
//!   decimal, value = the value as `get` writes it (Python's `str(float)`).
//!   `HSET` replaces the value of an existing timestamp, which is the
//!   protocol's rule, in one command and without a read.
//! - `get *` must find every key without `KEYS` (which blocks a node for the
//!   whole key space). Every key is therefore also a member of one of
//!   [`INDEX_BUCKETS`] sets, `i:{<tag>}`; the bucket is chosen by the key's
//!   slot (bucket `b` takes slots `b*256 .. b*256+255`) and the tag is chosen
//!   so that the set itself lives in that same slot range. While slots are
//!   assigned in ranges of whole buckets the index entry of a key sits on the
//!   same node as its hash, and `get *`, walking the buckets in order, walks
//!   the cluster node by node.
//!
//! A key containing `{...}` is hashed by Redis on what is inside the braces;
//! that only moves the key to another slot, and the bucket follows it.

/// Sets the key index is split into; each covers 256 of Redis's 16,384 slots.
pub(super) const INDEX_BUCKETS: u16 = 64;
const SLOTS: u16 = 16384;

/// The hash holding `key`'s points.
pub(super) fn series_key(key: &str) -> String {
    format!("m:{key}")
}

/// The key of index bucket `bucket` (its tag was found by [`bucket_tags`]).
pub(super) fn index_key(tag: &str) -> String {
    format!("i:{{{tag}}}")
}

/// The index bucket of the keys in `slot` (of a hash `m:<key>`).
pub(super) fn bucket_of_slot(slot: u16) -> usize {
    usize::from(slot / (SLOTS / INDEX_BUCKETS))
}

/// Writes the name of `key`'s hash into `name` (a buffer reused for the
/// keys of a batch): what [`series_key`] gives, without allocating.
pub(super) fn write_series_key(name: &mut Vec<u8>, key: &str) {
    name.clear();
    name.extend_from_slice(b"m:");
    name.extend_from_slice(key.as_bytes());
}

/// For each bucket the shortest decimal tag whose slot falls in the
/// bucket's slot range: the name of the set is then `i:{<tag>}`.
pub(super) fn bucket_tags() -> Vec<String> {
    let mut tags: Vec<Option<String>> = vec![None; usize::from(INDEX_BUCKETS)];
    let mut missing = tags.len();
    // Slots of decimal strings spread evenly: a few thousand candidates
    // cover the 64 buckets; the bound only guards the loop.
    for n in 0u32..1_000_000 {
        if missing == 0 {
            break;
        }
        let tag = n.to_string();
        let bucket = usize::from(slot(tag.as_bytes()) / (SLOTS / INDEX_BUCKETS));
        if tags[bucket].is_none() {
            tags[bucket] = Some(tag);
            missing -= 1;
        }
    }
    tags.into_iter()
        .map(|tag| tag.expect("every bucket has a decimal tag"))
        .collect()
}

/// Redis Cluster's slot of a key: CRC16 (XMODEM) of the key, or of the
/// first non-empty `{...}` part of it, modulo 16384.
pub(super) fn slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % SLOTS
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Redis's own `CLUSTER KEYSLOT` and the spec's test vector.
    #[test]
    fn slots_match_redis() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    #[test]
    fn the_written_series_key_is_the_series_key() {
        let mut name = b"left over".to_vec();
        write_series_key(&mut name, "web1.{cpu}");
        assert_eq!(name, series_key("web1.{cpu}").as_bytes());
        // The hash tag decides its slot, as for any Redis key.
        assert_eq!(slot(&name), slot(b"cpu"));
    }

    #[test]
    fn every_bucket_has_a_tag_in_its_own_slot_range() {
        let tags = bucket_tags();
        assert_eq!(tags.len(), usize::from(INDEX_BUCKETS));
        for (bucket, tag) in tags.iter().enumerate() {
            assert_eq!(
                bucket_of_slot(slot(index_key(tag).as_bytes())),
                bucket,
                "tag {tag}"
            );
        }
    }
}
