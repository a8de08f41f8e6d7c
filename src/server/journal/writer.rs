//! The writer thread: moves buffered lines to the file, fsyncs them as the
//! policy says, publishes how far the file is durable, and runs compaction
//! in steps between batches.

use std::fs;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use super::compaction::Compaction;
use super::file::{compaction_path, LogFile};
use super::{Durability, FsyncPolicy, Writer, HIGH_WATER, SYNC_INTERVAL, WRITE_INTERVAL};
use crate::server::log::Level;
use crate::server::shared::Shared;

/// The writer thread: runs until the journal is closed, then writes and
/// fsyncs everything left. Returns the first I/O error, if any.
pub(crate) fn run_writer(
    shared: Arc<Shared>,
    mut log: LogFile,
    policy: FsyncPolicy,
    compact_min_bytes: u64,
) -> io::Result<()> {
    let mut batch: Vec<u8> = Vec::new();
    let mut last_write = Instant::now();
    let mut last_sync = Instant::now();
    let mut dirty = false;
    let mut compaction: Option<Compaction> = None;
    let mut failure: Option<io::Error> = None;

    loop {
        let (closing, seq, points) = {
            let mut state = shared.lock();
            loop {
                let journal = state.journal.as_mut().expect("journal");
                journal.writer = Writer::Busy;
                if journal.closing {
                    break;
                }
                let now = Instant::now();
                let wait = if failure.is_some() {
                    None
                } else if !journal.pending.is_empty() {
                    let due = last_write + WRITE_INTERVAL;
                    if policy == FsyncPolicy::Always
                        || compaction.is_some()
                        || journal.pending.len() >= HIGH_WATER
                        || now >= due
                    {
                        break;
                    }
                    journal.writer = Writer::Batching;
                    Some(due - now)
                } else if compaction.is_some() {
                    break;
                } else if dirty && policy == FsyncPolicy::EverySec {
                    let due = last_sync + SYNC_INTERVAL;
                    if now >= due {
                        break;
                    }
                    journal.writer = Writer::Idle;
                    Some(due - now)
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
            std::mem::swap(&mut journal.pending, &mut batch);
            (journal.closing, journal.appended, state.store.points())
        };

        if failure.is_none() {
            let result = (|| -> io::Result<()> {
                if !batch.is_empty() {
                    log.append(&batch)?;
                    last_write = Instant::now();
                    dirty = true;
                }
                let sync = match policy {
                    FsyncPolicy::Always => true,
                    FsyncPolicy::EverySec => last_sync.elapsed() >= SYNC_INTERVAL,
                    FsyncPolicy::No => false,
                };
                if dirty && (sync || closing) {
                    log.sync()?;
                    dirty = false;
                    last_sync = Instant::now();
                }
                Ok(())
            })();
            match result {
                Ok(()) if policy == FsyncPolicy::Always || !dirty => shared.publish(Durability {
                    synced: seq,
                    failed: false,
                }),
                Ok(()) => {}
                Err(e) => {
                    shared.log(
                        Level::Error,
                        &format!(
                            "{}: cannot write the log, puts are refused from now on: {e}",
                            log.path.display()
                        ),
                    );
                    shared.fail_journal();
                    failure = Some(e);
                }
            }
        }
        batch.clear();
        if batch.capacity() > 4 * HIGH_WATER {
            batch.shrink_to(HIGH_WATER);
        }

        if closing {
            if let Some(c) = compaction.take() {
                c.abandon();
            }
            return match failure {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        if failure.is_some() {
            if let Some(c) = compaction.take() {
                c.abandon();
            }
            continue;
        }

        if compaction.is_none()
            && log.len >= compact_min_bytes
            && log.lines > 0
            && log.lines >= points.saturating_mul(2)
        {
            match Compaction::begin(&log) {
                Ok(c) => compaction = Some(c),
                Err(e) => shared.log(
                    Level::Warning,
                    &format!("{}: cannot start compaction: {e}", log.path.display()),
                ),
            }
        }
        if let Some(mut c) = compaction.take() {
            let before = (log.lines, log.len);
            match c.step(&shared) {
                Ok(false) => compaction = Some(c),
                Ok(true) => match c.finish(&mut log) {
                    Ok((lines, bytes, took)) => shared.log(
                        Level::Info,
                        &format!(
                            "{}: compacted {} lines ({} bytes) to {lines} lines ({bytes} bytes) in {:.3} s",
                            log.path.display(),
                            before.0,
                            before.1,
                            took.as_secs_f64()
                        ),
                    ),
                    Err(e) => {
                        shared.log(
                            Level::Warning,
                            &format!("{}: compaction failed, keeping the log: {e}", log.path.display()),
                        );
                        let _ = fs::remove_file(compaction_path(&log.path));
                    }
                },
                Err(e) => {
                    shared.log(
                        Level::Warning,
                        &format!("{}: compaction failed, keeping the log: {e}", log.path.display()),
                    );
                    c.abandon();
                }
            }
        }
    }
}
