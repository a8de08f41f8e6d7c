//! A segment's values, in the cheapest of three codes (two bits say which):
//!
//! - decimal: one exponent (11 bits, two's complement); the exceptions
//!   (values with no mantissa at that exponent, such as -0.0 or a NaN
//!   staleness marker) as their count explicitly, then each as its index
//!   (10 bits) and its 64 bits; the first mantissa explicitly, then the
//!   mantissas as an integer `sequence`: a counter or a gauge with a few
//!   decimals costs a few bits per point;
//! - XOR (`xor`): Gorilla's code, for values that are not decimal;
//! - raw: 64 bits each, so values with no structure (random bits) cost no
//!   more than they are.
//!
//! Decimal is tried first and kept when it is no larger than XOR; every
//! value must round-trip through it bit-exactly (see `decimal`), so -0.0,
//! NaN payloads, infinities and subnormals all come back as they went in.

use super::bits::{BitReader, BitWriter};
use super::decimal::{self, Decimals, EXPONENT_BITS};
use super::sequence::{self, read_explicit, write_explicit};
use super::varint::{unzigzag, zigzag};
use super::{xor, ChunkError, SEGMENT_POINTS};
use crate::protocol::DecimalText;

/// Bits of an exception's index in its segment.
const INDEX_BITS: u32 = 10;
const _: () = assert!(SEGMENT_POINTS <= 1 << INDEX_BITS);

const DECIMAL: u64 = 0;
const XOR: u64 = 1;
const RAW: u64 = 2;

/// Reusable buffers for choosing a segment's value code.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    decimal: BitWriter,
    xor: BitWriter,
    decimals: Decimals,
    sequence: sequence::Scratch,
}

/// Writes `values` in the cheapest code.
pub(super) fn write(values: &[f64], out: &mut BitWriter, scratch: &mut Scratch) {
    if values.is_empty() {
        // Segments are never empty; nothing to choose between.
        return;
    }
    scratch.decimal.clear();
    let decimals = &mut scratch.decimals;
    let decimal = decimals.analyse(values).then(|| {
        let written = &mut scratch.decimal;
        written.write(decimals.exponent as u64, EXPONENT_BITS);
        write_explicit(decimals.exceptions.len() as u64, written);
        for &index in &decimals.exceptions {
            written.write(index as u64, INDEX_BITS);
            written.write(values[index].to_bits(), 64);
        }
        write_explicit(zigzag(decimals.mantissas[0]), written);
        sequence::write(&decimals.mantissas, written, &mut scratch.sequence);
        written.len()
    });
    scratch.xor.clear();
    xor::write(values, &mut scratch.xor);
    let raw = 64 * values.len() as u64;
    let xor = scratch.xor.len();
    match decimal {
        Some(bits) if bits <= xor && bits <= raw => {
            out.write(DECIMAL, 2);
            out.append(&scratch.decimal);
        }
        _ if xor < raw => {
            out.write(XOR, 2);
            out.append(&scratch.xor);
        }
        _ => {
            out.write(RAW, 2);
            for value in values {
                out.write(value.to_bits(), 64);
            }
        }
    }
}

/// Reads one value per slot of `out`; with `texts` (as long as `out`, all
/// `None`), also sets each decimal value's text (exceptions and values in
/// the other codes keep `None`).
pub(super) fn read(
    input: &mut BitReader,
    out: &mut [f64],
    texts: Option<&mut [Option<DecimalText>]>,
) -> Result<(), ChunkError> {
    match input.read(2)? {
        DECIMAL => {
            let exponent = input.read(EXPONENT_BITS)?;
            // Sign-extend the 11-bit exponent.
            let shift = 64 - EXPONENT_BITS;
            let exponent = ((exponent << shift) as i64 >> shift) as i32;
            let exceptions = read_explicit(input)?;
            if exceptions > out.len() as u64 {
                return Err(ChunkError::Corrupt("more exceptions than values"));
            }
            // Where the exceptions go: read before the mantissas, applied
            // after them.
            let mut raw = [(0usize, 0u64); SEGMENT_POINTS];
            let raw = &mut raw[..exceptions as usize];
            let mut previous = None;
            for slot in raw.iter_mut() {
                let index = input.read(INDEX_BITS)? as usize;
                if index >= out.len() || previous.is_some_and(|previous| index <= previous) {
                    return Err(ChunkError::Corrupt("exceptions out of order"));
                }
                previous = Some(index);
                *slot = (index, input.read(64)?);
            }
            if out.is_empty() {
                return Err(ChunkError::Corrupt("values of an empty segment"));
            }
            let mut mantissas = [0i64; SEGMENT_POINTS];
            let mantissas = &mut mantissas[..out.len()];
            mantissas[0] = unzigzag(read_explicit(input)?);
            sequence::read(mantissas[0], input, &mut mantissas[1..])?;
            decimal::compose_all(mantissas, exponent, out);
            if let Some(texts) = texts {
                for (text, &mantissa) in texts.iter_mut().zip(mantissas.iter()) {
                    *text = DecimalText::new(mantissa, exponent);
                }
                for &(index, _) in raw.iter() {
                    texts[index] = None;
                }
            }
            for &(index, bits) in raw.iter() {
                out[index] = f64::from_bits(bits);
            }
            Ok(())
        }
        XOR => xor::read(input, out),
        RAW => {
            for slot in out {
                *slot = f64::from_bits(input.read(64)?);
            }
            Ok(())
        }
        _ => Err(ChunkError::Corrupt("unknown value code")),
    }
}
