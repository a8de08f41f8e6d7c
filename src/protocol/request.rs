//! Encoding of the two requests. Each encoder appends one complete line, so a
//! caller can batch many requests into one buffer (pipelining).

use std::io::Write;

use super::{validate_key, ArgumentError, KeyUse, MetricValue};

/// What kind of reply a request is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `put`: a bare `ok`; data lines in the reply are a protocol violation.
    Ack,
    /// `get`: `ok` followed by zero or more `key value timestamp` lines.
    Points,
}

/// Appends `put <key> <value> <timestamp>\n`; on error nothing is appended.
pub fn encode_put(
    out: &mut Vec<u8>,
    key: &str,
    value: MetricValue,
    timestamp: i64,
) -> Result<(), ArgumentError> {
    validate_key(key, KeyUse::Put)?;
    if let MetricValue::Float(x) = value {
        MetricValue::float(x)?;
    }
    // Writing into a Vec cannot fail.
    let _ = writeln!(out, "put {key} {value} {timestamp}");
    Ok(())
}

/// Appends `get <key>\n`; `key` may be `*`. On error nothing is appended.
pub fn encode_get(out: &mut Vec<u8>, key: &str) -> Result<(), ArgumentError> {
    validate_key(key, KeyUse::Get)?;
    out.extend_from_slice(b"get ");
    out.extend_from_slice(key.as_bytes());
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: MetricValue, ts: i64) -> Result<String, ArgumentError> {
        let mut out = Vec::new();
        encode_put(&mut out, key, value, ts).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn put_lines_match_the_course_examples() {
        use MetricValue::*;
        assert_eq!(put("test", Float(0.5), 1).unwrap(), "put test 0.5 1\n");
        assert_eq!(put("test", Float(2.0), 2).unwrap(), "put test 2.0 2\n");
        assert_eq!(put("load", Int(301), 3).unwrap(), "put load 301 3\n");
        assert_eq!(
            put("huginn.cpu", Float(10.6), 1642667947).unwrap(),
            "put huginn.cpu 10.6 1642667947\n"
        );
        assert_eq!(put("big", Float(1e16), -1).unwrap(), "put big 1e+16 -1\n");
    }

    #[test]
    fn get_lines() {
        let mut out = Vec::new();
        encode_get(&mut out, "*").unwrap();
        encode_get(&mut out, "huginn.cpu").unwrap();
        assert_eq!(out, b"get *\nget huginn.cpu\n");
    }

    #[test]
    fn rejected_requests_append_nothing() {
        let mut out = b"keep".to_vec();
        assert!(encode_put(&mut out, "a b", MetricValue::Int(1), 1).is_err());
        assert!(encode_put(&mut out, "*", MetricValue::Int(1), 1).is_err());
        assert!(encode_put(&mut out, "k", MetricValue::Float(f64::NAN), 1).is_err());
        assert!(encode_get(&mut out, "a\nb").is_err());
        assert!(encode_get(&mut out, "").is_err());
        assert_eq!(out, b"keep");
    }
}
