//! The writer thread: moves buffered lines to the file, fsyncs them as the
//! policy says, publishes how far the file is settled, and runs compaction
//! in steps between batches.
//!
//! When a write or fsync fails, the file is cut back to its last complete
//! length (a failed write may have left part of a line) and puts are refused
//! with the OS's reason until writing works again. What happens to the
//! lines that failed depends on whether their puts were acknowledged:
//!
//! * `always`: they were not. The batch is rejected: its points are never
//!   stored, its puts (and those journaled meanwhile) are answered with the
//!   error. Every `RETRY_INTERVAL` puts are let through again, and the next
//!   batch shows whether writing works.
//! * `everysec`, `no`: they were, and their points are in the store. The
//!   lines stay in memory and are written again every `RETRY_INTERVAL`
//!   until it works. Under `everysec` the lines written since the last
//!   fsync are kept too, so a failed fsync is repaired by writing them again
//!   (a page the kernel failed to write may be dropped from its cache).

use std::fs;
use std::io;
use std::mem;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Lines written but not yet fsynced under `everysec` that make the writer
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
    /// Lines taken from the journal that are not in the file yet.
    held: Vec<u8>,
    /// `always`: the points of `held`, stored once it is fsynced.
    points: Deferred,
    /// `everysec`: lines written since the last fsync.
    unsynced: Vec<u8>,
    /// Length and lines of the file as of the last successful fsync.
    synced: (u64, u64),
    /// Logical position up to which every line is durable or rejected.
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
        let synced = (file.len, file.lines);
        JournalWriter {
            shared,
            file,
            policy,
            disk,
            held: Vec::new(),
            points: Deferred::default(),
            unsynced: Vec::new(),
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
                    || (self.file.len >= compact_min_bytes
                        && self.file.lines > 0
                        && self.file.lines >= points.saturating_mul(2)))
            {
                match Compaction::begin(&self.file) {
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
    /// buffered lines (and under `always` their points).
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
            mem::swap(&mut journal.pending, &mut self.held);
        } else {
            self.held.extend_from_slice(&journal.pending);
            journal.pending.clear();
        }
        // Under `always` the previous batch's points were stored or
        // rejected before this one is taken.
        debug_assert!(self.points.is_empty());
        mem::swap(&mut journal.deferred, &mut self.points);
        (journal.closing, journal.appended, state.store.points())
    }

    /// Cuts off what an earlier failure left, writes the held lines and
    /// fsyncs as the policy says.
    fn write(&mut self, closing: bool) -> Result<(), Failure> {
        if self.torn {
            let (len, lines) = (self.file.len, self.file.lines);
            self.disk
                .truncate(&mut self.file, len, lines)
                .map_err(Failure::Write)?;
            self.torn = false;
        }
        if !self.held.is_empty() {
            if let Err(e) = self.disk.append(&mut self.file, &self.held) {
                self.torn = true;
                return Err(Failure::Write(e));
            }
            if self.policy == FsyncPolicy::EverySec {
                self.unsynced.extend_from_slice(&self.held);
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
            self.synced = (self.file.len, self.file.lines);
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
                // connection that sees its line settled finds its point.
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
    /// the lines that failed. Returns the error and the bytes of puts that
    /// are not in the file.
    fn failed(&mut self, failure: Failure, closing: bool) -> (io::Error, usize) {
        let error = match failure {
            Failure::Write(e) => e,
            Failure::Sync(e) => {
                if self.policy != FsyncPolicy::No {
                    // What was written since the last good fsync may be
                    // gone whatever the page cache shows: cut it off and,
                    // under `everysec`, write it again from memory.
                    (self.file.len, self.file.lines) = self.synced;
                    self.torn = true;
                    let mut again = mem::take(&mut self.unsynced);
                    again.extend_from_slice(&self.held);
                    self.held = again;
                }
                e
            }
        };
        if self.torn {
            let (len, lines) = (self.file.len, self.file.lines);
            self.torn = self.disk.truncate(&mut self.file, len, lines).is_err();
        }
        let reason = refusal_reason(&error);
        let mut unwritten = self.held.len();
        {
            let mut state = self.shared.lock();
            let journal = state.journal.as_mut().expect("journal");
            journal.refusal = Some(Arc::clone(&reason));
            if self.policy == FsyncPolicy::Always {
                // Nothing here was acknowledged. Lines logged since the
                // batch was taken would land after it: rejected with it.
                unwritten += journal.pending.len();
                self.held.clear();
                self.points.clear();
                journal.pending.clear();
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
        for buf in [&mut self.held, &mut self.unsynced] {
            if buf.is_empty() && buf.capacity() > UNSYNCED_LIMIT {
                buf.shrink_to(HIGH_WATER);
            }
        }
    }

    fn warn(&self, message: &str) {
        self.shared.log(
            Level::Warning,
            &format!("{}: {message}", self.file.path.display()),
        );
    }

    /// A seal to run with the next compaction, when one is due (looked for
    /// every `seal_interval`).
    fn begin_seal(&mut self) -> Option<Seal> {
        let sealer = self.sealer.as_mut()?;
        let now = Instant::now();
        if now < self.seal_check {
            return None;
        }
        self.seal_check = now + sealer.storage.seal_interval;
        let epoch = engine::now();
        let limit = self.shared.limits.max_memory;
        if !sealer.due(&self.shared.lock().store, epoch, limit) {
            return None;
        }
        let shared = Arc::clone(&self.shared);
        match sealer.begin(epoch, || shared.lock()) {
            Ok(seal) => Some(seal),
            Err(e) => {
                self.warn(&format!("cannot seal old points into blocks: {e}"));
                None
            }
        }
    }

    /// Runs one step of a compaction; returns it while it is unfinished.
    fn compaction_step(&mut self, mut c: Compaction) -> Option<Compaction> {
        let before = (self.file.lines, self.file.len);
        let stepped = c.step(&self.shared);
        let sealing = c.seal().map(|s| (s.sealed, s.dropped));
        match stepped {
            Ok(false) => {
                let keys = self.shared.lock().store.keys();
                if let Some(line) = c.progress(keys) {
                    self.shared.log(
                        Level::Info,
                        &format!("{}: {line}", self.file.path.display()),
                    );
                }
                return Some(c);
            }
            Ok(true) => match c.finish(&mut self.file, &self.shared) {
                Ok((lines, bytes, took)) => {
                    // The new file was fsynced with everything in it.
                    self.synced = (self.file.len, self.file.lines);
                    self.unsynced.clear();
                    self.dirty = false;
                    self.shared.log(
                        Level::Info,
                        &format!(
                            "{}: compacted {} lines ({} bytes) to {lines} lines ({bytes} bytes){} in {:.3} s",
                            self.file.path.display(),
                            before.0,
                            before.1,
                            match sealing {
                                Some((sealed, dropped)) => format!(
                                    ", sealing {sealed} points into blocks and dropping {dropped} past the retention"
                                ),
                                None => String::new(),
                            },
                            took.as_secs_f64()
                        ),
                    );
                }
                // Stopping: given up, the journal and blocks as they were.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.warn(&format!(
                        "compaction failed, keeping the journal as it is: {e}"
                    ));
                    let _ = fs::remove_file(compaction_path(&self.file.path));
                    self.compaction_after = Some(Instant::now() + COMPACTION_RETRY);
                }
            },
            Err(e) => {
                self.warn(&format!(
                    "compaction failed, keeping the journal as it is: {e}"
                ));
                c.abandon(&self.shared);
                self.compaction_after = Some(Instant::now() + COMPACTION_RETRY);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    //! The writer against a disk that fails on command, driven the way
    //! connections drive the journal.

    use std::path::PathBuf;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Condvar, Mutex, PoisonError};
    use std::thread::JoinHandle;
    use std::time::Duration;

    use tokio::sync::watch;

    use super::*;
    use crate::protocol::{Put, Selector};
    use crate::server::command::put;
    use crate::server::config::Limits;
    use crate::server::journal::disk::faults::{FaultyDisk, Plan};
    use crate::server::journal::{file, Journal};
    use crate::server::shared::State;
    use crate::server::store::Store;

    const BOUND: Duration = Duration::from_secs(10);
    const FULL: &str = "no space left on device";

    fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + BOUND;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    struct Rig {
        shared: Arc<Shared>,
        plan: Arc<Mutex<Plan>>,
        policy: FsyncPolicy,
        path: PathBuf,
        writer: Option<JoinHandle<Result<(), ServerError>>>,
        logged: Arc<Mutex<Vec<String>>>,
    }

    impl Rig {
        fn start(policy: FsyncPolicy, name: &str) -> Rig {
            Rig::with_compaction(policy, name, u64::MAX, |_| {})
        }

        /// A rig whose writer compacts from `compact_min_bytes`; `prepare`
        /// gets the journal's path before the writer starts.
        fn with_compaction(
            policy: FsyncPolicy,
            name: &str,
            compact_min_bytes: u64,
            prepare: impl FnOnce(&std::path::Path),
        ) -> Rig {
            let dir = std::env::temp_dir().join(format!(
                "metrics-writer-{name}-{}-{policy}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            let path = dir.join("metrics.log");
            let mut store = Store::new();
            let (file, _) = file::open(&path)
                .unwrap()
                .replay(
                    &mut store,
                    &std::sync::atomic::AtomicBool::new(false),
                    None,
                    std::time::Duration::MAX,
                )
                .unwrap();
            prepare(&path);
            let logged = Arc::new(Mutex::new(Vec::new()));
            let shared = Arc::new(Shared {
                state: Mutex::new(State {
                    store,
                    journal: Some(Journal::new()),
                    sealed: None,
                }),
                journal_wake: Condvar::new(),
                durable: watch::Sender::new(Durability::default()),
                limits: Limits::default(),
                storage: crate::server::engine::Storage::default(),
                fsync: Some(policy),
                log: Some({
                    let logged = Arc::clone(&logged);
                    Arc::new(move |_, message: &str| {
                        logged.lock().unwrap().push(message.to_string())
                    })
                }),
                connections: AtomicUsize::new(0),
                refusing: AtomicUsize::new(0),
                budget: crate::server::budget::Budget::new(usize::MAX),
                tls: None,
                protected: false,
                gateway: None,
            });
            let plan = Arc::new(Mutex::new(Plan::default()));
            let writer = JournalWriter::new(
                Arc::clone(&shared),
                file,
                policy,
                FaultyDisk(Arc::clone(&plan)),
            );
            let writer = Some(std::thread::spawn(move || writer.run(compact_min_bytes)));
            Rig {
                shared,
                plan,
                policy,
                path,
                writer,
                logged,
            }
        }

        fn plan(&self, change: impl FnOnce(&mut Plan)) {
            change(&mut self.plan.lock().unwrap_or_else(PoisonError::into_inner));
        }

        /// What a connection does for a put: where its line ends in the journal
        /// and how many batches had been rejected then, or the refusal.
        fn put(&self, key: &str, value: f64, timestamp: i64) -> Result<(u64, u64), String> {
            let value_text = value.to_string();
            let request = Put {
                key,
                value,
                value_text: &value_text,
                timestamp,
            };
            let mut wake = false;
            let mut state = self.shared.lock();
            let defer = self.policy == FsyncPolicy::Always;
            match put::apply(&mut state, &request, None, defer, &mut wake) {
                put::Outcome::Refused(reason) => return Err(reason.to_string()),
                put::Outcome::Stored | put::Outcome::Deferred { .. } => {}
            }
            let journal = state.journal.as_ref().unwrap();
            let ticket = (journal.appended(), journal.rejections().count());
            drop(state);
            if wake {
                self.shared.wake_journal();
            }
            Ok(ticket)
        }

        /// Waits until the line ending at `at` is settled; returns whether it
        /// is durable (false: rejected, with the reason).
        fn settle(&self, (at, seen): (u64, u64)) -> Result<(), String> {
            let mut durable = self.shared.durability();
            wait_until("the put to settle", || {
                durable.borrow_and_update().settled >= at
            });
            let state = self.shared.lock();
            let rejections = state.journal.as_ref().unwrap().rejections();
            if rejections.count() == seen {
                return Ok(());
            }
            match rejections.after(seen) {
                Some((durable_to, _)) if durable_to >= at => Ok(()),
                Some((_, reason)) => Err(reason.to_string()),
                None => panic!("rejection forgotten"),
            }
        }

        fn refusal(&self) -> Option<String> {
            put::refusal(&self.shared.lock(), "k", 0, None).map(str::to_string)
        }

        fn wait_refused(&self) -> String {
            let mut reason = None;
            wait_until("puts to be refused", || {
                reason = self.refusal();
                reason.is_some()
            });
            reason.unwrap()
        }

        /// Puts `key` as soon as puts are accepted again.
        fn put_when_accepted(&self, key: &str, value: f64, timestamp: i64) -> (u64, u64) {
            let mut at = None;
            wait_until("puts to be accepted again", || {
                at = self.put(key, value, timestamp).ok();
                at.is_some()
            });
            at.unwrap()
        }

        fn stored(&self) -> Vec<(String, i64, f64)> {
            let state = self.shared.lock();
            let mut points = Vec::new();
            let mut cursor = state.store.cursor(Selector::All);
            state.store.walk(&mut cursor, |key, ts, value| {
                points.push((key.to_string(), ts, value));
                true
            });
            points
        }

        /// The journal as plain put lines: the header dropped, each
        /// complete record's checksum checked and removed; an unfinished
        /// record is shown as it is.
        fn file(&self) -> String {
            let text = String::from_utf8(fs::read(&self.path).unwrap()).unwrap();
            let header = format!(
                "{}\n",
                String::from_utf8_lossy(super::super::format::HEADER)
            );
            let text = text.strip_prefix(&header).expect("a journal header");
            let mut out = String::new();
            for piece in text.split_inclusive('\n') {
                match piece.strip_suffix('\n') {
                    Some(line) => {
                        let record = super::super::format::decode_record(line.as_bytes());
                        assert!(record.is_some(), "{line:?}");
                        let (body, _checksum) = line.rsplit_once(' ').unwrap();
                        out += body;
                        out.push('\n');
                    }
                    None => out += piece,
                }
            }
            out
        }

        fn close(&mut self) -> Result<(), ServerError> {
            self.shared.lock().journal.as_mut().unwrap().close();
            self.shared.wake_journal();
            self.writer.take().unwrap().join().unwrap()
        }
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            if self.writer.is_some() {
                let _ = self.close();
            }
            if let Some(dir) = self.path.parent() {
                let _ = fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn always_rejects_a_batch_it_cannot_write_and_never_stores_its_points() {
        let mut rig = Rig::start(FsyncPolicy::Always, "always-write");
        let a = rig.put("a", 1.0, 1).unwrap();
        assert_eq!(rig.settle(a), Ok(()));
        assert_eq!(rig.stored(), [("a".into(), 1, 1.0)]);

        // The disk fills in the middle of the next line.
        rig.plan(|p| p.append_writes_then_fails = Some(5));
        let b = rig.put("b", 2.0, 2).unwrap();
        assert_eq!(rig.settle(b), Err(FULL.to_string()));
        assert_eq!(
            rig.stored(),
            [("a".into(), 1, 1.0)],
            "a rejected point was stored"
        );
        assert_eq!(rig.file(), "put a 1 1\n", "half a record left in the file");
        assert_eq!(rig.put("c", 3.0, 3), Err(FULL.to_string()));

        // Space is freed: puts are taken again and reach file and store.
        rig.plan(|p| p.append_writes_then_fails = None);
        let c = rig.put_when_accepted("c", 3.0, 3);
        assert_eq!(rig.settle(c), Ok(()));
        assert_eq!(rig.stored(), [("a".into(), 1, 1.0), ("c".into(), 3, 3.0)]);
        assert_eq!(rig.file(), "put a 1 1\nput c 3 3\n");
        rig.close().unwrap();
    }

    #[test]
    fn always_rejects_a_batch_whose_fsync_fails_and_cuts_it_off() {
        let mut rig = Rig::start(FsyncPolicy::Always, "always-sync");
        let a = rig.put("a", 1.0, 1).unwrap();
        assert_eq!(rig.settle(a), Ok(()));
        rig.plan(|p| p.sync_fails = true);
        let b = rig.put("b", 2.0, 2).unwrap();
        assert_eq!(rig.settle(b), Err("input/output error".to_string()));
        assert_eq!(rig.file(), "put a 1 1\n");
        assert_eq!(rig.stored(), [("a".into(), 1, 1.0)]);
        rig.plan(|p| p.sync_fails = false);
        let c = rig.put_when_accepted("b", 2.5, 2);
        assert_eq!(rig.settle(c), Ok(()));
        assert_eq!(rig.stored(), [("a".into(), 1, 1.0), ("b".into(), 2, 2.5)]);
        rig.close().unwrap();
        assert_eq!(rig.file(), "put a 1 1\nput b 2.5 2\n");
    }

    #[test]
    fn everysec_keeps_acknowledged_lines_until_they_can_be_written() {
        let mut rig = Rig::start(FsyncPolicy::EverySec, "everysec-write");
        rig.plan(|p| p.append_writes_then_fails = Some(3));
        rig.put("a", 1.0, 1).unwrap(); // acknowledged at once under everysec
        assert_eq!(rig.wait_refused(), FULL);
        assert_eq!(rig.put("b", 2.0, 2), Err(FULL.to_string()));
        assert_eq!(rig.file(), "", "half a record left in the file");
        assert_eq!(rig.stored(), [("a".into(), 1, 1.0)]);
        // Retried while failing, never given up.
        let tries = rig.plan.lock().unwrap().appends;
        wait_until("a retry", || rig.plan.lock().unwrap().appends > tries);

        rig.plan(|p| p.append_writes_then_fails = None);
        rig.put_when_accepted("b", 2.0, 2);
        rig.close().unwrap();
        assert_eq!(rig.file(), "put a 1 1\nput b 2 2\n");
    }

    #[test]
    fn everysec_writes_lines_again_after_a_failed_fsync() {
        let mut rig = Rig::start(FsyncPolicy::EverySec, "everysec-sync");
        rig.plan(|p| p.sync_fails = true);
        rig.put("a", 1.0, 1).unwrap();
        assert_eq!(rig.wait_refused(), "input/output error");
        assert_eq!(rig.file(), "", "lines after the last good fsync stay");
        rig.plan(|p| p.sync_fails = false);
        rig.put_when_accepted("b", 2.0, 2);
        rig.close().unwrap();
        assert_eq!(rig.file(), "put a 1 1\nput b 2 2\n");
    }

    #[test]
    fn a_failed_cut_is_retried_before_anything_else_is_written() {
        let mut rig = Rig::start(FsyncPolicy::No, "cut");
        rig.plan(|p| {
            p.append_writes_then_fails = Some(4);
            p.truncate_fails = true;
        });
        rig.put("a", 1.0, 1).unwrap();
        assert_eq!(rig.wait_refused(), FULL);
        assert_eq!(rig.file(), "put ", "the failed cut");
        // Writing works but cutting does not: nothing goes after the half
        // record.
        rig.plan(|p| p.append_writes_then_fails = None);
        let (appends, cuts) = {
            let plan = rig.plan.lock().unwrap();
            (plan.appends, plan.truncates)
        };
        wait_until("two more tries", || {
            rig.plan.lock().unwrap().truncates >= cuts + 2
        });
        assert_eq!(rig.plan.lock().unwrap().appends, appends);
        assert_eq!(rig.file(), "put ");
        assert!(rig.refusal().is_some());
        rig.plan(|p| p.truncate_fails = false);
        rig.put_when_accepted("b", 2.0, 2);
        rig.close().unwrap();
        assert_eq!(rig.file(), "put a 1 1\nput b 2 2\n");
    }

    #[test]
    fn close_reports_what_it_could_not_write() {
        let mut rig = Rig::start(FsyncPolicy::EverySec, "close");
        rig.plan(|p| p.append_writes_then_fails = Some(2));
        rig.put("a", 1.0, 1).unwrap();
        rig.wait_refused();
        let error = rig.close().unwrap_err();
        let text = error.to_string();
        let mut record = Vec::new();
        super::super::format::encode_record(&mut record, "a", "1", 1);
        assert!(
            text.contains(&format!(
                "{} bytes of puts could not be written",
                record.len()
            )) && text.contains(&rig.path.display().to_string()),
            "{text}"
        );
        assert_eq!(
            error.io_error().and_then(io::Error::raw_os_error),
            Some(libc::ENOSPC)
        );
        assert_eq!(rig.file(), "", "half a record left in the file");
    }

    #[test]
    fn a_compaction_that_cannot_start_is_not_retried_after_every_batch() {
        let mut rig = Rig::with_compaction(FsyncPolicy::Always, "compaction", 1, |path| {
            // Where the compacted copy would go is taken.
            fs::create_dir_all(compaction_path(path)).unwrap();
        });
        for ts in 0..20 {
            let at = rig.put("k", ts as f64, 1).unwrap();
            assert_eq!(rig.settle(at), Ok(()));
        }
        rig.close().unwrap();
        let attempts = rig
            .logged
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains("cannot start compaction"))
            .count();
        assert_eq!(attempts, 1);
    }
}
