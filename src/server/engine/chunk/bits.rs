//! The bit writer and reader of segment bodies: most significant bit
//! first, the last byte padded with zero bits.

use super::ChunkError;

/// Appends bits to a byte vector through a 128-bit accumulator, so a write
/// of up to 64 bits never splits into cases.
#[derive(Debug, Default, Clone)]
pub(super) struct BitWriter {
    bytes: Vec<u8>,
    /// The pending bits, in the low `pending` bits (fewer than 64 at rest).
    acc: u128,
    pending: u32,
}

impl BitWriter {
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.acc = 0;
        self.pending = 0;
    }

    /// Writes the low `width` bits of `value` (`width` at most 64).
    pub(super) fn write(&mut self, value: u64, width: u32) {
        debug_assert!(width <= 64);
        if width == 0 {
            return;
        }
        let value = u128::from(value) & ((1u128 << width) - 1);
        self.acc = (self.acc << width) | value;
        self.pending += width;
        if self.pending >= 64 {
            self.pending -= 64;
            let word = (self.acc >> self.pending) as u64;
            self.bytes.extend_from_slice(&word.to_be_bytes());
            self.acc &= (1u128 << self.pending) - 1;
        }
    }

    /// Writes a run of `count` one bits (`count` at most 64).
    pub(super) fn ones(&mut self, count: u32) {
        self.write(u64::MAX, count);
    }

    /// Bits written so far.
    pub(super) fn len(&self) -> u64 {
        self.bytes.len() as u64 * 8 + u64::from(self.pending)
    }

    /// Writes every bit of `other` after the bits written so far.
    pub(super) fn append(&mut self, other: &BitWriter) {
        for chunk in other.bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write(
                u64::from_be_bytes(word) >> (64 - 8 * chunk.len()),
                8 * chunk.len() as u32,
            );
        }
        self.write(other.acc as u64, other.pending);
    }

    /// Appends the bits to `out`, padded with zeros to a whole byte.
    pub(super) fn finish_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
        let mut rest = self.pending;
        while rest > 0 {
            let take = rest.min(8);
            rest -= take;
            out.push((((self.acc >> rest) as u8) & ((1u16 << take) - 1) as u8) << (8 - take));
        }
    }
}

/// Reads bits from a byte slice; reading past its end is [`ChunkError::Truncated`].
#[derive(Debug)]
pub(super) struct BitReader<'a> {
    bytes: &'a [u8],
    /// The next bit to read, counted from the start of `bytes`.
    at: usize,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, at: 0 }
    }

    /// The next `width` bits (at most 64) without consuming them, as the
    /// high bits of a `width`-bit number; bits past the end read as zero.
    pub(super) fn peek(&self, width: u32) -> u64 {
        debug_assert!((1..=64).contains(&width));
        let byte = self.at / 8;
        // Most reads fit one 64-bit load: at most 7 bits of the first byte
        // are already consumed, so 57 are left in the word.
        if width <= 57 {
            if let Some(word) = self.bytes.get(byte..byte + 8) {
                let word = u64::from_be_bytes(word.try_into().unwrap_or([0; 8]));
                return (word << (self.at % 8)) >> (64 - width);
            }
        }
        let window = match self.bytes.get(byte..byte + 16) {
            Some(window) => u128::from_be_bytes(window.try_into().unwrap_or([0; 16])),
            None => {
                let mut window = [0u8; 16];
                let tail = self.bytes.get(byte..).unwrap_or(&[]);
                window[..tail.len()].copy_from_slice(tail);
                u128::from_be_bytes(window)
            }
        };
        ((window << (self.at % 8)) >> (128 - width)) as u64
    }

    /// Consumes `width` bits, failing if fewer are left.
    pub(super) fn skip(&mut self, width: u32) -> Result<(), ChunkError> {
        let end = self.at + width as usize;
        if end > self.bytes.len() * 8 {
            return Err(ChunkError::Truncated);
        }
        self.at = end;
        Ok(())
    }

    /// Reads `width` bits (at most 64) as a number.
    pub(super) fn read(&mut self, width: u32) -> Result<u64, ChunkError> {
        if width == 0 {
            return Ok(0);
        }
        let value = self.peek(width);
        self.skip(width)?;
        Ok(value)
    }

    /// Reads one bit.
    pub(super) fn bit(&mut self) -> Result<bool, ChunkError> {
        Ok(self.read(1)? == 1)
    }

    /// Checks that what is left is only the zero padding of the last byte,
    /// so a body's declared length and its content agree exactly.
    pub(super) fn finish(&self) -> Result<(), ChunkError> {
        let left = self.bytes.len() * 8 - self.at;
        if left >= 8 || (left > 0 && self.peek(left as u32) != 0) {
            return Err(ChunkError::Corrupt("segment body longer than its content"));
        }
        Ok(())
    }
}
