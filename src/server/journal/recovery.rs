//! Replaying the journal into the store at start.
//!
//! Nothing is thrown away silently: a line that is not a valid record (a
//! failed checksum, garbage a power loss left, a damaged plain line) is not
//! applied and is copied to the quarantine file next to the journal. A valid
//! record after garbage on the same line (a NUL run without `\n` runs into
//! the next record) is found again by its `put ` start and applied.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memchr::{memchr_iter, memmem};

use super::format::{
    decode_plain, decode_record, is_torn_record, Format, Record, HEADER, MAX_RECORD, RECORD_START,
};
use super::quarantine::{excerpt, Quarantine};
use super::report::Recovery;
use crate::server::command::put::store_point;
use crate::server::engine::Sealed;
use crate::server::log::{Level, LogSink};
use crate::server::store::Store;

/// Bytes read at once: large reads keep the kernel's read-ahead busy and
/// the per-read cost negligible. Must exceed `2 * MAX_RECORD`.
const READ_BYTES: usize = 8 << 20;
/// Corrupt lines quoted in the warning.
const SAMPLES: usize = 3;

/// Why a replay stopped early.
#[derive(Debug)]
pub(super) enum Stop {
    Io(io::Error),
    Cancelled,
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

/// What follows the last `\n` of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tail {
    /// Nothing: the file ends with `\n` (or is empty).
    Clean,
    /// A valid record without its `\n`: applied; the `\n` must be added.
    Unterminated,
    /// The start of one record cut short (offset): copied to the quarantine,
    /// may be cut off.
    Torn(u64),
    /// Something else: copied to the quarantine and kept in the file; a
    /// `\n` must be added before new records.
    Garbage,
}

/// What the replay is given besides the file.
pub(super) struct Control<'a> {
    pub cancel: &'a AtomicBool,
    pub log: Option<&'a LogSink>,
    pub progress_interval: Duration,
}

/// One decoded record inside a chunk: where its key is, and its point.
struct Decoded {
    key_start: u32,
    key_len: u32,
    value: f64,
    timestamp: i64,
}

/// Bytes read from the file, and the records decoded from them.
struct Chunk {
    buf: Vec<u8>,
    records: Vec<Decoded>,
}

/// Chunks in flight between the decoding and the inserting thread: enough
/// to keep both busy, few enough to bound memory (`READ_BYTES` each).
const IN_FLIGHT: usize = 2;

/// Records inserted between two looks at the cancel flag (a few ms).
const CANCEL_SLICE: usize = 4096;

/// Applies the journal to `store`. The file is read from its start; `len`
/// is its size, for progress.
///
/// Two threads share the work: a decoding thread reads the file in large
/// chunks, splits lines, checks and parses records (and quarantines what
/// fails), while the calling thread inserts the decoded points into the
/// store, which is most of the cost.
#[allow(clippy::too_many_arguments)]
pub(super) fn replay(
    file: &File,
    len: u64,
    format: Format,
    store: &mut Store,
    sealed: Option<&Sealed>,
    recovery: &mut Recovery,
    quarantine: &mut Quarantine,
    control: &Control<'_>,
) -> Result<Tail, Stop> {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Chunk>(IN_FLIGHT);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Chunk>();
    let points = AtomicU64::new(0);
    let path = recovery.path.clone();
    let mut found = Found::default();
    let mut unadmitted = None;
    let decoded = std::thread::scope(|scope| {
        let (quarantine, found, points, path) = (&mut *quarantine, &mut found, &points, &path);
        let decoder = std::thread::Builder::new()
            .name("metrics-decode".into())
            .spawn_scoped(scope, move || {
                let mut decoder = Decoder {
                    format,
                    quarantine,
                    found,
                    records: Vec::new(),
                    base: 0,
                };
                decoder.run(file, len, path, control, points, &full_tx, &empty_rx)
            });
        let decoder = match decoder {
            Ok(decoder) => decoder,
            Err(e) => return Err(Stop::Io(e)),
        };
        'chunks: for chunk in full_rx.iter() {
            // A chunk holds up to about 200,000 records: check for a stop
            // between slices of it, not only between chunks.
            for slice in chunk.records.chunks(CANCEL_SLICE) {
                if control.cancel.load(Ordering::Relaxed) {
                    break 'chunks;
                }
                for record in slice {
                    let start = record.key_start as usize;
                    let key = &chunk.buf[start..start + record.key_len as usize];
                    // SAFETY: the decoder checked that the key is UTF-8 (it
                    // came from a `&str`), and the bytes were not changed.
                    let key = unsafe { std::str::from_utf8_unchecked(key) };
                    if let Some(Err(e)) = sealed.map(|sealed| sealed.admit(store, key)) {
                        // The key's id cannot be known: storing the point
                        // could give it a second one.
                        unadmitted = Some(e);
                        break 'chunks;
                    }
                    store_point(store, key, record.timestamp, record.value);
                }
                recovery.replayed += slice.len() as u64;
            }
            points.store(store.points(), Ordering::Relaxed);
            // The decoder may be gone (cancelled): the chunk is then dropped.
            let _ = empty_tx.send(chunk);
        }
        drop(full_rx);
        decoder
            .join()
            .unwrap_or_else(|_| Err(Stop::Io(io::Error::other("the decoding thread panicked"))))
    });
    recovery.quarantined += found.pieces;
    recovery.quarantined_bytes += found.bytes;
    recovery.quarantined_before = quarantine.again;
    if found.pieces > 0 {
        recovery.quarantine = Some(quarantine.path().to_owned());
    }
    recovery.samples.extend(found.samples);
    if let Some(e) = unadmitted {
        return Err(Stop::Io(io::Error::other(e)));
    }
    if control.cancel.load(Ordering::Relaxed) {
        return Err(Stop::Cancelled);
    }
    decoded
}

/// What the decoder found that was not applied.
#[derive(Default)]
struct Found {
    pieces: u64,
    bytes: u64,
    samples: Vec<(u64, String)>,
}

/// The decoding side of `replay`: lines in the journal's current format.
struct Decoder<'a> {
    format: Format,
    quarantine: &'a mut Quarantine,
    found: &'a mut Found,
    /// Records decoded from the current chunk.
    records: Vec<Decoded>,
    /// File offset of the current chunk's first byte.
    base: u64,
}

impl Decoder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        mut file: &File,
        len: u64,
        path: &Path,
        control: &Control<'_>,
        points: &AtomicU64,
        full: &std::sync::mpsc::SyncSender<Chunk>,
        empty: &std::sync::mpsc::Receiver<Chunk>,
    ) -> Result<Tail, Stop> {
        let started = Instant::now();
        let mut reported = started;
        let mut buf = vec![0u8; READ_BYTES];
        // buf[..filled] holds bytes not yet handed on; buf[0] is at `base`.
        let mut filled = 0usize;
        loop {
            if control.cancel.load(Ordering::Relaxed) {
                return Err(Stop::Cancelled);
            }
            let n = match file.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                break;
            }
            let end = filled + n;
            let mut start = 0;
            for newline in memchr_iter(b'\n', &buf[filled..end]) {
                let at = filled + newline;
                self.line(&buf, start, at)?;
                start = at + 1;
            }
            // An unfinished line: keep the end where a record may still
            // start, quarantine what lies before it (no record is that long).
            if end - start > 2 * MAX_RECORD {
                let cut = end - MAX_RECORD;
                self.garbage(
                    &buf[start..cut],
                    self.base + start as u64,
                    "unreadable bytes",
                )?;
                start = cut;
            }
            // Hand the chunk on; its unfinished line starts the next one.
            let (mut next, records) = match empty.try_recv() {
                Ok(recycled) => (recycled.buf, recycled.records),
                Err(_) => (vec![0u8; READ_BYTES], Vec::new()),
            };
            next[..end - start].copy_from_slice(&buf[start..end]);
            let chunk = Chunk {
                buf: std::mem::replace(&mut buf, next),
                records: std::mem::replace(&mut self.records, records),
            };
            self.records.clear();
            if full.send(chunk).is_err() {
                return Err(Stop::Cancelled); // the inserting side stopped
            }
            self.base += start as u64;
            filled = end - start;

            if reported.elapsed() >= control.progress_interval {
                reported = Instant::now();
                if let Some(log) = control.log {
                    let done = self.base + filled as u64;
                    log(
                        Level::Info,
                        &format!(
                            "{}: replaying: {done} of {len} bytes ({:.0} %), {} points so far",
                            path.display(),
                            done as f64 * 100.0 / len.max(1) as f64,
                            points.load(Ordering::Relaxed)
                        ),
                    );
                }
            }
        }
        let tail_len = filled;
        let result = if tail_len == 0 {
            Tail::Clean
        } else if self.format == Format::Checksummed && self.decode(&buf[..tail_len]).is_some() {
            self.line(&buf, 0, tail_len)?;
            Tail::Unterminated
        } else if is_torn_record(&buf[..tail_len]) {
            self.garbage(
                &buf[..tail_len],
                self.base,
                "torn final record (an unfinished write)",
            )?;
            Tail::Torn(self.base)
        } else {
            self.line(&buf, 0, tail_len)?;
            Tail::Garbage
        };
        let records = std::mem::take(&mut self.records);
        if !records.is_empty() && full.send(Chunk { buf, records }).is_err() {
            return Err(Stop::Cancelled);
        }
        Ok(result)
    }

    fn decode<'l>(&self, line: &'l [u8]) -> Option<Record<'l>> {
        match self.format {
            Format::Checksummed => decode_record(line),
            Format::Plain => decode_plain(line),
        }
    }

    fn keep(&mut self, buf: &[u8], record: Record<'_>) {
        let key_start = record.key.as_ptr() as usize - buf.as_ptr() as usize;
        self.records.push(Decoded {
            // Offsets within a chunk of `READ_BYTES`: they fit.
            key_start: key_start as u32,
            key_len: record.key.len() as u32,
            value: record.value,
            timestamp: record.timestamp,
        });
    }

    /// The line `buf[start..end]` (without its `\n`).
    #[inline]
    fn line(&mut self, buf: &[u8], start: usize, end: usize) -> io::Result<()> {
        let line = &buf[start..end];
        if let Some(record) = self.decode(line) {
            self.keep(buf, record);
            return Ok(());
        }
        let offset = self.base + start as u64;
        if line == HEADER {
            // Version 2 from here on (a version 1 journal the server appended to).
            self.format = Format::Checksummed;
            return Ok(());
        }
        // Garbage may have run into a record: the first `put ` after which
        // the rest decodes is where a record starts.
        for at in memmem::find_iter(line, RECORD_START).filter(|&at| at > 0) {
            if let Some(record) = self.decode(&line[at..]) {
                self.garbage(&line[..at], offset, "unreadable bytes before a record")?;
                self.keep(buf, record);
                return Ok(());
            }
        }
        let reason = match self.format {
            Format::Checksummed => "not a valid record (checksum or syntax)",
            Format::Plain => "not a valid put line",
        };
        self.garbage(line, offset, reason)
    }

    fn garbage(&mut self, bytes: &[u8], offset: u64, reason: &str) -> io::Result<()> {
        self.quarantine.add(offset, bytes, reason)?;
        self.found.pieces += 1;
        self.found.bytes += bytes.len() as u64;
        if self.found.samples.len() < SAMPLES {
            self.found.samples.push((offset, excerpt(bytes)));
        }
        Ok(())
    }
}
