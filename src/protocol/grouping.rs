//! Grouping the points of a `get` reply by key as they are decoded, each
//! key's points sorted by timestamp when the reply ends.

use std::collections::HashMap;

use super::decoder::DecodeError;
use super::excerpt::excerpt;

/// One stored measurement: `(timestamp, value)`, the order Python receives.
pub type Point = (i64, f64);

/// Keys in order of first appearance, each with its points sorted by
/// timestamp (stable: points with equal timestamps keep the server's order).
pub type Metrics = Vec<(String, Vec<Point>)>;

/// Groups points by key as lines arrive.
#[derive(Debug, Default)]
pub(crate) struct MetricsBuilder {
    entries: Metrics,
    index: HashMap<String, usize>,
    /// Servers send a key's points together; checking the previous key first
    /// skips the hash lookup for almost every line.
    last: usize,
}

impl MetricsBuilder {
    /// Adds the point of one data line.
    pub(crate) fn push_line(&mut self, line: &[u8]) -> Result<(), DecodeError> {
        let (key, point) = match super::decoder::simple_line(line) {
            Some(parsed) => parsed,
            None => super::decoder::any_line(line)?,
        };
        let slot = match self.entries.get(self.last) {
            // Same bytes as a key already validated: no UTF-8 check needed.
            Some((last_key, _)) if last_key.as_bytes() == key => self.last,
            _ => {
                let key = std::str::from_utf8(key).map_err(|_| DecodeError::BadLine {
                    line: excerpt(line),
                    reason: "key is not UTF-8",
                })?;
                match self.index.get(key) {
                    Some(&slot) => slot,
                    None => {
                        self.entries.push((key.to_owned(), Vec::new()));
                        self.index.insert(key.to_owned(), self.entries.len() - 1);
                        self.entries.len() - 1
                    }
                }
            }
        };
        self.last = slot;
        self.entries[slot].1.push(point);
        Ok(())
    }

    /// The keys in order of first appearance, points sorted (stably).
    pub(crate) fn finish(self) -> Metrics {
        let mut entries = self.entries;
        for (_, points) in &mut entries {
            if !points.is_sorted_by_key(|p| p.0) {
                points.sort_by_key(|p| p.0); // stable
            }
        }
        entries
    }
}
