//! What the store's allocations cost, for the memory limit: the bytes the
//! allocator sets aside for a block, not only the bytes asked for.

/// Bytes the allocator uses for a block of `size` bytes, modelled on glibc's
/// malloc (the allocator a Python process uses): an 8-byte header, 16-byte
/// granularity, 32 bytes at least. Zero for no allocation.
pub(super) const fn heap(size: usize) -> usize {
    if size == 0 {
        0
    } else {
        let rounded = (size + 8 + 15) & !15;
        if rounded < 32 {
            32
        } else {
            rounded
        }
    }
}

/// `heap` of a vector's buffer.
pub(super) const fn heap_of<T>(capacity: usize) -> usize {
    heap(capacity * std::mem::size_of::<T>())
}

/// Applies a signed change to a byte count.
pub(super) fn adjust(bytes: &mut usize, before: usize, after: usize) {
    *bytes = (*bytes + after).saturating_sub(before);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_like_malloc() {
        assert_eq!(heap(0), 0);
        assert_eq!(heap(1), 32);
        assert_eq!(heap(24), 32);
        assert_eq!(heap(25), 48);
        assert_eq!(heap(16 * 128), 2064);
        let mut bytes = 100;
        adjust(&mut bytes, 32, 64);
        assert_eq!(bytes, 132);
        adjust(&mut bytes, 64, 32);
        assert_eq!(bytes, 100);
    }
}
