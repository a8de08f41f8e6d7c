//! How a view names keys: by series id, the head's keys from memory, the
//! others from the keys file and its index on disk.

use std::borrow::Cow;

use super::{View, Walk};

impl<'a> View<'a> {
    /// Ids below this name keys (numbered on disk or held in the head).
    pub fn ids(&self) -> usize {
        self.head.ids()
    }

    /// The series id of `key`, if it is stored (in the head or numbered
    /// on disk).
    pub fn id(&self, key: &str) -> Option<usize> {
        if let Some(slot) = self.head.slot(key) {
            return self.head.id(slot);
        }
        let sealed = self.sealed.filter(|s| s.numbered() > 0)?;
        match sealed.numbered_id(key) {
            Ok(id) => id.map(|id| id as usize),
            Err(e) => {
                self.warn(&format!("{e}; key {key:?} is not served"));
                None
            }
        }
    }

    /// The key of series `id`.
    pub fn key(&self, id: usize) -> Option<Cow<'a, str>> {
        if let Some(key) = self.head.slot_of(id).and_then(|slot| self.head.key(slot)) {
            return Some(Cow::Borrowed(key));
        }
        match self.sealed?.key_of(id) {
            Ok(key) => Some(Cow::Owned(key)),
            Err(e) => {
                self.warn(&format!("{e}; series {id} is not served"));
                None
            }
        }
    }

    /// Calls `visit(id, key)` for the series from `from` to `until`
    /// (exclusive) in id order: the numbered ones read in sequence from the
    /// keys file, then the head's new ones.
    pub fn each_key(&self, from: usize, until: usize, mut visit: impl FnMut(usize, &str)) {
        let numbered = self.sealed.map_or(0, |s| s.numbered());
        if let Some(sealed) = self.sealed.filter(|_| from < numbered.min(until)) {
            let read = sealed.each_numbered_key(from, |id, key| {
                if id >= until {
                    return false;
                }
                visit(id, key);
                true
            });
            if let Err(e) = read {
                self.warn(&format!("{e}; some keys are not served"));
            }
        }
        for id in from.max(numbered)..until.min(self.ids()) {
            if let Some(key) = self.head.slot_of(id).and_then(|slot| self.head.key(slot)) {
                visit(id, key);
            }
        }
    }

    /// Calls `visit(id, key)` for every key starting with `prefix` (any
    /// order): the numbered ones through the keys index, the head's new
    /// ones through its sorted keys.
    pub fn keys_with_prefix(&self, prefix: &str, mut visit: impl FnMut(usize, &str)) {
        let numbered = self.sealed.map_or(0, |s| s.numbered());
        if let Some(sealed) = self.sealed {
            let found = sealed.numbered_keys_with_prefix(prefix, |id, key| {
                visit(id, key);
                true
            });
            if let Err(e) = found {
                self.warn(&format!("{e}; some keys are not served"));
            }
        }
        self.head.keys_with_prefix(prefix, |slot, key| {
            if let Some(id) = self.head.id(slot).filter(|&id| id >= numbered) {
                visit(id, key);
            }
            true
        });
    }

    /// Puts the key of series `id` in `walk.name`; false when it has none
    /// (or it cannot be read: then reported).
    pub(super) fn name(&self, walk: &mut Walk, id: usize) -> bool {
        if walk.named == Some(id) {
            return true;
        }
        walk.name.clear();
        walk.named = None;
        if let Some(key) = self.head.slot_of(id).and_then(|slot| self.head.key(slot)) {
            walk.name.push_str(key);
        } else {
            let Some(sealed) = self.sealed else {
                return false;
            };
            match sealed.read_numbered_key(&mut walk.keys, id, &mut walk.name) {
                Ok(true) => {}
                Ok(false) => return false,
                Err(e) => {
                    self.warn(&format!("{e}; series {id} is not served"));
                    return false;
                }
            }
        }
        walk.named = Some(id);
        true
    }
}
