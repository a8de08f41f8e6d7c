//! The columns frame: a query's answer as binary columns, the reply to a
//! query with `format=columns` (an additive extension: nothing else is
//! ever answered this way). After the status line `ok\n` come
//!
//! ```text
//! magic      4 bytes  "\0CF1" (no text reply's data line starts with NUL)
//! block*     key_len u32 LE (1..=MAX_KEY_BYTES), the key (UTF-8),
//!            count u32 LE (1..=MAX_BLOCK_POINTS),
//!            count timestamps i64 LE, then count values f64 LE
//! end        key_len 0 (4 zero bytes)
//! ```
//!
//! A series is one or more consecutive blocks of its key, so a server
//! streams it without knowing its length in advance, and a client copies
//! each block's timestamps and values straight into its arrays. Every
//! length is bounded, so a hostile length is refused before anything is
//! allocated for it. Decoding is `columns_decoder`'s job.

use super::grouping::Point;

/// The first bytes of the frame, after `ok\n`.
pub const COLUMNS_MAGIC: [u8; 4] = *b"\0CF1";
/// The longest key a block may carry: the longest a request line can hold.
pub const MAX_COLUMNS_KEY_BYTES: usize = super::framing::DEFAULT_MAX_LINE_BYTES;
/// The most points in one block (1 MiB of timestamps and values).
pub const MAX_BLOCK_POINTS: usize = 1 << 16;

/// One series of a columns reply: its key, and its points as two columns
/// of the same length, sorted by timestamp.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub key: String,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

/// The series of a columns reply, keys in order of first appearance.
pub type Columns = Vec<Series>;

/// Appends the magic that starts the frame (after [`super::encode_get_reply_start`]).
pub fn encode_columns_start(out: &mut Vec<u8>) {
    out.extend_from_slice(&COLUMNS_MAGIC);
}

/// Appends `points` of `key` as blocks of at most [`MAX_BLOCK_POINTS`]
/// (none for no points). `key` is a stored key: never empty, and never
/// longer than a request line, so within [`MAX_COLUMNS_KEY_BYTES`].
pub fn push_columns(out: &mut Vec<u8>, key: &str, points: &[Point]) {
    debug_assert!(!key.is_empty() && key.len() <= MAX_COLUMNS_KEY_BYTES);
    for block in points.chunks(MAX_BLOCK_POINTS) {
        out.reserve(8 + key.len() + 16 * block.len());
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        for &(timestamp, _) in block {
            out.extend_from_slice(&timestamp.to_le_bytes());
        }
        for &(_, value) in block {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Appends the end of the frame: the reply is complete.
pub fn encode_columns_end(out: &mut Vec<u8>) {
    out.extend_from_slice(&0u32.to_le_bytes());
}
