//! The server's half of the codec: request lines are parsed into commands,
//! replies are encoded. It mirrors `request` (the client encodes what this
//! parses) and `reply` (the client decodes what this encodes); the tests
//! below run both halves against each other.
//!
//! Parsing follows the course's week-6 server: tokens are separated by runs
//! of ASCII whitespace (so `get k \r` is `get k`), `put` takes exactly a key,
//! a float and an integer, `get` exactly a key or `*`. Everything else is a
//! [`CommandError`], answered on the wire with `error\nwrong command\n\n`
//! while the connection stays usable.

use std::io::Write;

use memchr::memchr;
use thiserror::Error;

use super::{validate_key, ArgumentError, KeyUse, PyFloat};

/// The message of every error reply to a bad command, as the course's
/// protocol specifies it.
pub const WRONG_COMMAND: &str = "wrong command";

/// Longest request line a server accepts by default (without its `\n`):
/// a put line is a few dozen bytes, so 1 MiB leaves keys plenty of room
/// while bounding the memory one connection can pin.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// Which keys a `get` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector<'a> {
    /// `get *`: every key.
    All,
    /// `get <key>`: one key.
    Key(&'a str),
}

/// A well-formed request, borrowing from the line it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command<'a> {
    /// `put <key> <value> <timestamp>`. `value_text` is the value exactly as
    /// received; it parses back to `value`, so a log can store it verbatim.
    Put {
        key: &'a str,
        value: f64,
        value_text: &'a str,
        timestamp: i64,
    },
    /// `get <key>` or `get *`.
    Get(Selector<'a>),
}

/// Why a request line is not a command. On the wire every variant is
/// answered with [`WRONG_COMMAND`]; the detail is for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    #[error("empty request")]
    Empty,
    #[error("request is not valid UTF-8")]
    NotUtf8,
    #[error("unknown command {0:?}")]
    Unknown(String),
    #[error("{command} takes {expected} argument(s), got {got}")]
    ArgumentCount {
        command: &'static str,
        expected: usize,
        got: usize,
    },
    #[error(transparent)]
    Argument(#[from] ArgumentError),
}

/// Parses one request line. `line` excludes the `\n`; surrounding and
/// repeated ASCII whitespace (including a `\r` from CRLF) is ignored.
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, CommandError> {
    let line = std::str::from_utf8(line).map_err(|_| CommandError::NotUtf8)?;
    let mut tokens = line
        .split(|c: char| c.is_ascii_whitespace())
        .filter(|t| !t.is_empty());
    let Some(command) = tokens.next() else {
        return Err(CommandError::Empty);
    };
    match command {
        "put" => {
            let (Some(key), Some(value_text), Some(timestamp), None) =
                (tokens.next(), tokens.next(), tokens.next(), tokens.next())
            else {
                return Err(CommandError::ArgumentCount {
                    command: "put",
                    expected: 3,
                    got: count(line) - 1,
                });
            };
            validate_key(key, KeyUse::Put)?;
            let value = parse_value(value_text)?;
            let timestamp = parse_timestamp(timestamp)?;
            Ok(Command::Put {
                key,
                value,
                value_text,
                timestamp,
            })
        }
        "get" => {
            let (Some(key), None) = (tokens.next(), tokens.next()) else {
                return Err(CommandError::ArgumentCount {
                    command: "get",
                    expected: 1,
                    got: count(line) - 1,
                });
            };
            validate_key(key, KeyUse::Get)?;
            Ok(Command::Get(if key == "*" {
                Selector::All
            } else {
                Selector::Key(key)
            }))
        }
        other => Err(CommandError::Unknown(excerpt(other))),
    }
}

fn count(line: &str) -> usize {
    line.split(|c: char| c.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
        .count()
}

fn excerpt(token: &str) -> String {
    const MAX: usize = 40;
    match token.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &token[..cut]),
        None => token.to_owned(),
    }
}

/// A finite float in Rust's `f64` syntax (`1`, `-2.5`, `.5`, `1e-05`).
/// NaN and infinities (also `1e400`, which overflows) are refused: a client
/// could never tell them from a broken server, and they poison aggregates.
fn parse_value(text: &str) -> Result<f64, ArgumentError> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(ArgumentError::value(
            "value",
            format!("must be a finite number, got {}", excerpt(text)),
        )),
        Err(_) => Err(ArgumentError::value(
            "value",
            format!("not a number: {}", excerpt(text)),
        )),
    }
}

/// A decimal integer that fits in an `i64`, optionally signed.
fn parse_timestamp(text: &str) -> Result<i64, ArgumentError> {
    text.parse::<i64>().map_err(|_| {
        ArgumentError::value(
            "timestamp",
            format!("not a 64-bit integer: {}", excerpt(text)),
        )
    })
}

/// Splits request lines off the front of a receive buffer without rescanning
/// bytes already searched, and enforces the line length limit.
///
/// The caller keeps unconsumed bytes at the front of its buffer, appends new
/// bytes at the end, and after each `Some(len)` drops `len + 1` bytes (the
/// line and its `\n`) from the front.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max_line: usize,
    /// Bytes at the front of the buffer known to hold no `\n`.
    scanned: usize,
}

/// A request line (or the unfinished start of one) exceeds the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("request line exceeds the limit of {limit} bytes")]
pub struct LineTooLong {
    pub limit: usize,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line,
            scanned: 0,
        }
    }

    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The length of the first complete line in `buf` (without its `\n`), or
    /// `None` when the line is unfinished. Once an error is returned the
    /// stream cannot be resynchronised and should be closed.
    pub fn next_line(&mut self, buf: &[u8]) -> Result<Option<usize>, LineTooLong> {
        let from = self.scanned.min(buf.len());
        match memchr(b'\n', &buf[from..]) {
            Some(i) => {
                let len = from + i;
                self.scanned = 0;
                if len > self.max_line {
                    return Err(LineTooLong {
                        limit: self.max_line,
                    });
                }
                Ok(Some(len))
            }
            None => {
                self.scanned = buf.len();
                if buf.len() > self.max_line {
                    return Err(LineTooLong {
                        limit: self.max_line,
                    });
                }
                Ok(None)
            }
        }
    }
}

/// Appends `ok\n\n`, the reply to a `put`.
pub fn encode_ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"ok\n\n");
}

/// Appends `error\n<message>\n\n`. `message` must be a single line.
pub fn encode_error(out: &mut Vec<u8>, message: &str) {
    debug_assert!(!message.contains('\n'));
    out.extend_from_slice(b"error\n");
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Appends `error\nwrong command\n\n`.
pub fn encode_wrong_command(out: &mut Vec<u8>) {
    encode_error(out, WRONG_COMMAND);
}

/// Appends `ok\n`, the start of a reply to a `get`; follow it with any number
/// of [`encode_point`] and one [`encode_points_end`].
pub fn encode_points_start(out: &mut Vec<u8>) {
    out.extend_from_slice(b"ok\n");
}

/// Appends one `key value timestamp\n` line, the value written as Python's
/// `str(float)` writes it.
pub fn encode_point(out: &mut Vec<u8>, key: &str, value: f64, timestamp: i64) {
    out.extend_from_slice(key.as_bytes());
    out.push(b' ');
    push_py_float(out, value);
    out.push(b' ');
    push_i64(out, timestamp);
    out.push(b'\n');
}

/// Appends the empty line that ends a reply to a `get`.
pub fn encode_points_end(out: &mut Vec<u8>) {
    out.push(b'\n');
}

/// Appends the text of [`PyFloat`] (CPython's `str(float)`), taking a fast
/// path for values with at most four decimals, which most metrics have.
///
/// The fast path looks for the smallest `k <= 4` such that `m / 10^k`, with
/// `m` the integer nearest `|value| * 10^k`, gives back `value` exactly. Both
/// that division and parsing `"<m>e-k"` round the same rational correctly,
/// so the text round-trips. Below `2^52 / 10^k` the spacing of floats is
/// under `10^-k`, so no other `k`-decimal text round-trips: it is the
/// shortest, as CPython's. Such values lie in `[1e-4, 2^52)`, where CPython
/// uses fixed notation. Everything else goes through `PyFloat`.
pub fn push_py_float(out: &mut Vec<u8>, value: f64) {
    const SCALES: [f64; 5] = [1.0, 10.0, 100.0, 1000.0, 10000.0];
    const LIMIT: f64 = 4_503_599_627_370_496.0; // 2^52
    let abs = value.abs();
    if abs < LIMIT {
        for (mut k, &scale) in SCALES.iter().enumerate() {
            let scaled = abs * scale;
            if scaled >= LIMIT {
                break;
            }
            let m = scaled.round();
            if m / scale != abs {
                continue;
            }
            let mut m = m as i64; // exact: m < 2^52
                                  // A miss at a smaller k (product rounding) could leave zeros.
            while k > 0 && m % 10 == 0 {
                m /= 10;
                k -= 1;
            }
            if value.is_sign_negative() {
                out.push(b'-');
            }
            let pow = 10i64.pow(k as u32);
            push_i64(out, m / pow);
            out.push(b'.');
            if k == 0 {
                out.push(b'0');
            } else {
                let frac = m % pow;
                let mut digits = [b'0'; 4];
                let mut rest = frac;
                for slot in digits[..k].iter_mut().rev() {
                    *slot = b'0' + (rest % 10) as u8;
                    rest /= 10;
                }
                out.extend_from_slice(&digits[..k]);
            }
            return;
        }
    }
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", PyFloat(value));
}

/// Decimal digits of `n` without going through `fmt`, two at a time.
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    while rest >= 100 {
        let pair = (rest % 100) as usize * 2;
        rest /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if rest >= 10 {
        let pair = rest as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + rest as u8;
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        encode_get, encode_put, ArgumentErrorKind, Expect, MetricValue, Reply, ReplyDecoder,
    };
    use proptest::prelude::*;

    fn put(line: &str) -> (String, f64, i64) {
        match parse_command(line.as_bytes()) {
            Ok(Command::Put {
                key,
                value,
                timestamp,
                ..
            }) => (key.to_owned(), value, timestamp),
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    fn get(line: &str) -> Selector<'_> {
        match parse_command(line.as_bytes()) {
            Ok(Command::Get(selector)) => selector,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn put_lines_of_the_assignment() {
        assert_eq!(
            put("put huginn.cpu 10.6 1642667947"),
            ("huginn.cpu".into(), 10.6, 1642667947)
        );
        assert_eq!(
            put("put test_key 12.0 1503319740"),
            ("test_key".into(), 12.0, 1503319740)
        );
        assert_eq!(
            put("put another_key 10 1503319739"),
            ("another_key".into(), 10.0, 1503319739)
        );
    }

    #[test]
    fn value_text_is_kept_verbatim() {
        let Ok(Command::Put { value_text, .. }) = parse_command(b"put k 1.50e0 3") else {
            panic!()
        };
        assert_eq!(value_text, "1.50e0");
    }

    #[test]
    fn accepted_number_forms() {
        for (text, want) in [
            ("0.5", 0.5f64),
            ("-1.5", -1.5),
            ("+2", 2.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e16", 1e16),
            ("1E-5", 1e-5),
            ("4.2e-05", 4.2e-05),
            ("-0", -0.0),
            (
                "170141183460469231731687303715884105727",
                1.7014118346046923e38,
            ),
        ] {
            let (_, value, _) = put(&format!("put k {text} 1"));
            assert_eq!(value.to_bits(), want.to_bits(), "{text}");
        }
        for (text, want) in [
            ("0", 0),
            ("-1", -1),
            ("+7", 7),
            ("007", 7),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(put(&format!("put k 1 {text}")).2, want, "{text}");
        }
    }

    #[test]
    fn whitespace_between_and_around_tokens_is_tolerated() {
        assert_eq!(get("get k "), Selector::Key("k"));
        assert_eq!(get("get k\r"), Selector::Key("k"));
        assert_eq!(get("get\tk  \t "), Selector::Key("k"));
        assert_eq!(get(" get k"), Selector::Key("k"));
        assert_eq!(get("get *"), Selector::All);
        assert_eq!(get("get * "), Selector::All);
        assert_eq!(put("put  k   1  2 \r"), ("k".into(), 1.0, 2));
    }

    #[test]
    fn keys_may_be_any_non_space_unicode() {
        assert_eq!(put("put ключ.метрика 1 2").0, "ключ.метрика");
        assert_eq!(get("get ключ"), Selector::Key("ключ"));
        assert_eq!(get("get **"), Selector::Key("**"));
    }

    #[test]
    fn wrong_commands() {
        use CommandError::*;
        let count = |command, expected, got| ArgumentCount {
            command,
            expected,
            got,
        };
        let cases: &[(&[u8], CommandError)] = &[
            (b"", Empty),
            (b"   \r", Empty),
            (b"got k", Unknown("got".into())),
            (b"PUT k 1 2", Unknown("PUT".into())),
            (b"Get k", Unknown("Get".into())),
            (b"malformed command test", Unknown("malformed".into())),
            (b"put", count("put", 3, 0)),
            (b"put k", count("put", 3, 1)),
            (b"put k 1", count("put", 3, 2)),
            (b"put k 1 2 3", count("put", 3, 4)),
            (b"get", count("get", 1, 0)),
            (b"get  ", count("get", 1, 0)),
            (b"get a b", count("get", 1, 2)),
            (b"get\xff", NotUtf8),
            (b"put k\xc3 1 2", NotUtf8),
        ];
        for (line, want) in cases {
            assert_eq!(parse_command(line).as_ref(), Err(want), "{line:?}");
        }
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let cases: &[(&str, &str)] = &[
            ("put k x 1", "value"),
            ("put k 1,5 1", "value"),
            ("put k 1_0 1", "value"),
            ("put k 0x10 1", "value"),
            ("put k nan 1", "value"),
            ("put k NaN 1", "value"),
            ("put k inf 1", "value"),
            ("put k -infinity 1", "value"),
            ("put k 1e400 1", "value"),
            ("put k 1 1.5", "timestamp"),
            ("put k 1 1e3", "timestamp"),
            ("put k 1 x", "timestamp"),
            ("put k 1 9223372036854775808", "timestamp"),
            ("put k 1 1_000", "timestamp"),
            ("put * 1 1", "key"),
            ("put a\u{a0}b 1 1", "key"),
            ("put a\x0bb 1 1", "key"),
            ("put a\0 1 1", "key"),
            ("get a\u{2028}", "key"),
            ("get a\x01", "key"),
        ];
        for (line, argument) in cases {
            match parse_command(line.as_bytes()) {
                Err(CommandError::Argument(err)) => {
                    assert_eq!(err.argument, *argument, "{line:?}");
                    assert_eq!(err.kind, ArgumentErrorKind::Value);
                }
                other => panic!("{line:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn error_details_are_bounded() {
        let long = format!("{} k", "x".repeat(10_000));
        let err = parse_command(long.as_bytes()).unwrap_err().to_string();
        assert!(err.len() < 100, "{err}");
        let long = format!("put k {} 1", "9".repeat(10_000));
        // Parses (as 1e10000 = inf) and is refused as non-finite, briefly.
        let err = parse_command(long.as_bytes()).unwrap_err().to_string();
        assert!(err.len() < 150, "{err}");
    }

    #[test]
    fn replies_are_the_protocols_bytes() {
        let mut out = Vec::new();
        encode_ok(&mut out);
        encode_wrong_command(&mut out);
        encode_points_start(&mut out);
        encode_points_end(&mut out);
        assert_eq!(out, b"ok\n\nerror\nwrong command\n\nok\n\n");
    }

    #[test]
    fn the_assignments_session_reply() {
        let mut out = Vec::new();
        encode_points_start(&mut out);
        encode_point(&mut out, "test_key", 13.0, 1503319739);
        encode_point(&mut out, "test_key", 12.0, 1503319740);
        encode_points_end(&mut out);
        assert_eq!(
            out,
            b"ok\ntest_key 13.0 1503319739\ntest_key 12.0 1503319740\n\n"
        );
    }

    #[test]
    fn points_use_python_float_text() {
        let cases: &[(f64, i64, &str)] = &[
            (10.0, 1503319739, "k 10.0 1503319739\n"),
            (0.5, 1, "k 0.5 1\n"),
            (1e16, -1, "k 1e+16 -1\n"),
            (4.2e-05, 0, "k 4.2e-05 0\n"),
            (-0.0, i64::MIN, "k -0.0 -9223372036854775808\n"),
            (42000000.0, i64::MAX, "k 42000000.0 9223372036854775807\n"),
        ];
        for &(value, ts, want) in cases {
            let mut out = Vec::new();
            encode_point(&mut out, "k", value, ts);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn push_i64_matches_display() {
        for n in [
            0,
            1,
            -1,
            9,
            10,
            -10,
            99,
            100,
            101,
            -999,
            1000,
            1503319739,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            push_i64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    fn fast(value: f64) -> String {
        let mut out = Vec::new();
        push_py_float(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fast_float_text_matches_cpython() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-7.0, "-7.0"),
            (0.5, "0.5"),
            (10.6, "10.6"),
            (2.156, "2.156"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (4.2e-05, "4.2e-05"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e15, "1000000000000000.0"),
            (1e15 + 0.125, "1000000000000000.1"),
            (4503599627370495.5, "4503599627370495.5"),
            (4503599627370496.0, "4503599627370496.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (42000000.0, "42000000.0"),
            (123456.7891, "123456.7891"),
            (123456.78912, "123456.78912"),
        ];
        for &(value, want) in cases {
            assert_eq!(fast(value), want, "{value:?}");
            assert_eq!(fast(value), PyFloat(value).to_string(), "{value:?}");
        }
    }

    fn split_all(stream: &[u8], cuts: &[usize], max_line: usize) -> (Vec<Vec<u8>>, bool) {
        let mut splitter = LineSplitter::new(max_line);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        let mut bounds = cuts.to_vec();
        bounds.push(0);
        bounds.push(stream.len());
        bounds.sort_unstable();
        for pair in bounds.windows(2) {
            buf.extend_from_slice(&stream[pair[0]..pair[1]]);
            loop {
                match splitter.next_line(&buf) {
                    Ok(Some(len)) => {
                        lines.push(buf[..len].to_vec());
                        buf.drain(..=len);
                    }
                    Ok(None) => break,
                    Err(_) => return (lines, true),
                }
            }
        }
        (lines, false)
    }

    #[test]
    fn line_splitter_splits_and_limits() {
        let (lines, too_long) = split_all(b"a\nbb\n\nccc", &[1, 3], 3);
        assert_eq!(lines, vec![b"a".to_vec(), b"bb".to_vec(), Vec::new()]);
        assert!(!too_long);
        // exactly the limit is fine, one more byte is not (complete or not)
        assert_eq!(split_all(b"abc\n", &[], 3), (vec![b"abc".to_vec()], false));
        assert_eq!(split_all(b"abcd\n", &[], 3), (vec![], true));
        assert_eq!(
            split_all(b"x\nabcd", &[1, 4], 3),
            (vec![b"x".to_vec()], true)
        );
        assert_eq!(split_all(b"abc", &[1, 2], 3), (vec![], false));
    }

    #[test]
    fn line_splitter_does_not_rescan() {
        // A line trickling in byte by byte is scanned once overall; the
        // splitter remembers how far it has looked.
        let mut splitter = LineSplitter::new(100);
        let mut buf = Vec::new();
        for _ in 0..50 {
            buf.push(b'x');
            assert_eq!(splitter.next_line(&buf), Ok(None));
            assert_eq!(splitter.scanned, buf.len());
        }
        buf.push(b'\n');
        assert_eq!(splitter.next_line(&buf), Ok(Some(50)));
        assert_eq!(splitter.scanned, 0);
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9._:-]{1,12}",
            "\\PC{1,6}".prop_filter("valid key", |k| validate_key(k, KeyUse::Put).is_ok()),
        ]
    }

    fn finite() -> impl Strategy<Value = f64> {
        proptest::num::f64::ANY.prop_filter("finite", |x| x.is_finite())
    }

    proptest! {
        #[test]
        fn the_client_encoder_and_this_parser_agree(
            key in key_strategy(),
            value in finite(),
            int_value in any::<i64>(),
            timestamp in any::<i64>(),
        ) {
            for value in [MetricValue::Float(value), MetricValue::Int(int_value.into())] {
                let mut line = Vec::new();
                encode_put(&mut line, &key, value, timestamp).unwrap();
                prop_assert_eq!(line.pop(), Some(b'\n'));
                match parse_command(&line) {
                    Ok(Command::Put { key: k, value: v, timestamp: t, .. }) => {
                        prop_assert_eq!(k, key.as_str());
                        prop_assert_eq!(v.to_bits(), value.as_f64().to_bits());
                        prop_assert_eq!(t, timestamp);
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
            let mut line = Vec::new();
            encode_get(&mut line, &key).unwrap();
            line.pop();
            prop_assert_eq!(parse_command(&line), Ok(Command::Get(Selector::Key(&key))));
        }

        #[test]
        fn the_client_decoder_reads_what_this_encoder_writes(
            points in proptest::collection::vec((key_strategy(), finite(), any::<i64>()), 0..30),
        ) {
            let mut out = Vec::new();
            encode_points_start(&mut out);
            for (key, value, ts) in &points {
                encode_point(&mut out, key, *value, *ts);
            }
            encode_points_end(&mut out);
            let done = ReplyDecoder::new(Expect::Points).feed(&out).unwrap().unwrap();
            prop_assert_eq!(done.used, out.len());
            let Reply::Points(metrics) = done.reply else { panic!() };
            let mut flat: Vec<(String, i64, u64)> = metrics
                .into_iter()
                .flat_map(|(k, ps)| ps.into_iter().map(move |(t, v)| (k.clone(), t, v.to_bits())))
                .collect();
            let mut want: Vec<(String, i64, u64)> =
                points.iter().map(|(k, v, t)| (k.clone(), *t, v.to_bits())).collect();
            flat.sort();
            want.sort();
            prop_assert_eq!(flat, want);
        }

        #[test]
        fn fast_float_text_equals_pyfloat(
            bits in any::<u64>(),
            m in -10_000_000_000_000_000i64..10_000_000_000_000_000,
            k in 0i32..7,
            small in -100_000i64..100_000,
        ) {
            let decimal = m as f64 / 10f64.powi(k);
            let short = small as f64 / 10f64.powi(k);
            for value in [f64::from_bits(bits), decimal, short, small as f64, m as f64] {
                prop_assume!(value.is_finite());
                prop_assert_eq!(fast(value), PyFloat(value).to_string(), "{:?}", value);
            }
        }

        #[test]
        fn push_i64_is_display(n in any::<i64>()) {
            let mut out = Vec::new();
            push_i64(&mut out, n);
            prop_assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }

        #[test]
        fn arbitrary_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_command(&line);
        }

        #[test]
        fn arbitrary_text_lines_never_panic(line in "(put|get|[a-z]{0,3})( {0,2}\\PC{0,8}){0,5}") {
            let _ = parse_command(line.as_bytes());
        }

        #[test]
        fn any_split_yields_the_same_lines(
            stream in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'a'), Just(b' '), any::<u8>()], 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..10),
            max_line in 0usize..40,
        ) {
            let cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            // A partial line is a prefix of the line it starts, so the same
            // line trips the limit however the stream is cut.
            prop_assert_eq!(split_all(&stream, &cuts, max_line), split_all(&stream, &[], max_line));
        }
    }
}
