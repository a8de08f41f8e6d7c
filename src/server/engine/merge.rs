//! Merging: the blocks of one day partition rewritten as one, in a thread
//! of its own (reads of immutable blocks need no lock), so that a day
//! sealed in several pieces (live data is sealed half a head window at a
//! time; late points make more blocks) ends as one block per day, as
//! VictoriaMetrics merges its parts. Where blocks overlap the newest
//! value wins, as it does on reads.
//!
//! Crash safety: the merged block gets a sequence number above its
//! sources and is durable before they are deleted, so a crash in between
//! leaves duplicates of the same values, which reads resolve and the next
//! merge removes. A stop request is seen between two series: the
//! unfinished block is removed and the sources stay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::block::{Block, BlockError, BlockWriter, Entries, IndexEntry};
use super::sealed::dedup_keep_last;
use super::{chunk, Storage, PARTITION};
use crate::protocol::Point;
use crate::server::log::Level;
use crate::server::shared::Shared;

/// A partition with this many blocks is merged even before it is over.
const MANY: usize = 8;
/// How often the merger looks for work when nothing wakes it.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// The merge thread and how to stop it.
pub(crate) struct Merger {
    stop: Arc<(Mutex<bool>, Condvar)>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Merger {
    pub(crate) fn start(shared: Arc<Shared>, storage: Storage) -> std::io::Result<Merger> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let cancel = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, cancel) = (Arc::clone(&stop), Arc::clone(&cancel));
            std::thread::Builder::new()
                .name("metrics-merge".into())
                .spawn(move || run(&shared, &storage, &stop, &cancel))?
        };
        Ok(Merger {
            stop,
            cancel,
            thread: Some(thread),
        })
    }

    /// Stops at once (a merge in progress is abandoned) and waits.
    pub(crate) fn stop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Merger {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared, storage: &Storage, stop: &(Mutex<bool>, Condvar), cancel: &AtomicBool) {
    // Partitions whose merge failed: not tried again until a restart.
    let mut failed: Vec<i64> = Vec::new();
    loop {
        {
            let stopped = stop.0.lock().unwrap_or_else(|e| e.into_inner());
            let (stopped, _) = stop
                .1
                .wait_timeout(stopped, LOOK_EVERY)
                .unwrap_or_else(|e| e.into_inner());
            if *stopped {
                return;
            }
        }
        while let Some((partition, sources)) = next_partition(shared, storage, &failed) {
            let started = Instant::now();
            match merge(shared, partition, &sources, cancel) {
                Ok(Some(points)) => shared.log(
                    Level::Info,
                    &format!(
                        "merged {} blocks of the day from {partition} ({points} points) in {:.3} s",
                        sources.len(),
                        started.elapsed().as_secs_f64()
                    ),
                ),
                Ok(None) => return, // stopped
                Err(e) => {
                    failed.push(partition);
                    shared.log(
                        Level::Warning,
                        &format!("cannot merge the blocks of the day from {partition}: {e}"),
                    );
                }
            }
        }
    }
}

/// The oldest partition worth merging: several blocks and the day over
/// (no more seals will add to it but late points), or many blocks.
fn next_partition(
    shared: &Shared,
    storage: &Storage,
    failed: &[i64],
) -> Option<(i64, Vec<Arc<Block>>)> {
    let state = shared.lock();
    let sealed = state.sealed.as_ref()?;
    let horizon = storage.horizon(super::now());
    let blocks = sealed.shared_blocks();
    let mut at = 0;
    while at < blocks.len() {
        let partition = blocks[at].info().header.partition_start;
        let run = blocks[at..]
            .iter()
            .take_while(|b| b.info().header.partition_start == partition)
            .count();
        let over = partition.saturating_add(PARTITION) <= horizon;
        if run >= 2 && (over || run >= MANY) && !failed.contains(&partition) {
            return Some((partition, blocks[at..at + run].to_vec()));
        }
        at += run;
    }
    None
}

/// Merges `sources` (one partition, in seq order) into one block and
/// serves it in their place; `None` when stopped.
fn merge(
    shared: &Shared,
    partition: i64,
    sources: &[Arc<Block>],
    cancel: &AtomicBool,
) -> Result<Option<u64>, BlockError> {
    let (dir, seq) = {
        let mut state = shared.lock();
        let Some(sealed) = state.sealed.as_mut() else {
            return Ok(None);
        };
        (sealed.dir().to_path_buf(), sealed.take_seqs(1))
    };
    let mut writer = BlockWriter::create(&dir, partition, PARTITION as u64, seq)?;
    let mut walks: Vec<Entries<'_>> = sources.iter().map(|b| b.entries()).collect();
    let mut heads: Vec<Option<IndexEntry>> = Vec::with_capacity(walks.len());
    for walk in &mut walks {
        heads.push(walk.next().transpose()?);
    }
    let (mut points, mut bytes, mut encoded) = (Vec::<Point>::new(), Vec::new(), Vec::new());
    let mut total = 0u64;
    while let Some(series) = heads.iter().flatten().map(|e| e.series_id).min() {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None); // dropping the writer removes its file
        }
        points.clear();
        let mut pieces = 0;
        for (i, head) in heads.iter_mut().enumerate() {
            let Some(entry) = head.filter(|e| e.series_id == series) else {
                continue;
            };
            sources[i].read_chunk(&entry, &mut bytes)?;
            chunk::decode(&bytes, &mut points).map_err(|e| BlockError::Corrupt {
                path: sources[i].info().path.clone(),
                what: format!("series {series}: {e}"),
            })?;
            pieces += 1;
            *head = walks[i].next().transpose()?;
        }
        if pieces > 1 {
            points.sort_by_key(|p| p.0);
            dedup_keep_last(&mut points, 0);
        }
        encoded.clear();
        let summary = chunk::encode(&points, &mut encoded).map_err(|e| BlockError::BadChunk {
            path: writer.path().to_path_buf(),
            series,
            what: e.to_string(),
        })?;
        writer.add(series, &encoded, summary.count, summary.first, summary.last)?;
        total += u64::from(summary.count);
    }
    let info = writer.finish()?;
    let mut state = shared.lock();
    if let Some(sealed) = state.sealed.as_mut() {
        sealed.replace(sources, &info)?;
    }
    Ok(Some(total))
}
