//! Reading a block by positioned reads (`pread`, through the page cache):
//! opening reads the header and footer only; a lookup reads the index
//! pages of its search; a chunk read reads the chunk. Nothing of the index
//! is kept, so an open block costs the same memory whatever it holds, and
//! a `Block` can be shared between threads (reads take `&self`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::format::{
    entries_in_page, open_page, page_count, series_at, Defect, Footer, Header, IndexEntry,
    ENTRIES_PER_PAGE, ENTRY_LEN, FOOTER_LEN, HEADER_LEN, PAGE_LEN,
};
use super::{open_regular, BlockError, BlockName, Entries};

/// What a block holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    pub path: PathBuf,
    pub file_size: u64,
    /// Partition, seq, counts and ranges.
    pub header: Header,
}

/// An open block file.
#[derive(Debug)]
pub struct Block {
    file: File,
    info: BlockInfo,
    pub(super) footer: Footer,
}

impl Block {
    /// Opens a block and checks its header and footer. The file name need
    /// not be a block name; when it is one, it must agree with the header.
    pub fn open(path: &Path) -> Result<Block, BlockError> {
        let file = open_regular(path, false)
            .map_err(BlockError::io(path))?
            .map_err(|detail| BlockError::Foreign {
                path: path.to_path_buf(),
                detail,
            })?;
        let file_len = file.metadata().map_err(BlockError::io(path))?.len();
        let defect = |defect| BlockError::from_defect(path, defect);
        let mut start = [0; HEADER_LEN];
        let start_len = (HEADER_LEN as u64).min(file_len) as usize;
        read_at(&file, path, &mut start[..start_len], 0)?;
        let header = Header::decode(&start[..start_len]).map_err(defect)?;
        if file_len < (HEADER_LEN + FOOTER_LEN) as u64 {
            return Err(BlockError::corrupt(
                path,
                format!("truncated: {file_len} bytes, no room for a footer"),
            ));
        }
        let mut end = [0; FOOTER_LEN];
        read_at(&file, path, &mut end, file_len - FOOTER_LEN as u64)?;
        let footer = Footer::decode(&end).map_err(defect)?;
        footer.check(&header, file_len).map_err(defect)?;
        let named = path.file_name().and_then(|name| name.to_str());
        if let Some(name) = named.and_then(BlockName::parse) {
            if (name.partition_start, name.seq) != (header.partition_start, header.seq) {
                return Err(BlockError::corrupt(
                    path,
                    format!(
                        "the name says partition {} seq {}, the header partition {} seq {}",
                        name.partition_start, name.seq, header.partition_start, header.seq
                    ),
                ));
            }
        }
        Ok(Block {
            file,
            info: BlockInfo {
                path: path.to_path_buf(),
                file_size: file_len,
                header,
            },
            footer,
        })
    }

    pub fn info(&self) -> &BlockInfo {
        &self.info
    }

    /// The index entry of `series_id`, if the block holds it.
    ///
    /// An interpolation search over the index pages: series ids are
    /// handed out densely, so the page where an id should be is usually
    /// where its place among the block's id range says, and a lookup
    /// reads one page. Each step that does not halve the pages left is
    /// followed by a bisection, so uneven ids cost at most about twice a
    /// binary search's reads.
    pub fn find(&self, series_id: u64) -> Result<Option<IndexEntry>, BlockError> {
        let header = &self.info.header;
        if header.series == 0 || series_id < header.first_series || series_id > header.last_series {
            return Ok(None);
        }
        let mut buffer = [0; PAGE_LEN];
        // The id can only be in pages lo..=hi, whose ids are within
        // key_lo..=key_hi.
        let (mut lo, mut hi) = (0, page_count(header.series) - 1);
        let (mut key_lo, mut key_hi) = (header.first_series, header.last_series);
        let mut bisect = false;
        loop {
            let span = hi - lo + 1;
            let step = if bisect {
                span / 2
            } else {
                let place = u128::from(series_id - key_lo) * u128::from(span);
                (place / (u128::from(key_hi - key_lo) + 1)) as u64
            };
            let page = lo + step;
            let entries = self.read_page(page, &mut buffer)?;
            let count = entries.len() / ENTRY_LEN;
            let (first, last) = (series_at(entries, 0), series_at(entries, count - 1));
            if first > last || first < key_lo || last > key_hi {
                return Err(self.unsorted(page));
            }
            if series_id < first {
                if page == lo {
                    return Ok(None);
                }
                (hi, key_hi) = (page - 1, first - 1);
            } else if series_id > last {
                if page == hi {
                    return Ok(None);
                }
                (lo, key_lo) = (page + 1, last + 1);
            } else {
                return self.find_in_page(page, entries, series_id);
            }
            bisect = !bisect && hi - lo + 1 > span / 2;
        }
    }

    fn find_in_page(
        &self,
        page: u64,
        entries: &[u8],
        series_id: u64,
    ) -> Result<Option<IndexEntry>, BlockError> {
        let count = entries.len() / ENTRY_LEN;
        let (mut lo, mut hi) = (0, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let id = series_at(entries, mid);
            if mid > 0 && series_at(entries, mid - 1) >= id {
                return Err(self.unsorted(page));
            }
            match id.cmp(&series_id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    return Ok(Some(IndexEntry::decode(&entries[mid * ENTRY_LEN..])));
                }
            }
        }
        Ok(None)
    }

    fn unsorted(&self, page: u64) -> BlockError {
        BlockError::corrupt(
            &self.info.path,
            format!("index page {page}: series ids out of order"),
        )
    }

    /// Every index entry, in series id order, read a page at a time.
    pub fn entries(&self) -> Entries<'_> {
        Entries::new(self)
    }

    /// Reads the chunk `entry` (from this block's index) into `out`,
    /// replacing its contents, and checks its CRC.
    pub fn read_chunk(&self, entry: &IndexEntry, out: &mut Vec<u8>) -> Result<(), BlockError> {
        let path = &self.info.path;
        let end = entry.offset.checked_add(u64::from(entry.len));
        if entry.offset < HEADER_LEN as u64 || end.is_none_or(|end| end > self.footer.index_offset)
        {
            return Err(BlockError::corrupt(
                path,
                format!(
                    "series {}: chunk of {} bytes at offset {} lies outside the chunk area",
                    entry.series_id, entry.len, entry.offset
                ),
            ));
        }
        out.clear();
        out.resize(entry.len as usize, 0);
        read_at(&self.file, path, out, entry.offset)?;
        let computed = crc32c::crc32c(out);
        if computed != entry.crc {
            return Err(BlockError::corrupt(
                path,
                format!(
                    "series {}: chunk at offset {} fails its checksum (stored {:08x}, computed \
                     {computed:08x})",
                    entry.series_id, entry.offset, entry.crc
                ),
            ));
        }
        Ok(())
    }

    /// Reads and checks index page `page` into `buffer`; returns its
    /// entries (at least one).
    pub(super) fn read_page<'b>(
        &self,
        page: u64,
        buffer: &'b mut [u8; PAGE_LEN],
    ) -> Result<&'b [u8], BlockError> {
        let len = entries_in_page(page, self.info.header.series) * ENTRY_LEN + 4;
        let bytes = &mut buffer[..len];
        let offset = self.footer.index_offset + page * PAGE_LEN as u64;
        read_at(&self.file, &self.info.path, bytes, offset)?;
        debug_assert!(len > 4 && len <= ENTRIES_PER_PAGE * ENTRY_LEN + 4);
        open_page(page, bytes)
            .map_err(|defect: Defect| BlockError::from_defect(&self.info.path, defect))
    }
}

/// `pread`s exactly `buffer.len()` bytes; a file shorter than it says
/// (cut after it was opened) is corrupt.
fn read_at(file: &File, path: &Path, buffer: &mut [u8], offset: u64) -> Result<(), BlockError> {
    file.read_exact_at(buffer, offset)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => BlockError::corrupt(
                path,
                format!(
                    "truncated: {} bytes at offset {offset} are past the end",
                    buffer.len()
                ),
            ),
            _ => BlockError::io(path)(e),
        })
}
