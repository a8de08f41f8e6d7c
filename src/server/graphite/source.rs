//! What the Graphite API reads the data through: a narrow read trait (list
//! the keys a glob matches; read a key's points in a range), so that the
//! render, find and index paths do not depend on how points are stored.
//! Implemented here for the in-memory [`Store`] and for the whole data
//! (head over blocks, [`View`]).

use super::glob::PathGlob;
use crate::protocol::Selector;
use crate::server::engine::View;
use crate::server::store::Store;

pub trait Source {
    /// Calls `visit` with every key `glob` matches (any order).
    fn matching_keys(&self, glob: &PathGlob, visit: &mut dyn FnMut(&str));
    /// Calls `visit` with every key.
    fn all_keys(&self, visit: &mut dyn FnMut(&str));
    /// Calls `visit(timestamp, value)` for the points of `key` in
    /// `[from, until)`, by timestamp, until it returns false.
    fn points(&self, key: &str, from: i64, until: i64, visit: &mut dyn FnMut(i64, f64) -> bool);
}

impl Source for Store {
    fn matching_keys(&self, glob: &PathGlob, visit: &mut dyn FnMut(&str)) {
        // A glob without metacharacters names one key: no scan.
        if let Some(key) = glob.literal() {
            // A key exists once it has a point: its cursor is not done.
            if !self.cursor(Selector::Key(key)).is_done() {
                visit(key);
            }
            return;
        }
        let prefix = glob.literal_prefix();
        self.each_key(|key| {
            if key.starts_with(prefix) && glob.matches(key) {
                visit(key);
            }
        });
    }

    fn all_keys(&self, visit: &mut dyn FnMut(&str)) {
        self.each_key(visit);
    }

    fn points(&self, key: &str, from: i64, until: i64, visit: &mut dyn FnMut(i64, f64) -> bool) {
        if let Some(slot) = self.slot(key) {
            self.each_in_range(slot, from, Some(until), visit);
        }
    }
}

impl Source for View<'_> {
    fn matching_keys(&self, glob: &PathGlob, visit: &mut dyn FnMut(&str)) {
        if let Some(key) = glob.literal() {
            if self.id(key).is_some() {
                visit(key);
            }
            return;
        }
        let prefix = glob.literal_prefix();
        let matching = |_, key: &str| {
            if glob.matches(key) {
                visit(key);
            }
        };
        if prefix.is_empty() {
            self.each_key(0, self.ids(), matching);
        } else {
            self.keys_with_prefix(prefix, matching);
        }
    }

    fn all_keys(&self, visit: &mut dyn FnMut(&str)) {
        self.each_key(0, self.ids(), |_, key| visit(key));
    }

    fn points(&self, key: &str, from: i64, until: i64, visit: &mut dyn FnMut(i64, f64) -> bool) {
        if let Some(id) = self.id(key) {
            self.each_in_range(id, from, Some(until), visit);
        }
    }
}
