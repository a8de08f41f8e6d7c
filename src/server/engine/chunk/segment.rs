//! Segments: a chunk's points in runs of [`SEGMENT_POINTS`], each framed
//! so that a reader can step over it without decoding it.
//!
//! A segment is its body's length in bytes (varint), its first timestamp
//! (for all but the first segment, whose first timestamp is the chunk's: a
//! varint of its distance from the previous segment's first, so each
//! segment's absolute first timestamp is known from the headers alone),
//! then the body: the timestamps after the first (`timestamps`) and the
//! values (`values`) as one bit stream, padded to a byte. How many points a
//! segment holds follows from the chunk's count: all but the last are full.

use super::bits::{BitReader, BitWriter};
use super::{sequence, timestamps, values, varint, ChunkError};
use crate::protocol::DecimalText;

/// Points per segment, the last excepted.
pub const SEGMENT_POINTS: usize = 1024;

/// A segment found by [`Segments`], its body not yet decoded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment<'a> {
    pub(super) first: i64,
    pub(super) count: usize,
    body: &'a [u8],
}

/// Reusable buffers for encoding segments.
#[derive(Debug, Default)]
pub(super) struct Encoder {
    body: BitWriter,
    bytes: Vec<u8>,
    timestamps: Vec<i64>,
    values: Vec<f64>,
    sequence: sequence::Scratch,
    value_scratch: values::Scratch,
}

impl Encoder {
    /// Appends the segment of `points` (not empty, sorted), the one after
    /// a segment starting at `previous_first` if any.
    pub(super) fn write(
        &mut self,
        points: &[(i64, f64)],
        previous_first: Option<i64>,
        out: &mut Vec<u8>,
    ) {
        self.timestamps.clear();
        self.timestamps.extend(points.iter().map(|p| p.0));
        self.values.clear();
        self.values.extend(points.iter().map(|p| p.1));
        self.body.clear();
        timestamps::write(&self.timestamps, &mut self.body, &mut self.sequence);
        values::write(&self.values, &mut self.body, &mut self.value_scratch);
        self.bytes.clear();
        self.body.finish_into(&mut self.bytes);
        varint::put(out, self.bytes.len() as u64);
        if let Some(previous) = previous_first {
            varint::put(out, self.timestamps[0].wrapping_sub(previous) as u64);
        }
        out.extend_from_slice(&self.bytes);
    }
}

impl Segment<'_> {
    /// Appends the segment's points to `out`, and to `texts` their values'
    /// decimal texts where they have one (see `values::read`).
    pub(super) fn decode(
        &self,
        out: &mut Vec<(i64, f64)>,
        texts: Option<&mut Vec<Option<DecimalText>>>,
    ) -> Result<(), ChunkError> {
        let mut times = [0i64; SEGMENT_POINTS];
        let mut values = [0f64; SEGMENT_POINTS];
        let (times, values) = (&mut times[..self.count], &mut values[..self.count]);
        times[0] = self.first;
        let mut input = BitReader::new(self.body);
        timestamps::read(self.first, &mut input, &mut times[1..])?;
        let texts = texts.map(|texts| {
            let at = texts.len();
            texts.resize(at + self.count, None);
            &mut texts[at..]
        });
        values::read(&mut input, values, texts)?;
        input.finish()?;
        out.extend(times.iter().copied().zip(values.iter().copied()));
        Ok(())
    }
}

/// Walks a chunk's segment headers.
#[derive(Debug)]
pub(super) struct Segments<'a> {
    bytes: &'a [u8],
    /// Where the next segment starts.
    pub(super) at: usize,
    /// Points in the segments not yet walked.
    left: u64,
    /// The first timestamp of the segment walked last, or the chunk's
    /// before the first segment.
    first: i64,
    started: bool,
}

impl<'a> Segments<'a> {
    /// The segments of a chunk of `count` points from `first`, starting at
    /// `at`; fails at once if the bytes left cannot hold that many (each
    /// takes at least two bytes, three after the first).
    pub(super) fn new(
        bytes: &'a [u8],
        at: usize,
        count: u32,
        first: i64,
    ) -> Result<Self, ChunkError> {
        let segments = (count as usize).div_ceil(SEGMENT_POINTS);
        if segments > 0 && bytes.len().saturating_sub(at) < 3 * segments - 1 {
            return Err(ChunkError::Truncated);
        }
        Ok(Segments {
            bytes,
            at,
            left: u64::from(count),
            first,
            started: false,
        })
    }

    /// The next segment, or `None` after the last.
    pub(super) fn next_segment(&mut self) -> Result<Option<Segment<'a>>, ChunkError> {
        if self.left == 0 {
            return Ok(None);
        }
        let length = varint::get(self.bytes, &mut self.at)?;
        if self.started {
            let distance = varint::get(self.bytes, &mut self.at)?;
            // The previous segment was full of increasing timestamps.
            let first = i128::from(self.first) + i128::from(distance);
            if distance < SEGMENT_POINTS as u64 || first > i128::from(i64::MAX) {
                return Err(ChunkError::Corrupt(
                    "segment starts before the previous one ends",
                ));
            }
            self.first = first as i64;
        }
        self.started = true;
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| self.at.checked_add(length))
            .filter(|&end| end <= self.bytes.len())
            .ok_or(ChunkError::Truncated)?;
        let count = self.left.min(SEGMENT_POINTS as u64) as usize;
        self.left -= count as u64;
        let segment = Segment {
            first: self.first,
            count,
            body: &self.bytes[self.at..end],
        };
        self.at = end;
        Ok(Some(segment))
    }
}
