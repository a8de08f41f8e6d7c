//! The records written since the last fsync under `everysec`, kept to repair
//! a failed fsync by writing them again.
//!
//! The buffers themselves are kept, not a copy of their bytes: under a
//! steady ingest a copy doubled the writer's memory traffic, and the copy's
//! buffer, grown past the limit and shrunk after each fsync, was faulted
//! in again every time. Buffers come back as spares once an fsync covered
//! them, so the connections' buffer keeps its capacity across batches
//! instead of growing again from empty each time.

use std::mem;

/// The capacity a new buffer starts with: a batch is written once it
/// holds `HIGH_WATER`, and puts go on arriving until the writer takes it.
/// Grown from empty instead, a buffer doubled its way up, copying itself
/// at every step and ending at twice `HIGH_WATER`, too large for the
/// spares to keep (measured: 13% of the server's CPU under ingest went
/// into growing it, most of it the kernel providing fresh pages).
pub(super) const BATCH_CAPACITY: usize = super::HIGH_WATER + super::HIGH_WATER / 2;

/// Spare capacity kept for new batches, at most: the buffers of as many
/// batches as can wait for one fsync (`UNSYNCED_LIMIT`), and one more.
const SPARE_LIMIT: usize = super::UNSYNCED_LIMIT + BATCH_CAPACITY;

#[derive(Debug, Default)]
pub(super) struct Unsynced {
    /// Written batches, oldest first.
    written: Vec<Vec<u8>>,
    /// Their bytes in all.
    len: usize,
    /// Empty buffers with their capacity, for the next batches.
    spare: Vec<Vec<u8>>,
}

impl Unsynced {
    /// Bytes written since the last fsync.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Keeps `batch` (written, not yet fsynced) and leaves an empty buffer
    /// in its place.
    pub(super) fn keep(&mut self, batch: &mut Vec<u8>) {
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH_CAPACITY));
        self.len += batch.len();
        self.written.push(mem::replace(batch, next));
    }

    /// An fsync covered everything kept: the buffers become spares.
    pub(super) fn clear(&mut self) {
        let mut capacity: usize = self.spare.iter().map(Vec::capacity).sum();
        for mut buf in self.written.drain(..) {
            if capacity + buf.capacity() <= SPARE_LIMIT {
                buf.clear();
                capacity += buf.capacity();
                self.spare.push(buf);
            }
        }
        self.len = 0;
    }

    /// Everything kept, followed by `held`, as one buffer (a failed fsync:
    /// all of it must be written again).
    pub(super) fn take_before(&mut self, held: &[u8]) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.len + held.len());
        for buf in &self.written {
            all.extend_from_slice(buf);
        }
        all.extend_from_slice(held);
        self.clear();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_batches_are_moved_and_their_buffers_reused() {
        let mut unsynced = Unsynced::default();
        let mut batch = Vec::with_capacity(64);
        batch.extend_from_slice(b"put a 1 1 x\n");
        let pointer = batch.as_ptr();
        unsynced.keep(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(unsynced.len(), 12);
        batch.extend_from_slice(b"put b 2 2 y\n");
        unsynced.keep(&mut batch);
        assert_eq!(unsynced.len(), 24);
        assert_eq!(unsynced.written[0].as_ptr(), pointer, "moved, not copied");
        unsynced.clear();
        assert_eq!(unsynced.len(), 0);
        unsynced.keep(&mut batch);
        // The next batch fills a buffer that kept its capacity.
        assert!(batch.capacity() >= 12);
    }

    #[test]
    fn a_failed_fsync_gets_everything_back_in_order() {
        let mut unsynced = Unsynced::default();
        let mut batch = b"one\n".to_vec();
        unsynced.keep(&mut batch);
        batch.extend_from_slice(b"two\n");
        unsynced.keep(&mut batch);
        assert_eq!(unsynced.take_before(b"three\n"), b"one\ntwo\nthree\n");
        assert_eq!(unsynced.len(), 0);
        assert_eq!(unsynced.take_before(b""), b"");
    }

    #[test]
    fn a_new_buffer_has_room_for_a_whole_batch() {
        let mut unsynced = Unsynced::default();
        let mut batch = b"x".to_vec();
        unsynced.keep(&mut batch);
        assert!(batch.capacity() >= BATCH_CAPACITY);
    }

    #[test]
    fn spares_are_bounded() {
        let mut unsynced = Unsynced::default();
        for _ in 0..3 {
            let mut batch = Vec::with_capacity(SPARE_LIMIT / 2 + 1);
            batch.push(b'x');
            unsynced.keep(&mut batch);
        }
        unsynced.clear();
        let capacity: usize = unsynced.spare.iter().map(Vec::capacity).sum();
        assert!(capacity <= SPARE_LIMIT, "{capacity}");
        assert_eq!(unsynced.spare.len(), 1);
    }
}
