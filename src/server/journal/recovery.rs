//! Replaying the journal into the store at start.
//!
//! Nothing is thrown away silently: a line or frame that is not valid (a
//! failed checksum, garbage a power loss left, a damaged plain line) is not
//! applied and is copied to the quarantine file next to the journal. A valid
//! record after garbage on the same line (a NUL run without `\n` runs into
//! the next record) is found again by its `put ` start and applied; in
//! version 3, the next frame after garbage is found again by its first byte
//! and its checksum. A frame is applied whole or not at all: a frame whose
//! checksum matches but that uses an id no valid frame defined (its
//! definition was in a damaged frame) is quarantined whole.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memchr::{memchr, memchr_iter, memmem};

use super::format::{
    decode_plain, decode_record, is_torn_record, Format, Record, HEADER, MAX_RECORD, RECORD_START,
};
use super::frames::{self, Frame, FRAME_HEADER, KIND, MAX_PAYLOAD};
use super::ids::IdMap;
use super::quarantine::{excerpt, Quarantine};
use super::report::Recovery;
use crate::server::command::put::store_point;
use crate::server::engine::Sealed;
use crate::server::log::{Level, LogSink};
use crate::server::store::Store;

/// Bytes read at once: large reads keep the kernel's read-ahead busy and
/// the per-read cost negligible. Must exceed `2 * MAX_RECORD` and twice
/// the longest frame.
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

/// What follows the last `\n` of the file (text), or the last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tail {
    /// Nothing: new records can follow at once (the file ends with `\n`,
    /// is empty, or ends after a frame or quarantined bytes between frames).
    Clean,
    /// A valid record without its `\n`: applied; the `\n` must be added.
    Unterminated,
    /// The start of one record or frame cut short (offset): copied to the
    /// quarantine, may be cut off.
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

/// One decoded record inside a chunk: where its key is (`key_len` 0: a
/// frame's record that does not define its id), the number the decoder
/// gave its id (`TEXT`: a text record, which always names its key), and
/// its point.
struct Decoded {
    key_start: u32,
    key_len: u32,
    /// Ids are numbered 0, 1, 2... in the order the file first defines
    /// them, so the inserter finds a slot by indexing, not hashing.
    number: u32,
    value: f64,
    timestamp: i64,
}

/// The number of a text record.
const TEXT: u32 = u32::MAX;

/// An id's number no definition has given a slot yet.
const NO_SLOT: usize = usize::MAX;

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
/// is its size, for progress. Returns what ends the file and the format
/// it ends in.
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
) -> Result<(Tail, Format), Stop> {
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
                    defined: IdMap::default(),
                    frame_ids: Vec::new(),
                };
                decoder.run(file, len, path, control, points, &full_tx, &empty_rx)
            });
        let decoder = match decoder {
            Ok(decoder) => decoder,
            Err(e) => return Err(Stop::Io(e)),
        };
        // A frame's record names its key by id: the slot its definition
        // went to, by the id's number.
        let mut slots: Vec<usize> = Vec::new();
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
                    let number = record.number as usize;
                    let slot = if key.is_empty() {
                        // The decoder passes only records whose id is defined.
                        slots.get(number).copied().filter(|&slot| slot != NO_SLOT)
                    } else {
                        if let Some(Err(e)) = sealed.map(|sealed| sealed.admit(store, key)) {
                            // The key's id cannot be known: storing the point
                            // could give it a second one.
                            unadmitted = Some(e);
                            break 'chunks;
                        }
                        if record.number == TEXT {
                            store_point(store, key, record.timestamp, record.value);
                            continue;
                        }
                        let slot = store.slot_for(key);
                        if number >= slots.len() {
                            slots.resize(number + 1, NO_SLOT);
                        }
                        slots[number] = slot;
                        Some(slot)
                    };
                    if let Some(slot) = slot {
                        store.put_at(slot, record.timestamp, record.value);
                    }
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
    recovery.id_base = found.next_id;
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

/// What the decoder found that was not applied, and the ids it saw.
#[derive(Default)]
struct Found {
    pieces: u64,
    bytes: u64,
    samples: Vec<(u64, String)>,
    /// Above every id in the file's frames.
    next_id: u64,
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
    /// The ids valid frames defined so far, and their numbers.
    defined: IdMap<u32>,
    /// Ids the frame being checked defines (undone if it fails).
    frame_ids: Vec<u64>,
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
    ) -> Result<(Tail, Format), Stop> {
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
            if self.format != Format::Binary {
                start = self.lines(&buf, filled, end)?;
            }
            if self.format == Format::Binary {
                start = self.frames(&buf, start, end, false)?;
            } else if end - start > 2 * MAX_RECORD {
                // An unfinished line: keep the end where a record may still
                // start, quarantine what lies before it (no record is that long).
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
        } else if self.format == Format::Binary {
            // Only the start of a frame is left: a write cut short, unless
            // a whole frame follows it.
            let start = self.frames(&buf, 0, tail_len, true)?;
            if start < tail_len {
                self.garbage(
                    &buf[start..tail_len],
                    self.base + start as u64,
                    "torn final frame (an unfinished write)",
                )?;
                Tail::Torn(self.base + start as u64)
            } else {
                Tail::Clean
            }
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
        Ok((result, self.format))
    }

    /// The text lines of `buf[..end]` (a line may have begun before
    /// `scan_from`, which is where new bytes start): returns where the
    /// unfinished line starts, or where the frames start after a version 3
    /// header line.
    fn lines(&mut self, buf: &[u8], scan_from: usize, end: usize) -> io::Result<usize> {
        let mut start = 0;
        for newline in memchr_iter(b'\n', &buf[scan_from..end]) {
            let at = scan_from + newline;
            self.line(buf, start, at)?;
            start = at + 1;
            if self.format == Format::Binary {
                break;
            }
        }
        Ok(start)
    }

    /// The frames of `buf[start..end]`: applies the valid ones, quarantines
    /// the rest, and returns where an unfinished frame starts (`end` when
    /// none). At the end of the file (`last`), a frame cut short counts as
    /// one only when no whole frame follows it.
    fn frames(
        &mut self,
        buf: &[u8],
        mut start: usize,
        end: usize,
        last: bool,
    ) -> io::Result<usize> {
        // Where a run of bytes that are not a frame began.
        let mut bad: Option<usize> = None;
        while start < end {
            let at = start;
            match frames::frame(&buf[at..end]) {
                Frame::Whole {
                    len,
                    records,
                    payload,
                } => {
                    if let Some(from) = bad.take() {
                        self.garbage(
                            &buf[from..at],
                            self.base + from as u64,
                            "unreadable bytes between frames",
                        )?;
                    }
                    self.frame(buf, at, len, records, payload)?;
                    start = at + len;
                    continue;
                }
                Frame::Short if !last || !whole_frame_after(&buf[at..end]) => break,
                Frame::Short | Frame::Bad => {}
            }
            bad.get_or_insert(at);
            start = memchr(KIND, &buf[at + 1..end]).map_or(end, |i| at + 1 + i);
        }
        if let Some(from) = bad {
            self.garbage(
                &buf[from..start],
                self.base + from as u64,
                "unreadable bytes between frames",
            )?;
        }
        Ok(start)
    }

    /// A frame whose checksum matched, at `buf[at..at + len]`: its records
    /// are kept when every one is valid and names a defined id; otherwise
    /// the whole frame is quarantined.
    fn frame(
        &mut self,
        buf: &[u8],
        at: usize,
        len: usize,
        records: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let kept = self.records.len();
        self.frame_ids.clear();
        let (mut undefined, mut top) = (false, 0);
        let (defined, frame_ids, kept_records) =
            (&mut self.defined, &mut self.frame_ids, &mut self.records);
        let valid = frames::entries(payload, records, |entry| {
            top = top.max(entry.id + 1);
            let (key_start, number) = match (entry.key, defined.get(&entry.id)) {
                (None, Some(&number)) => (0, number),
                (None, None) => {
                    undefined = true;
                    (0, TEXT)
                }
                (Some(key), known) => {
                    let number = known.copied().unwrap_or_else(|| {
                        // The next number: a frame undone removes the
                        // highest ones, and its records never reach the
                        // inserter, so they can be given again. (Over 2^32
                        // definitions would take a journal of over 40 GiB;
                        // such a frame is quarantined, not misread.)
                        let number = u32::try_from(defined.len()).unwrap_or(TEXT);
                        defined.insert(entry.id, number);
                        frame_ids.push(entry.id);
                        number
                    });
                    undefined |= number == TEXT;
                    (key.as_ptr() as usize - buf.as_ptr() as usize, number)
                }
            };
            kept_records.push(Decoded {
                key_start: key_start as u32,
                key_len: entry.key.map_or(0, str::len) as u32,
                number,
                value: entry.value,
                timestamp: entry.timestamp,
            });
        });
        if valid && !undefined {
            self.found.next_id = self.found.next_id.max(top);
            return Ok(());
        }
        self.records.truncate(kept);
        for id in self.frame_ids.drain(..) {
            self.defined.remove(&id);
        }
        let reason = match valid {
            true => {
                "a frame using an id whose definition was not applied (it was in damaged bytes)"
            }
            false => "a frame whose checksum matches but whose records are not valid",
        };
        let offset = self.base + at as u64;
        self.garbage(&buf[at..at + len], offset, reason)
    }

    fn decode<'l>(&self, line: &'l [u8]) -> Option<Record<'l>> {
        match self.format {
            Format::Checksummed => decode_record(line),
            Format::Plain => decode_plain(line),
            Format::Binary => None,
        }
    }

    fn keep(&mut self, buf: &[u8], record: Record<'_>) {
        let key_start = record.key.as_ptr() as usize - buf.as_ptr() as usize;
        self.records.push(Decoded {
            // Offsets within a chunk of `READ_BYTES`: they fit.
            key_start: key_start as u32,
            key_len: record.key.len() as u32,
            number: TEXT,
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
        if line == frames::HEADER {
            // Frames from here on (a text journal the server appended to).
            self.format = Format::Binary;
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
            Format::Checksummed | Format::Binary => "not a valid record (checksum or syntax)",
            Format::Plain => "not a valid put line",
        };
        self.garbage(line, offset, reason)
    }

    fn garbage(&mut self, bytes: &[u8], offset: u64, reason: &str) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.quarantine.add(offset, bytes, reason)?;
        self.found.pieces += 1;
        self.found.bytes += bytes.len() as u64;
        if self.found.samples.len() < SAMPLES {
            self.found.samples.push((offset, excerpt(bytes)));
        }
        Ok(())
    }
}

/// Whether a whole frame starts anywhere in `bytes` after its first byte.
fn whole_frame_after(bytes: &[u8]) -> bool {
    memchr_iter(KIND, bytes)
        .skip_while(|&i| i == 0)
        .any(|i| matches!(frames::frame(&bytes[i..]), Frame::Whole { .. }))
}

/// The longest frame: chunks are read well above it.
const _: () = assert!(READ_BYTES > 2 * (FRAME_HEADER + MAX_PAYLOAD));
