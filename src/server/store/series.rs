//! One key's points: runs ("chunks") of at most `CHUNK` points sorted by
//! timestamp, the chunks in order. Timestamps mostly grow, so a new point
//! usually lands at the end of the last chunk; one out of order touches
//! one small chunk (splitting it when full), never the whole series. A
//! series of up to `CHUNK` points is a single vector, without the list of
//! chunks. Every chunk is non-empty.

use std::slice;

use super::memory::{heap_of, adjust};

/// A timestamp and its value.
pub(super) type Point = (i64, f64);

/// Most points in one chunk: 2 KiB, cheap to shift for an insert, and large
/// enough that a long series costs about 16 bytes per point.
pub(super) const CHUNK: usize = 128;

type Chunk = Vec<Point>;

#[derive(Debug)]
pub(super) enum Points {
    Single(Chunk),
    Chunked(Vec<Chunk>),
}

/// Where a point sits: chunk number and index in the chunk.
pub(super) type Position = (usize, usize);

fn chunk_bytes(chunk: &Chunk) -> usize {
    heap_of::<Point>(chunk.capacity())
}

/// Makes room for one more point in `chunk`, doubling its capacity (never
/// past `CHUNK`) rather than letting `Vec` pick a minimum of four.
fn reserve_one(chunk: &mut Chunk, bytes: &mut usize) {
    if chunk.len() == chunk.capacity() {
        let before = chunk_bytes(chunk);
        // Only called on chunks shorter than CHUNK, so room remains.
        let grow = chunk.capacity().max(1).min(CHUNK - chunk.capacity());
        chunk.reserve_exact(grow);
        adjust(bytes, before, chunk_bytes(chunk));
    }
}

impl Points {
    /// A series holding one point, and the bytes it allocated.
    pub(super) fn new(timestamp: i64, value: f64) -> (Self, usize) {
        let mut chunk = Vec::with_capacity(1);
        chunk.push((timestamp, value));
        let bytes = chunk_bytes(&chunk);
        (Points::Single(chunk), bytes)
    }

    pub(super) fn chunks(&self) -> &[Chunk] {
        match self {
            Points::Single(chunk) => slice::from_ref(chunk),
            Points::Chunked(chunks) => chunks,
        }
    }

    /// The chunk where `timestamp` is or would go: the last one starting
    /// at or before it (the first when it precedes them all).
    fn chunk_for(&self, timestamp: i64) -> usize {
        let chunks = self.chunks();
        let last = chunks.len() - 1;
        if chunks[last][0].0 <= timestamp {
            return last; // the common case: at or past the last chunk's start
        }
        chunks
            .partition_point(|chunk| chunk[0].0 <= timestamp)
            .saturating_sub(1)
    }

    pub(super) fn contains(&self, timestamp: i64) -> bool {
        let chunk = &self.chunks()[self.chunk_for(timestamp)];
        chunk.binary_search_by_key(&timestamp, |p| p.0).is_ok()
    }

    /// The first point with a timestamp after `after` (from the start when
    /// `None`); may be one past the end.
    pub(super) fn first_after(&self, after: Option<i64>) -> Position {
        let Some(after) = after else {
            return (0, 0);
        };
        let chunks = self.chunks();
        let c = chunks.partition_point(|chunk| chunk[chunk.len() - 1].0 <= after);
        match chunks.get(c) {
            Some(chunk) => (c, chunk.partition_point(|p| p.0 <= after)),
            None => (c, 0),
        }
    }

    /// Stores `value` at `timestamp`, keeping `bytes` (the store's count of
    /// allocated bytes) up to date. Returns whether the point is new.
    pub(super) fn insert(&mut self, timestamp: i64, value: f64, bytes: &mut usize) -> bool {
        let c = self.chunk_for(timestamp);
        let chunk = &self.chunks()[c];
        let at = match chunk.binary_search_by_key(&timestamp, |p| p.0) {
            Ok(at) => {
                self.chunk_mut(c)[at].1 = value;
                return false;
            }
            Err(at) => at,
        };
        if chunk.len() < CHUNK {
            let chunk = self.chunk_mut(c);
            reserve_one(chunk, bytes);
            chunk.insert(at, (timestamp, value));
            return true;
        }
        // The chunk is full.
        let chunks = self.make_chunked(bytes);
        if at == CHUNK {
            // After the whole chunk: at the front of the next one if it has
            // room, else in a new chunk (timestamps in order fill chunks to
            // the brim this way).
            if let Some(next) = chunks.get_mut(c + 1).filter(|next| next.len() < CHUNK) {
                reserve_one(next, bytes);
                next.insert(0, (timestamp, value));
            } else {
                // At the end, timestamps in order will fill it: full size at
                // once. Between chunks it may stay small: grow as needed.
                let last = c + 1 == chunks.len();
                let mut fresh = Vec::with_capacity(if last { CHUNK } else { 1 });
                fresh.push((timestamp, value));
                *bytes += chunk_bytes(&fresh);
                insert_chunk(chunks, c + 1, fresh, bytes);
            }
        } else {
            // Inside the chunk: split it in halves.
            let mut tail = Vec::with_capacity(CHUNK);
            tail.extend_from_slice(&chunks[c][CHUNK / 2..]);
            chunks[c].truncate(CHUNK / 2);
            *bytes += chunk_bytes(&tail);
            if at <= CHUNK / 2 {
                chunks[c].insert(at, (timestamp, value));
            } else {
                tail.insert(at - CHUNK / 2, (timestamp, value));
            }
            insert_chunk(chunks, c + 1, tail, bytes);
        }
        true
    }

    fn chunk_mut(&mut self, c: usize) -> &mut Chunk {
        match self {
            Points::Single(chunk) => chunk,
            Points::Chunked(chunks) => &mut chunks[c],
        }
    }

    fn make_chunked(&mut self, bytes: &mut usize) -> &mut Vec<Chunk> {
        if let Points::Single(chunk) = self {
            let chunks = vec![std::mem::take(chunk)];
            *bytes += heap_of::<Chunk>(chunks.capacity());
            *self = Points::Chunked(chunks);
        }
        match self {
            Points::Chunked(chunks) => chunks,
            Points::Single(_) => unreachable!("made chunked just above"),
        }
    }

    /// Allocated bytes, counted from scratch (the store keeps a running
    /// count; this checks it).
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        let chunks: usize = self.chunks().iter().map(chunk_bytes).sum();
        match self {
            Points::Single(_) => chunks,
            Points::Chunked(list) => chunks + heap_of::<Chunk>(list.capacity()),
        }
    }

    /// Whether every chunk is non-empty, sorted, and no longer than `CHUNK`,
    /// and the chunks are in order.
    #[cfg(test)]
    pub(super) fn check(&self) {
        let mut last = None;
        for chunk in self.chunks() {
            assert!(!chunk.is_empty() && chunk.len() <= CHUNK);
            for &(ts, _) in chunk {
                assert!(last < Some(ts), "points out of order");
                last = Some(ts);
            }
        }
    }
}

fn insert_chunk(chunks: &mut Vec<Chunk>, at: usize, chunk: Chunk, bytes: &mut usize) {
    let before = heap_of::<Chunk>(chunks.capacity());
    chunks.insert(at, chunk);
    adjust(bytes, before, heap_of::<Chunk>(chunks.capacity()));
}
