//! Compaction: rewriting the journal as one record per stored point while the
//! server keeps serving, then swapping it in atomically. With a seal (see
//! `engine::seal`), the points old enough go to blocks instead, so the new
//! journal holds only the head.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::file::{compaction_path, lock_exclusive, sync_dir, JournalFile};
use super::frames::{count_records, Frames, HEADER};
use crate::server::engine::seal::Seal;
use crate::server::log::Level;
use crate::server::shared::Shared;
use crate::server::store::{Cursor, Store};

/// Bytes of snapshot the compactor makes per step (under the store's lock,
/// about half a millisecond) before writing them and servicing the buffer.
const COMPACT_STEP: usize = 64 << 10;
/// How often a long seal logs how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// Points a sealing step looks at, at most (and whole keys).
const SEAL_STEP_POINTS: u64 = 1 << 16;
/// Bytes of snapshot written between two fsyncs of the compaction file.
const SYNC_EVERY: u64 = 8 << 20;

/// A compaction in progress: the snapshot written so far and where the live
/// journal stood when it began.
pub(super) struct Compaction {
    tmp_path: PathBuf,
    tmp: File,
    cursor: Cursor,
    /// Log length and records when the snapshot began: records after it
    /// are copied over.
    start_len: u64,
    start_records: u64,
    records: u64,
    bytes: u64,
    /// `bytes` at the last fsync.
    synced: u64,
    buf: Vec<u8>,
    /// The snapshot's records, taken into `buf` at each step (each step
    /// defines the ids it uses, as each write of the journal does).
    frames: Frames,
    started: Instant,
    /// Sealing as it goes (walking the seal's series from the `next`th).
    seal: Option<Seal>,
    next: usize,
    last_progress: Instant,
}

impl Compaction {
    /// Begins a compaction of `file` whose records name series ids plus
    /// `id_base`, as the live journal's do.
    pub(super) fn begin(file: &JournalFile, id_base: u64) -> io::Result<Self> {
        let tmp_path = compaction_path(&file.path);
        let tmp = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&tmp_path)?;
        let mut tmp = tmp;
        let header = [HEADER, b"\n"].concat();
        if let Err(e) = tmp.write_all(&header) {
            let _ = fs::remove_file(&tmp_path);
            return Err(e);
        }
        let buf = Vec::with_capacity(COMPACT_STEP + 4096);
        Ok(Compaction {
            tmp_path,
            tmp,
            cursor: Cursor::all(),
            start_len: file.len,
            start_records: file.records,
            records: 0,
            bytes: header.len() as u64,
            synced: 0,
            buf,
            frames: Frames::new(id_base),
            started: Instant::now(),
            seal: None,
            next: 0,
            last_progress: Instant::now(),
        })
    }

    /// Seals as it compacts.
    pub(super) fn with_seal(mut self, seal: Option<Seal>) -> Self {
        self.seal = seal;
        self
    }

    pub(super) fn seal(&self) -> Option<&Seal> {
        self.seal.as_ref()
    }

    /// A progress line every few seconds of a long seal (as a long replay
    /// has): `None` when one is not due.
    pub(super) fn progress(&mut self) -> Option<String> {
        let seal = self.seal.as_ref()?;
        if self.last_progress.elapsed() < PROGRESS_EVERY {
            return None;
        }
        self.last_progress = Instant::now();
        Some(format!(
            "sealing: {} of {} keys done, {} points into blocks so far ({:.0} s)",
            self.next,
            seal.series_count(),
            seal.sealed,
            self.started.elapsed().as_secs_f64()
        ))
    }

    /// Writes the next piece of the snapshot; true when it is complete.
    pub(super) fn step(&mut self, shared: &Shared) -> io::Result<bool> {
        let frames = &mut self.frames;
        let done = match self.seal.as_mut() {
            Some(seal) => seal_step(&shared.lock().store, seal, &mut self.next, frames)?,
            None => snapshot(&shared.lock().store, &mut self.cursor, frames),
        };
        let buf = &mut self.buf;
        frames.take(buf);
        let records = count_records(buf);
        self.tmp.write_all(buf)?;
        self.records += records;
        self.bytes += buf.len() as u64;
        buf.clear();
        // Syncing as it goes keeps the final fsync short, so a stop that
        // arrives while the compaction finishes is not held up for long.
        if self.bytes - self.synced >= SYNC_EVERY {
            self.tmp.sync_data()?;
            self.synced = self.bytes;
        }
        Ok(done)
    }

    /// Appends what was journaled since the snapshot began and swaps the
    /// files; with a seal, first makes its blocks durable and serves them,
    /// and after the swap removes the sealed points from the head.
    pub(super) fn finish(
        mut self,
        file: &mut JournalFile,
        shared: &Shared,
    ) -> io::Result<(u64, u64, Duration)> {
        let stopping = shared
            .lock()
            .journal
            .as_ref()
            .is_some_and(|j| j.is_closing());
        if stopping && self.seal.is_some() {
            // Making the blocks durable takes fsyncs: not while stopping.
            if let Some(seal) = self.seal.take() {
                seal.abandon(&mut shared.lock().store);
            }
            let _ = fs::remove_file(&self.tmp_path);
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the server is stopping",
            ));
        }
        let served = match self.seal.as_mut() {
            Some(seal) => seal.write().and_then(|written| {
                let mut state = shared.lock();
                match state.sealed.as_mut() {
                    Some(sealed) => sealed.add(&written),
                    None => Ok(Vec::new()),
                }
            }),
            None => Ok(Vec::new()),
        };
        let (swapped, blocks) = match served {
            Ok(blocks) => (self.swap(file), blocks),
            Err(e) => (Err(io::Error::other(e)), Vec::new()),
        };
        if let Some(seal) = self.seal.take() {
            match &swapped {
                Ok(_) => {
                    if let Err(e) = seal.settle(|| shared.lock(), &blocks) {
                        shared.log(
                            Level::Warning,
                            &format!("after sealing, the head keeps some sealed points: {e}"),
                        );
                    }
                }
                Err(_) => seal.abandon(&mut shared.lock().store),
            }
        }
        swapped
    }

    fn swap(&mut self, file: &mut JournalFile) -> io::Result<(u64, u64, Duration)> {
        let mut at = self.start_len;
        self.buf.resize(COMPACT_STEP, 0);
        while at < file.len {
            let want = ((file.len - at) as usize).min(self.buf.len());
            let n = file.handle.read_at(&mut self.buf[..want], at)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the journal shrank during compaction",
                ));
            }
            self.tmp.write_all(&self.buf[..n])?;
            self.bytes += n as u64;
            at += n as u64;
        }
        self.records += file.records - self.start_records;
        self.tmp.sync_all()?;
        if !lock_exclusive(&self.tmp)? {
            return Err(io::Error::other(
                "the compacted journal is locked by another process",
            ));
        }
        fs::rename(&self.tmp_path, &file.path)?;
        sync_dir(&file.path)?;
        file.handle = self.tmp.try_clone()?;
        file.len = self.bytes;
        file.records = self.records;
        file.mixed = false;
        Ok((self.records, self.bytes, self.started.elapsed()))
    }

    pub(super) fn abandon(self, shared: &Shared) {
        drop(self.tmp);
        let _ = fs::remove_file(&self.tmp_path);
        if let Some(seal) = self.seal {
            seal.abandon(&mut shared.lock().store);
        }
    }
}

/// With a seal: seals or journals the points of each of the seal's series
/// from the `next`th on until `frames` holds `COMPACT_STEP` bytes. Called
/// with the lock held.
fn seal_step(
    store: &Store,
    seal: &mut Seal,
    next: &mut usize,
    frames: &mut Frames,
) -> io::Result<bool> {
    let visited = seal.visited;
    while let Some(slot) = seal.slot_at(*next) {
        let key = store.key(slot).unwrap_or_default();
        let id = store.id(slot).unwrap_or_default();
        seal.series(store, slot, &mut |ts, value| {
            frames.push(id, key, ts, value)
        })
        .map_err(io::Error::other)?;
        *next += 1;
        // Sealed points write nothing here: bound the step by the points
        // looked at too, so the lock is held about as long as without.
        if frames.len() >= COMPACT_STEP || seal.visited - visited >= SEAL_STEP_POINTS {
            return Ok(*next >= seal.series_count());
        }
    }
    Ok(true)
}

/// Appends one record per point from `cursor` on until `frames` holds
/// `COMPACT_STEP` bytes: true when the walk is over. Called with the
/// store's lock held.
fn snapshot(store: &Store, cursor: &mut Cursor, frames: &mut Frames) -> bool {
    store.walk_ids(cursor, |id, key, ts, value| {
        frames.push(id, key, ts, value);
        frames.len() < COMPACT_STEP
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::journal::frames::{entries, frame, Frame};

    #[test]
    fn snapshot_records_decode_to_the_stored_points() {
        let mut store = Store::new();
        let points = [
            ("a", 1, 0.5),
            ("a", -3, 1e16),
            ("ключ", 7, -0.0),
            ("b", 0, 0.1 + 0.2),
        ];
        for (key, ts, value) in points {
            store.put(key, ts, value);
        }
        let mut frames = Frames::new(100);
        let mut cursor = Cursor::all();
        assert!(snapshot(&store, &mut cursor, &mut frames));
        let mut out = Vec::new();
        frames.take(&mut out);
        assert_eq!(count_records(&out), 4);
        let Frame::Whole {
            records, payload, ..
        } = frame(&out)
        else {
            panic!("{out:?}");
        };
        let mut keys = std::collections::HashMap::new();
        let mut decoded = Vec::new();
        assert!(entries(payload, records, |e| {
            if let Some(key) = e.key {
                keys.insert(e.id, key.to_string());
            }
            decoded.push((keys[&e.id].clone(), e.timestamp, e.value.to_bits()));
        }));
        let mut want: Vec<_> = points
            .iter()
            .map(|&(k, ts, v)| (k.to_string(), ts, f64::to_bits(v)))
            .collect();
        decoded.sort();
        want.sort();
        assert_eq!(decoded, want);
        assert!(keys.keys().all(|&id| id >= 100), "ids carry the base");
    }
}
