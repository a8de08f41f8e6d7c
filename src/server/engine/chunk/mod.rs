//! The compressed chunk: one series' points (strictly increasing `i64`
//! timestamps, `f64` values of any bit pattern) in a few bits per point,
//! as Gorilla and VictoriaMetrics compress them. Sans-IO: bytes in, bytes
//! out; checksums are the block file's job, not the codec's.
//!
//! Layout: a format byte, the point count (varint, at most `u32::MAX`),
//! then for a chunk with points its first timestamp (zig-zag varint) and
//! the distance to its last (varint), so [`summary`] reads the header
//! alone; then the points in segments of [`SEGMENT_POINTS`] (`segment`),
//! which [`decode_range`] steps over when they are outside its range.
//! Inside a segment the timestamps are delta-of-delta (`timestamps`) and
//! the values decimal mantissas (`decimal`, odd values kept raw beside
//! them), Gorilla XOR (`xor`) or raw bits, whichever is smallest
//! (`values`); integers are bit-packed by the cheapest of three codes
//! (`bits`, `packing`, `sequence`).
//!
//! Decoding any bytes (truncated, garbled) returns an error or points,
//! never panics, allocates only for points the bytes really encode, and
//! does work bounded by their length and count.

mod bits;
mod decimal;
mod packing;
mod segment;
mod sequence;
mod timestamps;
mod values;
mod varint;
mod xor;

#[cfg(test)]
mod rooms_tests;
#[cfg(test)]
mod size_tests;
#[cfg(test)]
mod tests;

use thiserror::Error;

use crate::protocol::DecimalText;

pub use segment::SEGMENT_POINTS;
use segment::{Encoder, Segments};

/// The format byte every chunk starts with.
const FORMAT: u8 = 1;

/// What a chunk's header says: how many points, and the first and last
/// timestamps (both 0 for an empty chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSummary {
    pub count: u32,
    pub first: i64,
    pub last: i64,
}

#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum ChunkError {
    /// Timestamps must be strictly increasing; this one is not after the
    /// one before it.
    #[error("point {index} of the chunk is not after the point before it")]
    Unsorted { index: usize },
    #[error("a chunk holds at most 4294967295 points, not {count}")]
    TooMany { count: usize },
    #[error("chunk truncated")]
    Truncated,
    #[error("chunk corrupt: {0}")]
    Corrupt(&'static str),
    #[error("chunk format {0} is not known (this build reads format 1)")]
    UnknownFormat(u8),
}

/// Appends `points` as a chunk to `out`; on error appends nothing.
pub fn encode(points: &[(i64, f64)], out: &mut Vec<u8>) -> Result<ChunkSummary, ChunkError> {
    let count = u32::try_from(points.len()).map_err(|_| ChunkError::TooMany {
        count: points.len(),
    })?;
    if let Some(index) = (1..points.len()).find(|&i| points[i].0 <= points[i - 1].0) {
        return Err(ChunkError::Unsorted { index });
    }
    let summary = match (points.first(), points.last()) {
        (Some(first), Some(last)) => ChunkSummary {
            count,
            first: first.0,
            last: last.0,
        },
        _ => ChunkSummary {
            count: 0,
            first: 0,
            last: 0,
        },
    };
    out.push(FORMAT);
    varint::put(out, u64::from(count));
    if count > 0 {
        varint::put(out, varint::zigzag(summary.first));
        varint::put(out, summary.last.wrapping_sub(summary.first) as u64);
    }
    let mut encoder = Encoder::default();
    let mut previous = None;
    for segment in points.chunks(SEGMENT_POINTS) {
        encoder.write(segment, previous, out);
        previous = Some(segment[0].0);
    }
    Ok(summary)
}

/// The chunk's header, read without touching its segments.
pub fn summary(bytes: &[u8]) -> Result<ChunkSummary, ChunkError> {
    header(bytes).map(|(summary, _)| summary)
}

/// The header and where the segments start.
fn header(bytes: &[u8]) -> Result<(ChunkSummary, usize), ChunkError> {
    let format = *bytes.first().ok_or(ChunkError::Truncated)?;
    if format != FORMAT {
        return Err(ChunkError::UnknownFormat(format));
    }
    let mut at = 1;
    let count = u32::try_from(varint::get(bytes, &mut at)?)
        .map_err(|_| ChunkError::Corrupt("point count beyond 32 bits"))?;
    if count == 0 {
        let summary = ChunkSummary {
            count,
            first: 0,
            last: 0,
        };
        return Ok((summary, at));
    }
    let first = varint::unzigzag(varint::get(bytes, &mut at)?);
    let span = varint::get(bytes, &mut at)?;
    // `count` increasing timestamps span at least `count - 1`, and the
    // last must still be an i64.
    let last = i128::from(first) + i128::from(span);
    if span < u64::from(count - 1) || last > i128::from(i64::MAX) {
        return Err(ChunkError::Corrupt(
            "first and last timestamps disagree with the count",
        ));
    }
    let summary = ChunkSummary {
        count,
        first,
        last: last as i64,
    };
    Ok((summary, at))
}

/// Appends every point of the chunk to `out`; on error appends nothing.
pub fn decode(bytes: &[u8], out: &mut Vec<(i64, f64)>) -> Result<(), ChunkError> {
    all_or_nothing(out, None, |out, _| walk(bytes, i64::MIN, None, out, None))
}

/// Appends the chunk's points with timestamps in `[from, until)` to `out`,
/// stepping over segments wholly outside the range without decoding them;
/// on error appends nothing.
pub fn decode_range(
    bytes: &[u8],
    from: i64,
    until: i64,
    out: &mut Vec<(i64, f64)>,
) -> Result<(), ChunkError> {
    all_or_nothing(out, None, |out, _| {
        walk(bytes, from, Some(until), out, None)
    })
}

/// [`decode_range`], also appending to `texts` each point's value as a
/// [`DecimalText`] where the chunk holds it as one (a decimal mantissa
/// the text is known of), one entry per point appended to `out`.
pub fn decode_range_texts(
    bytes: &[u8],
    from: i64,
    until: i64,
    out: &mut Vec<(i64, f64)>,
    texts: &mut Vec<Option<DecimalText>>,
) -> Result<(), ChunkError> {
    all_or_nothing(out, Some(texts), |out, texts| {
        walk(bytes, from, Some(until), out, texts)
    })
}

/// Runs `decode` on `out` (and `texts`), taking back what it appended if
/// it fails.
fn all_or_nothing(
    out: &mut Vec<(i64, f64)>,
    mut texts: Option<&mut Vec<Option<DecimalText>>>,
    decode: impl FnOnce(
        &mut Vec<(i64, f64)>,
        Option<&mut Vec<Option<DecimalText>>>,
    ) -> Result<(), ChunkError>,
) -> Result<(), ChunkError> {
    let start = out.len();
    let text_start = texts.as_ref().map_or(0, |t| t.len());
    let result = decode(out, texts.as_deref_mut());
    if result.is_err() {
        out.truncate(start);
        if let Some(texts) = texts {
            texts.truncate(text_start);
        }
    }
    result
}

/// All decodes: `until` of `None` is the whole chunk, checked to the end;
/// `texts`, when asked for, kept one per point of `out`.
fn walk(
    bytes: &[u8],
    from: i64,
    until: Option<i64>,
    out: &mut Vec<(i64, f64)>,
    mut texts: Option<&mut Vec<Option<DecimalText>>>,
) -> Result<(), ChunkError> {
    let (summary, at) = header(bytes)?;
    if until.is_some_and(|until| from >= until) {
        return Ok(());
    }
    let mut segments = Segments::new(bytes, at, summary.count, summary.first)?;
    let mut current = segments.next_segment()?;
    // The last timestamp decoded, to check segments follow each other.
    let mut last: Option<i64> = None;
    while let Some(segment) = current {
        if until.is_some_and(|until| segment.first >= until) {
            return Ok(());
        }
        let next = segments.next_segment()?;
        // Every point of a segment is before the next segment's first.
        let end = next.map_or(summary.last, |next| next.first - 1);
        if end >= from {
            let before = out.len();
            let texts_before = texts.as_ref().map_or(0, |t| t.len());
            segment.decode(out, texts.as_deref_mut())?;
            let decoded = &out[before..];
            let segment_last = decoded[decoded.len() - 1].0;
            if segment_last > end {
                return Err(ChunkError::Corrupt(
                    "segment ends after the next one starts",
                ));
            }
            last = Some(segment_last);
            if from > i64::MIN || until.is_some() {
                let until = until.unwrap_or(i64::MAX);
                let keep_from = before + decoded.partition_point(|p| p.0 < from);
                let keep_until = before + decoded.partition_point(|p| p.0 < until);
                out.truncate(keep_until);
                out.drain(before..keep_from);
                if let Some(texts) = texts.as_deref_mut() {
                    texts.truncate(texts_before + (keep_until - before));
                    texts.drain(texts_before..texts_before + (keep_from - before));
                }
            }
        }
        current = next;
    }
    if until.is_none() {
        if last != Some(summary.last) && summary.count > 0 {
            return Err(ChunkError::Corrupt(
                "last timestamp differs from the header's",
            ));
        }
        if segments.at != bytes.len() {
            return Err(ChunkError::Corrupt("bytes after the last segment"));
        }
    }
    Ok(())
}
