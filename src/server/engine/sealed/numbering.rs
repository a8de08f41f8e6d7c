//! How the sealed part numbers its keys on disk: the keys index, opened
//! (or rebuilt) at start, replaced by each seal that numbers new keys, and
//! the lookup of a key's series number through it and the keys file.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::super::keyindex::{self, IndexError, KeyIndex};
use super::super::keys::{read_key, KeysFile};
use super::super::EngineError;
use super::{Sealed, KEYS, KEY_INDEX, KEY_INDEX_TEMPORARY};

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
        let Some(index) = &self.key_index else {
            return Err(IndexError::Untrusted {
                path: self.dir.join(KEY_INDEX),
                what: "its last rewrite failed; the next seal rebuilds it".into(),
            }
            .into());
        };
        let path = self.dir.join(KEYS);
        for id in index.candidates(key)? {
            let offset = index.offset(id)?;
            if read_key(&self.keys_reader, &path, offset, index.end())? == key {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Serves `index` as the keys file's index (`None`: there is none to
    /// trust until the next seal rebuilds it).
    pub fn set_key_index(&mut self, index: Option<Arc<KeyIndex>>) {
        self.key_index = index;
    }
}

/// Opens the keys index of the keys file `keys` (holding `names`, their
/// records at `offsets`), rebuilding it when it cannot be trusted (with a
/// warning, unless there was none for an empty keys file: a new directory).
pub(super) fn open_key_index(
    dir: &Path,
    keys: &KeysFile,
    names: &[String],
    offsets: &[u64],
    warnings: &mut Vec<String>,
) -> Result<KeyIndex, EngineError> {
    let path = dir.join(KEY_INDEX);
    match fs::remove_file(dir.join(KEY_INDEX_TEMPORARY)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(EngineError::Dir {
                dir: dir.to_path_buf(),
                source: e,
            })
        }
        _ => {}
    }
    let stamp = keys.stamp()?;
    match KeyIndex::open(&path, &stamp) {
        Ok(index) => Ok(index),
        Err(IndexError::Untrusted { what, .. }) => {
            if !keys.is_empty() || path.symlink_metadata().is_ok() {
                warnings.push(format!(
                    "keys index {}: {what}; rebuilt from the keys file",
                    path.display()
                ));
            }
            Ok(keyindex::build(&path, &stamp, names, offsets)?)
        }
        Err(other) => Err(other.into()),
    }
}
