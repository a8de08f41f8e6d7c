//! Gorilla's XOR code for values that are not decimal: each value's bits
//! XORed with the previous value's, the meaningful bits written inside a
//! window of leading and trailing zeros that is reused while it fits.
//!
//! Per value after the first (64 bits raw): `0` for the same bits; `10`
//! then the bits inside the previous window; `11`, 6 bits of leading
//! zeros, 6 bits of the meaningful length minus one, then those bits.

use super::bits::{BitReader, BitWriter};
use super::ChunkError;

pub(super) fn write(values: &[f64], out: &mut BitWriter) {
    let Some((first, rest)) = values.split_first() else {
        return;
    };
    let mut previous = first.to_bits();
    out.write(previous, 64);
    // The window: leading zeros and meaningful length; none at first.
    let mut window: Option<(u32, u32)> = None;
    for value in rest {
        let bits = value.to_bits();
        let xor = bits ^ previous;
        previous = bits;
        if xor == 0 {
            out.write(0, 1);
            continue;
        }
        let (leading, trailing) = (xor.leading_zeros(), xor.trailing_zeros());
        match window {
            Some((start, length)) if leading >= start && trailing >= 64 - start - length => {
                out.write(0b10, 2);
                out.write(xor >> (64 - start - length), length);
            }
            _ => {
                let length = 64 - leading - trailing;
                out.write(0b11, 2);
                out.write(u64::from(leading), 6);
                out.write(u64::from(length - 1), 6);
                out.write(xor >> trailing, length);
                window = Some((leading, length));
            }
        }
    }
}

/// Reads `count` values into `out` (one per slot).
pub(super) fn read(input: &mut BitReader, out: &mut [f64]) -> Result<(), ChunkError> {
    let Some((first, rest)) = out.split_first_mut() else {
        return Ok(());
    };
    let mut previous = input.read(64)?;
    *first = f64::from_bits(previous);
    let mut window: Option<(u32, u32)> = None;
    for slot in rest {
        if input.bit()? {
            let (start, length) = match (input.bit()?, window) {
                (false, Some(window)) => window,
                (false, None) => return Err(ChunkError::Corrupt("XOR window reused before set")),
                (true, _) => {
                    let start = input.read(6)? as u32;
                    let length = input.read(6)? as u32 + 1;
                    if start + length > 64 {
                        return Err(ChunkError::Corrupt("XOR window beyond 64 bits"));
                    }
                    window = Some((start, length));
                    (start, length)
                }
            };
            previous ^= input.read(length)? << (64 - start - length);
        }
        *slot = f64::from_bits(previous);
    }
    Ok(())
}
