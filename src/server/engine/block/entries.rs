//! A walk over a block's whole index, in series id order, one page in
//! memory at a time: for reading every series (`get *`) and for merging
//! blocks. A walk that reaches the end has also checked the index against
//! the footer's CRC and the header's counts.

use super::format::{page_count, IndexEntry, ENTRY_LEN, PAGE_LEN};
use super::{Block, BlockError};

pub struct Entries<'a> {
    block: &'a Block,
    page: Box<[u8; PAGE_LEN]>,
    /// The page in `page`, its length and the next entry in it.
    number: u64,
    len: usize,
    next: usize,
    previous: Option<u64>,
    points: u64,
    index_crc: u32,
    /// After the last entry or an error.
    done: bool,
}

impl<'a> Entries<'a> {
    pub(super) fn new(block: &'a Block) -> Entries<'a> {
        Entries {
            block,
            page: Box::new([0; PAGE_LEN]),
            number: 0,
            len: 0,
            next: 0,
            previous: None,
            points: 0,
            index_crc: 0,
            done: block.info().header.series == 0,
        }
    }

    fn advance(&mut self) -> Result<Option<IndexEntry>, BlockError> {
        let header = &self.block.info().header;
        if self.next == self.len {
            if self.len > 0 {
                self.number += 1;
            }
            if self.number == page_count(header.series) {
                self.done = true;
                return self.check_end().map(|()| None);
            }
            self.len = self.block.read_page(self.number, &mut self.page)?.len();
            self.index_crc = crc32c::crc32c_append(self.index_crc, &self.page[..self.len + 4]);
            self.next = 0;
        }
        let entry = IndexEntry::decode(&self.page[self.next..]);
        self.next += ENTRY_LEN;
        let in_order = match self.previous {
            None => entry.series_id == header.first_series,
            Some(previous) => previous < entry.series_id && entry.series_id <= header.last_series,
        };
        if !in_order {
            return Err(self.corrupt(format!(
                "index page {}: series {} out of order or outside the header's range",
                self.number, entry.series_id
            )));
        }
        self.previous = Some(entry.series_id);
        self.points += u64::from(entry.count);
        Ok(Some(entry))
    }

    fn check_end(&self) -> Result<(), BlockError> {
        let (header, footer) = (&self.block.info().header, &self.block.footer);
        if self.index_crc != footer.index_crc {
            return Err(self.corrupt(format!(
                "index checksum mismatch (footer {:08x}, pages {:08x})",
                footer.index_crc, self.index_crc
            )));
        }
        if self.previous != Some(header.last_series) || self.points != header.points {
            return Err(self.corrupt(format!(
                "the index holds {} points up to series {:?}, the header says {} up to {}",
                self.points, self.previous, header.points, header.last_series
            )));
        }
        Ok(())
    }

    fn corrupt(&self, what: String) -> BlockError {
        BlockError::corrupt(&self.block.info().path, what)
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<IndexEntry, BlockError>;

    /// The next entry; after an error, `None`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.advance();
        if next.is_err() {
            self.done = true;
        }
        next.transpose()
    }
}
