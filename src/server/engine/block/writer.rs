//! Writing a block: chunks stream through a buffer into a temporary file;
//! `finish` adds the index and footer, fills in the header, fsyncs, and
//! renames the file into place (never over an existing block), then fsyncs
//! the directory. Until then the block does not exist under its name, so a
//! crash leaves at most a temporary file, which a directory scan reports
//! for deletion.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::files::publish;
use super::format::{
    align_up, entries_in_page, page_count, page_crc, partition_end, Footer, Header, IndexEntry,
    ENTRIES_PER_PAGE, ENTRY_LEN, FOOTER_LEN, HEADER_LEN, PAGE_LEN,
};
use super::{BlockError, BlockInfo, BlockName};

/// Chunks are written through a buffer this large.
const BUFFER: usize = 256 * 1024;

pub struct BlockWriter {
    temporary: PathBuf,
    path: PathBuf,
    /// `None` once a write failed: the file's contents are unknown.
    out: Option<BufWriter<File>>,
    header: Header,
    partition_end: i64,
    /// Where the next chunk goes.
    offset: u64,
    entries: Vec<IndexEntry>,
    finished: bool,
}

impl std::fmt::Debug for BlockWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWriter")
            .field("path", &self.path)
            .field("series", &self.entries.len())
            .finish()
    }
}

impl BlockWriter {
    /// Starts block `seq` of the partition `[partition_start,
    /// partition_start + partition_len)` (epoch seconds) in `dir`. Fails if
    /// the temporary file exists already (a crash's leftover not yet
    /// cleaned up, or the same block being written twice).
    pub fn create(
        dir: &Path,
        partition_start: i64,
        partition_len: u64,
        seq: u64,
    ) -> Result<BlockWriter, BlockError> {
        let name = BlockName {
            partition_start,
            seq,
        };
        let path = dir.join(name.file_name());
        let Some(partition_end) = partition_end(partition_start, partition_len) else {
            return Err(BlockError::BadPartition {
                path,
                start: partition_start,
                len: partition_len,
            });
        };
        let temporary = dir.join(name.temporary_name());
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(BlockError::io(&temporary))?;
        let mut writer = BlockWriter {
            temporary,
            path,
            out: Some(BufWriter::with_capacity(BUFFER, file)),
            header: Header::empty(partition_start, partition_len, seq),
            partition_end,
            offset: HEADER_LEN as u64,
            entries: Vec::new(),
            finished: false,
        };
        // A placeholder: the header's counts are known at `finish`.
        writer.write(&[0; HEADER_LEN])?;
        Ok(writer)
    }

    /// The block's final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the chunk of `series_id` holding `count` points from
    /// timestamp `first` to `last`. Ids must increase strictly from one
    /// call to the next.
    pub fn add(
        &mut self,
        series_id: u64,
        chunk: &[u8],
        count: u32,
        first: i64,
        last: i64,
    ) -> Result<(), BlockError> {
        if let Some(previous) = self.entries.last() {
            if series_id <= previous.series_id {
                return Err(BlockError::OutOfOrder {
                    path: self.path.clone(),
                    previous: previous.series_id,
                    series: series_id,
                });
            }
        }
        let refuse = |what: String| BlockError::BadChunk {
            path: self.path.clone(),
            series: series_id,
            what,
        };
        if count == 0 {
            return Err(refuse("it holds no points".into()));
        }
        if first > last {
            return Err(refuse(format!("first timestamp {first} after last {last}")));
        }
        if first < self.header.partition_start || last >= self.partition_end {
            return Err(refuse(format!(
                "timestamps {first}..={last} outside the partition {}..{}",
                self.header.partition_start, self.partition_end
            )));
        }
        let Ok(len) = u32::try_from(chunk.len()) else {
            return Err(refuse(format!("{} bytes, more than 4 GiB", chunk.len())));
        };
        self.write(chunk)?;
        self.entries.push(IndexEntry {
            series_id,
            offset: self.offset,
            len,
            count,
            first,
            last,
            crc: crc32c::crc32c(chunk),
        });
        self.offset += u64::from(len);
        let header = &mut self.header;
        if header.series == 0 {
            header.first_series = series_id;
        }
        header.last_series = series_id;
        header.series += 1;
        header.points += u64::from(count);
        header.min_ts = header.min_ts.min(first);
        header.max_ts = header.max_ts.max(last);
        Ok(())
    }

    /// Writes the index, footer and header, makes the file durable and
    /// moves it into place.
    pub fn finish(mut self) -> Result<BlockInfo, BlockError> {
        let index_offset = align_up(self.offset);
        let padding = (index_offset - self.offset) as usize;
        self.write(&[0; PAGE_LEN][..padding])?;
        let mut index_crc = 0;
        let mut page = Vec::with_capacity(PAGE_LEN);
        let mut index_len = 0;
        for number in 0..page_count(self.header.series) {
            page.clear();
            let start = number as usize * ENTRIES_PER_PAGE;
            let end = start + entries_in_page(number, self.header.series);
            for entry in &self.entries[start..end] {
                let mut bytes = [0; ENTRY_LEN];
                entry.encode(&mut bytes);
                page.extend_from_slice(&bytes);
            }
            page.extend_from_slice(&page_crc(number, &page).to_le_bytes());
            index_crc = crc32c::crc32c_append(index_crc, &page);
            index_len += page.len() as u64;
            self.write(&page)?;
        }
        let footer = Footer {
            index_offset,
            index_len,
            index_crc,
        };
        self.write(&footer.encode())?;
        let file_size = index_offset + index_len + FOOTER_LEN as u64;
        let out = self.out.take().expect("checked by write");
        let file = out
            .into_inner()
            .map_err(|e| BlockError::io(&self.temporary)(e.into_error()))?;
        let durable = file
            .write_all_at(&self.header.encode(), 0)
            .and_then(|()| file.sync_all());
        durable.map_err(BlockError::io(&self.temporary))?;
        drop(file);
        publish(&self.temporary, &self.path).map_err(BlockError::io(&self.path))?;
        self.finished = true;
        Ok(BlockInfo {
            path: self.path.clone(),
            file_size,
            header: self.header,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), BlockError> {
        let Some(out) = self.out.as_mut() else {
            return Err(BlockError::Io {
                path: self.temporary.clone(),
                source: io::Error::other("an earlier write to this block failed"),
            });
        };
        if let Err(e) = out.write_all(bytes) {
            self.out = None;
            return Err(BlockError::io(&self.temporary)(e));
        }
        Ok(())
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Unflushed bytes are discarded with the file.
            if let Some(out) = self.out.take() {
                let _ = out.into_parts();
            }
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}
