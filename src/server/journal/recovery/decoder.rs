//! The decoding side of a replay, on its own thread: the file read in
//! large chunks, text lines split, checked and parsed, frames checked and
//! their records validated against the ids defined so far, and whatever
//! fails copied to the quarantine. The decoded records go to the inserting
//! thread (`super::replay`) in chunks.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use memchr::{memchr, memchr_iter, memmem};

use super::{Chunk, Control, Decoded, Stop, Tail, READ_BYTES, SAMPLES, TEXT};
use crate::server::journal::format::{
    decode_plain, decode_record, is_torn_record, Format, Record, HEADER, MAX_RECORD, RECORD_START,
};
use crate::server::journal::frames::{self, Frame, FRAME_HEADER, KIND, MAX_PAYLOAD};
use crate::server::journal::ids::IdMap;
use crate::server::journal::quarantine::{excerpt, Quarantine};
use crate::server::log::Level;

/// What the decoder found that was not applied, and the ids it saw.
#[derive(Default)]
pub(super) struct Found {
    pub(super) pieces: u64,
    /// Of the pieces, whole frames (their checksums matched) and the
    /// records they held.
    pub(super) frames: u64,
    pub(super) frame_records: u64,
    pub(super) bytes: u64,
    pub(super) samples: Vec<(u64, String)>,
    /// Above every id in the file's frames.
    pub(super) next_id: u64,
}

/// The decoding side of `replay`: text lines until a version 3 header,
/// frames after it.
pub(super) struct Decoder<'a> {
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

impl<'a> Decoder<'a> {
    pub(super) fn new(
        format: Format,
        quarantine: &'a mut Quarantine,
        found: &'a mut Found,
    ) -> Self {
        Decoder {
            format,
            quarantine,
            found,
            records: Vec::new(),
            base: 0,
            defined: IdMap::default(),
            frame_ids: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
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
            // Hand the chunk on; its unfinished line or frame starts the
            // next one.
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
        self.found.frames += 1;
        self.found.frame_records += u64::from(records);
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
