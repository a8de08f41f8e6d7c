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
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::format::Format;
use super::quarantine::Quarantine;
use super::report::Recovery;
use crate::server::command::put::store_point;
use crate::server::engine::Sealed;
use crate::server::log::LogSink;
use crate::server::store::Store;
use decoder::{Decoder, Found};

mod decoder;

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
                let mut decoder = Decoder::new(format, quarantine, found);
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
    recovery.quarantined_frames = found.frames;
    recovery.quarantined_frame_records = found.frame_records;
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
