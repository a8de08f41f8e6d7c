//! How a segment's stream of unsigned integers (zig-zagged or offset
//! differences) is bit-packed: one of three codes, chosen per stream by its
//! exact cost in bits.
//!
//! - `Fixed(w)`: every number in `w` bits. Best for small uniform numbers
//!   (a counter's increments) and free for a constant stream (`w` = 0: a
//!   regular series' timestamps cost nothing per point).
//! - `Rice(k)`: bucket `u >> k` in unary, then the low `k` bits; quotients
//!   of [`RICE_ESCAPE`] or more escape to an explicit width. Best for
//!   bell-shaped numbers (a random walk's steps).
//! - `Buckets`: Gorilla's table of prefix buckets (0, 7, 9, 12, 32 and 64
//!   bits). Best for mostly zeros with rare mid-sized outliers (jitter).

use super::bits::{BitReader, BitWriter};
use super::ChunkError;

/// Rice quotients from this on are written as the escape.
const RICE_ESCAPE: u32 = 16;

/// Gorilla's bucket widths, the bucket `i` (after `i` one bits and a zero,
/// or five one bits for the last) holding numbers of up to that many bits.
const BUCKETS: [u32; 6] = [0, 7, 9, 12, 32, 64];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Packing {
    Fixed(u32),
    Rice(u32),
    Buckets,
}

/// Bits needed for `value` (0 for 0).
pub(super) fn width(value: u64) -> u32 {
    64 - value.leading_zeros()
}

impl Packing {
    /// The cheapest packing of `values` and its cost in bits, header included.
    pub(super) fn choose(values: &[u64]) -> (Packing, u64) {
        let max = values.iter().copied().max().unwrap_or(0);
        let sum: u128 = values.iter().map(|&v| u128::from(v)).sum();
        let mean = (sum / values.len().max(1) as u128).min(u128::from(u64::MAX)) as u64;
        // Rice's best parameter is near the width of the mean; try around it.
        let centre = width(mean);
        let rice = (centre.saturating_sub(2)..=(centre + 1).min(63)).map(Packing::Rice);
        [Packing::Fixed(width(max)), Packing::Buckets]
            .into_iter()
            .chain(rice)
            .map(|packing| (packing, packing.cost(values)))
            .min_by_key(|&(_, cost)| cost)
            .unwrap_or((Packing::Fixed(0), HEADER_BITS))
    }

    /// Bits for the header and `values` packed this way.
    pub(super) fn cost(self, values: &[u64]) -> u64 {
        HEADER_BITS
            + match self {
                Packing::Fixed(w) => values.len() as u64 * u64::from(w),
                _ => values.iter().map(|&v| u64::from(self.cost_of(v))).sum(),
            }
    }

    fn cost_of(self, value: u64) -> u32 {
        match self {
            Packing::Fixed(w) => w,
            Packing::Rice(k) => match value >> k {
                q if q < u64::from(RICE_ESCAPE) => q as u32 + 1 + k,
                _ => RICE_ESCAPE + 6 + width(value) - 1,
            },
            Packing::Buckets => {
                let bucket = BUCKETS.iter().position(|&w| width(value) <= w).unwrap_or(5);
                (bucket as u32 + 1).min(5) + BUCKETS[bucket]
            }
        }
    }

    pub(super) fn write_header(self, out: &mut BitWriter) {
        let (kind, parameter) = match self {
            Packing::Fixed(w) => (0, w),
            Packing::Rice(k) => (1, k),
            Packing::Buckets => (2, 0),
        };
        out.write(kind, 2);
        out.write(u64::from(parameter), 7);
    }

    pub(super) fn read_header(input: &mut BitReader) -> Result<Packing, ChunkError> {
        let kind = input.read(2)?;
        let parameter = input.read(7)? as u32;
        match kind {
            0 if parameter <= 64 => Ok(Packing::Fixed(parameter)),
            1 if parameter <= 63 => Ok(Packing::Rice(parameter)),
            2 if parameter == 0 => Ok(Packing::Buckets),
            _ => Err(ChunkError::Corrupt("unknown bit packing")),
        }
    }

    pub(super) fn write(self, value: u64, out: &mut BitWriter) {
        match self {
            Packing::Fixed(w) => out.write(value, w),
            Packing::Rice(k) => match value >> k {
                q if q < u64::from(RICE_ESCAPE) => {
                    out.ones(q as u32);
                    out.write(0, 1);
                    out.write(value, k);
                }
                _ => {
                    // The escape: its width, then the bits below its top one.
                    out.ones(RICE_ESCAPE);
                    out.write(u64::from(width(value) - 1), 6);
                    out.write(value, width(value) - 1);
                }
            },
            Packing::Buckets => {
                let bucket = BUCKETS.iter().position(|&w| width(value) <= w).unwrap_or(5);
                out.ones(bucket as u32);
                if bucket < 5 {
                    out.write(0, 1);
                }
                out.write(value, BUCKETS[bucket]);
            }
        }
    }

    /// Reads one number per slot of `out`, the packing chosen once for all
    /// of them (a constant stream, `Fixed(0)`, reads no bits at all).
    pub(super) fn read_into(
        self,
        input: &mut BitReader,
        out: &mut [u64],
    ) -> Result<(), ChunkError> {
        match self {
            Packing::Fixed(0) => out.fill(0),
            Packing::Fixed(w) => {
                for slot in out {
                    *slot = input.read(w)?;
                }
            }
            _ => {
                for slot in out {
                    *slot = self.read(input)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn read(self, input: &mut BitReader) -> Result<u64, ChunkError> {
        match self {
            Packing::Fixed(w) => input.read(w),
            Packing::Rice(k) => {
                let q = (input.peek(RICE_ESCAPE) << (64 - RICE_ESCAPE)).leading_ones();
                if q < RICE_ESCAPE {
                    input.skip(q + 1)?;
                    Ok((u64::from(q) << k) | input.read(k)?)
                } else {
                    input.skip(RICE_ESCAPE)?;
                    let below = input.read(6)? as u32;
                    Ok((1u64 << below) | input.read(below)?)
                }
            }
            Packing::Buckets => {
                let bucket = (input.peek(5) << 59).leading_ones().min(5);
                input.skip((bucket + 1).min(5))?;
                input.read(BUCKETS[bucket as usize])
            }
        }
    }
}

/// Bits of [`Packing::write_header`].
const HEADER_BITS: u64 = 9;
