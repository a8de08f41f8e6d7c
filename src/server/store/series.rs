//! One key's points: runs ("chunks") of at most `CHUNK` points sorted by
//! timestamp, the chunks in order. Timestamps mostly grow, so a new point
//! usually lands at the end of the last chunk; one out of order touches
//! one small chunk (splitting it when full), never the whole series. A
//! series of up to `CHUNK` points is a single vector, without the list of
//! chunks. Every chunk is non-empty.

use super::ahead::ChunksAhead;
use super::memory::{adjust, heap_of};
use crate::protocol::Point;

/// Most points in one chunk: 2 KiB, cheap to shift for an insert, and large
/// enough that a long series costs about 16 bytes per point.
pub(super) const CHUNK: usize = 128;

pub(super) type Chunk = Vec<Point>;

/// A chunk in a list, with its first timestamp beside it so that finding a
/// chunk searches one contiguous array instead of visiting every chunk.
#[derive(Debug)]
pub(super) struct Run {
    first: i64,
    points: Chunk,
}

#[derive(Debug)]
pub(super) enum Points {
    Single(Chunk),
    Chunked(Vec<Run>),
}

/// Where a point sits: chunk number and index in the chunk.
pub(super) type Position = (usize, usize);

fn chunk_bytes(chunk: &Chunk) -> usize {
    heap_of::<Point>(chunk.capacity())
}

/// Makes room for one more point in `chunk` (shorter than `CHUNK`): from
/// one point (a new key's) to four, then doubling up to `CHUNK`. One point
/// keeps single-point keys small; skipping two saves a reallocation for
/// keys that grow.
fn reserve_one(chunk: &mut Chunk, bytes: &mut usize) {
    if chunk.len() == chunk.capacity() {
        let before = chunk_bytes(chunk);
        let grow = match chunk.capacity() {
            // A new key (its slot made empty by `Store::slot_for`) gets
            // its first point here: room for that one only.
            0 => 1,
            1 => 3,
            capacity => capacity.min(CHUNK - capacity),
        };
        chunk.reserve_exact(grow);
        adjust(bytes, before, chunk_bytes(chunk));
    }
}

impl Points {
    /// A series with no point yet: a new key's, until its first point is
    /// stored, or a key whose points are all sealed.
    pub(super) fn empty() -> Self {
        Points::Single(Vec::new())
    }

    /// The series of `points` (sorted by timestamp, no timestamp twice),
    /// in full chunks, and the bytes it allocated.
    pub(super) fn from_sorted(points: &[Point]) -> (Self, usize) {
        if points.len() <= CHUNK {
            let chunk = points.to_vec();
            let bytes = chunk_bytes(&chunk);
            return (Points::Single(chunk), bytes);
        }
        let runs: Vec<Run> = points
            .chunks(CHUNK)
            .map(|piece| Run {
                first: piece[0].0,
                points: piece.to_vec(),
            })
            .collect();
        let bytes = runs
            .iter()
            .map(|run| chunk_bytes(&run.points))
            .sum::<usize>()
            + heap_of::<Run>(runs.capacity());
        (Points::Chunked(runs), bytes)
    }

    pub(super) fn chunk_count(&self) -> usize {
        match self {
            Points::Single(_) => 1,
            Points::Chunked(runs) => runs.len(),
        }
    }

    /// Chunk `c`, which must exist.
    pub(super) fn chunk(&self, c: usize) -> &[Point] {
        match self {
            Points::Single(chunk) => chunk,
            Points::Chunked(runs) => &runs[c].points,
        }
    }

    fn chunk_mut(&mut self, c: usize) -> &mut Chunk {
        match self {
            Points::Single(chunk) => chunk,
            Points::Chunked(runs) => &mut runs[c].points,
        }
    }

    /// The chunk where `timestamp` is or would go: the last one starting
    /// at or before it (the first when it precedes them all).
    fn chunk_for(&self, timestamp: i64) -> usize {
        match self {
            Points::Single(_) => 0,
            Points::Chunked(runs) => {
                let last = runs.len() - 1;
                if runs[last].first <= timestamp {
                    return last; // the common case: timestamps grow
                }
                runs.partition_point(|run| run.first <= timestamp)
                    .saturating_sub(1)
            }
        }
    }

    pub(super) fn contains(&self, timestamp: i64) -> bool {
        let chunk = self.chunk(self.chunk_for(timestamp));
        chunk.binary_search_by_key(&timestamp, |p| p.0).is_ok()
    }

    /// The first point with a timestamp after `after` (from the start when
    /// `None`); may be past the end.
    pub(super) fn first_after(&self, after: Option<i64>) -> Position {
        let Some(after) = after else {
            return (0, 0);
        };
        let c = self.chunk_for(after);
        let chunk = self.chunk(c);
        let at = chunk.partition_point(|p| p.0 <= after);
        if at == chunk.len() {
            (c + 1, 0)
        } else {
            (c, at)
        }
    }

    /// The first point with a timestamp at or after `from`; may be past
    /// the end (`(chunk_count(), 0)`).
    pub(super) fn first_at(&self, from: i64) -> Position {
        self.first_after(from.checked_sub(1))
    }

    /// Stores `value` at `timestamp`, keeping `bytes` (the store's count of
    /// allocated bytes) up to date; a new full-size chunk comes from `ahead`
    /// when it has one. Returns whether the point is new.
    pub(super) fn insert(
        &mut self,
        timestamp: i64,
        value: f64,
        bytes: &mut usize,
        ahead: Option<&ChunksAhead>,
    ) -> bool {
        let c = self.chunk_for(timestamp);
        let chunk = self.chunk_mut(c);
        // Timestamps mostly grow: a point after the chunk's last goes at
        // its end, found without a binary search (whose probes into the
        // middle of the chunk miss the cache when many series take turns).
        let after_last = chunk.last().is_none_or(|last| last.0 < timestamp);
        let found = if after_last {
            Err(chunk.len())
        } else {
            chunk.binary_search_by_key(&timestamp, |p| p.0)
        };
        let at = match found {
            Ok(at) => {
                chunk[at].1 = value;
                return false;
            }
            Err(at) => at,
        };
        if chunk.len() < CHUNK {
            reserve_one(chunk, bytes);
            chunk.insert(at, (timestamp, value));
            if let (0, Points::Chunked(runs)) = (at, self) {
                runs[c].first = timestamp;
            }
            return true;
        }
        // The chunk is full.
        let runs = self.make_chunked(bytes);
        if at == CHUNK {
            // After the whole chunk: at the front of the next one if it has
            // room, else in a new chunk (so timestamps in order fill chunks
            // to the brim).
            match runs.get_mut(c + 1).filter(|next| next.points.len() < CHUNK) {
                Some(next) => {
                    reserve_one(&mut next.points, bytes);
                    next.points.insert(0, (timestamp, value));
                    next.first = timestamp;
                }
                None => {
                    // At the end, timestamps in order will fill it: full
                    // size at once. Between chunks it may stay small.
                    let last = c + 1 == runs.len();
                    let mut fresh = if last {
                        full_size(ahead)
                    } else {
                        Vec::with_capacity(1)
                    };
                    fresh.push((timestamp, value));
                    *bytes += chunk_bytes(&fresh);
                    insert_run(runs, c + 1, fresh, bytes);
                }
            }
        } else {
            // Inside the chunk: split it in halves.
            let mut tail = full_size(ahead);
            tail.extend_from_slice(&runs[c].points[CHUNK / 2..]);
            runs[c].points.truncate(CHUNK / 2);
            *bytes += chunk_bytes(&tail);
            if at <= CHUNK / 2 {
                runs[c].points.insert(at, (timestamp, value));
                runs[c].first = runs[c].points[0].0;
            } else {
                tail.insert(at - CHUNK / 2, (timestamp, value));
            }
            insert_run(runs, c + 1, tail, bytes);
        }
        true
    }

    fn make_chunked(&mut self, bytes: &mut usize) -> &mut Vec<Run> {
        if let Points::Single(chunk) = self {
            let points = std::mem::take(chunk);
            let runs = vec![Run {
                first: points[0].0,
                points,
            }];
            *bytes += heap_of::<Run>(runs.capacity());
            *self = Points::Chunked(runs);
        }
        match self {
            Points::Chunked(runs) => runs,
            Points::Single(_) => unreachable!("made chunked just above"),
        }
    }

    /// Allocated bytes, counted from scratch (the store keeps a running
    /// count; tests check it, and replacing a whole series uses it).
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Points::Single(chunk) => chunk_bytes(chunk),
            Points::Chunked(runs) => {
                let chunks: usize = runs.iter().map(|run| chunk_bytes(&run.points)).sum();
                chunks + heap_of::<Run>(runs.capacity())
            }
        }
    }

    /// Checks that chunks are non-empty, sorted, no longer than `CHUNK`, in
    /// order, and that each run knows its first timestamp.
    #[cfg(test)]
    pub(super) fn check(&self) {
        let mut last = None;
        for c in 0..self.chunk_count() {
            let chunk = self.chunk(c);
            // Only a series whose points were all sealed is empty.
            let empty_single = chunk.is_empty() && matches!(self, Points::Single(_));
            assert!((empty_single || !chunk.is_empty()) && chunk.len() <= CHUNK);
            if let Points::Chunked(runs) = self {
                assert_eq!(runs[c].first, chunk[0].0);
            }
            for &(ts, _) in chunk {
                assert!(last < Some(ts), "points out of order");
                last = Some(ts);
            }
        }
    }
}

/// An empty chunk with room for `CHUNK` points.
fn full_size(ahead: Option<&ChunksAhead>) -> Chunk {
    ahead
        .and_then(ChunksAhead::take)
        .unwrap_or_else(|| Vec::with_capacity(CHUNK))
}

fn insert_run(runs: &mut Vec<Run>, at: usize, points: Chunk, bytes: &mut usize) {
    let before = heap_of::<Run>(runs.capacity());
    runs.insert(
        at,
        Run {
            first: points[0].0,
            points,
        },
    );
    adjust(bytes, before, heap_of::<Run>(runs.capacity()));
}
