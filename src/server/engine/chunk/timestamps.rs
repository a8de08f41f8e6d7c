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
    let mut previous = first;
    let mut slots = out.iter_mut();
    sequence::read(first, slots.len(), input, |timestamp| {
        if timestamp <= previous {
            return Err(ChunkError::Corrupt("timestamps out of order"));
        }
        previous = timestamp;
        if let Some(slot) = slots.next() {
            *slot = timestamp;
        }
        Ok(())
    })
}
