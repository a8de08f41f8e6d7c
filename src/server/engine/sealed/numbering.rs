//! How the sealed part numbers its keys on disk: the keys index, opened
//! (or rebuilt) at start, replaced by each seal that numbers new keys, and
//! the lookup of a key's series number through it and the keys file.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::super::keyindex::{self, IndexError, KeyIndex};
use super::super::keys::{read_key, KeyScan, KeysError, KeysFile};
use super::super::EngineError;
use super::{Sealed, KEYS, KEY_INDEX, KEY_INDEX_TEMPORARY};
use crate::server::store::Store;

/// Numbered keys a walk skips by reading on rather than by a lookup.
const SCAN_SKIP: usize = 256;

/// Where a walk stands in the keys file, to read the next numbered keys
/// in sequence.
#[derive(Debug, Default)]
pub struct KeyCursor {
    /// The id of the key the scan reads next.
    scan: Option<(usize, KeyScan)>,
}

impl Sealed {
    /// The keys file's index, when it covers every key numbered.
    pub fn key_index(&self) -> Option<Arc<KeyIndex>> {
        self.key_index.clone()
    }

    /// The series number of `key` among the keys the index covers, found
    /// on disk (`None`: not numbered there). An error when there is no
    /// index to trust (a failed rewrite, until the next seal): a key must
    /// not be taken for new when it may be numbered already.
    pub fn numbered_id(&self, key: &str) -> Result<Option<u64>, EngineError> {
        let index = self.trusted_index()?;
        let path = self.dir.join(KEYS);
        for id in index.candidates(key)? {
            let offset = index.offset(id)?;
            if read_key(&self.keys_reader, &path, offset, index.end())? == key {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Readies `store` (the head) for a put of `key`: a key the head does
    /// not hold but the blocks number is added to it with its id, so that
    /// its points stay one series. A key new to both takes the next id when
    /// stored. An error when the keys index cannot be read: the put must
    /// then be refused, not given a second id.
    pub fn admit(&self, store: &mut Store, key: &str) -> Result<(), EngineError> {
        if self.numbered == 0 || store.holds(key) {
            return Ok(());
        }
        if let Some(id) = self.numbered_id(key)? {
            store.add_key(key, id as usize);
        }
        Ok(())
    }

    /// The key numbered `id`, read from the keys file.
    pub fn key_of(&self, id: usize) -> Result<String, EngineError> {
        let index = self.trusted_index()?;
        let offset = index.offset(id as u64)?;
        Ok(read_key(
            &self.keys_reader,
            &self.dir.join(KEYS),
            offset,
            index.end(),
        )?)
    }

    /// Appends to `out` the key numbered `id` (false: `id` is not
    /// numbered), reading on from `cursor` when it stands at or a little
    /// before `id`, as in a walk over the keys in id order.
    pub fn read_numbered_key(
        &self,
        cursor: &mut KeyCursor,
        id: usize,
        out: &mut String,
    ) -> Result<bool, EngineError> {
        if id >= self.numbered {
            return Ok(false);
        }
        let index = self.trusted_index()?;
        let reusable = cursor
            .scan
            .as_ref()
            .is_some_and(|(next, _)| *next <= id && id - *next <= SCAN_SKIP);
        if !reusable {
            cursor.scan = Some((id, KeyScan::new(index.offset(id as u64)?)));
        }
        let Some((next, scan)) = cursor.scan.as_mut() else {
            return Ok(false);
        };
        let path = self.dir.join(KEYS);
        while *next <= id {
            let Some(key) = scan.next_key(&self.keys_reader, &path, index.end())? else {
                cursor.scan = None;
                return Err(IndexError::Untrusted {
                    path: self.dir.join(KEY_INDEX),
                    what: format!("series {id} is past the end of the keys file"),
                }
                .into());
            };
            if *next == id {
                out.push_str(key);
            }
            *next += 1;
        }
        Ok(true)
    }

    /// Calls `visit(id, key)` for the numbered keys from `from` on, in id
    /// order, until it returns false: read in sequence from the keys file.
    pub fn each_numbered_key(
        &self,
        from: usize,
        mut visit: impl FnMut(usize, &str) -> bool,
    ) -> Result<(), EngineError> {
        if from >= self.numbered {
            return Ok(());
        }
        let index = self.trusted_index()?;
        let path = self.dir.join(KEYS);
        let mut scan = KeyScan::new(index.offset(from as u64)?);
        for id in from..self.numbered {
            let Some(key) = scan.next_key(&self.keys_reader, &path, index.end())? else {
                break;
            };
            if !visit(id, key) {
                break;
            }
        }
        Ok(())
    }

    /// Calls `visit(id, key)` for the numbered keys that start with
    /// `prefix`, in byte order of the keys, until it returns false: found
    /// by binary search over the index's order of the keys, each key read
    /// back from the keys file.
    pub fn numbered_keys_with_prefix(
        &self,
        prefix: &str,
        mut visit: impl FnMut(usize, &str) -> bool,
    ) -> Result<(), EngineError> {
        if self.numbered == 0 {
            return Ok(());
        }
        let index = self.trusted_index()?;
        let path = self.dir.join(KEYS);
        let key_at = |rank: u64| -> Result<(u64, String), EngineError> {
            let id = index.ordered(rank)?;
            let key = read_key(&self.keys_reader, &path, index.offset(id)?, index.end())?;
            Ok((id, key))
        };
        let (mut lo, mut hi) = (0, index.keys());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key_at(mid)?.1.as_str() < prefix {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for rank in lo..index.keys() {
            let (id, key) = key_at(rank)?;
            if !key.starts_with(prefix) || !visit(id as usize, &key) {
                break;
            }
        }
        Ok(())
    }

    fn trusted_index(&self) -> Result<&KeyIndex, EngineError> {
        self.key_index.as_deref().ok_or_else(|| {
            IndexError::Untrusted {
                path: self.dir.join(KEY_INDEX),
                what: "its last rewrite failed; the next seal rebuilds it".into(),
            }
            .into()
        })
    }

    /// Serves `index` as the keys file's index (`None`: there is none to
    /// trust until the next seal rebuilds it).
    pub fn set_key_index(&mut self, index: Option<Arc<KeyIndex>>) {
        self.key_index = index;
    }
}

/// Opens the keys file and its index. When the index was built from the
/// keys file as it is (or as it was before keys were appended since, which
/// are then added to it), only the index's header and fences and the keys
/// after it are read: start-up does not grow with the keys numbered.
/// Otherwise the keys file is read whole and the index rebuilt from it,
/// with a warning (unless there was none for an empty keys file: a new
/// directory).
pub(super) fn open_keys(
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<(KeysFile, KeyIndex), EngineError> {
    let path = dir.join(KEY_INDEX);
    let keys_path = dir.join(KEYS);
    match fs::remove_file(dir.join(KEY_INDEX_TEMPORARY)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(EngineError::Dir {
                dir: dir.to_path_buf(),
                source: e,
            })
        }
        _ => {}
    }
    let why = match keyindex::open_header(&path)? {
        Err(why) => why,
        Ok(opened) => match KeysFile::open_after(&keys_path, opened.stamp())? {
            None => "it was built from another keys file".into(),
            // The keys file holds what the index covers (and maybe more).
            Some((keys, after, _)) => match opened.into_index() {
                Ok(index) if after.is_empty() => return Ok((keys, index)),
                Ok(index) => {
                    // Keys a seal appended before a crash kept it from
                    // rewriting the index.
                    check_new_keys(&index, &keys, &after)?;
                    warnings.push(format!(
                        "keys index {}: it covers {} of the {} keys (a seal stopped before \
                         rewriting it); extended with the others",
                        path.display(),
                        index.keys(),
                        keys.len()
                    ));
                    drop(index);
                    let (names, offsets) = keys.read_all()?;
                    let index = keyindex::build(&path, &keys.stamp()?, &names, &offsets)?;
                    return Ok((keys, index));
                }
                Err(IndexError::Untrusted { what, .. }) => what,
                Err(other) => return Err(other.into()),
            },
        },
    };
    let (keys, names, offsets) = KeysFile::open_with_offsets(&keys_path)?;
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    if let Some(twice) = names.iter().find(|name| !seen.insert(name.as_str())) {
        return Err(EngineError::Keys(KeysError::Corrupt {
            path: keys_path,
            what: format!("key {twice:?} is listed twice"),
        }));
    }
    if !keys.is_empty() || path.symlink_metadata().is_ok() {
        warnings.push(format!(
            "keys index {}: {why}; rebuilt from the keys file",
            path.display()
        ));
    }
    let index = keyindex::build(&path, &keys.stamp()?, &names, &offsets)?;
    Ok((keys, index))
}

/// Refuses keys appended after those `index` covers that repeat a key
/// (among themselves or numbered before): a key would have two ids.
fn check_new_keys(index: &KeyIndex, keys: &KeysFile, fresh: &[String]) -> Result<(), EngineError> {
    let mut seen = std::collections::HashSet::with_capacity(fresh.len());
    for key in fresh {
        let mut twice = !seen.insert(key.as_str());
        for id in index.candidates(key)? {
            twice |= keys.key_at(index.offset(id)?)? == *key;
        }
        if twice {
            return Err(EngineError::Keys(KeysError::Corrupt {
                path: keys.path().to_path_buf(),
                what: format!("key {key:?} is listed twice"),
            }));
        }
    }
    Ok(())
}
