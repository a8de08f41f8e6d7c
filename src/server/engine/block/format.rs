//! The block file's layout, encoded and decoded without I/O.
//!
//! ```text
//! offset 0       header (96 bytes)
//! offset 96      chunk area: the chunks' bytes, back to back, in series order
//!                zero padding up to the next multiple of 4096
//! index_offset   index: pages of 4096 bytes, each 93 entries of 44 bytes
//!                and the CRC-32C of the page; the last page only as long
//!                as its entries (and its CRC)
//! end - 32       footer (32 bytes)
//! ```
//!
//! Header, little-endian: magic `MCBLOCK\0` (8), version u32, index page
//! length u32 (4096), partition start i64 (epoch seconds), partition length
//! u64 (seconds), seq u64, series u64, points u64, min timestamp i64, max
//! timestamp i64, first series id u64, last series id u64, reserved u32 (0),
//! CRC-32C of the 92 bytes before it. The counts and ranges are written at
//! `finish`, over a zeroed placeholder. An empty block has min timestamp
//! `i64::MAX`, max `i64::MIN` and series ids 0..0, so a range test
//! `min <= end && max >= start` is false for it without a special case.
//!
//! Index entry: series id u64, chunk offset u64 (from the file's start),
//! chunk length u32, point count u32, first timestamp i64, last timestamp
//! i64, CRC-32C of the chunk's bytes u32.
//!
//! Footer: index offset u64, index length u64, CRC-32C of the whole index
//! u32 (checked by a full walk of [`super::Entries`]), CRC-32C of the 20
//! bytes before it, magic again (a block cut short has no magic at its end).
//!
//! Why pages with a CRC each: opening a block reads only its header and
//! footer (constant time and memory however many series it holds), yet
//! every index byte a lookup uses is checked, since a lookup reads whole
//! pages. A page's CRC starts from its page number, so a page read from
//! the wrong place (a misdirected write or read) fails its check. Pages
//! are aligned to 4096 bytes so a probe touches exactly one page of the
//! page cache (and one disk block when cold); the padding costs under 4 KiB
//! a block.

/// The first 8 bytes of every block file (and its last 8).
pub const MAGIC: [u8; 8] = *b"MCBLOCK\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 96;
pub const FOOTER_LEN: usize = 32;
pub const ENTRY_LEN: usize = 44;
/// Index page length, and the alignment of the index.
pub const PAGE_LEN: usize = 4096;
/// Entries in a full index page: 93 * 44 + 4 = 4096.
pub const ENTRIES_PER_PAGE: usize = (PAGE_LEN - 4) / ENTRY_LEN;

/// What is wrong with bytes that were supposed to be a block (the reader
/// adds the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// Not our magic: somebody else's file.
    Foreign,
    /// Our magic, another format version.
    Version(u32),
    /// Ours, but damaged.
    Corrupt(String),
}

fn corrupt(what: impl Into<String>) -> Defect {
    Defect::Corrupt(what.into())
}

/// The block's description, as the header holds it. An empty block has
/// min timestamp `i64::MAX`, max `i64::MIN` and series ids 0..=0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub partition_start: i64,
    pub partition_len: u64,
    pub seq: u64,
    pub series: u64,
    pub points: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub first_series: u64,
    pub last_series: u64,
}

/// The end of a partition (exclusive), or `None` when `start + len` is
/// past `i64::MAX` or `len` is 0.
pub fn partition_end(start: i64, len: u64) -> Option<i64> {
    if len == 0 {
        return None;
    }
    i64::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
}

impl Header {
    /// The header of a block with nothing in it yet.
    pub fn empty(partition_start: i64, partition_len: u64, seq: u64) -> Header {
        Header {
            partition_start,
            partition_len,
            seq,
            series: 0,
            points: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            first_series: 0,
            last_series: 0,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..8].copy_from_slice(&MAGIC);
        put(&mut out, 8, &VERSION.to_le_bytes());
        put(&mut out, 12, &(PAGE_LEN as u32).to_le_bytes());
        put(&mut out, 16, &self.partition_start.to_le_bytes());
        put(&mut out, 24, &self.partition_len.to_le_bytes());
        put(&mut out, 32, &self.seq.to_le_bytes());
        put(&mut out, 40, &self.series.to_le_bytes());
        put(&mut out, 48, &self.points.to_le_bytes());
        put(&mut out, 56, &self.min_ts.to_le_bytes());
        put(&mut out, 64, &self.max_ts.to_le_bytes());
        put(&mut out, 72, &self.first_series.to_le_bytes());
        put(&mut out, 80, &self.last_series.to_le_bytes());
        let crc = crc32c::crc32c(&out[..HEADER_LEN - 4]);
        put(&mut out, HEADER_LEN - 4, &crc.to_le_bytes());
        out
    }

    /// Decodes the first bytes of a file (all of them when it is shorter
    /// than a header): foreign unless they start with the magic (or are a
    /// piece of it, which is a block cut short), then version, checksum and
    /// consistency.
    pub fn decode(bytes: &[u8]) -> Result<Header, Defect> {
        let magic_len = bytes.len().min(MAGIC.len());
        if bytes[..magic_len] != MAGIC[..magic_len] {
            return Err(Defect::Foreign);
        }
        if bytes.len() < 12 {
            return Err(corrupt(format!(
                "truncated: {} bytes, shorter than the header",
                bytes.len()
            )));
        }
        let version = u32_at(bytes, 8);
        if version != VERSION {
            return Err(Defect::Version(version));
        }
        if bytes.len() < HEADER_LEN {
            return Err(corrupt(format!(
                "truncated: {} bytes, shorter than the header",
                bytes.len()
            )));
        }
        let bytes = &bytes[..HEADER_LEN];
        let (stored, computed) = (
            u32_at(bytes, HEADER_LEN - 4),
            crc32c::crc32c(&bytes[..HEADER_LEN - 4]),
        );
        if stored != computed {
            return Err(corrupt(format!(
                "header checksum mismatch (stored {stored:08x}, computed {computed:08x})"
            )));
        }
        let page_len = u32_at(bytes, 12);
        if page_len as usize != PAGE_LEN || u32_at(bytes, 88) != 0 {
            return Err(corrupt(format!(
                "header gives index pages of {page_len} bytes (or reserved bits), version 1 has {PAGE_LEN}"
            )));
        }
        let header = Header {
            partition_start: i64_at(bytes, 16),
            partition_len: u64_at(bytes, 24),
            seq: u64_at(bytes, 32),
            series: u64_at(bytes, 40),
            points: u64_at(bytes, 48),
            min_ts: i64_at(bytes, 56),
            max_ts: i64_at(bytes, 64),
            first_series: u64_at(bytes, 72),
            last_series: u64_at(bytes, 80),
        };
        header.check().map_err(corrupt)?;
        Ok(header)
    }

    /// The header's fields agree with each other (a checksum only says the
    /// bytes are the ones written).
    fn check(&self) -> Result<(), String> {
        let Some(end) = partition_end(self.partition_start, self.partition_len) else {
            return Err(format!(
                "header gives an impossible partition (start {}, length {})",
                self.partition_start, self.partition_len
            ));
        };
        let consistent = if self.series == 0 {
            *self == Header::empty(self.partition_start, self.partition_len, self.seq)
        } else {
            self.points >= self.series
                && self.partition_start <= self.min_ts
                && self.min_ts <= self.max_ts
                && self.max_ts < end
                && self.first_series <= self.last_series
                && self.last_series - self.first_series >= self.series - 1
        };
        if consistent {
            Ok(())
        } else {
            Err(format!("header's counts and ranges disagree: {self:?}"))
        }
    }
}

/// Where the index is, as the footer holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub index_offset: u64,
    pub index_len: u64,
    pub index_crc: u32,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0; FOOTER_LEN];
        put(&mut out, 0, &self.index_offset.to_le_bytes());
        put(&mut out, 8, &self.index_len.to_le_bytes());
        put(&mut out, 16, &self.index_crc.to_le_bytes());
        let crc = crc32c::crc32c(&out[..20]);
        put(&mut out, 20, &crc.to_le_bytes());
        out[24..].copy_from_slice(&MAGIC);
        out
    }

    pub fn decode(bytes: &[u8; FOOTER_LEN]) -> Result<Footer, Defect> {
        if bytes[24..] != MAGIC {
            return Err(corrupt(
                "no footer at the end: the file is truncated or was never finished",
            ));
        }
        let (stored, computed) = (u32_at(bytes, 20), crc32c::crc32c(&bytes[..20]));
        if stored != computed {
            return Err(corrupt(format!(
                "footer checksum mismatch (stored {stored:08x}, computed {computed:08x})"
            )));
        }
        Ok(Footer {
            index_offset: u64_at(bytes, 0),
            index_len: u64_at(bytes, 8),
            index_crc: u32_at(bytes, 16),
        })
    }

    /// Header, footer and file length describe one layout.
    pub fn check(&self, header: &Header, file_len: u64) -> Result<(), Defect> {
        let expected_len = index_len(header.series);
        let end = self
            .index_offset
            .checked_add(self.index_len)
            .and_then(|end| end.checked_add(FOOTER_LEN as u64));
        if self.index_offset < HEADER_LEN as u64
            || self.index_offset % PAGE_LEN as u64 != 0
            || Some(self.index_len) != expected_len
            || end != Some(file_len)
        {
            return Err(corrupt(format!(
                "inconsistent layout: index at {} of {} bytes, {} series want {:?} bytes, \
                 file is {file_len} bytes",
                self.index_offset, self.index_len, header.series, expected_len
            )));
        }
        Ok(())
    }
}

/// One series' chunk, as an index entry describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub series_id: u64,
    /// From the start of the file.
    pub offset: u64,
    pub len: u32,
    pub count: u32,
    /// Timestamps of the chunk's first and last point.
    pub first: i64,
    pub last: i64,
    /// CRC-32C of the chunk's bytes.
    pub crc: u32,
}

impl IndexEntry {
    pub fn encode(&self, out: &mut [u8; ENTRY_LEN]) {
        put(out, 0, &self.series_id.to_le_bytes());
        put(out, 8, &self.offset.to_le_bytes());
        put(out, 16, &self.len.to_le_bytes());
        put(out, 20, &self.count.to_le_bytes());
        put(out, 24, &self.first.to_le_bytes());
        put(out, 32, &self.last.to_le_bytes());
        put(out, 40, &self.crc.to_le_bytes());
    }

    /// Decodes the entry starting at `bytes[0]` (at least [`ENTRY_LEN`] bytes).
    pub fn decode(bytes: &[u8]) -> IndexEntry {
        IndexEntry {
            series_id: u64_at(bytes, 0),
            offset: u64_at(bytes, 8),
            len: u32_at(bytes, 16),
            count: u32_at(bytes, 20),
            first: i64_at(bytes, 24),
            last: i64_at(bytes, 32),
            crc: u32_at(bytes, 40),
        }
    }
}

/// The series id of the `i`th entry of a page's entries.
pub fn series_at(entries: &[u8], i: usize) -> u64 {
    u64_at(entries, i * ENTRY_LEN)
}

/// Bytes of the index of `series` entries (`None` past `u64`).
pub fn index_len(series: u64) -> Option<u64> {
    let per_page = ENTRIES_PER_PAGE as u64;
    let full = (series / per_page).checked_mul(PAGE_LEN as u64)?;
    match series % per_page {
        0 => Some(full),
        rest => full.checked_add(rest * ENTRY_LEN as u64 + 4),
    }
}

pub fn page_count(series: u64) -> u64 {
    series.div_ceil(ENTRIES_PER_PAGE as u64)
}

/// Entries in page `page` of an index of `series` entries.
pub fn entries_in_page(page: u64, series: u64) -> usize {
    let before = page * ENTRIES_PER_PAGE as u64;
    series.saturating_sub(before).min(ENTRIES_PER_PAGE as u64) as usize
}

/// The checksum ending a page: of its entries, started from its number.
pub fn page_crc(page: u64, entries: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&page.to_le_bytes()), entries)
}

/// Checks a page read from the file (its entries then its CRC) and returns
/// its entries.
pub fn open_page(page: u64, bytes: &[u8]) -> Result<&[u8], Defect> {
    let (entries, crc) = bytes.split_at(bytes.len() - 4);
    let (stored, computed) = (u32_at(crc, 0), page_crc(page, entries));
    if stored != computed {
        return Err(corrupt(format!(
            "index page {page}: checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    Ok(entries)
}

/// `offset` rounded up to the index alignment.
pub fn align_up(offset: u64) -> u64 {
    offset.div_ceil(PAGE_LEN as u64) * PAGE_LEN as u64
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    u64_at(bytes, at) as i64
}
