//! Reading the keys file in pieces rather than whole: what a keys index
//! needs (its stamp, a key by its record's offset, every key again to
//! rebuild it) and opening past the part an index covers.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{
    header, item_at, open_regular, parse, records, Defect, Item, KeysError, KeysFile, Opened,
    TornTail, HEADER_LEN, MARKER_LEN, MAX_KEY_BYTES, SYNCED,
};
use crate::server::engine::keyindex::{Stamp, TAIL};

impl KeysFile {
    /// Opens the keys file without reading what `stamp` (a keys index's)
    /// covers: only the header, the stamp's last bytes and the records
    /// after them, returned with their offsets (series `stamp.keys` on).
    /// `None` when the file does not match the stamp (then
    /// [`KeysFile::open`] reads it whole). Damage among the covered records
    /// is found when one is read ([`KeysFile::key_at`]).
    pub fn open_after(path: &Path, stamp: &Stamp) -> Result<Option<Opened>, KeysError> {
        let io_error = |source| KeysError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = match open_regular(path, true) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            opened => match opened.map_err(io_error)? {
                Ok(file) => file,
                Err(_) => return Ok(None),
            },
        };
        let len = file.metadata().map_err(io_error)?.len();
        let tail_len = stamp.tail.len() as u64;
        if len < stamp.end || stamp.end < HEADER_LEN as u64 || tail_len > stamp.end {
            return Ok(None);
        }
        let mut head = [0; HEADER_LEN];
        file.read_exact_at(&mut head, 0).map_err(io_error)?;
        let mut tail = vec![0; stamp.tail.len()];
        file.read_exact_at(&mut tail, stamp.end - tail_len)
            .map_err(io_error)?;
        if head != header() || tail != stamp.tail {
            return Ok(None);
        }
        // Whether the covered part ends with its sync marker.
        let synced = stamp.end == HEADER_LEN as u64
            || (tail.len() >= MARKER_LEN
                && matches!(
                    item_at(&tail, tail.len() - MARKER_LEN),
                    Ok((Item::Synced(count), _)) if count == stamp.keys
                ));
        let mut bytes = vec![0; (len - stamp.end) as usize];
        file.read_exact_at(&mut bytes, stamp.end)
            .map_err(io_error)?;
        let parsed = records(&bytes, 0, stamp.end, stamp.keys, synced).map_err(|defect| {
            KeysError::Corrupt {
                path: path.to_path_buf(),
                what: match defect {
                    Defect::Corrupt(what) => what,
                    other => format!("{other:?}"),
                },
            }
        })?;
        let valid_end = stamp.end + parsed.valid_len as u64;
        let torn = (parsed.valid_len < bytes.len()).then(|| TornTail {
            offset: valid_end,
            bytes: bytes[parsed.valid_len..].to_vec(),
        });
        let keys_file = KeysFile {
            path: path.to_path_buf(),
            file,
            end: valid_end,
            keys: stamp.keys + parsed.keys.len() as u64,
            unsynced: !parsed.synced,
            torn,
        };
        Ok(Some((keys_file, parsed.keys, parsed.offsets)))
    }

    /// What ties a keys index to this file as it is now.
    pub fn stamp(&self) -> Result<Stamp, KeysError> {
        let n = (self.end as usize).min(TAIL);
        let mut tail = vec![0; n];
        self.file
            .read_exact_at(&mut tail, self.end - n as u64)
            .map_err(|e| self.io_error(e))?;
        Ok(Stamp {
            keys: self.keys,
            end: self.end,
            tail,
        })
    }

    /// Every key and where its record starts, read again from the file
    /// (to rebuild the keys index).
    pub fn read_all(&self) -> Result<(Vec<String>, Vec<u64>), KeysError> {
        let mut bytes = vec![0; self.end as usize];
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(|e| self.io_error(e))?;
        let parsed = parse(&bytes).map_err(|defect| KeysError::Corrupt {
            path: self.path.clone(),
            what: format!("read again: {defect:?}"),
        })?;
        Ok((parsed.keys, parsed.offsets))
    }

    /// The key whose record starts at `offset` (as the keys index says),
    /// checked against the record's CRC.
    pub fn key_at(&self, offset: u64) -> Result<String, KeysError> {
        read_key(&self.file, &self.path, offset, self.end)
    }
}

/// The key whose record starts at `offset` of the keys file `file` (at
/// `path`), whose records end by `end`, checked against the record's CRC.
pub fn read_key(file: &File, path: &Path, offset: u64, end: u64) -> Result<String, KeysError> {
    let corrupt = |what: String| KeysError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let io_error = |source| KeysError::Io {
        path: path.to_path_buf(),
        source,
    };
    if offset < HEADER_LEN as u64 || offset >= end {
        return Err(corrupt(format!("no record at offset {offset}")));
    }
    let mut len = [0; 4];
    file.read_exact_at(&mut len, offset).map_err(io_error)?;
    let body = (u32::from_le_bytes(len) as usize).min(MAX_KEY_BYTES + 1);
    let mut record = vec![0; (4 + body + 4).min((end - offset) as usize)];
    file.read_exact_at(&mut record, offset).map_err(io_error)?;
    match item_at(&record, 0) {
        Ok((Item::Key(key), _)) => Ok(key.to_string()),
        Ok((Item::Synced(_), _)) => Err(corrupt(format!("a sync marker at offset {offset}"))),
        Err(problem) => Err(corrupt(format!("the record at offset {offset}: {problem}"))),
    }
}

/// Bytes a [`KeyScan`] reads at a time.
const SCAN_READ: usize = 64 << 10;

/// The keys file's records read one after another from an offset: a walk
/// over the numbered keys in id order costs one read per 64 KiB of keys,
/// not an index lookup per key. The file is only ever appended to, so a
/// scan stays valid while keys are added behind it.
#[derive(Debug)]
pub struct KeyScan {
    buf: Vec<u8>,
    /// The next item's place in `buf`.
    at: usize,
    /// The file offset of `buf[0]`.
    origin: u64,
}

impl KeyScan {
    /// A scan from the record at `offset`.
    pub fn new(offset: u64) -> KeyScan {
        KeyScan {
            buf: Vec::new(),
            at: 0,
            origin: offset,
        }
    }

    /// The next key of the keys file `file` (at `path`), whose records end
    /// by `end`; `None` at `end`. Sync markers are skipped.
    pub fn next_key(
        &mut self,
        file: &File,
        path: &Path,
        end: u64,
    ) -> Result<Option<&str>, KeysError> {
        loop {
            let offset = self.origin + self.at as u64;
            if offset >= end {
                return Ok(None);
            }
            let problem = match item_at(&self.buf, self.at) {
                Ok((Item::Synced(_), next)) => {
                    self.at = next;
                    continue;
                }
                Ok((Item::Key(key), next)) => {
                    let (start, len) = (self.at + 4, key.len());
                    self.at = next;
                    let key = std::str::from_utf8(&self.buf[start..start + len]);
                    return Ok(key.ok());
                }
                Err(problem) => problem,
            };
            // Either the item runs past what was read (read on) or it is
            // damaged (whole, or nothing more to read before `end`).
            let unread = self.buf.len() - self.at;
            let whole = item_len(&self.buf[self.at..]).is_some_and(|n| unread >= n);
            if !whole && self.origin + (self.buf.len() as u64) < end {
                self.refill(file, path, end)?;
                if self.buf.len() - self.at > unread {
                    continue;
                }
            }
            return Err(KeysError::Corrupt {
                path: path.to_path_buf(),
                what: format!("the record at offset {offset}: {problem}"),
            });
        }
    }

    /// Drops what was read and reads on, keeping the unread bytes; reads
    /// at least the length the next record says it has.
    fn refill(&mut self, file: &File, path: &Path, end: u64) -> Result<(), KeysError> {
        self.buf.drain(..self.at);
        self.origin += self.at as u64;
        self.at = 0;
        let have = self.buf.len();
        let need = item_len(&self.buf).unwrap_or(MARKER_LEN);
        let want = (have + SCAN_READ).max(need);
        let until = (self.origin + want as u64).min(end);
        let read = (until - self.origin) as usize;
        if read <= have {
            return Ok(());
        }
        self.buf.resize(read, 0);
        file.read_exact_at(&mut self.buf[have..], self.origin + have as u64)
            .map_err(|source| KeysError::Io {
                path: path.to_path_buf(),
                source,
            })
    }
}

/// The length of the item starting `bytes`, as its length field says
/// (`None` when even that is not there).
fn item_len(bytes: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    Some(match len {
        SYNCED => MARKER_LEN,
        len => 8 + (len as usize).min(MAX_KEY_BYTES + 1),
    })
}
