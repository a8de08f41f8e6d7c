//! The requests a connection applies, as parsed from its read buffer: the
//! parsed form keeps ranges into the buffer rather than borrowing it, so a
//! batch can be parsed before the store's lock is taken and applied under it.

use std::ops::Range;

use super::store::{Cursor, Store};
use crate::protocol::{parse_command, push_point, Command, Selector};

/// A parsed request whose text fields point into the read buffer.
#[derive(Debug)]
pub(super) enum Op {
    Put {
        key: Range<usize>,
        value: f64,
        value_text: Range<usize>,
        timestamp: i64,
    },
    /// `None` is `get *`.
    Get(Option<Range<usize>>),
    Wrong,
}

pub(super) fn text<'b>(buf: &'b [u8], range: &Range<usize>) -> &'b str {
    // The range was cut from a string parse_command validated.
    std::str::from_utf8(&buf[range.clone()]).unwrap_or_default()
}

pub(super) fn parse_op(buf: &[u8], start: usize, len: usize) -> Op {
    let range = |s: &str| {
        let at = s.as_ptr() as usize - buf.as_ptr() as usize;
        at..at + s.len()
    };
    match parse_command(&buf[start..start + len]) {
        Ok(Command::Put {
            key,
            value,
            value_text,
            timestamp,
        }) => Op::Put {
            key: range(key),
            value,
            value_text: range(value_text),
            timestamp,
        },
        Ok(Command::Get(Selector::All)) => Op::Get(None),
        Ok(Command::Get(Selector::Key(key))) => Op::Get(Some(range(key))),
        Err(_) => Op::Wrong,
    }
}

/// Encodes points from `cursor` until `out` holds `chunk` bytes; true when
/// the walk is over.
pub(super) fn fill(store: &Store, cursor: &mut Cursor, out: &mut Vec<u8>, chunk: usize) -> bool {
    store.walk(cursor, |key, timestamp, value| {
        push_point(out, key, value, timestamp);
        out.len() < chunk
    })
}
