//! Queries from the client: the query form of `get` when the server has
//! the extension, else the same answer computed here from a plain `get`.
//!
//! A server without the extension (the course's) answers the query line
//! `error\nwrong command\n\n`; one with it never does (a bad query is
//! answered `bad query: ...`, and the client only sends valid ones). So
//! that answer means "lacks the extension": the client then sends `get *`
//! (or `get <key>` when the pattern is one key), keeps what the query
//! selects and rolls it up with the same code the server runs
//! (`crate::query`), so the result is the same either way. The finding is
//! remembered in a [`QuerySupport`] shared by a client's connections, so
//! later queries go straight to the plain `get`.
//!
//! An answer in columns is asked for with `format=columns` first. A server
//! with queries but from before that option answers `bad query: unknown
//! option 'format' ...`, a course server `wrong command`: either way the
//! client asks again in text (the query, or the plain `get`), whose points
//! are the same, and remembers not to ask for columns again.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::client::error::ClientError;
use crate::client::session::{Connector, Session};
use crate::protocol::{
    encode_get, encode_query, Columns, Expect, Metrics, Query, QueryError, Reply, ReplyFormat,
    WRONG_COMMAND,
};
use crate::query::Plan;

/// How a server of ours from before `format` answers a query that has it.
const UNKNOWN_FORMAT: &str = "bad query: unknown option 'format'";

/// What the server (or servers) of a client is known to lack.
#[derive(Debug, Default)]
pub struct QuerySupport {
    lacking: AtomicBool,
    lacking_columns: AtomicBool,
}

impl QuerySupport {
    /// True once a server answered a query `wrong command`.
    pub fn server_lacks_queries(&self) -> bool {
        self.lacking.load(Ordering::Relaxed)
    }

    pub fn set_lacking(&self) {
        self.lacking.store(true, Ordering::Relaxed);
    }

    /// True once a server refused `format=columns`.
    pub fn server_lacks_columns(&self) -> bool {
        self.lacking_columns.load(Ordering::Relaxed)
    }

    pub fn set_lacking_columns(&self) {
        self.lacking_columns.store(true, Ordering::Relaxed);
    }
}

/// The requests a query may take, encoded once and checked before
/// anything is sent.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub plan: Plan,
    /// The query line (the plain `get` for an answer in columns that asks
    /// for nothing else).
    pub query: Vec<u8>,
    /// The query line with `format=columns`, for an answer in columns.
    pub columns: Option<Vec<u8>>,
    /// The plain `get` the answer is computed from without the extension.
    pub fallback: Vec<u8>,
}

impl QueryRequest {
    pub fn new(query: &Query<&str>) -> Result<QueryRequest, QueryError> {
        let mut line = Vec::new();
        encode_query(&mut line, query)?;
        Self::with_line(query, line)
    }

    /// The requests of `query` answered in columns. Without any option it
    /// is a plain `get` (of a key, or of `*`) in columns.
    pub fn columns(query: &Query<&str>) -> Result<QueryRequest, QueryError> {
        let mut request = if query.has_option() {
            Self::new(query)?
        } else {
            let mut line = Vec::new();
            encode_get(&mut line, query.pattern).map_err(QueryError::Key)?;
            Self::with_line(query, line)?
        };
        let mut line = Vec::new();
        let columns = Query {
            format: Some(ReplyFormat::Columns),
            ..*query
        };
        encode_query(&mut line, &columns)?;
        request.columns = Some(line);
        Ok(request)
    }

    fn with_line(query: &Query<&str>, line: Vec<u8>) -> Result<QueryRequest, QueryError> {
        let plan = Plan::new(query)?;
        let mut fallback = Vec::new();
        let key = plan.glob.literal().unwrap_or("*");
        encode_get(&mut fallback, key).map_err(QueryError::Key)?;
        Ok(QueryRequest {
            plan,
            query: line,
            columns: None,
            fallback,
        })
    }

    /// Whether `error` is a server saying it lacks the extension.
    pub fn means_unsupported(error: &ClientError) -> bool {
        matches!(error, ClientError::Protocol(message) if message == WRONG_COMMAND)
    }

    /// Whether `error` is a server saying it lacks `format=columns`
    /// (queries altogether, or that option).
    pub fn means_no_columns(error: &ClientError) -> bool {
        Self::means_unsupported(error)
            || matches!(error, ClientError::Protocol(message) if message.starts_with(UNKNOWN_FORMAT))
    }
}

/// A query's answer as the server sent it: text lines' points, or columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Points(Metrics),
    Columns(Columns),
}

/// Runs `request` on `session`: the query itself, or the fallback.
pub fn run<C: Connector>(
    session: &mut Session<C>,
    request: &QueryRequest,
    support: &QuerySupport,
) -> Result<Metrics, ClientError> {
    if !support.server_lacks_queries() {
        match session.request(&request.query, Expect::Points) {
            Ok(reply) => return Ok(points(reply)),
            Err(error) if QueryRequest::means_unsupported(&error) => support.set_lacking(),
            Err(error) => return Err(error),
        }
    }
    let reply = session.request(&request.fallback, Expect::Points)?;
    Ok(request.plan.answer(points(reply)))
}

/// Runs `request` asking for columns first, else as [`run`] does.
pub fn run_columns<C: Connector>(
    session: &mut Session<C>,
    request: &QueryRequest,
    support: &QuerySupport,
) -> Result<Answer, ClientError> {
    if let Some(line) = request
        .columns
        .as_ref()
        .filter(|_| !support.server_lacks_columns())
    {
        match session.request(line, Expect::Columns) {
            Ok(Reply::Columns(columns)) => return Ok(Answer::Columns(columns)),
            Ok(reply) => return Ok(Answer::Points(points(reply))),
            Err(error) if QueryRequest::means_no_columns(&error) => {
                support.set_lacking_columns();
                if QueryRequest::means_unsupported(&error) {
                    support.set_lacking();
                }
            }
            Err(error) => return Err(error),
        }
    }
    run(session, request, support).map(Answer::Points)
}

fn points(reply: Reply) -> Metrics {
    match reply {
        Reply::Points(metrics) => metrics,
        Reply::Ack | Reply::Error(_) | Reply::Columns(_) => Vec::new(),
    }
}
