//! What each command does to the server's data, one file per command (as
//! mini-redis's `cmd/<name>.rs`): `put` (refuse, journal, store), `get`
//! (walk the store, encode the points) and `query` (a get with options:
//! ranges, globs, rollups, read through its `Source` trait). The connection loop parses a batch
//! of lines into the protocol's [`Command`] and calls these with the
//! store's lock held; journal replay stores its points through
//! [`put::store_point`], the same last step a served put takes.
//!
//! The storage is the in-memory [`Store`](super::store::Store) with its
//! journal, behind `State`. These functions are the boundary a second
//! storage backend would sit behind: it would be chosen at start and handed
//! the same parsed `Command`s (as `Command<&str>` from the batch, or
//! `Command<String>` via [`Command::map`] when it must keep them past the
//! read buffer, as an asynchronous network-bound backend would).

pub(super) mod get;
pub(super) mod put;
pub(super) mod query;

use std::ops::Range;

use crate::protocol::{encode_error, encode_wrong_command, parse_command, Command, CommandError};

/// A request as a connection keeps it between parsing and applying: its
/// text as ranges into the read buffer, or why the line is not a command.
pub(super) type Parsed = Result<Command<Range<usize>>, Refusal>;

/// Why a line is not a command, as the error reply says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The course's `wrong command`.
    WrongCommand,
    /// A query with a bad option or pattern: `bad query: <why>`.
    BadQuery(String),
}

impl Refusal {
    /// Appends the error reply.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Refusal::WrongCommand => encode_wrong_command(out),
            Refusal::BadQuery(message) => encode_error(out, message),
        }
    }
}

/// Parses the line `buf[start..start + len]`.
pub(super) fn parse(buf: &[u8], start: usize, len: usize) -> Parsed {
    let base = buf.as_ptr() as usize;
    let command = parse_command(&buf[start..start + len]).map_err(|error| match error {
        CommandError::Query(_) => Refusal::BadQuery(error.to_string()),
        _ => Refusal::WrongCommand,
    })?;
    Ok(command.map(|text: &&str| {
        let at = text.as_ptr() as usize - base;
        at..at + text.len()
    }))
}

/// The request of [`parse`] with its text borrowed from `buf` again.
///
/// # Safety
///
/// `buf` must hold, unchanged, the bytes `parsed` was parsed from: its
/// ranges then cut text that `parse_command` validated as UTF-8, which is
/// not checked again (checking it costs about a tenth of a pipelined put).
pub(super) unsafe fn resolve<'b>(
    buf: &'b [u8],
    parsed: &Command<Range<usize>>,
) -> Command<&'b str> {
    parsed.map(|range| {
        let text = &buf[range.clone()];
        debug_assert!(std::str::from_utf8(text).is_ok());
        // SAFETY: the caller guarantees `text` is what was validated.
        unsafe { std::str::from_utf8_unchecked(text) }
    })
}
