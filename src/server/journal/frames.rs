//! The journal's format since version 3: checksummed binary frames of put
//! records after a header line, about 11 bytes a point where the text of
//! version 2 took about 45 (writing those bytes was most of what the
//! journal cost a put).
//!
//! ```text
//! metrics-journal 3\n                     <- header line
//! frame:  kind     1 byte, 0xB3
//!         length   u32 LE, bytes of payload
//!         records  u32 LE, entries in the payload (at least 1)
//!         crc      u32 LE, CRC-32C of kind, length, records and payload
//!         payload  entries, one per put:
//!   head   varint: zigzag(id - previous id) << 1, | 1 when a key follows
//!   key    varint length and the key's bytes (when the head says so)
//!   time   varint: zigzag(timestamp - previous timestamp)
//!   value  8 bytes: the f64, little-endian
//! ```
//!
//! "Previous" starts at 0 in every frame, so a frame decodes alone. A
//! record names its key by an id; the first record of an id in a write
//! carries the key (a definition). Every buffer the writer takes defines
//! each id before it uses it, so every write, and so every tail a
//! compaction copies, is self-contained. Ids are series ids plus a base
//! that each server process takes above every id already in the file: a
//! definition lost to damage then leaves its id unknown (the frames using
//! it are quarantined) instead of pointing at another process's key.
//!
//! Decoding never panics on any input.

use super::format::decode_key;

/// The header line (without its `\n`) that starts a version 3 journal.
pub(crate) const HEADER: &[u8] = b"metrics-journal 3";
/// The first byte of every frame; recovery resynchronises on it.
pub(crate) const KIND: u8 = 0xB3;
/// Bytes before a frame's payload.
pub(crate) const FRAME_HEADER: usize = 13;
/// A frame is closed once its payload reaches this: a damaged frame then
/// costs at most a few thousand points, and the checksum's guarantees
/// (every error of up to 3 bits) hold.
const FRAME_BYTES: usize = 32 << 10;
/// The largest payload a writer makes: a full frame plus one record with
/// the longest key the storage engine keeps.
pub(crate) const MAX_PAYLOAD: usize =
    FRAME_BYTES + crate::server::engine::MAX_KEY_BYTES + 4 * MAX_VARINT + 8;
/// The smallest record: a one-byte head and time and the value.
const MIN_ENTRY: usize = 10;
const MAX_VARINT: usize = 10;
/// Ids stay below this, so a zigzag delta shifted left by one fits a u64.
pub(crate) const MAX_ID: u64 = 1 << 61;

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            // A tenth byte may hold only the top bit.
            return (shift < 63 || byte <= 1).then_some(n);
        }
    }
    None
}

/// Which series ids the current write has defined, by generation: a new
/// write starts a new generation instead of clearing a set.
#[derive(Debug, Default)]
struct Scope {
    generation: u32,
    defined: Vec<u32>,
}

impl Scope {
    /// Marks `id` defined; true when it was not yet.
    fn define(&mut self, id: usize) -> bool {
        if self.generation == 0 {
            self.generation = 1;
        }
        if id >= self.defined.len() {
            self.defined.resize(id + 1, 0);
        }
        let fresh = self.defined[id] != self.generation;
        self.defined[id] = self.generation;
        fresh
    }

    fn restart(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Wrapped: old marks could pass for new ones.
            self.defined.iter_mut().for_each(|g| *g = 0);
            self.generation = 1;
        }
    }
}

/// Frames being built in a buffer: the journal's pending writes, or a
/// compaction's snapshot.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    buf: Vec<u8>,
    /// Where the open frame's header is, if one is open.
    open: Option<usize>,
    records: u32,
    previous_id: u64,
    previous_ts: i64,
    /// Added to every series id.
    base: u64,
    scope: Scope,
}

impl Frames {
    pub(crate) fn new(base: u64) -> Self {
        Frames {
            base,
            ..Frames::default()
        }
    }

    /// Appends the record of a put of `value` at `timestamp` to the key
    /// `key` whose series id is `id`.
    pub(crate) fn push(&mut self, id: usize, key: &str, timestamp: i64, value: f64) {
        let id_in_file = self.base.saturating_add(id as u64).min(MAX_ID - 1);
        if self.open.is_none() {
            self.open = Some(self.buf.len());
            self.buf.extend_from_slice(&[0; FRAME_HEADER]);
            self.records = 0;
            self.previous_id = 0;
            self.previous_ts = 0;
        }
        let defines = self.scope.define(id);
        // Both ids are below 2^61: the delta and its zigzag fit.
        let delta = zigzag(id_in_file as i64 - self.previous_id as i64);
        self.buf
            .reserve(2 * MAX_VARINT + 8 + if defines { key.len() + MAX_VARINT } else { 0 });
        push_varint(&mut self.buf, delta << 1 | u64::from(defines));
        if defines {
            push_varint(&mut self.buf, key.len() as u64);
            self.buf.extend_from_slice(key.as_bytes());
        }
        push_varint(
            &mut self.buf,
            zigzag(timestamp.wrapping_sub(self.previous_ts)),
        );
        self.buf.extend_from_slice(&value.to_bits().to_le_bytes());
        self.previous_id = id_in_file;
        self.previous_ts = timestamp;
        self.records += 1;
        if self
            .open
            .is_some_and(|at| self.buf.len() - at - FRAME_HEADER >= FRAME_BYTES)
        {
            self.close();
        }
    }

    /// Closes the open frame, if any: its header is filled in.
    pub(crate) fn close(&mut self) {
        let Some(at) = self.open.take() else {
            return;
        };
        let payload = (self.buf.len() - at - FRAME_HEADER) as u32;
        let header = &mut self.buf[at..at + FRAME_HEADER];
        header[0] = KIND;
        header[1..5].copy_from_slice(&payload.to_le_bytes());
        header[5..9].copy_from_slice(&self.records.to_le_bytes());
        let crc = crc32c::crc32c(&header[..9]);
        let crc = crc32c::crc32c_append(crc, &self.buf[at + FRAME_HEADER..]);
        self.buf[at + 9..at + FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
    }

    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Bytes buffered, the open frame included.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Closes the open frame and hands over the buffer (swapped with
    /// `into`, which must be empty, so no buffer is allocated anew); the
    /// next record starts a new write, which defines its ids again.
    pub(crate) fn take(&mut self, into: &mut Vec<u8>) {
        debug_assert!(into.is_empty());
        self.close();
        std::mem::swap(&mut self.buf, into);
        self.scope.restart();
    }

    /// Drops everything buffered (a rejected write); the next record
    /// starts a new write.
    pub(crate) fn discard(&mut self) {
        self.open = None;
        self.buf.clear();
        self.scope.restart();
    }
}

/// What the bytes at a frame's start hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Frame<'a> {
    /// A frame whose checksum matches: its length in bytes, its records'
    /// count and its payload.
    Whole {
        len: usize,
        records: u32,
        payload: &'a [u8],
    },
    /// The start of a frame, cut short (the bytes end too early).
    Short,
    /// Not a frame.
    Bad,
}

/// Reads the frame at the start of `bytes`.
pub(crate) fn frame(bytes: &[u8]) -> Frame<'_> {
    match bytes.first() {
        None => return Frame::Short,
        Some(&kind) if kind != KIND => return Frame::Bad,
        Some(_) => {}
    }
    if bytes.len() < FRAME_HEADER {
        return Frame::Short;
    }
    let field =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let (payload, records, crc) = (field(1) as usize, field(5), field(9));
    let plausible = payload <= MAX_PAYLOAD
        && records >= 1
        && (records as usize).saturating_mul(MIN_ENTRY) <= payload;
    if !plausible {
        return Frame::Bad;
    }
    let Some(body) = bytes.get(FRAME_HEADER..FRAME_HEADER + payload) else {
        return Frame::Short;
    };
    let computed = crc32c::crc32c_append(crc32c::crc32c(&bytes[..9]), body);
    if computed != crc {
        return Frame::Bad;
    }
    Frame::Whole {
        len: FRAME_HEADER + payload,
        records,
        payload: body,
    }
}

/// One record of a frame; `key` is set when the record defines its id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Entry<'a> {
    pub id: u64,
    pub key: Option<&'a str>,
    pub timestamp: i64,
    pub value: f64,
}

/// Calls `each` for every record of a frame's payload, in order; false
/// when the payload does not hold exactly `records` valid records (a key
/// the protocol would refuse, a value that is not finite, an id out of
/// range, bytes left over), in which case `each` may have been called for
/// the records before the fault.
pub(crate) fn entries<'a>(
    payload: &'a [u8],
    records: u32,
    mut each: impl FnMut(Entry<'a>),
) -> bool {
    let (mut at, mut id, mut ts) = (0usize, 0u64, 0i64);
    for _ in 0..records {
        let Some(head) = read_varint(payload, &mut at) else {
            return false;
        };
        let next = id as i64 as i128 + i128::from(unzigzag(head >> 1));
        if !(0..MAX_ID as i128).contains(&next) {
            return false;
        }
        id = next as u64;
        let key = if head & 1 == 1 {
            let Some(len) = read_varint(payload, &mut at) else {
                return false;
            };
            let Some(bytes) = usize::try_from(len)
                .ok()
                .and_then(|len| payload.get(at..at.checked_add(len)?))
            else {
                return false;
            };
            at += bytes.len();
            match decode_key(bytes) {
                Some(key) => Some(key),
                None => return false,
            }
        } else {
            None
        };
        let Some(delta) = read_varint(payload, &mut at) else {
            return false;
        };
        ts = ts.wrapping_add(unzigzag(delta));
        let Some(value) = payload
            .get(at..at + 8)
            .and_then(|b| Some(f64::from_le_bytes(b.try_into().ok()?)))
            .filter(|value| value.is_finite())
        else {
            return false;
        };
        at += 8;
        each(Entry {
            id,
            key,
            timestamp: ts,
            value,
        });
    }
    at == payload.len()
}

/// The records in `bytes`, whole frames as a writer made them.
pub(crate) fn count_records(mut bytes: &[u8]) -> u64 {
    let mut records = 0;
    while bytes.len() >= FRAME_HEADER {
        let field = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        records += u64::from(field(5));
        bytes = bytes
            .get(FRAME_HEADER + field(1) as usize..)
            .unwrap_or_default();
    }
    records
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;
