//! Durability: the journal, an append-only file of put records (`frames`:
//! checksummed binary frames of about 11 bytes a point), replayed at start.
//!
//! Connections append a put's record to an in-memory buffer under the store's
//! lock, so the journal's order is the store's order. One writer thread moves
//! the buffer to the file and fsyncs it:
//!
//! * `always`: the writer writes and fsyncs whatever has accumulated (group
//!   commit). The points of those records wait beside the buffer and are put
//!   into the store only once the fsync covering them returned, so no
//!   reader ever sees a point before it is durable; then the writer
//!   publishes how far the journal is settled and a connection sends the `ok`
//!   for a put only after that point passes its record.
//! * `everysec`: the point is stored at once; the buffer is written at least
//!   every 100 ms (and as soon as it holds 4 MiB) and fsynced about once a
//!   second. `kill -9` loses at most the last 100 ms, a machine crash about
//!   a second.
//! * `no`: written like `everysec`, never fsynced (the kernel decides).
//!
//! When the file cannot be written (disk full, I/O error), it is cut back
//! to its last complete length, so no half record stays in it, and puts are
//! refused with the OS's reason (`error\nno space left on device\n\n`)
//! while gets go on. Under `always` the batch that failed is rejected: its
//! points never reach the store and its puts are answered with that error.
//! Under `everysec` and `no` the puts were already acknowledged, so their
//! records stay in memory and are written again every 100 ms until the write
//! succeeds. Either way puts are accepted again as soon as writing works.
//!
//! Closing the server always writes and fsyncs everything, and reports what
//! it could not write.
//!
//! Recovery: a file that is not a regular file, or does not start like a
//! journal, is refused untouched. In a journal, every record that fails its
//! check (and any garbage) is not applied and is copied to a quarantine file
//! next to it, with a warning; a valid record after garbage is still
//! applied. Only a torn final record (the start of one record, no `\n`) is
//! cut off, after being copied. Replay can be cancelled; it then leaves the
//! journal as it was.
//!
//! Compaction: when the file is at least `compact_min_bytes` and holds at
//! least twice as many records as the store has points, the writer rewrites it
//! as one record per point into `<path>.compact` while serving, appends the
//! records journaled meanwhile, fsyncs and renames it over the journal. A compaction
//! that fails (no space for the copy) is tried again after a minute, and
//! none runs while the journal cannot be written.
//!
//! Files: `frames` (the records written since version 3), `format` (the
//! text records of versions 1 and 2, still read), `policy` (when to fsync),
//! `file` (checking, opening, locking, appending), `recovery` (replaying the
//! file at start, quarantine), `writer` (the writer thread), `disk` (the
//! writer's file operations, where tests inject failures), `deferred`
//! (points waiting for their fsync), `compaction` (rewriting the file while
//! serving). This file holds the
//! in-memory side that connections append to under the store's lock.

mod compaction;
mod deferred;
mod disk;
mod file;
mod format;
mod frames;
mod ids;
mod policy;
mod quarantine;
mod recovery;
mod report;
mod writer;

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use deferred::Deferred;
use frames::Frames;

pub(crate) use file::{open, OpenJournal};
pub use format::Format;
pub use policy::FsyncPolicy;
pub use report::Recovery;
pub(crate) use writer::run_writer;

/// How often buffered records reach the file when not fsyncing each put.
pub(super) const WRITE_INTERVAL: Duration = Duration::from_millis(100);
/// How often `everysec` fsyncs.
pub(super) const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Buffered bytes that make the writer write before `WRITE_INTERVAL`.
pub(super) const HIGH_WATER: usize = 4 << 20;
/// How often the writer tries again while the file cannot be written.
pub(super) const RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// Rejected batches remembered for connections still settling their puts.
const REMEMBERED_REJECTIONS: usize = 1024;

/// How far the journal is settled, published to connections waiting to
/// answer puts under `always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Durability {
    /// Logical bytes (counted since start) whose fate is known: every record
    /// up to here is either fsynced in the file or was rejected.
    pub settled: u64,
    /// Batches rejected so far because the file could not be written; while
    /// it is unchanged, every settled record is durable.
    pub rejections: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writer {
    /// Writing or about to look at the buffer: no need to wake it.
    Busy,
    /// Waiting for records to arrive.
    Idle,
    /// Holding buffered records back until `WRITE_INTERVAL` has passed.
    Batching,
}

/// The in-memory side of the journal, guarded by the store's lock.
#[derive(Debug)]
pub(crate) struct Journal {
    /// Records not taken by the writer yet.
    pub(super) pending: Frames,
    /// Logical bytes appended since start; a put's record is settled once
    /// `Durability::settled` reaches the value after its append.
    pub(super) appended: u64,
    /// Under `always`: the points of the records not yet fsynced.
    pub(super) deferred: Deferred,
    /// Why puts are refused now: the file cannot be written.
    pub(super) refusal: Option<Arc<str>>,
    pub(super) rejections: Rejections,
    pub(super) closing: bool,
    pub(super) writer: Writer,
}

/// The batches rejected under `always`: for each, the logical position the
/// journal was durable to when it was rejected (every record after it, up to the
/// rejection, failed) and why.
#[derive(Debug, Default)]
pub(crate) struct Rejections {
    count: u64,
    recent: VecDeque<(u64, Arc<str>)>,
}

impl Rejections {
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(super) fn push(&mut self, durable_to: u64, reason: Arc<str>) {
        if self.recent.len() == REMEMBERED_REJECTIONS {
            self.recent.pop_front();
        }
        self.recent.push_back((durable_to, reason));
        self.count += 1;
    }

    /// The first rejection after `seen` rejections had happened: records
    /// appended in between and past the returned position failed. `None`
    /// when it is no longer remembered.
    pub(crate) fn after(&self, seen: u64) -> Option<(u64, &str)> {
        let forgotten = self.count - self.recent.len() as u64;
        let index = usize::try_from(seen.checked_sub(forgotten)?).ok()?;
        self.recent
            .get(index)
            .map(|(durable_to, reason)| (*durable_to, &**reason))
    }

    /// The reason of the latest rejection.
    pub(crate) fn last_reason(&self) -> Option<&str> {
        self.recent.back().map(|(_, reason)| &**reason)
    }
}

/// The text of an error reply for an I/O error: the OS's description in
/// lower case without the error number (`no space left on device`), on one
/// line.
pub(crate) fn refusal_reason(error: &io::Error) -> Arc<str> {
    let mut text = error.to_string();
    if let Some(code) = error.raw_os_error() {
        let suffix = format!(" (os error {code})");
        if text.ends_with(&suffix) {
            text.truncate(text.len() - suffix.len());
        }
    }
    let mut reason = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            c if c.is_control() => reason.push(' '),
            c if i == 0 => reason.extend(c.to_lowercase()),
            c => reason.push(c),
        }
    }
    if reason.trim().is_empty() {
        reason = "cannot write the data file".into();
    }
    reason.into()
}

impl Journal {
    /// A journal whose records name series `id` as `id_base + id` (the
    /// file's ids from earlier processes are all below `id_base`).
    pub(crate) fn new(id_base: u64) -> Self {
        Journal {
            pending: Frames::new(id_base),
            appended: 0,
            deferred: Deferred::default(),
            refusal: None,
            rejections: Rejections::default(),
            closing: false,
            writer: Writer::Busy,
        }
    }

    /// Why a put cannot be journaled now, if it cannot.
    pub(crate) fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    pub(crate) fn rejections(&self) -> &Rejections {
        &self.rejections
    }

    /// What the records' ids add to series ids.
    pub(super) fn id_base(&self) -> u64 {
        self.pending.base()
    }

    pub(crate) fn appended(&self) -> u64 {
        self.appended
    }

    /// Holds a journaled put's point back until its record is fsynced (`always`);
    /// call right after its `append_put`.
    pub(crate) fn defer(&mut self, key: &str, timestamp: i64, value: f64) {
        self.deferred.push(key, timestamp, value);
    }

    /// Buffers the record of a put to `key`, whose series id is `id`.
    /// Returns true when the writer thread must be woken (call
    /// `Shared::wake_journal` after releasing the lock).
    pub(crate) fn append_put(&mut self, id: usize, key: &str, value: f64, timestamp: i64) -> bool {
        let before = self.pending.len();
        self.pending.push(id, key, timestamp, value);
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

    pub(crate) fn close(&mut self) {
        self.closing = true;
    }

    /// Whether the server is stopping (long work should give up).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_records_are_frames_and_wake_an_idle_writer() {
        let mut journal = Journal::new(10);
        assert!(!journal.append_put(0, "k", 1.5, -3)); // writer busy: no wake
        journal.writer = Writer::Idle;
        assert!(journal.append_put(1, "ключ", 2.0, 10));
        assert_eq!(journal.writer, Writer::Busy);
        assert_eq!(journal.appended(), journal.pending.len() as u64);
        let mut bytes = Vec::new();
        journal.pending.take(&mut bytes);
        assert_eq!(frames::count_records(&bytes), 2);
        let frames::Frame::Whole {
            len,
            records,
            payload,
        } = frames::frame(&bytes)
        else {
            panic!("{bytes:?}");
        };
        assert_eq!((len, records), (bytes.len(), 2));
        let mut got = Vec::new();
        assert!(frames::entries(payload, records, |e| got.push((
            e.id,
            e.key.map(str::to_string),
            e.timestamp,
            e.value
        ))));
        assert_eq!(
            got,
            [
                (10, Some("k".into()), -3, 1.5),
                (11, Some("ключ".into()), 10, 2.0)
            ]
        );
    }

    #[test]
    fn batching_writer_is_woken_only_at_high_water() {
        let mut journal = Journal::new(0);
        journal.writer = Writer::Batching;
        assert!(!journal.append_put(0, "k", 1.0, 1));
        let mut i = 0;
        while journal.pending.len() + 32 < HIGH_WATER {
            assert!(!journal.append_put(0, "k", 1.0, i));
            i += 1;
        }
        while !journal.append_put(0, "k", 1.0, i) {
            i += 1;
        }
        assert!(journal.pending.len() >= HIGH_WATER);
    }

    #[test]
    fn refusal_reasons_are_one_lower_case_line_without_the_number() {
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(&*refusal_reason(&full), "no space left on device");
        let eio = io::Error::from_raw_os_error(libc::EIO);
        assert_eq!(&*refusal_reason(&eio), "input/output error");
        let odd = io::Error::other("Two\nlines");
        assert_eq!(&*refusal_reason(&odd), "two lines");
        assert_eq!(
            &*refusal_reason(&io::Error::other("")),
            "cannot write the data file"
        );
    }

    #[test]
    fn rejections_tell_where_each_rejected_run_began() {
        let mut rejections = Rejections::default();
        assert_eq!(rejections.after(0), None);
        rejections.push(10, "full".into());
        rejections.push(25, "eio".into());
        assert_eq!(rejections.count(), 2);
        assert_eq!(rejections.after(0), Some((10, "full")));
        assert_eq!(rejections.after(1), Some((25, "eio")));
        assert_eq!(rejections.after(2), None);
        for i in 0..REMEMBERED_REJECTIONS as u64 {
            rejections.push(30 + i, "again".into());
        }
        assert_eq!(rejections.after(0), None, "forgotten");
        assert_eq!(rejections.after(2), Some((30, "again")));
        assert_eq!(rejections.last_reason(), Some("again"));
    }
}
