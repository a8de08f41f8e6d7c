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

use std::sync::atomic::{AtomicBool, Ordering};

use crate::client::error::ClientError;
use crate::client::session::{Connector, Session};
use crate::protocol::{encode_get, encode_query, Expect, Metrics, Query, Reply, WRONG_COMMAND};
use crate::query::Plan;

/// Whether the server (or servers) of a client is known to lack queries.
#[derive(Debug, Default)]
pub struct QuerySupport {
    lacking: AtomicBool,
}

impl QuerySupport {
    /// True once a server answered a query `wrong command`.
    pub fn server_lacks_queries(&self) -> bool {
        self.lacking.load(Ordering::Relaxed)
    }

    pub fn set_lacking(&self) {
        self.lacking.store(true, Ordering::Relaxed);
    }
}

/// The two requests a query may take, encoded once and checked before
/// anything is sent.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub plan: Plan,
    /// The query line.
    pub query: Vec<u8>,
    /// The plain `get` the answer is computed from without the extension.
    pub fallback: Vec<u8>,
}

impl QueryRequest {
    pub fn new(query: &Query<&str>) -> Result<QueryRequest, crate::protocol::QueryError> {
        let plan = Plan::new(query)?;
        let mut line = Vec::new();
        encode_query(&mut line, query)?;
        let mut fallback = Vec::new();
        let key = plan.glob.literal().unwrap_or("*");
        encode_get(&mut fallback, key).map_err(crate::protocol::QueryError::Key)?;
        Ok(QueryRequest {
            plan,
            query: line,
            fallback,
        })
    }

    /// Whether `error` is a server saying it lacks the extension.
    pub fn means_unsupported(error: &ClientError) -> bool {
        matches!(error, ClientError::Protocol(message) if message == WRONG_COMMAND)
    }
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

fn points(reply: Reply) -> Metrics {
    match reply {
        Reply::Points(metrics) => metrics,
        Reply::Ack | Reply::Error(_) => Vec::new(),
    }
}
