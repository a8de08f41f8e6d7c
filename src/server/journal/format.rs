//! The journal's text formats, versions 1 and 2, which earlier servers
//! wrote and this one still reads (it writes version 3, `frames`): text
//! lines a person can read and grep, each carrying a checksum so a damaged
//! record is detected rather than applied.
//!
//! ```text
//! metrics-journal 2                       <- header: the format and its version
//! put huginn.cpu 0.5 1642667947 5a1c09e3  <- record: a put line, a space and
//! put muninn.cpu 3 1642667950 0c41d8f2       the CRC-32C of the text before it
//! ```
//!
//! The checksum is 8 lowercase hex digits of the CRC-32C (Castagnoli) of the
//! record's text without the space before the checksum and without the
//! `\n`. CRC-32C detects every error of up to 3 flipped bits in a record of
//! this size (and any burst up to 32 bits), and costs a few nanoseconds per
//! record with the SSE 4.2 instruction.
//!
//! The previous format (version 1) had no header and no checksum: plain
//! `put <key> <value> <timestamp>` lines, as the protocol sends them. Such
//! journals are still read. A header line may also appear after version 1 lines:
//! the server appends one when it opens a version 1 journal, so everything after
//! it is version 2. The same goes for a version 3 header after text lines:
//! the server appends one when it opens a text journal, and the frames
//! follow (the next compaction rewrites the whole file as version 3).
//!
//! Decoding never allocates and never panics on any input; values parse to
//! exactly the `f64` that `str::parse` gives.

use crate::protocol::{parse_command, parse_float, parse_int, validate_key, Command, KeyUse, Put};

/// The header line (without its `\n`) that starts a version 2 journal.
pub(crate) const HEADER: &[u8] = b"metrics-journal 2";

/// Every record starts with this; recovery resynchronises on it.
pub(crate) const RECORD_START: &[u8] = b"put ";

/// Longest record (without its `\n`) recovery looks for: a maximal request
/// line plus the checksum.
pub(crate) const MAX_RECORD: usize = crate::protocol::DEFAULT_MAX_LINE_BYTES + 64;

/// Length of the checksum field and the space before it.
const CHECKSUM_FIELD: usize = 9;

/// Which format the lines being read are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Version 1: plain put lines, no header, no checksum.
    Plain,
    /// Version 2: checksummed records after a header line.
    Checksummed,
    /// Version 3: checksummed binary frames after a header line (`frames`).
    Binary,
}

/// One decoded record, borrowing its key from the line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Record<'a> {
    pub key: &'a str,
    pub value: f64,
    pub timestamp: i64,
}

/// Decodes a version 2 record (`line` without its `\n`): `None` when the
/// checksum does not match or the text is not a valid put.
pub(crate) fn decode_record(line: &[u8]) -> Option<Record<'_>> {
    if line.len() < RECORD_START.len() + CHECKSUM_FIELD || line.len() > MAX_RECORD {
        return None;
    }
    let (text, field) = line.split_at(line.len() - CHECKSUM_FIELD);
    if field[0] != b' ' {
        return None;
    }
    let mut stored = 0u32;
    for &digit in &field[1..] {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        stored = stored << 4 | u32::from(nibble);
    }
    if crc32c::crc32c(text) != stored {
        return None;
    }
    decode_put_text(text)
}

/// Decodes a version 1 line: a put request as the protocol accepts it.
pub(crate) fn decode_plain(line: &[u8]) -> Option<Record<'_>> {
    if let Some(record) = decode_put_text(line) {
        return Some(record);
    }
    // Anything the protocol's parser accepts (extra spaces, a `\r`) was
    // accepted by earlier servers, which journaled requests as received.
    match parse_command(line) {
        Ok(Command::Put(Put {
            key,
            value,
            timestamp,
            ..
        })) => Some(Record {
            key,
            value,
            timestamp,
        }),
        _ => None,
    }
}

/// Decodes the canonical `put <key> <value> <timestamp>` text (single
/// spaces), with the protocol's rules for each field.
fn decode_put_text(text: &[u8]) -> Option<Record<'_>> {
    let rest = text.strip_prefix(RECORD_START)?;
    let key_end = memchr::memchr(b' ', rest)?;
    let (key, rest) = (&rest[..key_end], &rest[key_end + 1..]);
    let value_end = memchr::memchr(b' ', rest)?;
    let (value, timestamp) = (&rest[..value_end], &rest[value_end + 1..]);
    let key = decode_key(key)?;
    let value = parse_value(value)?;
    let timestamp = parse_timestamp(timestamp)?;
    Some(Record {
        key,
        value,
        timestamp,
    })
}

/// A key as `put` accepts it: printable ASCII checked byte by byte, anything
/// else through the protocol's own check.
pub(crate) fn decode_key(key: &[u8]) -> Option<&str> {
    if !key.is_empty() && key != b"*" && key.iter().all(|b| b.is_ascii_graphic()) {
        // SAFETY-free: ASCII is UTF-8.
        return std::str::from_utf8(key).ok();
    }
    let key = std::str::from_utf8(key).ok()?;
    validate_key(key, KeyUse::Put).ok()?;
    Some(key)
}

/// A finite value, exactly as `str::parse::<f64>` reads it (the protocol's
/// one number parser; NaN and infinities are refused as the protocol does).
pub(crate) fn parse_value(text: &[u8]) -> Option<f64> {
    parse_float(text).filter(|v| v.is_finite())
}

/// A decimal `i64`, optionally signed, as `str::parse::<i64>` reads it.
pub(crate) fn parse_timestamp(text: &[u8]) -> Option<i64> {
    parse_int(text)
}

/// Whether `tail` (bytes after the last `\n` of the file) can be the start
/// of one record cut short by a crash: the beginning of `put `, then record
/// text (printable, single spaces, no more fields than a record has). Power
/// loss garbage (NUL runs, binary) does not qualify.
pub(crate) fn is_torn_record(tail: &[u8]) -> bool {
    if tail.is_empty() || tail.len() > MAX_RECORD {
        return false;
    }
    if tail.len() <= RECORD_START.len() {
        return RECORD_START.starts_with(tail);
    }
    if !tail.starts_with(RECORD_START) {
        return false;
    }
    let text = &tail[RECORD_START.len()..];
    let printable = text.iter().all(|&b| b >= 0x20 && b != 0x7f);
    let spaces = memchr::memchr_iter(b' ', text).count();
    printable
        && spaces <= 3
        && !text.starts_with(b" ")
        && memchr::memmem::find(text, b"  ").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::push_py_float;
    use proptest::prelude::*;

    /// A version 2 record as earlier servers wrote it: the put line, a
    /// space, the CRC-32C of the text in hex and a `\n`.
    fn encode_point_record(out: &mut Vec<u8>, key: &str, value: f64, timestamp: i64) {
        let start = out.len();
        crate::protocol::push_put_line(out, key, value, timestamp);
        out.pop();
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(format!(" {crc:08x}\n").as_bytes());
    }

    fn record(key: &str, value_text: &str, timestamp: i64) -> Vec<u8> {
        let mut out = format!("put {key} {value_text} {timestamp}").into_bytes();
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(format!(" {crc:08x}\n").as_bytes());
        out
    }

    #[test]
    fn a_record_is_a_put_line_and_its_checksum() {
        let line = record("huginn.cpu", "0.5", 1642667947);
        let text = b"put huginn.cpu 0.5 1642667947";
        assert_eq!(&line[..text.len()], text);
        assert_eq!(
            &line[text.len()..],
            format!(" {:08x}\n", crc32c::crc32c(text)).as_bytes()
        );
        let decoded = decode_record(&line[..line.len() - 1]).unwrap();
        assert_eq!(
            decoded,
            Record {
                key: "huginn.cpu",
                value: 0.5,
                timestamp: 1642667947
            }
        );
    }

    #[test]
    fn a_flipped_digit_fails_the_check() {
        let line = record("k", "7.5", 1);
        let mut bad = line.clone();
        let at = bad.iter().position(|&b| b == b'7').unwrap();
        bad[at] = b'9';
        assert!(decode_record(&bad[..bad.len() - 1]).is_none());
        assert!(decode_record(&line[..line.len() - 1]).is_some());
    }

    #[test]
    fn plain_lines_decode_as_the_protocol_parses_them() {
        let r = decode_plain(b"put k 1.5 10").unwrap();
        assert_eq!((r.key, r.value, r.timestamp), ("k", 1.5, 10));
        let r = decode_plain(b"put  k  2   3 \r").unwrap();
        assert_eq!((r.key, r.value, r.timestamp), ("k", 2.0, 3));
        let r = decode_plain("put ключ -0 -5".as_bytes()).unwrap();
        assert_eq!(r.key, "ключ");
        assert!(r.value == 0.0 && r.value.is_sign_negative());
        for bad in [
            &b"put k 1"[..],
            b"put * 1 1",
            b"put k nan 1",
            b"put k 1e400 1",
            b"put k 1 1.5",
            b"get k",
            b"",
            b"\0\0\0",
            b"put k\x01 1 1",
            b"put k 1 99999999999999999999",
        ] {
            assert!(decode_plain(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn torn_records_are_told_from_garbage() {
        for torn in [
            &b"p"[..],
            b"put",
            b"put ",
            b"put k",
            b"put k 1.",
            b"put k 1 2 ab",
        ] {
            assert!(is_torn_record(torn), "{torn:?}");
        }
        for garbage in [
            &b"\0\0\0"[..],
            b"x",
            b"put k\0",
            b"put k 1 2 abc d",
            b"put  k",
            b"hello world",
        ] {
            assert!(!is_torn_record(garbage), "{garbage:?}");
        }
        assert!(!is_torn_record(&vec![b'a'; MAX_RECORD + 1]));
    }

    #[test]
    fn value_parsing_edge_cases_match_std() {
        for text in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1",
            "1.5",
            "0.1",
            "123456789012345",
            "1234567890123456",
            "12345678901234567",
            "0.000000000000001",
            "9007199254740993",
            "1.",
            ".5",
            "1e5",
            "1E-5",
            "+1",
            "-",
            ".",
            "",
            "1..2",
            "1.2.3",
            "00001.50000",
            "inf",
            "NaN",
            "0x10",
            "1_0",
            "4503599627370497.5",
            "999999999999999.9",
        ] {
            let want = text.parse::<f64>().ok().filter(|v| v.is_finite());
            let got = parse_value(text.as_bytes());
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{text:?}");
        }
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        "[!-~&&[^*]]{1,12}|[a-zа-я.]{1,8}"
    }

    proptest! {
        #[test]
        fn any_record_round_trips(key in key_strategy(), value in any::<f64>(), ts in any::<i64>()) {
            prop_assume!(value.is_finite());
            let mut line = Vec::new();
            encode_point_record(&mut line, &key, value, ts);
            prop_assert_eq!(line.last(), Some(&b'\n'));
            prop_assert_eq!(memchr::memchr(b'\n', &line), Some(line.len() - 1));
            let record = decode_record(&line[..line.len() - 1]).unwrap();
            prop_assert_eq!(record.key, key.as_str());
            prop_assert_eq!(record.value.to_bits(), value.to_bits());
            prop_assert_eq!(record.timestamp, ts);
        }

        #[test]
        fn any_single_flipped_bit_is_detected(
            key in key_strategy(), value in any::<f64>(), ts in any::<i64>(), bit in any::<usize>()
        ) {
            prop_assume!(value.is_finite());
            let mut line = Vec::new();
            encode_point_record(&mut line, &key, value, ts);
            line.pop();
            let bit = bit % (line.len() * 8);
            line[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode_record(&line).is_none());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_record(&bytes);
            let _ = decode_plain(&bytes);
            let _ = is_torn_record(&bytes);
            let _ = parse_value(&bytes);
            let _ = parse_timestamp(&bytes);
        }

        #[test]
        fn values_parse_as_std_parses_them(text in "-?[0-9]{0,18}(\\.[0-9]{0,18})?|[-+0-9.eE]{0,12}") {
            let want = text.parse::<f64>().ok().filter(|v| v.is_finite());
            prop_assert_eq!(parse_value(text.as_bytes()).map(f64::to_bits), want.map(f64::to_bits));
        }

        #[test]
        fn python_float_text_parses_back(value in any::<f64>()) {
            prop_assume!(value.is_finite());
            let mut text = Vec::new();
            push_py_float(&mut text, value);
            prop_assert_eq!(parse_value(&text).map(f64::to_bits), Some(value.to_bits()));
        }

        #[test]
        fn timestamps_parse_as_std_parses_them(text in "[-+]?[0-9]{0,21}|.{0,6}") {
            prop_assert_eq!(parse_timestamp(text.as_bytes()), text.parse::<i64>().ok());
        }
    }
}
