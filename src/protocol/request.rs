//! Requests: what a client encodes and what a server parses, side by side
//! so the two can never drift apart (the tests run one against the other).
//!
//! Parsing follows the course's week-6 server: tokens are separated by runs
//! of ASCII whitespace (so `get k \r` is `get k`), `put` takes exactly a key,
//! a float and an integer, `get` exactly a key or `*`. Everything else is a
//! [`CommandError`], answered on the wire with `error\nwrong command\n\n`
//! while the connection stays usable.

use thiserror::Error;

use super::excerpt::excerpt;
use super::number::{parse_float, parse_int, simple_decimal, simple_integer};
use super::point::push_put_line;
use super::query::{parse_query, Query, QueryError};

use super::{validate_key, ArgumentError, KeyUse, MetricValue};

/// What kind of reply a request is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `put`: a bare `ok`; data lines in the reply are a protocol violation.
    Ack,
    /// `get`: `ok` followed by zero or more `key value timestamp` lines.
    Points,
    /// A query with `format=columns`: `ok` followed by the columns frame.
    Columns,
}

/// Which keys a `get` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector<T> {
    /// `get *`: every key.
    All,
    /// `get <key>`: one key.
    Key(T),
}

/// The fields of a `put <key> <value> <timestamp>`. `value_text` is the
/// value exactly as received; it parses back to `value`, so a journal can
/// store it verbatim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Put<T> {
    pub key: T,
    pub value: f64,
    pub value_text: T,
    pub timestamp: i64,
}

/// A well-formed request: the one parsed request type of the crate.
///
/// It is generic over how its text is held so that every user holds the
/// same type: [`parse_command`] returns `Command<&str>` borrowing the line,
/// a server connection keeps a batch as `Command<Range<usize>>` (ranges into
/// its read buffer, so the batch is parsed before the store's lock is taken
/// and the buffer stays movable), and a storage backend that must keep a
/// request past the buffer's life can hold `Command<String>`. [`Command::map`]
/// converts between them; the fields and their meaning are declared once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command<T> {
    Put(Put<T>),
    /// `get <key>` or `get *`.
    Get(Selector<T>),
    /// `get <pattern> <option>=<value> ...`: the query extension.
    Query(Query<T>),
}

impl<T> Command<T> {
    /// The same request with its text held another way.
    pub fn map<U>(&self, mut text: impl FnMut(&T) -> U) -> Command<U> {
        match self {
            Command::Put(put) => Command::Put(Put {
                key: text(&put.key),
                value: put.value,
                value_text: text(&put.value_text),
                timestamp: put.timestamp,
            }),
            Command::Get(Selector::All) => Command::Get(Selector::All),
            Command::Get(Selector::Key(key)) => Command::Get(Selector::Key(text(key))),
            Command::Query(query) => Command::Query(query.map(text)),
        }
    }
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
    /// A `get` with options that is not a valid query: unlike the others,
    /// answered with its own message (`bad query: ...`), since only a
    /// server that has the extension sees it that way.
    #[error("bad query: {0}")]
    Query(#[from] QueryError),
}

/// Appends `put <key> <value> <timestamp>\n`; on error nothing is appended.
pub fn encode_put(
    out: &mut Vec<u8>,
    key: &str,
    value: MetricValue,
    timestamp: i64,
) -> Result<(), ArgumentError> {
    validate_put(key, value)?;
    push_put_line(out, key, value, timestamp);
    Ok(())
}

/// Whether `put` may send `key` and `value` (what `encode_put` checks).
pub fn validate_put(key: &str, value: MetricValue) -> Result<(), ArgumentError> {
    validate_key(key, KeyUse::Put)?;
    if let MetricValue::Float(x) = value {
        MetricValue::float(x)?;
    }
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

/// Parses one request line. `line` excludes the `\n`; surrounding and
/// repeated ASCII whitespace (including a `\r` from CRLF) is ignored.
pub fn parse_command(line: &[u8]) -> Result<Command<&str>, CommandError> {
    match plain_put(line) {
        Some(put) => Ok(Command::Put(put)),
        None => parse_general(line),
    }
}

/// The shape nearly every put has, `put <key> <value> <timestamp>` with
/// single spaces, a printable-ASCII key and plain decimal numbers, read in
/// one pass over the bytes: no UTF-8 decoding, tokenizing or counting, which
/// were a fifth of a server's CPU under ingest. `None` for anything else,
/// errors included, which [`parse_general`] then decides; whatever this
/// accepts, that accepts as the same `Put` (a test holds them together).
#[inline]
fn plain_put(line: &[u8]) -> Option<Put<&str>> {
    let rest = line.strip_prefix(b"put ")?;
    // `!`..=`~`: no whitespace, no control character, no DEL, not UTF-8
    // beyond ASCII, which is what `validate_key` asks of an ASCII key.
    let key_len = rest.iter().position(|b| !(b'!'..=b'~').contains(b))?;
    if key_len == 0 || rest[key_len] != b' ' {
        return None;
    }
    let (key, rest) = (&rest[..key_len], &rest[key_len + 1..]);
    if key == b"*" {
        return None;
    }
    let (value, used) = simple_decimal(rest)?;
    let (value_text, rest) = rest.split_at(used);
    let timestamp = simple_integer(rest.strip_prefix(b" ")?)?;
    debug_assert!(key.is_ascii() && value_text.is_ascii());
    // SAFETY: both are ASCII: the key's bytes were checked above, and
    // `simple_decimal` consumes only `-`, `.` and digits. (Checking again
    // cost a twentieth of a server's CPU under ingest.)
    let (key, value_text) = unsafe {
        (
            std::str::from_utf8_unchecked(key),
            std::str::from_utf8_unchecked(value_text),
        )
    };
    Some(Put {
        key,
        value,
        value_text,
        timestamp,
    })
}

/// Every request line, by the rules in this module's header.
fn parse_general(line: &[u8]) -> Result<Command<&str>, CommandError> {
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
            Ok(Command::Put(Put {
                key,
                value,
                value_text,
                timestamp,
            }))
        }
        "get" => {
            let Some(key) = tokens.next() else {
                return Err(CommandError::ArgumentCount {
                    command: "get",
                    expected: 1,
                    got: 0,
                });
            };
            // The query form: every token after the pattern is an option
            // (`name=value`). Anything else stays the course's error.
            let options = tokens.clone();
            if options.clone().next().is_some() {
                if options.clone().all(|t| t.contains('=')) {
                    return Ok(Command::Query(parse_query(key, options)?));
                }
                return Err(CommandError::ArgumentCount {
                    command: "get",
                    expected: 1,
                    got: count(line) - 1,
                });
            }
            validate_key(key, KeyUse::Get)?;
            Ok(Command::Get(if key == "*" {
                Selector::All
            } else {
                Selector::Key(key)
            }))
        }
        other => Err(CommandError::Unknown(excerpt(other.as_bytes()))),
    }
}

fn count(line: &str) -> usize {
    line.split(|c: char| c.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
        .count()
}

/// A finite float in Rust's `f64` syntax (`1`, `-2.5`, `.5`, `1e-05`).
/// NaN and infinities (also `1e400`, which overflows) are refused: a client
/// could never tell them from a broken server, and they poison aggregates.
fn parse_value(text: &str) -> Result<f64, ArgumentError> {
    match parse_float(text.as_bytes()) {
        Some(value) if value.is_finite() => Ok(value),
        Some(_) => Err(ArgumentError::value(
            "value",
            format!("must be a finite number, got {}", excerpt(text.as_bytes())),
        )),
        None => Err(ArgumentError::value(
            "value",
            format!("not a number: {}", excerpt(text.as_bytes())),
        )),
    }
}

/// A decimal integer that fits in an `i64`, optionally signed.
fn parse_timestamp(text: &str) -> Result<i64, ArgumentError> {
    parse_int(text.as_bytes()).ok_or_else(|| {
        ArgumentError::value(
            "timestamp",
            format!("not a 64-bit integer: {}", excerpt(text.as_bytes())),
        )
    })
}

#[cfg(test)]
mod tests;
