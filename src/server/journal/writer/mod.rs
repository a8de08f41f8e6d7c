//! The writer thread: moves buffered records to the file, fsyncs them as the
//! policy says, publishes how far the file is settled, and runs compaction
//! in steps between batches.
//!
//! When a write or fsync fails, the file is cut back to its last complete
//! length (a failed write may have left part of a record) and puts are refused
//! with the OS's reason until writing works again. What happens to the
//! records that failed depends on whether their puts were acknowledged:
//!
//! * `always`: they were not. The batch is rejected: its points are never
//!   stored, its puts (and those journaled meanwhile) are answered with the
//!   error. Every `RETRY_INTERVAL` puts are let through again, and the next
//!   batch shows whether writing works.
//! * `everysec`, `no`: they were, and their points are in the store. The
//!   records stay in memory and are written again every `RETRY_INTERVAL`
//!   until it works. Under `everysec` the records written since the last
//!   fsync are kept too, so a failed fsync is repaired by writing them again
//!   (a page the kernel failed to write may be dropped from its cache).

use std::fs;
use std::io;
use std::mem;
use std::sync::Arc;
use std::time::{Duration, Instant};

use unsynced::Unsynced;

use super::compaction::Compaction;
use super::deferred::Deferred;
use super::disk::{Disk, FileDisk};
use super::file::{compaction_path, JournalFile};
use super::{
    refusal_reason, Durability, FsyncPolicy, Writer, HIGH_WATER, RETRY_INTERVAL, SYNC_INTERVAL,
    WRITE_INTERVAL,
};
use crate::server::engine::{
    self,
    seal::{Seal, Sealer},
};
use crate::server::error::ServerError;
use crate::server::log::Level;
use crate::server::shared::Shared;

/// Records written but not yet fsynced under `everysec` that make the writer
/// fsync early, bounding what it keeps in memory to repair a failed fsync.
const UNSYNCED_LIMIT: usize = 4 * HIGH_WATER;
/// How long a failed compaction (for example for lack of space for the
/// copy) waits before it is tried again, instead of after every batch.
const COMPACTION_RETRY: Duration = Duration::from_secs(60);

/// The writer thread: runs until the journal is closed, then writes and
/// fsyncs everything left. Returns what it could not write, if anything.
pub(crate) fn run_writer(
    shared: Arc<Shared>,
    file: JournalFile,
    policy: FsyncPolicy,
    compact_min_bytes: u64,
    sealer: Option<Sealer>,
) -> Result<(), ServerError> {
    let mut writer = JournalWriter::new(shared, file, policy, FileDisk);
    if let Some(sealer) = &sealer {
        // Not at once: a server that starts serves first.
        writer.seal_check = Instant::now() + sealer.storage.seal_interval;
    }
    writer.sealer = sealer;
    writer.run(compact_min_bytes)
}

/// Which operation failed.
enum Failure {
    Write(io::Error),
    Sync(io::Error),
}

pub(super) struct JournalWriter<D: Disk> {
    shared: Arc<Shared>,
    file: JournalFile,
    policy: FsyncPolicy,
    disk: D,
    /// Records taken from the journal that are not in the file yet.
    held: Vec<u8>,
    /// `always`: the points of `held`, stored once it is fsynced.
    points: Deferred,
    /// `everysec`: records written since the last fsync.
    unsynced: Unsynced,
    /// Length and records of the file as of the last successful fsync.
    synced: (u64, u64),
    /// Logical position up to which every record is durable or rejected.
    settled: u64,
    /// A failed write (or the cut after it) may have left bytes past
    /// `file.len`; they are cut off before anything else is written.
    torn: bool,
    dirty: bool,
    last_write: Instant,
    last_sync: Instant,
    /// Since when writing fails; `None` while it works.
    failing_since: Option<Instant>,
    /// When to try again while failing.
    retry_at: Option<Instant>,
    /// No compaction is started before this, after one failed.
    compaction_after: Option<Instant>,
    /// With blocks: seals the head's old points during compactions.
    sealer: Option<Sealer>,
    /// When to look next for something to seal.
    seal_check: Instant,
}

impl<D: Disk> JournalWriter<D> {
    pub(super) fn new(
        shared: Arc<Shared>,
        file: JournalFile,
        policy: FsyncPolicy,
        disk: D,
    ) -> Self {
        let synced = (file.len, file.records);
        JournalWriter {
            shared,
            file,
            policy,
            disk,
            held: Vec::new(),
            points: Deferred::default(),
            unsynced: Unsynced::default(),
            synced,
            settled: 0,
            torn: false,
            dirty: false,
            last_write: Instant::now(),
            last_sync: Instant::now(),
            failing_since: None,
            retry_at: None,
            compaction_after: None,
            sealer: None,
            seal_check: Instant::now(),
        }
    }

    pub(super) fn run(mut self, compact_min_bytes: u64) -> Result<(), ServerError> {
        let mut compaction: Option<Compaction> = None;
        loop {
            let (closing, seq, points) = self.take_work(compaction.is_some());
            let outcome = match self.write(closing) {
                Ok(()) => {
                    self.written(seq);
                    None
                }
                Err(failure) => Some(self.failed(failure, closing)),
            };
            self.shrink_buffers();

            if closing {
                if let Some(c) = compaction.take() {
                    c.abandon(&self.shared);
                }
                return self.close_outcome(outcome);
            }
            if self.failing_since.is_some() {
                if let Some(c) = compaction.take() {
                    c.abandon(&self.shared);
                }
                continue;
            }

            let retry_ok = self.compaction_after.is_none_or(|at| Instant::now() >= at);
            let seal = match compaction.is_none() && retry_ok {
                true => self.begin_seal(),
                false => None,
            };
            if compaction.is_none()
                && retry_ok
                && (seal.is_some()
                    || self.file.mixed
                    || (self.file.len >= compact_min_bytes
                        && self.file.records > 0
                        && self.file.records >= points.saturating_mul(2)))
            {
                let id_base = self
                    .shared
                    .lock()
                    .journal
                    .as_ref()
                    .map_or(0, |j| j.id_base());
                match Compaction::begin(&self.file, id_base) {
                    Ok(c) => compaction = Some(c.with_seal(seal)),
                    Err(e) => {
                        if let Some(seal) = seal {
                            seal.abandon(&mut self.shared.lock().store);
                        }
                        self.warn(&format!("cannot start compaction: {e}"));
                        self.compaction_after = Some(Instant::now() + COMPACTION_RETRY);
                    }
                }
            }
            if let Some(c) = compaction.take() {
                compaction = self.compaction_step(c);
            }
        }
    }

    /// Waits until there is something to do, then takes the journal's
    /// buffered records (and under `always` their points).
    fn take_work(&mut self, compacting: bool) -> (bool, u64, u64) {
        let shared = Arc::clone(&self.shared);
        let mut state = shared.lock();
        loop {
            let journal = state.journal.as_mut().expect("journal");
            journal.writer = Writer::Busy;
            if journal.closing {
                break;
            }
            let now = Instant::now();
            let wait = if let Some(at) = self.retry_at {
                if now < at {
                    Some(at - now)
                } else if self.held.is_empty() && !self.torn {
                    // Nothing of ours to retry (`always` rejected it): let
                    // puts through again; the next batch is the test.
                    journal.refusal = None;
                    self.retry_at = None;
                    continue;
                } else {
                    break;
                }
            } else if !journal.pending.is_empty() {
                let due = self.last_write + WRITE_INTERVAL;
                if self.policy == FsyncPolicy::Always
                    || compacting
                    || journal.pending.len() >= HIGH_WATER
                    || now >= due
                {
                    break;
                }
                journal.writer = Writer::Batching;
                Some(due - now)
            } else if compacting {
                break;
            } else if self.dirty && self.policy == FsyncPolicy::EverySec {
                let due = self.last_sync + SYNC_INTERVAL;
                if now >= due {
                    break;
                }
                journal.writer = Writer::Idle;
                Some(due - now)
            } else if self.sealer.is_some() {
                // Time passing makes points old enough to seal.
                if now >= self.seal_check {
                    break;
                }
                journal.writer = Writer::Idle;
                Some(self.seal_check - now)
            } else {
                journal.writer = Writer::Idle;
                None
            };
            state = match wait {
                Some(timeout) => shared.journal_wait_timeout(state, timeout),
                None => shared.journal_wait(state),
            };
        }
        let journal = state.journal.as_mut().expect("journal");
        if self.held.is_empty() {
            journal.pending.take(&mut self.held);
        } else {
            // Behind records kept for a retry (rare): appended to them.
            let mut more = Vec::new();
            journal.pending.take(&mut more);
            self.held.extend_from_slice(&more);
        }
        // Under `always` the previous batch's points were stored or
        // rejected before this one is taken.
        debug_assert!(self.points.is_empty());
        mem::swap(&mut journal.deferred, &mut self.points);
        (journal.closing, journal.appended, state.store.points())
    }

    /// Cuts off what an earlier failure left, writes the held records and
    /// fsyncs as the policy says.
    fn write(&mut self, closing: bool) -> Result<(), Failure> {
        if self.torn {
            let (len, records) = (self.file.len, self.file.records);
            self.disk
                .truncate(&mut self.file, len, records)
                .map_err(Failure::Write)?;
            self.torn = false;
        }
        if !self.held.is_empty() {
            if let Err(e) = self.disk.append(&mut self.file, &self.held) {
                self.torn = true;
                return Err(Failure::Write(e));
            }
            if self.policy == FsyncPolicy::EverySec {
                self.unsynced.keep(&mut self.held);
            }
            self.held.clear();
            self.last_write = Instant::now();
            self.dirty = true;
        }
        let sync = match self.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::EverySec => {
                self.last_sync.elapsed() >= SYNC_INTERVAL || self.unsynced.len() >= UNSYNCED_LIMIT
            }
            FsyncPolicy::No => false,
        };
        if self.dirty && (sync || closing) {
            self.disk.sync(&mut self.file).map_err(Failure::Sync)?;
            self.dirty = false;
            self.last_sync = Instant::now();
            self.synced = (self.file.len, self.file.records);
            self.unsynced.clear();
        }
        Ok(())
    }

    /// Everything up to `seq` is written (and under `always` fsynced):
    /// store the deferred points, accept puts again, tell the waiters.
    fn written(&mut self, seq: u64) {
        let recovered = {
            let mut state = self.shared.lock();
            let state = &mut *state;
            self.points.apply(&mut state.store);
            let journal = state.journal.as_mut().expect("journal");
            let recovered = self.failing_since.take().map(|since| since.elapsed());
            if recovered.is_some() {
                journal.refusal = None;
                self.retry_at = None;
            }
            if self.policy == FsyncPolicy::Always || !self.dirty {
                self.settled = seq;
                // Published under the lock, after the points are stored: a
                // connection that sees its record settled finds its point.
                self.shared.publish(Durability {
                    settled: seq,
                    rejections: journal.rejections.count(),
                });
            }
            recovered
        };
        if let Some(took) = recovered {
            self.shared.log(
                Level::Warning,
                &format!(
                    "{}: writing works again after {:.1} s; puts are accepted",
                    self.file.path.display(),
                    took.as_secs_f64()
                ),
            );
        }
    }

    /// Puts the file back to its last complete length, refuses puts until
    /// writing works, and rejects (`always`) or keeps (`everysec`, `no`)
    /// the records that failed. Returns the error and the bytes of puts that
    /// are not in the file.
    fn failed(&mut self, failure: Failure, closing: bool) -> (io::Error, usize) {
        let error = match failure {
            Failure::Write(e) => e,
            Failure::Sync(e) => {
                if self.policy != FsyncPolicy::No {
                    // What was written since the last good fsync may be
                    // gone whatever the page cache shows: cut it off and,
                    // under `everysec`, write it again from memory.
                    (self.file.len, self.file.records) = self.synced;
                    self.torn = true;
                    self.held = self.unsynced.take_before(&self.held);
                }
                e
            }
        };
        if self.torn {
            let (len, records) = (self.file.len, self.file.records);
            self.torn = self.disk.truncate(&mut self.file, len, records).is_err();
        }
        let reason = refusal_reason(&error);
        let mut unwritten = self.held.len();
        {
            let mut state = self.shared.lock();
            let journal = state.journal.as_mut().expect("journal");
            journal.refusal = Some(Arc::clone(&reason));
            if self.policy == FsyncPolicy::Always {
                // Nothing here was acknowledged. Records logged since the
                // batch was taken would land after it: rejected with it.
                unwritten += journal.pending.len();
                self.held.clear();
                self.points.clear();
                journal.pending.discard();
                journal.deferred.clear();
                journal.rejections.push(self.settled, reason);
                self.settled = journal.appended;
                self.shared.publish(Durability {
                    settled: self.settled,
                    rejections: journal.rejections.count(),
                });
            }
        }
        if self.failing_since.is_none() {
            self.failing_since = Some(Instant::now());
            let kept = match self.policy {
                FsyncPolicy::Always => "the puts of the failed batch are answered with the error",
                _ => "acknowledged puts are kept in memory and written again",
            };
            self.shared.log(
                Level::Error,
                &format!(
                    "{}: cannot write the journal: {error}; {kept}; puts are refused until writing works again{}",
                    self.file.path.display(),
                    if self.torn {
                        " (and the partly written record could not be cut off yet)"
                    } else {
                        ""
                    }
                ),
            );
        }
        self.retry_at = (!closing).then(|| Instant::now() + RETRY_INTERVAL);
        (error, unwritten)
    }

    /// What closing reports: nothing, or what is not in the file.
    fn close_outcome(&self, outcome: Option<(io::Error, usize)>) -> Result<(), ServerError> {
        let Some((source, unwritten)) = outcome else {
            return Ok(());
        };
        let what = match (unwritten, self.torn) {
            (0, false) => "the final fsync failed, the last puts may not be on disk".to_string(),
            (0, true) => "a partly written record could not be cut off".to_string(),
            (n, _) => format!("{n} bytes of puts could not be written"),
        };
        Err(ServerError::Unwritten {
            path: self.file.path.clone(),
            what,
            source,
        })
    }

    fn shrink_buffers(&mut self) {
        if self.held.is_empty() && self.held.capacity() > UNSYNCED_LIMIT {
            self.held.shrink_to(HIGH_WATER);
        }
    }

    fn warn(&self, message: &str) {
        self.shared.log(
            Level::Warning,
            &format!("{}: {message}", self.file.path.display()),
        );
    }
}

mod background;
#[cfg(test)]
mod tests;
mod unsynced;
