//! Durability: an append-only log of the protocol's own put lines
//! (`put <key> <value> <timestamp>\n`), replayed at start.
//!
//! Connections apply a put to the store and append its line to an in-memory
//! buffer under the same lock, so the log's order is the store's order. One
//! writer thread moves the buffer to the file and fsyncs it:
//!
//! * `always`: the writer writes and fsyncs whatever has accumulated (group
//!   commit) and publishes how far the file is durable; a connection sends
//!   the `ok` for a put only after that point passes its line.
//! * `everysec`: the buffer is written at least every 100 ms (and as soon as
//!   it holds 4 MiB) and fsynced about once a second. `kill -9` loses at most
//!   the last 100 ms, a machine crash about a second.
//! * `no`: written like `everysec`, never fsynced (the kernel decides).
//!
//! Closing the server always writes and fsyncs everything.
//!
//! Recovery: a last line without its `\n` is a torn write from a crash; it is
//! skipped with a warning and cut off so new lines start cleanly. Any other
//! unreadable line is skipped with a warning. Start never fails on content.
//!
//! Compaction: when the file is at least `compact_min_bytes` and holds at
//! least twice as many lines as the store has points, the writer rewrites it
//! as one line per point into `<path>.compact` while serving, appends the
//! lines logged meanwhile, fsyncs and renames it over the log.
//!
//! Files: `policy` (when to fsync), `file` (opening, locking, appending),
//! `recovery` (replaying the file at start), `writer` (the writer thread),
//! `compaction` (rewriting the file while serving). This file holds the
//! in-memory side that connections append to under the store's lock.

mod compaction;
mod file;
mod policy;
mod recovery;
mod writer;

use std::time::Duration;

use crate::protocol::push_put_line;

pub(crate) use file::open;
pub use policy::FsyncPolicy;
pub use recovery::Recovery;
pub(crate) use writer::run_writer;

/// How often buffered lines reach the file when not fsyncing each put.
pub(super) const WRITE_INTERVAL: Duration = Duration::from_millis(100);
/// How often `everysec` fsyncs.
pub(super) const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Buffered bytes that make the writer write before `WRITE_INTERVAL`.
pub(super) const HIGH_WATER: usize = 4 << 20;

/// How far the log is known durable, published to connections waiting to
/// acknowledge puts under `always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Durability {
    /// Logical bytes (counted since start) that are in the file and fsynced.
    pub synced: u64,
    /// The log failed; nothing more becomes durable.
    pub failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writer {
    /// Writing or about to look at the buffer: no need to wake it.
    Busy,
    /// Waiting for lines to arrive.
    Idle,
    /// Holding buffered lines back until `WRITE_INTERVAL` has passed.
    Batching,
}

/// The in-memory side of the log, guarded by the store's lock.
#[derive(Debug)]
pub(crate) struct Journal {
    pub(super) pending: Vec<u8>,
    /// Logical bytes appended since start; a put's line is durable once
    /// `Durability::synced` reaches the value after its append.
    pub(super) appended: u64,
    pub(super) failed: bool,
    pub(super) closing: bool,
    pub(super) writer: Writer,
}

impl Journal {
    pub(crate) fn new() -> Self {
        Journal {
            pending: Vec::new(),
            appended: 0,
            failed: false,
            closing: false,
            writer: Writer::Busy,
        }
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    pub(crate) fn appended(&self) -> u64 {
        self.appended
    }

    /// Buffers one put line. Returns true when the writer thread must be
    /// woken (call `Shared::wake_journal` after releasing the lock).
    pub(crate) fn append_put(&mut self, key: &str, value_text: &str, timestamp: i64) -> bool {
        let before = self.pending.len();
        push_put_line(&mut self.pending, key, value_text, timestamp);
        self.appended += (self.pending.len() - before) as u64;
        let wake = match self.writer {
            Writer::Busy => false,
            Writer::Idle => true,
            Writer::Batching => self.pending.len() >= HIGH_WATER,
        };
        if wake {
            self.writer = Writer::Busy;
        }
        wake
    }

    pub(crate) fn fail(&mut self) {
        self.failed = true;
        self.pending.clear();
    }

    pub(crate) fn close(&mut self) {
        self.closing = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_lines_are_normalised_put_lines() {
        let mut journal = Journal::new();
        assert!(!journal.append_put("k", "1.50", -3)); // writer busy: no wake
        journal.writer = Writer::Idle;
        assert!(journal.append_put("ключ", "2", 10));
        assert_eq!(journal.writer, Writer::Busy);
        assert_eq!(journal.pending, "put k 1.50 -3\nput ключ 2 10\n".as_bytes());
        assert_eq!(journal.appended(), journal.pending.len() as u64);
    }

    #[test]
    fn batching_writer_is_woken_only_at_high_water() {
        let mut journal = Journal::new();
        journal.writer = Writer::Batching;
        assert!(!journal.append_put("k", "1", 1));
        journal.pending.resize(HIGH_WATER, b'x');
        assert!(journal.append_put("k", "1", 1));
    }
}
