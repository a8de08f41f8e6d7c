//! The keys file's index, `<dir>/keys.index`: from a key's hash to its
//! series id and from an id to its record in the keys file, on disk, so
//! that a key with no point in the head need not be held in memory to be
//! found. Derived from the keys file alone and rewritten whole (to a
//! temporary file, renamed over the old) whenever a seal numbers new keys:
//! a missing, stale or damaged index is rebuilt from the keys file, never
//! trusted; a file without the index's magic is refused, left untouched.
//!
//! ```text
//! page 0          header: magic "MCKEYIX\0" (8), version u32, keys u64,
//!                 hash seed (two u64), the keys file's length then (u64)
//!                 and its last bytes (length u8, up to 20 bytes: the last
//!                 record's CRC and the sync marker), zeros, CRC-32C at the
//!                 page's end
//! entry pages     (hash u64, id u32) sorted by hash then id, 340 a page
//! offset pages    each id's record offset in the keys file, u64, 511 a page
//! order pages     the ids in byte order of their keys, u32, 1023 a page
//! fences          the first hash of each entry page (u64 each), CRC-32C
//! ```
//!
//! The keys file's length and last bytes tie the index to the keys file it
//! was built from: a keys file with as many keys but others (a copy put
//! back, say) does not match, and the index is rebuilt rather than used.
//!
//! Pages are 4096 bytes, the last 4 a CRC-32C of the page's number and its
//! other bytes (a page read from the wrong place fails its check). Open
//! reads the header and the fences (8 bytes per 340 keys); a lookup reads
//! one or two entry pages and an offset page, through the page cache; a
//! glob's literal prefix is found by binary search over the order pages
//! (about 20 keys read back for a million), so a query for a few keys
//! among millions reads a few pages, not every key. The
//! hash is SipHash-2-4 keyed by a seed drawn when the index is first built,
//! so clients cannot choose keys that collide; a collision only costs a
//! comparison, since each candidate's key is read back from the keys file.

use std::fs::File;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::block::open_regular;

pub const INDEX_MAGIC: [u8; 8] = *b"MCKEYIX\0";
pub const INDEX_VERSION: u32 = 2;
const PAGE: usize = 4096;
const BODY: usize = PAGE - 4;
const ENTRY: usize = 12;
const ENTRIES_PER_PAGE: usize = BODY / ENTRY;
const OFFSETS_PER_PAGE: usize = BODY / 8;
const ORDER_PER_PAGE: usize = BODY / 4;

#[derive(Debug, Error)]
pub enum IndexError {
    /// Not an index file: left untouched.
    #[error("{} is not a keys index ({detail}); left untouched", .path.display())]
    Foreign { path: PathBuf, detail: &'static str },
    /// Ours but not to be trusted (damaged, another version, or covering
    /// another number of keys than the keys file holds): rebuilt.
    #[error("keys index {}: {what}", .path.display())]
    Untrusted { path: PathBuf, what: String },
    #[error("keys index {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// An open keys index.
#[derive(Debug)]
pub struct KeyIndex {
    path: PathBuf,
    file: File,
    keys: u64,
    /// The keys file's length it covers.
    end: u64,
    seed: (u64, u64),
    /// The first hash of each entry page.
    fences: Vec<u64>,
}

/// What ties an index to its keys file (see the module's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub keys: u64,
    /// The keys file's valid length.
    pub end: u64,
    /// Its last bytes before `end`, at most [`TAIL`].
    pub tail: Vec<u8>,
}

/// How many of the keys file's last bytes a stamp holds.
pub const TAIL: usize = 20;

/// Pages of each kind for `keys` keys: entries, offsets, order.
fn layout(keys: u64) -> (u64, u64, u64) {
    (
        keys.div_ceil(ENTRIES_PER_PAGE as u64),
        keys.div_ceil(OFFSETS_PER_PAGE as u64),
        keys.div_ceil(ORDER_PER_PAGE as u64),
    )
}

fn file_len(keys: u64) -> u64 {
    let (entry_pages, offset_pages, order_pages) = layout(keys);
    (1 + entry_pages + offset_pages + order_pages) * PAGE as u64 + entry_pages * 8 + 4
}

fn page_crc(number: u64, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&number.to_le_bytes()), body)
}

/// The key's hash under `seed`.
pub fn hash_key(seed: (u64, u64), key: &str) -> u64 {
    // SipHash-2-4 is a fixed algorithm (std's default hasher may change
    // between releases, and the hashes are stored).
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new_with_keys(seed.0, seed.1);
    hasher.write(key.as_bytes());
    hasher.finish()
}

/// A fresh random seed.
pub fn new_seed() -> (u64, u64) {
    let state = RandomState::new();
    (state.hash_one(1u8), state.hash_one(2u8))
}

/// An index file opened and its header checked, not yet matched with the
/// keys file it says it was built from (its [`stamp`](Self::stamp)).
#[derive(Debug)]
pub struct OpenedIndex {
    path: PathBuf,
    file: File,
    stamp: Stamp,
    seed: (u64, u64),
}

/// Opens the index at `path` and checks its header; `Err(why)` inside when
/// the index is to be rebuilt (missing, its header damaged, another
/// version); an error for a file that is not an index.
pub fn open_header(path: &Path) -> Result<Result<OpenedIndex, String>, IndexError> {
    let io_error = |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match open_regular(path, false) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Err("missing".into())),
        opened => opened.map_err(io_error)?,
    }
    .map_err(|detail| IndexError::Foreign {
        path: path.to_path_buf(),
        detail,
    })?;
    let mut header = vec![0; PAGE];
    let got = read_up_to(&file, 0, &mut header).map_err(io_error)?;
    if header[..got.min(8)] != INDEX_MAGIC[..got.min(8)] || got == 0 {
        return Err(IndexError::Foreign {
            path: path.to_path_buf(),
            detail: "it does not start with the keys index magic",
        });
    }
    if got < PAGE
        || u32::from_le_bytes(header[BODY..].try_into().expect("4")) != page_crc(0, &header[..BODY])
    {
        return Ok(Err("its header is damaged".into()));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4"));
    if version != INDEX_VERSION {
        return Ok(Err(format!("format version {version}")));
    }
    let tail_len = usize::from(header[44]).min(TAIL);
    Ok(Ok(OpenedIndex {
        path: path.to_path_buf(),
        file,
        stamp: Stamp {
            keys: u64::from_le_bytes(header[12..20].try_into().expect("8")),
            end: u64::from_le_bytes(header[36..44].try_into().expect("8")),
            tail: header[45..45 + tail_len].to_vec(),
        },
        seed: (
            u64::from_le_bytes(header[20..28].try_into().expect("8")),
            u64::from_le_bytes(header[28..36].try_into().expect("8")),
        ),
    }))
}

impl KeyIndex {
    /// Opens the index at `path`, which must have been built from the
    /// keys file as `stamp` describes it.
    pub fn open(path: &Path, stamp: &Stamp) -> Result<KeyIndex, IndexError> {
        match open_header(path)? {
            Ok(opened) => opened.check(stamp),
            Err(what) => Err(IndexError::Untrusted {
                path: path.to_path_buf(),
                what,
            }),
        }
    }
}

impl OpenedIndex {
    /// The keys file the header says the index was built from.
    pub fn stamp(&self) -> &Stamp {
        &self.stamp
    }

    /// The index, once its header matches `stamp` (the keys file as it is)
    /// and its length and fences check.
    pub fn check(self, stamp: &Stamp) -> Result<KeyIndex, IndexError> {
        let built = &self.stamp;
        let what = if built.keys != stamp.keys {
            format!(
                "it covers {} keys, the keys file holds {}",
                built.keys, stamp.keys
            )
        } else if built.end != stamp.end || built.tail != stamp.tail {
            format!(
                "it was built from another keys file (of {} bytes, this one has {})",
                built.end, stamp.end
            )
        } else {
            return self.into_index();
        };
        Err(IndexError::Untrusted {
            path: self.path,
            what,
        })
    }

    /// The index, once its length and fences check, trusting its stamp
    /// (which the caller has matched with the keys file).
    pub fn into_index(self) -> Result<KeyIndex, IndexError> {
        let OpenedIndex {
            path,
            file,
            stamp: Stamp { keys, end, .. },
            seed,
        } = self;
        let io_error = |source| IndexError::Io {
            path: path.clone(),
            source,
        };
        let untrusted = |what: String| IndexError::Untrusted {
            path: path.clone(),
            what,
        };
        let len = file.metadata().map_err(io_error)?.len();
        if len != file_len(keys) {
            return Err(untrusted(format!(
                "{len} bytes long, {} expected",
                file_len(keys)
            )));
        }
        let (entry_pages, offset_pages, order_pages) = layout(keys);
        let mut fence_bytes = vec![0; entry_pages as usize * 8 + 4];
        let at = (1 + entry_pages + offset_pages + order_pages) * PAGE as u64;
        file.read_exact_at(&mut fence_bytes, at).map_err(io_error)?;
        let (body, crc) = fence_bytes.split_at(entry_pages as usize * 8);
        if u32::from_le_bytes(crc.try_into().expect("4")) != crc32c::crc32c(body) {
            return Err(untrusted("its fences are damaged".into()));
        }
        let fences = body
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
            .collect();
        Ok(KeyIndex {
            path,
            file,
            keys,
            end,
            seed,
            fences,
        })
    }
}

impl KeyIndex {
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// The keys file's length it covers: every record it points to ends
    /// by there.
    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn seed(&self) -> (u64, u64) {
        self.seed
    }

    /// The body of page `number`, checked.
    fn page(&self, number: u64, out: &mut [u8; PAGE]) -> Result<(), IndexError> {
        self.file
            .read_exact_at(out, number * PAGE as u64)
            .map_err(|source| IndexError::Io {
                path: self.path.clone(),
                source,
            })?;
        let stored = u32::from_le_bytes(out[BODY..].try_into().expect("4"));
        if stored != page_crc(number, &out[..BODY]) {
            return Err(IndexError::Untrusted {
                path: self.path.clone(),
                what: format!("page {number} is damaged"),
            });
        }
        Ok(())
    }

    /// The entries of entry page `p` (0-based).
    fn entries_of(&self, p: u64, page: &mut [u8; PAGE]) -> Result<Vec<(u64, u32)>, IndexError> {
        self.page(1 + p, page)?;
        let count = (self.keys - p * ENTRIES_PER_PAGE as u64).min(ENTRIES_PER_PAGE as u64);
        Ok(page[..count as usize * ENTRY]
            .chunks_exact(ENTRY)
            .map(|e| {
                (
                    u64::from_le_bytes(e[..8].try_into().expect("8")),
                    u32::from_le_bytes(e[8..].try_into().expect("4")),
                )
            })
            .collect())
    }

    /// Where series `id`'s record starts in the keys file.
    pub fn offset(&self, id: u64) -> Result<u64, IndexError> {
        let (entry_pages, _, _) = layout(self.keys);
        let bytes = self.item(1 + entry_pages, OFFSETS_PER_PAGE, 8, id, "series")?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// The id of the `rank`th key in byte order of the keys.
    pub fn ordered(&self, rank: u64) -> Result<u64, IndexError> {
        let (entry_pages, offset_pages, _) = layout(self.keys);
        let first = 1 + entry_pages + offset_pages;
        let bytes = self.item(first, ORDER_PER_PAGE, 4, rank, "rank")?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Item `i` (of `size` bytes, little-endian, zero-extended to 8) of the
    /// one-per-key section whose pages start at page `first`.
    fn item(
        &self,
        first: u64,
        per_page: usize,
        size: usize,
        i: u64,
        what: &str,
    ) -> Result<[u8; 8], IndexError> {
        if i >= self.keys {
            return Err(IndexError::Untrusted {
                path: self.path.clone(),
                what: format!("{what} {i} is past its {} keys", self.keys),
            });
        }
        let mut page = [0; PAGE];
        self.page(first + i / per_page as u64, &mut page)?;
        let at = (i % per_page as u64) as usize * size;
        let mut out = [0; 8];
        out[..size].copy_from_slice(&page[at..at + size]);
        Ok(out)
    }

    /// The ids whose keys hash as `key` does, in id order: the candidates
    /// for `key`, to be compared with their keys' text.
    pub fn candidates(&self, key: &str) -> Result<Vec<u64>, IndexError> {
        let hash = hash_key(self.seed, key);
        // Entries with this hash start in the last page whose first hash
        // is below it (or in the first page) and may run over later pages.
        let mut p = self.fences.partition_point(|&f| f < hash).saturating_sub(1) as u64;
        let mut out = Vec::new();
        let mut page = [0; PAGE];
        while (p as usize) < self.fences.len() && self.fences[p as usize] <= hash {
            let entries = self.entries_of(p, &mut page)?;
            out.extend(
                entries
                    .iter()
                    .filter(|e| e.0 == hash)
                    .map(|e| u64::from(e.1)),
            );
            if entries.last().is_none_or(|e| e.0 > hash) {
                break;
            }
            p += 1;
        }
        Ok(out)
    }
}

/// Reads up to `out.len()` bytes at `at`; returns how many were read.
fn read_up_to(file: &File, at: u64, out: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < out.len() {
        match file.read_at(&mut out[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

mod write;
pub use write::build;

#[cfg(test)]
mod tests;
