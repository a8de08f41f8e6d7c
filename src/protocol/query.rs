//! The query form of `get`, an additive extension of the course protocol:
//!
//! ```text
//! get <pattern> <option>=<value> [<option>=<value> ...]
//! ```
//!
//! A `get` with at least one option is a query; `get <key>` and `get *`
//! stay the course's requests. Options, each at most once, in any order:
//! `from=<int>` (inclusive) and `until=<int>` (exclusive) epoch seconds,
//! `step=<int>` seconds > 0, `agg=avg|min|max|sum|count|last`,
//! `points=<int>` > 0 (at most that many points per series),
//! `match=glob|exact` and `format=text|columns`. The reply has exactly the
//! shape of a `get`'s, or with `format=columns` is the binary columns
//! frame (see `columns`). What
//! the options mean is `crate::query`'s; this file is the grammar, its
//! encoder and its parser, tested against each other.

use thiserror::Error;

use super::excerpt::excerpt;
use super::number::parse_int;
use super::{validate_key, ArgumentError, KeyUse, ReplyFormat};
use crate::query::{Agg, Glob, GlobError};

/// How the pattern of a query selects keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Match {
    /// A Graphite glob (a bare `*` is every key).
    #[default]
    Glob,
    /// Exactly one key, metacharacters included.
    Exact,
}

impl Match {
    pub fn name(self) -> &'static str {
        match self {
            Match::Glob => "glob",
            Match::Exact => "exact",
        }
    }
}

/// A query: every option as given (`None`: not given, its default applies).
/// Generic over how its text is held, like [`super::Command`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<T> {
    pub pattern: T,
    /// Inclusive lower bound, epoch seconds.
    pub from: Option<i64>,
    /// Exclusive upper bound, epoch seconds.
    pub until: Option<i64>,
    /// Bucket width in seconds (> 0).
    pub step: Option<i64>,
    /// Aggregation of each bucket (default `avg`).
    pub agg: Option<Agg>,
    /// At most this many points per series (> 0).
    pub points: Option<u64>,
    /// How `pattern` selects keys (default `glob`).
    pub matching: Option<Match>,
    /// How the answer is written (default `text`).
    pub format: Option<ReplyFormat>,
}

impl<T> Query<T> {
    /// A query of `pattern` with no option set yet.
    pub fn new(pattern: T) -> Self {
        Query {
            pattern,
            from: None,
            until: None,
            step: None,
            agg: None,
            points: None,
            matching: None,
            format: None,
        }
    }

    /// The same query with its text held another way.
    pub fn map<'a, U>(&'a self, text: impl FnOnce(&'a T) -> U) -> Query<U> {
        Query {
            pattern: text(&self.pattern),
            from: self.from,
            until: self.until,
            step: self.step,
            agg: self.agg,
            points: self.points,
            matching: self.matching,
            format: self.format,
        }
    }

    /// Whether any option is given (a `get` without one is the course's).
    pub fn has_option(&self) -> bool {
        self.from.is_some()
            || self.until.is_some()
            || self.step.is_some()
            || self.agg.is_some()
            || self.points.is_some()
            || self.matching.is_some()
            || self.format.is_some()
    }
}

impl<T: AsRef<str>> Query<T> {
    /// The keys this query selects, compiled.
    pub fn glob(&self) -> Result<Glob, QueryError> {
        let pattern = self.pattern.as_ref();
        match self.matching.unwrap_or_default() {
            Match::Exact => Ok(Glob::exact(pattern)),
            Match::Glob => Glob::compile(pattern).map_err(QueryError::Pattern),
        }
    }

    /// Checks what the grammar requires beyond each option's syntax: the
    /// pattern is a key (or a valid glob), and there is at least one option.
    pub fn validate(&self) -> Result<(), QueryError> {
        validate_key(self.pattern.as_ref(), KeyUse::Get).map_err(QueryError::Key)?;
        if !self.has_option() {
            return Err(QueryError::NoOption);
        }
        if self.step.is_some_and(|s| s <= 0) {
            return Err(QueryError::value("step", "must be a positive integer"));
        }
        if self.points == Some(0) {
            return Err(QueryError::value("points", "must be a positive integer"));
        }
        self.glob().map(drop)
    }
}

/// Why a query line (or a query to encode) is not a valid query. On the
/// wire: `error\nbad query: <this>\n\n`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    #[error("unknown option {0} (options: from, until, step, agg, points, match, format)")]
    UnknownOption(String),
    #[error("option {0} given twice")]
    Repeated(&'static str),
    #[error("{option} {reason}")]
    BadValue {
        option: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Pattern(GlobError),
    #[error("{0}")]
    Key(ArgumentError),
    #[error("a query needs at least one option")]
    NoOption,
}

impl QueryError {
    fn value(option: &'static str, reason: impl Into<String>) -> Self {
        QueryError::BadValue {
            option,
            reason: reason.into(),
        }
    }
}

/// Appends the query's line; on error nothing is appended.
pub fn encode_query(out: &mut Vec<u8>, query: &Query<&str>) -> Result<(), QueryError> {
    query.validate()?;
    let mut line = format!("get {}", query.pattern);
    let mut option = |name: &str, value: &dyn std::fmt::Display| {
        line.push_str(&format!(" {name}={value}"));
    };
    if let Some(from) = query.from {
        option("from", &from);
    }
    if let Some(until) = query.until {
        option("until", &until);
    }
    if let Some(step) = query.step {
        option("step", &step);
    }
    if let Some(agg) = query.agg {
        option("agg", &agg.name());
    }
    if let Some(points) = query.points {
        option("points", &points);
    }
    if let Some(matching) = query.matching {
        option("match", &matching.name());
    }
    if let Some(format) = query.format {
        option("format", &format.name());
    }
    line.push('\n');
    out.extend_from_slice(line.as_bytes());
    Ok(())
}

/// Parses the options of a `get` after its pattern (at least one token,
/// each holding a `=`).
pub(super) fn parse_query<'a>(
    pattern: &'a str,
    options: impl Iterator<Item = &'a str>,
) -> Result<Query<&'a str>, QueryError> {
    let mut query = Query::new(pattern);
    for token in options {
        let (name, value) = token.split_once('=').unwrap_or((token, ""));
        match name {
            "from" => set(&mut query.from, "from", int(value, "from")?)?,
            "until" => set(&mut query.until, "until", int(value, "until")?)?,
            "step" => set(&mut query.step, "step", positive(value, "step")?)?,
            "points" => {
                let points = positive(value, "points")?.unsigned_abs();
                set(&mut query.points, "points", points)?
            }
            "agg" => {
                let aggs = Agg::ALL.map(|agg| (agg.name(), agg));
                set(&mut query.agg, "agg", choice(value, "agg", &aggs)?)?
            }
            "match" => {
                let matches = [("glob", Match::Glob), ("exact", Match::Exact)];
                set(
                    &mut query.matching,
                    "match",
                    choice(value, "match", &matches)?,
                )?
            }
            "format" => {
                let formats = [
                    ("text", ReplyFormat::Text),
                    ("columns", ReplyFormat::Columns),
                ];
                set(
                    &mut query.format,
                    "format",
                    choice(value, "format", &formats)?,
                )?
            }
            other => return Err(QueryError::UnknownOption(quote(other))),
        }
    }
    query.validate()?;
    Ok(query)
}

/// `text` in quotes, shortened if long (it is echoed in the error reply).
fn quote(text: &str) -> String {
    format!("'{}'", excerpt(text.as_bytes()))
}

/// The value named `text` among `choices` of `option`.
fn choice<V: Copy>(
    text: &str,
    option: &'static str,
    choices: &[(&str, V)],
) -> Result<V, QueryError> {
    if let Some(&(_, value)) = choices.iter().find(|(name, _)| *name == text) {
        return Ok(value);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let expected = match names.as_slice() {
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", names.join(", ")),
    };
    Err(QueryError::value(
        option,
        format!("must be {expected}, got {}", quote(text)),
    ))
}

fn set<V>(slot: &mut Option<V>, name: &'static str, value: V) -> Result<(), QueryError> {
    if slot.is_some() {
        return Err(QueryError::Repeated(name));
    }
    *slot = Some(value);
    Ok(())
}

fn int(text: &str, option: &'static str) -> Result<i64, QueryError> {
    parse_int(text.as_bytes()).ok_or_else(|| {
        QueryError::value(
            option,
            format!("must be a 64-bit integer, got {}", quote(text)),
        )
    })
}

fn positive(text: &str, option: &'static str) -> Result<i64, QueryError> {
    match parse_int(text.as_bytes()) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(QueryError::value(
            option,
            format!("must be a positive integer, got {}", quote(text)),
        )),
    }
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
