//! A segment's timestamps after its first (which the segment header
//! holds): an integer `sequence`, nearly always delta-of-delta. A regular
//! series (all steps equal) costs a fixed header and no bits per point;
//! jitter costs a few bits per point.
//!
//! Any `i64` timestamps round-trip: steps up to 2^64 - 1 wrap in an `i64`
//! and unwrap exactly (see `sequence`). Reading checks that every timestamp
//! is after the one before, so a garbled body is an error, not a chunk
//! out of order.

use super::bits::{BitReader, BitWriter};
use super::sequence::{self, Scratch};
use super::ChunkError;

pub(super) fn write(timestamps: &[i64], out: &mut BitWriter, scratch: &mut Scratch) {
    sequence::write(timestamps, out, scratch);
}

/// Fills `out` with the timestamps after `first` (one per slot).
pub(super) fn read(first: i64, input: &mut BitReader, out: &mut [i64]) -> Result<(), ChunkError> {
    sequence::read(first, input, out)?;
    let mut previous = first;
    // A fold rather than an early exit: a loop without a branch per point.
    let ordered = out.iter().fold(true, |ordered, &t| {
        let after = t > previous;
        previous = t;
        ordered & after
    });
    match ordered {
        true => Ok(()),
        false => Err(ChunkError::Corrupt("timestamps out of order")),
    }
}
