//! Incremental decoding of server replies.
//!
//! A reply is a status line (`ok` or `error`), zero or more further lines and
//! an empty line: `ok\n\n`, `ok\nk 1.5 10\n\n`, `error\nwrong command\n\n`.
//! Bytes can arrive in any split; the decoder keeps only an unfinished line
//! between feeds and parses complete lines as soon as they are seen, so a
//! large `get` never holds the raw reply and its parsed form at once.
//! After the `ok` of a reply expected as columns, the bytes are the binary
//! columns frame, handed to `columns_decoder`.

use memchr::{memchr, memchr_iter};
use thiserror::Error;

use super::columns_decoder::ColumnsDecoder;
use super::excerpt::excerpt;
use super::grouping::{MetricsBuilder, Point};
use super::number::{parse_float, parse_int, simple_decimal, simple_integer};
use super::{Expect, Reply};

/// Replies larger than this are refused unless the caller raises the limit:
/// it bounds the memory a misbehaving server can make a client allocate.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 1 << 30;

/// The bytes could not be a reply of this protocol. After this error the
/// stream's framing is unknown, so the connection must be discarded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("reply must start with 'ok' or 'error', got {0:?}")]
    BadStatus(String),
    #[error("malformed data line {line:?}: {reason}")]
    BadLine { line: String, reason: &'static str },
    #[error("a reply to put must be a bare 'ok', got data line {0:?}")]
    UnexpectedData(String),
    #[error("reply exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("malformed columns frame at byte {offset}: {reason}")]
    BadFrame { offset: usize, reason: String },
}

/// A complete reply and how many bytes of the last feed it used; any bytes
/// after `used` belong to whatever follows the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub reply: Reply,
    pub used: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Status,
    OkBody,
    ErrorBody,
    /// In the columns frame after `ok` (`columns` decodes it).
    Columns,
}

/// Decodes one reply at a time; after a complete reply it is ready for the
/// next one (pipelined requests reuse it).
#[derive(Debug)]
pub struct ReplyDecoder {
    expect: Expect,
    max_reply_bytes: usize,
    state: State,
    /// Bytes of completed lines of the current reply.
    received: usize,
    /// The start of a line whose `\n` has not arrived yet.
    partial: Vec<u8>,
    metrics: MetricsBuilder,
    error_lines: Vec<String>,
    columns: Option<ColumnsDecoder>,
}

impl ReplyDecoder {
    pub fn new(expect: Expect) -> Self {
        Self::with_limit(expect, DEFAULT_MAX_REPLY_BYTES)
    }

    pub fn with_limit(expect: Expect, max_reply_bytes: usize) -> Self {
        ReplyDecoder {
            expect,
            max_reply_bytes,
            state: State::Status,
            received: 0,
            partial: Vec::new(),
            metrics: MetricsBuilder::default(),
            error_lines: Vec::new(),
            columns: None,
        }
    }

    /// Sets what the next reply answers. A caller pipelining different
    /// requests calls it before feeding the bytes of each reply; it is only
    /// honoured between replies (`is_idle`), so a reply already begun is
    /// finished as it began.
    pub fn set_expect(&mut self, expect: Expect) {
        if self.is_idle() {
            self.expect = expect;
        }
    }

    /// True when no byte of a reply has been seen since the last complete one.
    pub fn is_idle(&self) -> bool {
        self.state == State::Status && self.received == 0 && self.partial.is_empty()
    }

    /// Feeds the next bytes of the stream. Returns the reply once its final
    /// empty line is seen; bytes after it (`data[used..]`) are not consumed.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Decoded>, DecodeError> {
        // A pipelined batch of puts is answered by a run of `ok\n\n`: each
        // one is recognised by one comparison (what the lines below would
        // conclude, limit included).
        if self.expect == Expect::Ack
            && data.starts_with(b"ok\n\n")
            && self.is_idle()
            && self.max_reply_bytes >= 4
        {
            return Ok(Some(Decoded {
                reply: Reply::Ack,
                used: 4,
            }));
        }
        if self.state == State::Columns {
            return self.feed_columns(data, 0);
        }
        let mut start = 0;
        if !self.partial.is_empty() {
            let Some(end) = memchr(b'\n', data) else {
                self.partial.extend_from_slice(data);
                self.check_size()?;
                return Ok(None);
            };
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&data[..end]);
            start = end + 1;
            let done = self.line(&line);
            line.clear();
            self.partial = line; // keep the allocation for the next partial line
            if let Some(reply) = done? {
                return Ok(Some(Decoded { reply, used: start }));
            }
            if self.state == State::Columns {
                return self.feed_columns(data, start);
            }
        }
        let offset = start;
        for end in memchr_iter(b'\n', &data[offset..]).map(|i| i + offset) {
            let line = &data[start..end];
            start = end + 1;
            if let Some(reply) = self.line(line)? {
                return Ok(Some(Decoded { reply, used: start }));
            }
            if self.state == State::Columns {
                return self.feed_columns(data, start);
            }
        }
        self.partial.extend_from_slice(&data[start..]);
        self.check_size()?;
        Ok(None)
    }

    /// Feeds `data[start..]` to the columns frame under way.
    fn feed_columns(&mut self, data: &[u8], start: usize) -> Result<Option<Decoded>, DecodeError> {
        let Some(frame) = self.columns.as_mut() else {
            // Never: the frame's decoder is made with the state.
            return Err(DecodeError::BadFrame {
                offset: self.received,
                reason: "no frame under way".into(),
            });
        };
        let Some((columns, used)) = frame.feed(&data[start..])? else {
            return Ok(None);
        };
        self.columns = None;
        self.reset();
        Ok(Some(Decoded {
            reply: Reply::Columns(columns),
            used: start + used,
        }))
    }

    fn check_size(&self) -> Result<(), DecodeError> {
        if self.received + self.partial.len() > self.max_reply_bytes {
            return Err(DecodeError::TooLarge {
                limit: self.max_reply_bytes,
            });
        }
        Ok(())
    }

    /// Handles one line (without its `\n`); returns the reply when it ends.
    fn line(&mut self, line: &[u8]) -> Result<Option<Reply>, DecodeError> {
        self.received += line.len() + 1;
        self.check_size()?;
        match self.state {
            State::Status => {
                self.state = match line {
                    b"ok" if self.expect == Expect::Columns => {
                        let limit = self.max_reply_bytes;
                        self.columns = Some(ColumnsDecoder::new(limit, self.received));
                        State::Columns
                    }
                    b"ok" => State::OkBody,
                    b"error" => State::ErrorBody,
                    other => return Err(DecodeError::BadStatus(excerpt(other))),
                };
                Ok(None)
            }
            State::OkBody if line.is_empty() => {
                let reply = match self.expect {
                    Expect::Ack => Reply::Ack,
                    // A columns reply never gets here (its `ok` starts the frame).
                    Expect::Points | Expect::Columns => {
                        Reply::Points(std::mem::take(&mut self.metrics).finish())
                    }
                };
                self.reset();
                Ok(Some(reply))
            }
            State::OkBody => match self.expect {
                Expect::Ack => Err(DecodeError::UnexpectedData(excerpt(line))),
                Expect::Points | Expect::Columns => self.metrics.push_line(line).map(|()| None),
            },
            State::ErrorBody if line.is_empty() => {
                let message = std::mem::take(&mut self.error_lines).join("\n");
                self.reset();
                Ok(Some(Reply::Error(message)))
            }
            State::ErrorBody => {
                self.error_lines
                    .push(String::from_utf8_lossy(line).into_owned());
                Ok(None)
            }
            // Its bytes go to `feed_columns`, never here.
            State::Columns => Ok(None),
        }
    }

    fn reset(&mut self) {
        self.state = State::Status;
        self.received = 0;
    }
}

/// The shape nearly every data line has, parsed in one pass: single spaces,
/// a plain decimal value (see [`simple_decimal`](super::number::simple_decimal)) and a plain integer
/// timestamp (see [`simple_integer`](super::number::simple_integer)). `None` means "not that shape", and
/// [`any_line`] decides; whenever this returns a result, [`any_line`] would
/// return the same one.
#[inline]
pub(crate) fn simple_line(line: &[u8]) -> Option<(&[u8], Point)> {
    let key_end = line.iter().position(|&b| b == b' ')?;
    if key_end == 0 {
        return None;
    }
    let rest = &line[key_end + 1..];
    let (value, used) = simple_decimal(rest)?;
    let timestamp = simple_integer(rest[used..].strip_prefix(b" ")?)?;
    Some((&line[..key_end], (timestamp, value)))
}

/// Any data line: three fields separated by runs of spaces, the value parsed
/// as `str::parse::<f64>` and the timestamp as `str::parse::<i64>` would.
pub(crate) fn any_line(line: &[u8]) -> Result<(&[u8], Point), DecodeError> {
    let bad = |reason| DecodeError::BadLine {
        line: excerpt(line),
        reason,
    };
    let (key, value, timestamp) =
        fields(line).ok_or_else(|| bad("expected 'key value timestamp'"))?;
    let value = parse_float(value).ok_or_else(|| bad("value is not a number"))?;
    let timestamp = parse_int(timestamp).ok_or_else(|| bad("timestamp is not an integer"))?;
    Ok((key, (timestamp, value)))
}

/// Splits a data line into its three fields, separated by runs of spaces
/// (leading and trailing spaces tolerated); `None` unless there are exactly
/// three. One pass over the bytes, no allocation.
fn fields(line: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let mut found = [&line[..0]; 3];
    let mut count = 0;
    let mut start = None;
    for (i, &byte) in line.iter().enumerate() {
        match (byte == b' ', start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                *found.get_mut(count)? = &line[s..i];
                count += 1;
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        *found.get_mut(count)? = &line[s..];
        count += 1;
    }
    (count == 3).then_some((found[0], found[1], found[2]))
}

#[cfg(test)]
mod tests;
