//! Block files: the sealed points of one time partition for many series,
//! one opaque chunk per series, with an index sorted by series id.
//!
//! Files: `format` (the layout, sans-IO), `name` (file names and directory
//! scans), `writer` (streaming a block to a temporary file, then into
//! place), `reader` (opening, lookups and chunk reads by positioned reads),
//! `entries` (walking the whole index), `files` (opening and publishing
//! files, shared with the keys file), `error`.
//!
//! Memory: a writer holds only its index entries (44 bytes a series); an
//! open block holds its header and footer, whatever its size. Reads go
//! through the page cache with `pread`, so what the blocks' pages cost is
//! the kernel's to reclaim, never the process's.

mod entries;
mod error;
mod files;
mod format;
mod name;
mod reader;
mod writer;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_damage;

pub use entries::Entries;
pub use error::BlockError;
pub(crate) use files::{open_regular, publish};
pub use format::{
    partition_end, Header, IndexEntry, ENTRIES_PER_PAGE, ENTRY_LEN, MAGIC, PAGE_LEN, VERSION,
};
pub use name::{classify, scan_dir, BlockName, DirScan, NameKind};
pub use reader::{Block, BlockInfo};
pub use writer::BlockWriter;
