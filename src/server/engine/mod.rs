//! The storage engine, after Prometheus' TSDB and VictoriaMetrics: recent
//! points in the head (the in-memory store, its journal the write-ahead
//! log), older points sealed into immutable compressed blocks on disk.
//!
//! Rooms, one concept each: `chunk` (one series' points compressed:
//! delta-of-delta timestamps, decimal or XOR values), `block` (a block
//! file: chunks, a paged index, checksums), `keys` (the keys file that
//! numbers the blocks' series), `keyindex` (its index on disk, from a key
//! to its series number without the key in memory), `sealed` (the open blocks, read on
//! demand), `seal` (moving points from the head into blocks, run inside
//! the journal's compaction so the journal then holds only the head),
//! `merge` (the blocks of a day rewritten as one, in a thread of its own),
//! `view` (reads over head and blocks, past the retention cut).

pub mod block;
pub mod chunk;
pub mod keyindex;
pub mod keys;
pub(crate) mod merge;
pub(crate) mod seal;
pub mod sealed;
pub mod view;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod keyindex_tests;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

pub use keys::MAX_KEY_BYTES;
pub use sealed::Sealed;
pub use view::{View, Walk};

/// Blocks partition time in days (UTC): retention drops whole days.
pub const PARTITION: i64 = 86_400;

/// How the engine seals and expires, from the server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// Points older than this (from now) are sealed into blocks; newer
    /// ones stay in the head. Prometheus keeps about two hours in its head.
    pub head_window: Duration,
    /// Points older than this (from now) are dropped and never answered;
    /// `None` keeps everything.
    pub retention: Option<Duration>,
    /// How often the writer looks for something to seal.
    pub seal_interval: Duration,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            head_window: Duration::from_secs(2 * 3600),
            retention: None,
            seal_interval: Duration::from_secs(60),
        }
    }
}

impl Storage {
    /// The oldest timestamp still answered at `now` (epoch seconds).
    pub fn cutoff(&self, now: i64) -> Option<i64> {
        Some(ago(now, self.retention?))
    }

    /// Points older than this are sealed at `now`.
    pub fn horizon(&self, now: i64) -> i64 {
        ago(now, self.head_window)
    }

    /// A seal is due once the head holds a point older than this: half a
    /// window past the horizon (as Prometheus cuts a block once its head
    /// spans one and a half block ranges), so that each seal of live data
    /// moves half a window at once rather than a few seconds' worth.
    pub fn trigger(&self, now: i64) -> i64 {
        let half = i64::try_from(self.head_window.as_secs() / 2).unwrap_or(i64::MAX);
        self.horizon(now).saturating_sub(half)
    }
}

/// The epoch second `span` before `now`.
fn ago(now: i64, span: Duration) -> i64 {
    now.saturating_sub(i64::try_from(span.as_secs()).unwrap_or(i64::MAX))
}

/// Reads a span of time: whole seconds, or a number with a unit (`90s`,
/// `15m`, `2h`, `30d`, `4w`, `1y` of 365 days).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let unit_seconds: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a span of time: use a whole number with s, m, h, d, w or y"
            ))
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a span of time: it needs a whole number first"))?;
    number
        .checked_mul(unit_seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Where the blocks of the data file `data` live.
pub fn blocks_dir(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".blocks");
    PathBuf::from(name)
}

/// The epoch second now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{}: {source}", .dir.display())]
    Dir { dir: PathBuf, source: io::Error },
    #[error("{} is not a directory (it is where the data file's blocks are kept); left untouched", .0.display())]
    NotADirectory(PathBuf),
    #[error(
        "{} holds files that are not the server's ({}); refusing to use it, nothing was changed",
        .dir.display(),
        .files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Foreign { dir: PathBuf, files: Vec<PathBuf> },
    #[error("the server keeps no blocks (no data file)")]
    NotSealing,
    #[error(transparent)]
    Block(#[from] block::BlockError),
    #[error(transparent)]
    Keys(#[from] keys::KeysError),
    #[error(transparent)]
    KeyIndex(#[from] keyindex::IndexError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_time_read_with_units() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration(" 90 "), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "d", "1.5d", "-1d", "3 months", "99999999999999999999y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cutoff_and_horizon_count_back_from_now() {
        let storage = Storage {
            head_window: Duration::from_secs(100),
            retention: Some(Duration::from_secs(1000)),
            ..Storage::default()
        };
        assert_eq!(storage.horizon(5000), 4900);
        assert_eq!(storage.trigger(5000), 4850);
        assert_eq!(storage.cutoff(5000), Some(4000));
        assert_eq!(Storage::default().cutoff(5000), None);
        assert_eq!(
            blocks_dir(Path::new("/d/m.log")),
            Path::new("/d/m.log.blocks")
        );
    }
}
