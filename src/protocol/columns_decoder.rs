//! Incremental decoding of the columns frame (see `columns`), the body of
//! an `ok` reply to a query with `format=columns`. Bytes arrive in any
//! split; header fields that straddle two feeds wait in a few bytes of
//! their own, and a block's timestamps and values are copied from the
//! received bytes into the series' columns as they arrive, so the raw
//! reply is never held.
//!
//! Every length is checked against its bound before anything is allocated
//! for it, and the frame as a whole against the reply limit, so a
//! truncated reply only waits for more bytes and a hostile one is an error.

use std::collections::HashMap;

use super::columns::{Columns, Series, COLUMNS_MAGIC, MAX_BLOCK_POINTS, MAX_COLUMNS_KEY_BYTES};
use super::decoder::DecodeError;
use super::excerpt::excerpt;

/// What the next bytes of the frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Magic,
    KeyLength,
    Key(usize),
    Count,
    Timestamps { left: usize, count: usize },
    Values { left: usize },
}

/// Decodes one columns frame; made afresh for each reply.
#[derive(Debug)]
pub(crate) struct ColumnsDecoder {
    field: Field,
    /// The bytes of the current header field (or key) received so far, or
    /// of a column element split between two feeds.
    pending: Vec<u8>,
    columns: Columns,
    index: HashMap<String, usize>,
    /// The series the current block belongs to.
    current: usize,
    /// Reply bytes consumed so far, and how many the reply may have.
    received: usize,
    limit: usize,
}

impl ColumnsDecoder {
    /// A decoder for the frame of a reply of at most `limit` bytes, of
    /// which `received` (its status line) came before the frame.
    pub(crate) fn new(limit: usize, received: usize) -> Self {
        ColumnsDecoder {
            field: Field::Magic,
            pending: Vec::new(),
            columns: Vec::new(),
            index: HashMap::new(),
            current: 0,
            received,
            limit,
        }
    }

    /// Feeds the next bytes. Returns the columns and how many bytes of
    /// `data` the frame's end used once it is seen; bytes after it are not
    /// consumed.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Option<(Columns, usize)>, DecodeError> {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            let used = match self.field {
                Field::Magic => self.header(rest, COLUMNS_MAGIC.len())?,
                Field::KeyLength | Field::Count => self.header(rest, 4)?,
                Field::Key(length) => self.header(rest, length)?,
                Field::Timestamps { left, .. } | Field::Values { left } => {
                    self.column(rest, left)?
                }
            };
            pos += used;
            if self.field == Field::KeyLength && self.pending.len() == 4 && self.length()? == 0 {
                self.pending.clear();
                return Ok(Some((self.finish(), pos)));
            }
            self.advance()?;
        }
        Ok(None)
    }

    /// Counts `n` more bytes against the limit.
    fn consume(&mut self, n: usize) -> Result<(), DecodeError> {
        self.received += n;
        if self.received > self.limit {
            return Err(DecodeError::TooLarge { limit: self.limit });
        }
        Ok(())
    }

    fn bad(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::BadFrame {
            offset: self.received,
            reason: reason.into(),
        }
    }

    /// Takes bytes of a field `size` bytes long into `pending`.
    fn header(&mut self, data: &[u8], size: usize) -> Result<usize, DecodeError> {
        let take = (size - self.pending.len()).min(data.len());
        self.consume(take)?;
        self.pending.extend_from_slice(&data[..take]);
        Ok(take)
    }

    /// The u32 in `pending` (4 bytes).
    fn length(&self) -> Result<usize, DecodeError> {
        let bytes: [u8; 4] = self.pending[..]
            .try_into()
            .map_err(|_| self.bad("a length field is not 4 bytes"))?;
        Ok(u32::from_le_bytes(bytes) as usize)
    }

    /// Copies whole elements of the current column (`left` of them still
    /// to come) from `data`; a split element waits in `pending`.
    fn column(&mut self, data: &[u8], left: usize) -> Result<usize, DecodeError> {
        let mut used = 0;
        if !self.pending.is_empty() {
            used = self.header(data, 8)?;
            if self.pending.len() < 8 {
                return Ok(used);
            }
            let element = std::mem::take(&mut self.pending);
            self.push_elements(&element, 1);
            return Ok(used);
        }
        let whole = (data.len() / 8).min(left);
        if whole > 0 {
            self.consume(whole * 8)?;
            self.push_elements(&data[..whole * 8], whole);
            used = whole * 8;
        }
        if whole < left && used < data.len() {
            // The start of an element whose end has not arrived.
            used += self.header(&data[used..], 8)?;
        }
        Ok(used)
    }

    /// Appends `n` elements (`bytes`, 8 each) to the current column.
    fn push_elements(&mut self, bytes: &[u8], n: usize) {
        let series = &mut self.columns[self.current];
        let elements = bytes.chunks_exact(8).map(|b| {
            let mut word = [0u8; 8];
            word.copy_from_slice(b);
            word
        });
        match &mut self.field {
            Field::Timestamps { left, .. } => {
                series.timestamps.extend(elements.map(i64::from_le_bytes));
                *left -= n;
            }
            Field::Values { left } => {
                series.values.extend(elements.map(f64::from_le_bytes));
                *left -= n;
            }
            _ => {}
        }
    }

    /// Moves to the next field once the current one is complete.
    fn advance(&mut self) -> Result<(), DecodeError> {
        self.field = match self.field {
            // Checked byte by byte: a text reply (even a bare `ok\n\n`)
            // is refused at once rather than waited on.
            Field::Magic if !COLUMNS_MAGIC.starts_with(&self.pending) => {
                return Err(self.bad(format!(
                    "not a columns frame: starts with {}",
                    excerpt(&self.pending)
                )));
            }
            Field::Magic if self.pending.len() == COLUMNS_MAGIC.len() => Field::KeyLength,
            Field::KeyLength if self.pending.len() == 4 => match self.length()? {
                length if length > MAX_COLUMNS_KEY_BYTES => {
                    return Err(self.bad(format!(
                        "a key of {length} bytes, more than {MAX_COLUMNS_KEY_BYTES}"
                    )))
                }
                length => Field::Key(length),
            },
            Field::Key(length) if self.pending.len() == length => {
                self.current = self.series(length)?;
                Field::Count
            }
            Field::Count if self.pending.len() == 4 => match self.length()? {
                count @ 1..=MAX_BLOCK_POINTS => {
                    // At most what the rest of the limit can hold.
                    let room = (self.limit - self.received) / 16;
                    let series = &mut self.columns[self.current];
                    series.timestamps.reserve(count.min(room));
                    series.values.reserve(count.min(room));
                    Field::Timestamps { left: count, count }
                }
                count => {
                    return Err(self.bad(format!(
                        "a block of {count} points (1 to {MAX_BLOCK_POINTS})"
                    )))
                }
            },
            Field::Timestamps { left: 0, count } => Field::Values { left: count },
            Field::Values { left: 0 } => Field::KeyLength,
            _ => return Ok(()), // not complete yet
        };
        self.pending.clear();
        Ok(())
    }

    /// The series of the key in `pending` (`length` bytes), made if new.
    fn series(&mut self, length: usize) -> Result<usize, DecodeError> {
        debug_assert_eq!(self.pending.len(), length);
        let last = self.columns.get(self.current);
        if last.is_some_and(|s| s.key.as_bytes() == self.pending) {
            return Ok(self.current);
        }
        let key = std::str::from_utf8(&self.pending).map_err(|_| self.bad("a key is not UTF-8"))?;
        if let Some(&slot) = self.index.get(key) {
            return Ok(slot);
        }
        self.columns.push(Series {
            key: key.to_owned(),
            ..Series::default()
        });
        self.index.insert(key.to_owned(), self.columns.len() - 1);
        Ok(self.columns.len() - 1)
    }

    /// The series, each sorted by timestamp (stably, as a text reply's).
    fn finish(&mut self) -> Columns {
        let mut columns = std::mem::take(&mut self.columns);
        for series in &mut columns {
            if !series.timestamps.is_sorted() {
                let mut points: Vec<(i64, f64)> = series
                    .timestamps
                    .iter()
                    .copied()
                    .zip(series.values.iter().copied())
                    .collect();
                points.sort_by_key(|p| p.0); // stable
                (series.timestamps, series.values) = points.into_iter().unzip();
            }
        }
        columns
    }
}

#[cfg(test)]
#[path = "columns_tests.rs"]
mod tests;
