//! Graphite's plaintext protocol, one line at a time (sans-IO): `path value
//! timestamp`, fields separated by runs of spaces or tabs, a trailing `\r`
//! ignored. As carbon reads it: the timestamp may carry a fraction (dropped:
//! points are stored at whole seconds) and `-1` means "now". Nothing is ever
//! replied; a line that is not a point is counted and logged with its
//! reason by the listener and skipped, its neighbours unaffected.

use crate::protocol::{excerpt, parse_float, parse_int, validate_key, KeyUse, Put};

/// Why a plaintext line is not a point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("expected 3 fields (path value timestamp), got {0}")]
    FieldCount(usize),
    #[error("the line is not valid UTF-8")]
    NotUtf8,
    #[error("bad path: {0}")]
    Path(String),
    #[error("value is not a finite number: {0}")]
    Value(String),
    #[error("timestamp is not a number of seconds: {0}")]
    Timestamp(String),
}

/// Reads one line (without its `\n`) into the put it stands for; `now`
/// stands in for a timestamp of `-1`. `Ok(None)` for a blank line, which
/// carbon also passes over.
pub fn parse_line(line: &[u8], now: i64) -> Result<Option<Put<&str>>, LineError> {
    let line = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?;
    let mut fields = line
        .split(|c: char| c.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let (Some(path), Some(value_text), Some(timestamp), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        let count = line
            .split(|c: char| c.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
            .count();
        return if count == 0 {
            Ok(None)
        } else {
            Err(LineError::FieldCount(count))
        };
    };
    validate_key(path, KeyUse::Put).map_err(|e| LineError::Path(e.to_string()))?;
    let value = parse_float(value_text.as_bytes())
        .filter(|v| v.is_finite())
        .ok_or_else(|| LineError::Value(excerpt(value_text.as_bytes())))?;
    let timestamp = parse_timestamp(timestamp, now)
        .ok_or_else(|| LineError::Timestamp(excerpt(timestamp.as_bytes())))?;
    Ok(Some(Put {
        key: path,
        value,
        value_text,
        timestamp,
    }))
}

/// Whole seconds (`1700000000`), or seconds with a fraction that is
/// dropped (`1700000000.75`, as collectd may send), or `-1` for now.
fn parse_timestamp(text: &str, now: i64) -> Option<i64> {
    if text == "-1" {
        return Some(now);
    }
    if let Some(seconds) = parse_int(text.as_bytes()) {
        return Some(seconds);
    }
    let (whole, fraction) = text.split_once('.')?;
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds = if whole.is_empty() || whole == "-" {
        0
    } else {
        parse_int(whole.as_bytes())?
    };
    // Floor, as `int(float(ts))` rounds toward zero but whisper's slot of a
    // negative fractional time is the earlier second.
    let negative = whole.starts_with('-') && fraction.bytes().any(|b| b != b'0');
    seconds.checked_sub(i64::from(negative))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(line: &str) -> (String, f64, &str, i64) {
        let put = parse_line(line.as_bytes(), 99).unwrap().unwrap();
        (put.key.to_owned(), put.value, put.value_text, put.timestamp)
    }

    #[test]
    fn points_as_carbon_reads_them() {
        assert_eq!(
            point("a.b.c 1.5 1700000000"),
            ("a.b.c".into(), 1.5, "1.5", 1700000000)
        );
        assert_eq!(point("  a\t2  3\r"), ("a".into(), 2.0, "2", 3));
        assert_eq!(point("a 2 -1"), ("a".into(), 2.0, "2", 99));
        assert_eq!(point("a 2 1700000000.75").3, 1700000000);
        assert_eq!(point("a 2 -5.5").3, -6);
        assert_eq!(point("a 2 -5.0").3, -5);
        assert_eq!(point("a 1e3 .5").1, 1000.0);
        assert_eq!(parse_line(b"   ", 0), Ok(None));
        assert_eq!(parse_line(b"", 0), Ok(None));
    }

    #[test]
    fn bad_lines_say_why() {
        assert_eq!(parse_line(b"a 1", 0), Err(LineError::FieldCount(2)));
        assert_eq!(parse_line(b"a 1 2 3", 0), Err(LineError::FieldCount(4)));
        assert_eq!(parse_line(b"a\xff 1 2", 0), Err(LineError::NotUtf8));
        assert!(matches!(
            parse_line(b"a nan 2", 0),
            Err(LineError::Value(_))
        ));
        assert!(matches!(parse_line(b"a x 2", 0), Err(LineError::Value(_))));
        assert!(matches!(
            parse_line(b"a 1 2.x", 0),
            Err(LineError::Timestamp(_))
        ));
        assert!(matches!(
            parse_line(b"a 1 now", 0),
            Err(LineError::Timestamp(_))
        ));
        assert!(matches!(
            parse_line(b"a 1 2.", 0),
            Err(LineError::Timestamp(_))
        ));
        assert!(matches!(parse_line(b"* 1 2", 0), Err(LineError::Path(_))));
        assert!(matches!(
            parse_line(b"a\x01b 1 2", 0),
            Err(LineError::Path(_))
        ));
    }
}
