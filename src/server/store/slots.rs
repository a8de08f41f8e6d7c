//! A vector that grows in fixed segments: pushing never moves what is
//! already stored, so growing to millions of entries has no copying stall
//! (a plain `Vec` copies everything each time it doubles).

use super::memory::heap_of;

/// Entries per segment.
const SEGMENT: usize = 4096;

#[derive(Debug)]
pub(super) struct Slots<T> {
    segments: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            segments: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, slot: usize) -> Option<&T> {
        self.segments.get(slot / SEGMENT)?.get(slot % SEGMENT)
    }

    pub(super) fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.segments
            .get_mut(slot / SEGMENT)?
            .get_mut(slot % SEGMENT)
    }

    /// Appends `value`, returning its slot and the bytes newly allocated.
    pub(super) fn push(&mut self, value: T) -> (usize, usize) {
        let outer = heap_of::<Vec<T>>(self.segments.capacity());
        let mut added = 0;
        match self.segments.last_mut() {
            Some(segment) if segment.len() < SEGMENT => {
                // Only the first segment starts small (a small store stays
                // small); it doubles until it reaches SEGMENT.
                if segment.len() == segment.capacity() {
                    let before = heap_of::<T>(segment.capacity());
                    segment.reserve_exact(segment.capacity().min(SEGMENT - segment.capacity()));
                    added += heap_of::<T>(segment.capacity()) - before;
                }
                segment.push(value);
            }
            _ => {
                let first = self.segments.is_empty();
                let mut segment = Vec::with_capacity(if first { 16 } else { SEGMENT });
                added += heap_of::<T>(segment.capacity());
                segment.push(value);
                self.segments.push(segment);
            }
        }
        added += heap_of::<Vec<T>>(self.segments.capacity()) - outer;
        let slot = self.len;
        self.len += 1;
        (slot, added)
    }

    /// Bytes allocated, counted from scratch.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        let segments: usize = self
            .segments
            .iter()
            .map(|s| heap_of::<T>(s.capacity()))
            .sum();
        segments + heap_of::<Vec<T>>(self.segments.capacity())
    }
}
