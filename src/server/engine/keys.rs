//! The keys file, `<dir>/keys`: every series' key, in the order the series
//! were numbered, so a series' id is its key's place in the file. Only
//! ever appended to; read whole at start.
//!
//! ```text
//! header   magic "MCKEYS\0\0" (8), version u32, CRC-32C of those 12 bytes
//! record   key length u32 (1..=1 MiB, the longest line a server reads),
//!          the key, CRC-32C of length and key
//! record   ...
//! synced   0xFFFF, the number of keys before it u64, CRC-32C of those 10
//!          bytes: written by `sync` before its fsync
//! ```
//!
//! All integers little-endian. The marker that `sync` writes is what tells
//! a torn tail from damage. A crash can leave the records appended since
//! the last sync torn, missing or zeroed (a file system may make the later
//! blocks of a write durable before the earlier ones), but never a marker
//! after them; those records were never synced, so the engine wrote nothing
//! that uses their ids, and cutting them renumbers nothing. So when a
//! record fails its check, the file is searched for a valid marker after
//! it: if there is one, synced keys are damaged and the file is `Corrupt`
//! (renumbering the series after it would attach their points to other
//! keys); if there is none, everything from that record on is a torn tail,
//! returned so it can be quarantined, and cut before the next append.
//!
//! Keys are checked as the protocol checks a put's key (UTF-8, no
//! whitespace or control characters), and bounded to [`MAX_KEY_BYTES`].

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::block::{open_regular, publish};
use crate::protocol::{validate_key, KeyUse};

pub const MAGIC: [u8; 8] = *b"MCKEYS\0\0";
pub const VERSION: u32 = 1;
/// The longest key the file holds.
/// The longest key a put can carry: the protocol's line limit.
pub const MAX_KEY_BYTES: usize = crate::protocol::DEFAULT_MAX_LINE_BYTES;
const HEADER_LEN: usize = 16;
/// The length that marks a sync marker instead of a record.
const SYNCED: u32 = u32::MAX;
const MARKER_LEN: usize = 16;

#[derive(Debug, Error)]
pub enum KeysError {
    /// Not a keys file (no keys magic at its start, or not a regular
    /// file): left untouched.
    #[error("{} is not a keys file ({detail}); left untouched", .path.display())]
    Foreign { path: PathBuf, detail: &'static str },
    /// Synced keys are damaged: the series cannot be numbered safely.
    #[error("keys file {}: {what}", .path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("keys file {} has format version {found}; this build reads version {VERSION}", .path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("keys file {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("keys file {}: key {key:?} refused: {reason}", .path.display())]
    BadKey {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// An open keys file, keys read from it and where their records start.
pub type Opened = (KeysFile, Vec<String>, Vec<u64>);

/// What `open` cut off the end of the file (see the module's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Where the tail starts; the file is cut there before the next append.
    pub offset: u64,
    /// The tail's bytes, for a quarantine file.
    pub bytes: Vec<u8>,
}

/// The keys file, open for appending.
#[derive(Debug)]
pub struct KeysFile {
    path: PathBuf,
    file: File,
    /// The end of the file's valid part; appends go there.
    end: u64,
    keys: u64,
    /// Whether keys were appended since the last marker.
    unsynced: bool,
    torn: Option<TornTail>,
}

impl KeysFile {
    /// Opens the keys file at `path`, creating it (durably) if there is
    /// none, and returns it with every key it holds: key `i` is series
    /// `i`'s. Opening changes nothing in an existing file.
    pub fn open(path: &Path) -> Result<(KeysFile, Vec<String>), KeysError> {
        Self::open_with_offsets(path).map(|(file, keys, _)| (file, keys))
    }

    /// [`KeysFile::open`], also returning where each key's record starts.
    pub fn open_with_offsets(path: &Path) -> Result<(KeysFile, Vec<String>, Vec<u64>), KeysError> {
        let io_error = |source| KeysError::Io {
            path: path.to_path_buf(),
            source,
        };
        let opened = match open_regular(path, true) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create(path).map_err(io_error)?;
                open_regular(path, true)
            }
            opened => opened,
        };
        let foreign = |detail| KeysError::Foreign {
            path: path.to_path_buf(),
            detail,
        };
        let mut file = opened.map_err(io_error)?.map_err(foreign)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error)?;
        let parsed = parse(&bytes).map_err(|defect| match defect {
            Defect::Foreign => foreign("it does not start with the keys magic"),
            Defect::Version(found) => KeysError::Version {
                path: path.to_path_buf(),
                found,
            },
            Defect::Corrupt(what) => KeysError::Corrupt {
                path: path.to_path_buf(),
                what,
            },
        })?;
        let torn = (parsed.valid_len < bytes.len()).then(|| TornTail {
            offset: parsed.valid_len as u64,
            bytes: bytes[parsed.valid_len..].to_vec(),
        });
        let keys_file = KeysFile {
            path: path.to_path_buf(),
            file,
            end: parsed.valid_len as u64,
            keys: parsed.keys.len() as u64,
            unsynced: !parsed.synced,
            torn,
        };
        Ok((keys_file, parsed.keys, parsed.offsets))
    }

    /// The torn tail `open` found, if any, until the next append cuts it.
    pub fn torn(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// The number of keys, which is the next series' id.
    pub fn len(&self) -> u64 {
        self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `keys` (series `len()`, `len() + 1`, ...). Checks them all
    /// first, so a refused key leaves the file as it was; a failed write is
    /// cut back off. Durable after [`KeysFile::sync`]. Returns where each
    /// record starts.
    pub fn append(&mut self, keys: &[&str]) -> Result<Vec<u64>, KeysError> {
        let mut out = Vec::with_capacity(keys.iter().map(|key| key.len() + 6).sum());
        let mut offsets = Vec::with_capacity(keys.len());
        // A torn tail is cut first, so records go at the valid end.
        let start = self.end;
        for key in keys {
            offsets.push(start + out.len() as u64);
            check_key(key).map_err(|reason| KeysError::BadKey {
                path: self.path.clone(),
                key: key.chars().take(100).collect(),
                reason,
            })?;
            push_record(&mut out, key);
        }
        self.write(&out)?;
        self.keys += keys.len() as u64;
        self.unsynced |= !keys.is_empty();
        Ok(offsets)
    }

    /// Makes every appended key durable: writes a sync marker and fsyncs.
    pub fn sync(&mut self) -> Result<(), KeysError> {
        if self.unsynced {
            self.write(&marker(self.keys))?;
            self.unsynced = false;
        }
        self.file.sync_data().map_err(|e| self.io_error(e))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), KeysError> {
        if self.torn.is_some() {
            self.file.set_len(self.end).map_err(|e| self.io_error(e))?;
            self.torn = None;
        }
        if let Err(e) = self.file.write_all(bytes) {
            // The file is opened for appending: the next write lands at
            // the end, so a partial one must go.
            let _ = self.file.set_len(self.end);
            return Err(self.io_error(e));
        }
        self.end += bytes.len() as u64;
        Ok(())
    }

    fn io_error(&self, source: io::Error) -> KeysError {
        KeysError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// Writes a new keys file holding only its header, atomically.
fn create(path: &Path) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let written = File::create(&temporary).and_then(|mut file| {
        file.write_all(&header())?;
        file.sync_all()
    });
    let published = written.and_then(|()| publish(&temporary, path));
    if published.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    published
}

fn check_key(key: &str) -> Result<(), String> {
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("{} bytes, longer than {MAX_KEY_BYTES}", key.len()));
    }
    validate_key(key, KeyUse::Put).map_err(|e| e.to_string())
}

fn header() -> [u8; HEADER_LEN] {
    let mut out = [0; HEADER_LEN];
    out[..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&out[..12]);
    out[12..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn push_record(out: &mut Vec<u8>, key: &str) {
    let start = out.len();
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

fn marker(keys: u64) -> [u8; MARKER_LEN] {
    let mut out = [0; MARKER_LEN];
    out[..4].copy_from_slice(&SYNCED.to_le_bytes());
    out[4..12].copy_from_slice(&keys.to_le_bytes());
    let crc = crc32c::crc32c(&out[..12]);
    out[12..].copy_from_slice(&crc.to_le_bytes());
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Defect {
    Foreign,
    Version(u32),
    Corrupt(String),
}

#[derive(Debug)]
struct Parsed {
    keys: Vec<String>,
    /// Where each key's record starts.
    offsets: Vec<u64>,
    /// Bytes before the torn tail (all of them when there is none).
    valid_len: usize,
    /// Whether the last valid item is a marker (or the header).
    synced: bool,
}

/// One item of the file.
enum Item<'a> {
    Key(&'a str),
    /// A sync marker and the number of keys it says precede it.
    Synced(u64),
}

/// Reads a whole keys file (sans-IO).
fn parse(bytes: &[u8]) -> Result<Parsed, Defect> {
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(Defect::Foreign);
    }
    if bytes.len() < HEADER_LEN {
        return Err(Defect::Corrupt(format!(
            "truncated: {} bytes, shorter than the header",
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if bytes[..HEADER_LEN] != header() {
        return Err(match version {
            VERSION => Defect::Corrupt("header checksum mismatch".into()),
            other => Defect::Version(other),
        });
    }
    records(bytes, HEADER_LEN, 0, 0, true)
}

/// Reads the records of `bytes[start..]`, where `bytes` starts at offset
/// `origin` of the file and `base` keys come before (synced, when
/// `synced`). `valid_len` is relative to `bytes`.
fn records(
    bytes: &[u8],
    start: usize,
    origin: u64,
    base: u64,
    synced: bool,
) -> Result<Parsed, Defect> {
    let mut parsed = Parsed {
        keys: Vec::new(),
        offsets: Vec::new(),
        valid_len: start,
        synced,
    };
    while parsed.valid_len < bytes.len() {
        let at = parsed.valid_len;
        match item_at(bytes, at) {
            Ok((Item::Key(key), next)) => {
                parsed.keys.push(key.to_string());
                parsed.offsets.push(origin + at as u64);
                (parsed.valid_len, parsed.synced) = (next, false);
            }
            Ok((Item::Synced(count), next)) if count == base + parsed.keys.len() as u64 => {
                (parsed.valid_len, parsed.synced) = (next, true);
            }
            Ok((Item::Synced(count), _)) => {
                return Err(Defect::Corrupt(format!(
                    "the sync marker at offset {} follows {count} keys, the file has {} \
                     before it",
                    origin + at as u64,
                    base + parsed.keys.len() as u64
                )));
            }
            Err(problem) => {
                if let Some(marker) = (at + 1..bytes.len()).find(|&p| is_marker(bytes, p)) {
                    return Err(Defect::Corrupt(format!(
                        "key {} at offset {} is damaged ({problem}), and keys up to offset \
                         {} were synced after it",
                        base + parsed.keys.len() as u64,
                        origin + at as u64,
                        origin + marker as u64
                    )));
                }
                break;
            }
        }
    }
    Ok(parsed)
}

fn is_marker(bytes: &[u8], at: usize) -> bool {
    // The length test first: a search through a long tail must not check
    // a key's CRC at every byte.
    bytes[at..].starts_with(&SYNCED.to_le_bytes())
        && matches!(item_at(bytes, at), Ok((Item::Synced(_), _)))
}

/// The item at `bytes[at..]` and where the next starts, or what is wrong.
fn item_at(bytes: &[u8], at: usize) -> Result<(Item<'_>, usize), String> {
    let rest = &bytes[at..];
    let Some(len) = rest.get(..4) else {
        return Err("cut short".into());
    };
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
    let (body_len, is_marker) = match len {
        SYNCED => (8, true),
        0 => return Err("a key of length 0".into()),
        len if len as usize > MAX_KEY_BYTES => {
            return Err(format!("a key of length {len}, more than {MAX_KEY_BYTES}"));
        }
        len => (len as usize, false),
    };
    let Some(item) = rest.get(..4 + body_len + 4) else {
        return Err("cut short".into());
    };
    let (checked, crc) = item.split_at(4 + body_len);
    let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    if stored != crc32c::crc32c(checked) {
        return Err("checksum mismatch".into());
    }
    let next = at + item.len();
    let body = &checked[4..];
    if is_marker {
        let count = u64::from_le_bytes(body.try_into().expect("8 bytes"));
        return Ok((Item::Synced(count), next));
    }
    let key = std::str::from_utf8(body).map_err(|_| "a key that is not UTF-8".to_string())?;
    check_key(key)?;
    Ok((Item::Key(key), next))
}

mod read;
pub use read::{read_key, KeyScan};
#[cfg(test)]
mod tests;
