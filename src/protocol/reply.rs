//! Replies: the three shapes a server answers with, and how a server writes
//! them. Decoding them incrementally is `decoder`'s job.
//!
//! `ok\n\n` answers a put; `ok\n` + one point line per point + `\n`
//! answers a get; `error\n<message>\n\n` answers anything that failed.
//! A query asking for `format=columns` is answered `ok\n` + the columns
//! frame (`columns`); the writers here pick the format's.

use super::columns::{encode_columns_end, encode_columns_start, push_columns, Columns};
use super::grouping::{Metrics, Point};
use super::point::push_point;

/// The message of every error reply to a bad command, as the course's
/// protocol specifies it.
pub const WRONG_COMMAND: &str = "wrong command";

/// A complete, well-formed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `ok` to a `put`.
    Ack,
    /// `ok` to a `get`, possibly with no points at all.
    Points(Metrics),
    /// `ok` and the columns frame, to a query with `format=columns`.
    Columns(Columns),
    /// `error` with the server's message (lines joined with `\n`).
    Error(String),
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
/// of [`super::push_point`] and one [`encode_get_reply_end`].
pub fn encode_get_reply_start(out: &mut Vec<u8>) {
    out.extend_from_slice(b"ok\n");
}

/// Appends the empty line that ends a reply to a `get`.
pub fn encode_get_reply_end(out: &mut Vec<u8>) {
    out.push(b'\n');
}

/// How a query's answer is written: the text lines of a `get`'s reply, or
/// the columns frame (`format=columns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyFormat {
    #[default]
    Text,
    Columns,
}

impl ReplyFormat {
    pub fn name(self) -> &'static str {
        match self {
            ReplyFormat::Text => "text",
            ReplyFormat::Columns => "columns",
        }
    }

    /// What the reply is decoded as.
    pub fn expect(self) -> super::Expect {
        match self {
            ReplyFormat::Text => super::Expect::Points,
            ReplyFormat::Columns => super::Expect::Columns,
        }
    }
}

/// Appends the start of an `ok` reply carrying points in `format`; follow
/// it with any number of [`push_series`] and one [`encode_points_end`].
pub fn encode_points_start(out: &mut Vec<u8>, format: ReplyFormat) {
    encode_get_reply_start(out);
    if format == ReplyFormat::Columns {
        encode_columns_start(out);
    }
}

/// Appends points of `key` in `format` (a series may come in several
/// calls, one after another).
pub fn push_series(out: &mut Vec<u8>, format: ReplyFormat, key: &str, points: &[Point]) {
    match format {
        ReplyFormat::Text => {
            for &(timestamp, value) in points {
                push_point(out, key, value, timestamp);
            }
        }
        ReplyFormat::Columns => push_columns(out, key, points),
    }
}

/// Appends the end of a reply begun by [`encode_points_start`].
pub fn encode_points_end(out: &mut Vec<u8>, format: ReplyFormat) {
    match format {
        ReplyFormat::Text => encode_get_reply_end(out),
        ReplyFormat::Columns => encode_columns_end(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::strategies::{finite, key_strategy};
    use crate::protocol::{push_point, Expect, ReplyDecoder};
    use proptest::prelude::*;

    #[test]
    fn replies_are_the_protocols_bytes() {
        let mut out = Vec::new();
        encode_ok(&mut out);
        encode_wrong_command(&mut out);
        encode_get_reply_start(&mut out);
        encode_get_reply_end(&mut out);
        assert_eq!(out, b"ok\n\nerror\nwrong command\n\nok\n\n");
    }

    #[test]
    fn the_assignments_session_reply() {
        let mut out = Vec::new();
        encode_get_reply_start(&mut out);
        push_point(&mut out, "test_key", 13.0, 1503319739);
        push_point(&mut out, "test_key", 12.0, 1503319740);
        encode_get_reply_end(&mut out);
        assert_eq!(
            out,
            b"ok\ntest_key 13.0 1503319739\ntest_key 12.0 1503319740\n\n"
        );
    }

    proptest! {
        #[test]
        fn the_client_decoder_reads_what_this_encoder_writes(
            points in proptest::collection::vec((key_strategy(), finite(), any::<i64>()), 0..30),
        ) {
            let mut out = Vec::new();
            encode_get_reply_start(&mut out);
            for (key, value, ts) in &points {
                push_point(&mut out, key, *value, *ts);
            }
            encode_get_reply_end(&mut out);
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
    }
}
