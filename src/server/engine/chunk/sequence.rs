//! A segment's sequence of integers (timestamps, or decimal mantissas)
//! after its first, which the reader already knows: as differences
//! (`delta`) or differences of differences (`delta-of-delta`), each either
//! zig-zagged or offset from the smallest, then bit-packed (`packing`).
//! All four ways are costed exactly and the cheapest is written.
//!
//! Arithmetic wraps (mod 2^64): a difference of two `i64`s may not fit one,
//! but the wrapped difference added back with wrapping gives the exact
//! value, so any `i64` sequence round-trips without a wider type.
//!
//! Layout: one bit for the order (0 delta, 1 delta-of-delta); for
//! delta-of-delta the first difference explicitly; then, if any numbers are
//! left, one bit for offset (the smallest, explicitly, follows) or zig-zag,
//! the packing header and the numbers.

use super::bits::{BitReader, BitWriter};
use super::packing::{width, Packing};
use super::varint::{unzigzag, zigzag};
use super::{ChunkError, SEGMENT_POINTS};

/// Reusable buffers for choosing a sequence's encoding.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    differences: Vec<i64>,
    second: Vec<i64>,
    offset: Vec<u64>,
    zigzag: Vec<u64>,
}

/// How the numbers of one order are made unsigned.
struct Plan {
    /// The smallest difference, subtracted from all, or `None` for zig-zag.
    offset: Option<i64>,
    packing: Packing,
    cost: u64,
}

/// Writes `values[1..]` (the reader is told `values[0]`).
pub(super) fn write(values: &[i64], out: &mut BitWriter, scratch: &mut Scratch) {
    if values.len() < 2 {
        return;
    }
    let Scratch {
        differences,
        second,
        offset,
        zigzag: zigzagged,
    } = scratch;
    differences.clear();
    differences.extend(values.windows(2).map(|w| w[1].wrapping_sub(w[0])));
    second.clear();
    second.extend(differences.windows(2).map(|w| w[1].wrapping_sub(w[0])));
    let delta = plan(differences, offset, zigzagged);
    // Delta-of-delta writes the first difference explicitly, then the
    // differences of the rest.
    let first = zigzag(differences[0]);
    let dod = (!second.is_empty()).then(|| plan(second, offset, zigzagged));
    match dod {
        Some(dod) if dod.cost + explicit_cost(first) < delta.cost => {
            out.write(1, 1);
            write_explicit(first, out);
            write_stream(second, &dod, out);
        }
        _ => {
            out.write(0, 1);
            write_stream(differences, &delta, out);
        }
    }
}

/// The cheaper of zig-zag and offset for `stream`.
fn plan(stream: &[i64], offset: &mut Vec<u64>, zigzagged: &mut Vec<u64>) -> Plan {
    let smallest = stream.iter().copied().min().unwrap_or(0);
    offset.clear();
    offset.extend(stream.iter().map(|&d| d.wrapping_sub(smallest) as u64));
    zigzagged.clear();
    zigzagged.extend(stream.iter().map(|&d| zigzag(d)));
    let (by_offset, offset_cost) = Packing::choose(offset);
    let (by_zigzag, zigzag_cost) = Packing::choose(zigzagged);
    let offset_cost = offset_cost + explicit_cost(zigzag(smallest));
    // One bit for the choice, when there is a stream at all.
    let bit = u64::from(!stream.is_empty());
    if offset_cost < zigzag_cost {
        Plan {
            offset: Some(smallest),
            packing: by_offset,
            cost: 1 + bit + offset_cost,
        }
    } else {
        Plan {
            offset: None,
            packing: by_zigzag,
            cost: 1 + bit + zigzag_cost,
        }
    }
}

fn write_stream(stream: &[i64], plan: &Plan, out: &mut BitWriter) {
    if stream.is_empty() {
        return;
    }
    match plan.offset {
        Some(smallest) => {
            out.write(1, 1);
            write_explicit(zigzag(smallest), out);
            plan.packing.write_header(out);
            for &d in stream {
                plan.packing.write(d.wrapping_sub(smallest) as u64, out);
            }
        }
        None => {
            out.write(0, 1);
            plan.packing.write_header(out);
            for &d in stream {
                plan.packing.write(zigzag(d), out);
            }
        }
    }
}

/// Reads one value per slot of `out`, the values after `first`: the
/// packed numbers first, then their sum, each in a loop of its own.
pub(super) fn read(first: i64, input: &mut BitReader, out: &mut [i64]) -> Result<(), ChunkError> {
    if out.is_empty() {
        return Ok(());
    }
    let second_order = input.bit()?;
    let mut previous = first;
    let mut difference = 0i64;
    let rest = if second_order {
        difference = unzigzag(read_explicit(input)?);
        previous = previous.wrapping_add(difference);
        out[0] = previous;
        &mut out[1..]
    } else {
        out
    };
    if rest.is_empty() {
        return Ok(());
    }
    let offset = match input.bit()? {
        true => Some(unzigzag(read_explicit(input)?)),
        false => None,
    };
    let packing = Packing::read_header(input)?;
    let mut numbers = [0u64; SEGMENT_POINTS];
    let numbers = numbers
        .get_mut(..rest.len())
        .ok_or(ChunkError::Corrupt("a sequence longer than a segment"))?;
    packing.read_into(input, numbers)?;
    let steps = rest.iter_mut().zip(numbers.iter());
    match offset {
        Some(smallest) => steps.for_each(|(slot, &n)| *slot = smallest.wrapping_add(n as i64)),
        None => steps.for_each(|(slot, &n)| *slot = unzigzag(n)),
    }
    if second_order {
        for slot in rest {
            difference = difference.wrapping_add(*slot);
            previous = previous.wrapping_add(difference);
            *slot = previous;
        }
    } else {
        for slot in rest {
            previous = previous.wrapping_add(*slot);
            *slot = previous;
        }
    }
    Ok(())
}

/// A number whose size is not known in advance: its width in 7 bits, then
/// its bits.
pub(super) fn write_explicit(value: u64, out: &mut BitWriter) {
    out.write(u64::from(width(value)), 7);
    out.write(value, width(value));
}

pub(super) fn explicit_cost(value: u64) -> u64 {
    7 + u64::from(width(value))
}

pub(super) fn read_explicit(input: &mut BitReader) -> Result<u64, ChunkError> {
    let bits = input.read(7)? as u32;
    if bits > 64 {
        return Err(ChunkError::Corrupt("explicit number wider than 64 bits"));
    }
    input.read(bits)
}
