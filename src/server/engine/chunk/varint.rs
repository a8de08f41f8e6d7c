//! LEB128 varints and zig-zag, for the byte-aligned chunk and segment
//! headers (the bit-packed bodies use `packing` instead).

use super::ChunkError;

/// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
pub(super) fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint at `*at`, advancing it. Over-long encodings (more than
/// ten bytes, or a tenth byte beyond bit 63) are corrupt, not wrapped, so
/// every value has exactly one encoding.
pub(super) fn get(bytes: &[u8], at: &mut usize) -> Result<u64, ChunkError> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = *bytes.get(*at).ok_or(ChunkError::Truncated)?;
        *at += 1;
        if i == 9 && byte > 1 {
            return Err(ChunkError::Corrupt("varint beyond 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if byte == 0 && i > 0 {
                return Err(ChunkError::Corrupt("varint with a redundant zero byte"));
            }
            return Ok(value);
        }
    }
    Err(ChunkError::Corrupt("varint beyond 64 bits"))
}

/// Maps signed to unsigned so that small magnitudes of either sign stay
/// small: 0, -1, 1, -2, ... become 0, 1, 2, 3, ...
pub(super) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(super) fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}
