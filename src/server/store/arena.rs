//! The keys' bytes, each stored once: short keys packed into shared 64 KiB
//! blocks, long ones in a block of their own. Keys are never removed, so a
//! block never moves or shrinks once written, and adding a key never copies
//! the others (no reallocation stall as the store grows).

use super::memory::heap_of;

const BLOCK: usize = 64 << 10;
/// Keys longer than this get a block of their own, so that packing wastes at
/// most this much at the end of a shared block.
const PACKED_MAX: usize = BLOCK / 16;
/// `KeyRef::len` of a key that fills its own block.
const OWN_BLOCK: u32 = u32::MAX;

/// Where a key's bytes are.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyRef {
    block: u32,
    start: u32,
    len: u32,
}

#[derive(Debug, Default)]
pub(super) struct Arena {
    blocks: Vec<Vec<u8>>,
    /// The shared block being filled, if any.
    packing: Option<usize>,
}

impl Arena {
    /// Stores `key`, returning where it is and the bytes newly allocated.
    pub(super) fn push(&mut self, key: &str) -> (KeyRef, usize) {
        let outer = heap_of::<Vec<u8>>(self.blocks.capacity());
        let mut allocated = 0;
        let at = if key.len() > PACKED_MAX {
            self.blocks.push(key.as_bytes().to_vec());
            allocated += heap_of::<u8>(key.len());
            KeyRef {
                block: index(self.blocks.len() - 1),
                start: 0,
                len: OWN_BLOCK,
            }
        } else {
            let room = self
                .packing
                .filter(|&b| BLOCK - self.blocks[b].len() >= key.len());
            let block = match room {
                Some(block) => block,
                None => {
                    self.blocks.push(Vec::with_capacity(BLOCK));
                    allocated += heap_of::<u8>(BLOCK);
                    self.packing = Some(self.blocks.len() - 1);
                    self.blocks.len() - 1
                }
            };
            let bytes = &mut self.blocks[block];
            let start = bytes.len();
            bytes.extend_from_slice(key.as_bytes());
            KeyRef {
                block: index(block),
                start: index(start),
                len: index(key.len()),
            }
        };
        allocated += heap_of::<Vec<u8>>(self.blocks.capacity()) - outer;
        (at, allocated)
    }

    pub(super) fn get(&self, at: KeyRef) -> &str {
        let block = &self.blocks[at.block as usize];
        let bytes = if at.len == OWN_BLOCK {
            &block[..]
        } else {
            let start = at.start as usize;
            &block[start..start + at.len as usize]
        };
        // SAFETY: `push` copied these bytes from a `str` and a `KeyRef`
        // covers exactly one key's bytes.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// Bytes allocated, counted from scratch.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        let blocks: usize = self
            .blocks
            .iter()
            .map(|b| heap_of::<u8>(b.capacity()))
            .sum();
        blocks + heap_of::<Vec<u8>>(self.blocks.capacity())
    }
}

/// Block numbers and offsets fit in 32 bits: a block is at most 64 KiB or
/// one key (a request line), and four billion blocks would be terabytes.
fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX - 1)
}
