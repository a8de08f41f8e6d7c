//! `client._native.Codec`: the protocol for `AsyncClient`, whose I/O is
//! asyncio's. Requests are validated and encoded exactly as `Client` does,
//! received bytes go through the same `ReplyDecoder`, and `get` results are
//! built by the same result builder; Python only moves the bytes.
//!
//! The codec knows which replies it is waiting for, in order (`expect`),
//! so pipelined requests of different kinds decode correctly, and bytes
//! nobody asked for are an error rather than a reply for a later call.

use std::collections::VecDeque;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::arguments;
use super::columns::{columns_to_numpy, metrics_to_columns};
use super::points::encode_put_many;
use super::query_args::{columns_request, query_request, Keywords, PyQuery};
use super::results::metrics_to_dict;
use crate::client::error::{cut_short_message, ClientError};
use crate::protocol::{
    encode_get, encode_put, Expect, Reply, ReplyDecoder, DEFAULT_MAX_REPLY_BYTES,
};
use crate::query::Plan;

#[pyclass(module = "client._native", name = "Codec")]
pub struct Codec {
    decoder: ReplyDecoder,
    /// What each reply still to come answers, oldest first.
    pending: VecDeque<Pending>,
}

/// A reply still to come: its kind, and for points how to hand them over.
struct Pending {
    expect: Expect,
    /// The answer is computed from a plain get's points by this plan (a
    /// query's fallback on a server without queries).
    answer: Option<Plan>,
    /// numpy columns instead of a dict.
    columns: bool,
}

#[pymethods]
impl Codec {
    #[new]
    #[pyo3(signature = (max_reply_bytes=None))]
    fn new(max_reply_bytes: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let limit = arguments::max_reply_bytes(max_reply_bytes, DEFAULT_MAX_REPLY_BYTES)
            .map_err(ClientError::from)?;
        Ok(Codec {
            decoder: ReplyDecoder::with_limit(Expect::Ack, limit),
            pending: VecDeque::new(),
        })
    }

    /// The request of ``Client.put(key, value, timestamp)``; raises as it does.
    #[staticmethod]
    #[pyo3(signature = (key, value, timestamp=None))]
    fn put<'py>(
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        timestamp: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let key = arguments::key(key, "key").map_err(ClientError::from)?;
        let value = arguments::value(value, "value").map_err(ClientError::from)?;
        let timestamp = arguments::timestamp(timestamp, "timestamp").map_err(ClientError::from)?;
        let mut request = Vec::with_capacity(key.len() + 48);
        encode_put(&mut request, &key, value, timestamp).map_err(ClientError::from)?;
        Ok(PyBytes::new(py, &request))
    }

    /// The request of ``Client.get(key)``.
    #[staticmethod]
    fn get<'py>(py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        let key = arguments::key(key, "key").map_err(ClientError::from)?;
        let mut request = Vec::with_capacity(key.len() + 5);
        encode_get(&mut request, &key).map_err(ClientError::from)?;
        Ok(PyBytes::new(py, &request))
    }

    /// The query of ``Client.get(key, **keywords)``, or None when that is
    /// the plain get of ``Codec.get(key)``; raises as ``Client.get`` does.
    /// With ``columns``, ``Client.get_columns``'s: never None, its
    /// ``columns`` the request for the columns reply.
    #[staticmethod]
    #[pyo3(signature = (
        key, *, since=None, until=None, step=None, agg=None, max_points=None, columns=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn query(
        key: &Bound<'_, PyAny>,
        since: Option<&Bound<'_, PyAny>>,
        until: Option<&Bound<'_, PyAny>>,
        step: Option<&Bound<'_, PyAny>>,
        agg: Option<&Bound<'_, PyAny>>,
        max_points: Option<&Bound<'_, PyAny>>,
        columns: bool,
    ) -> PyResult<Option<PyQuery>> {
        let key = arguments::key(key, "key").map_err(ClientError::from)?;
        let keywords = Keywords {
            since,
            until,
            step,
            agg,
            max_points,
        };
        if columns {
            let request = columns_request(&key, &keywords)?;
            return Ok(Some(PyQuery { request }));
        }
        Ok(query_request(&key, &keywords)?.map(|request| PyQuery { request }))
    }

    /// The requests of ``Client.put_many(points)``: all their bytes, and
    /// the end offset of each request in them.
    #[staticmethod]
    fn put_many<'py>(
        py: Python<'py>,
        points: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<usize>)> {
        let (requests, ends) = encode_put_many(py, points)?;
        Ok((PyBytes::new(py, &requests), ends))
    }

    /// Notes that ``count`` more requests were sent, answered by an
    /// acknowledgement (``points=False``) or by points (``points=True``).
    /// With ``answer``, the points are a plain get's, and the reply is
    /// that query's answer computed from them; with ``columns``, the
    /// points come as ``get_columns`` gives them; with ``frame``, the reply
    /// is the columns frame (to a query's ``columns`` request).
    #[pyo3(signature = (points, count=1, *, answer=None, columns=false, frame=false))]
    fn expect(
        &mut self,
        points: bool,
        count: usize,
        answer: Option<PyRef<'_, PyQuery>>,
        columns: bool,
        frame: bool,
    ) {
        let expect = match (points, frame) {
            (true, true) => Expect::Columns,
            (true, false) => Expect::Points,
            (false, _) => Expect::Ack,
        };
        let plan = answer.map(|query| query.request.plan.clone());
        for _ in 0..count {
            self.pending.push_back(Pending {
                expect,
                answer: plan.clone(),
                columns,
            });
        }
    }

    /// Decodes ``data`` and returns the replies it completes, in order:
    /// an int ``n`` for ``n`` acknowledgements in a row (a pipelined batch
    /// is mostly that), a dict for points, a ClientProtocolError instance
    /// (not raised) for an ``error`` reply. Raises ClientReplyError for
    /// bytes that are not a reply or that nobody asked for; the stream's
    /// framing is then lost.
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let replies = PyList::empty(py);
        let mut acks = 0usize;
        let mut rest = data;
        while !rest.is_empty() {
            let Some(pending) = self.pending.front() else {
                return Err(ClientError::TrailingBytes { extra: rest.len() }.into());
            };
            self.decoder.set_expect(pending.expect);
            match self.decoder.feed(rest).map_err(ClientError::from)? {
                None => break,
                Some(done) => {
                    let Some(pending) = self.pending.pop_front() else {
                        break; // never: it was looked at above
                    };
                    rest = &rest[done.used..];
                    match done.reply {
                        Reply::Ack => acks += 1,
                        other => {
                            if acks > 0 {
                                replies.append(acks)?;
                                acks = 0;
                            }
                            replies.append(reply_object(py, other, &pending)?)?;
                        }
                    }
                }
            }
        }
        if acks > 0 {
            replies.append(acks)?;
        }
        Ok(replies)
    }

    /// Replies still expected.
    #[getter]
    fn pending(&self) -> usize {
        self.pending.len()
    }

    /// True when no byte of an unfinished reply has been received.
    #[getter]
    fn idle(&self) -> bool {
        self.decoder.is_idle()
    }
}

fn reply_object<'py>(
    py: Python<'py>,
    reply: Reply,
    pending: &Pending,
) -> PyResult<Bound<'py, PyAny>> {
    match reply {
        Reply::Ack => Ok(1usize.into_pyobject(py)?.into_any()),
        Reply::Points(metrics) => {
            let metrics = match &pending.answer {
                Some(plan) => plan.answer(metrics),
                None => metrics,
            };
            if pending.columns {
                Ok(metrics_to_columns(py, metrics)?.into_any())
            } else {
                Ok(metrics_to_dict(py, metrics)?.into_any())
            }
        }
        Reply::Columns(columns) => Ok(columns_to_numpy(py, columns)?.into_any()),
        Reply::Error(message) => Ok(PyErr::from(ClientError::Protocol(message))
            .into_value(py)
            .into_bound(py)
            .into_any()),
    }
}

/// The exception `Client` raises for the same failure, for `AsyncClient`
/// to raise: every error goes through the one mapping (`errors.rs`).
/// ``kind`` names the failure: ``"connect"`` (``address``, ``cause`` the
/// OSError, ``timed_out``), ``"socket"`` (``cause``), ``"tls"`` (``cause``
/// an ``ssl.SSLError``, ``address``), ``"timeout"``
/// (``after`` seconds), ``"closed"`` (``mid_reply``), ``"closed_by_user"``,
/// ``"closed_during_call"``, ``"stalled"`` (``answered``, ``total``,
/// ``window``, ``after``), ``"rejected"`` (``rejected``: ``(index,
/// message)`` pairs, ``total``).
#[pyfunction]
#[pyo3(signature = (
    kind, *, address=None, cause=None, timed_out=false, after=None, mid_reply=false,
    answered=0, total=0, window=0, rejected=None
))]
#[allow(clippy::too_many_arguments)]
pub fn error(
    py: Python<'_>,
    kind: &str,
    address: Option<String>,
    cause: Option<Bound<'_, PyAny>>,
    timed_out: bool,
    after: Option<f64>,
    mid_reply: bool,
    answered: usize,
    total: usize,
    window: usize,
    rejected: Option<Vec<(usize, String)>>,
) -> PyResult<Py<PyAny>> {
    let tls_cause = cause.clone();
    let cause = || -> Box<dyn std::error::Error + Send + Sync> {
        let cause = cause.clone().unwrap_or_else(|| py.None().into_bound(py));
        Box::new(PyErr::from_value(cause))
    };
    let after = after.and_then(|s| Duration::try_from_secs_f64(s).ok());
    let error = match kind {
        "connect" => ClientError::Connect {
            address: address.unwrap_or_default(),
            timed_out,
            source: cause(),
        },
        "socket" => ClientError::Socket(cause()),
        // An `ssl.SSLError` (`cause`), described in words.
        "tls" => {
            let cause = PyErr::from_value(tls_cause.unwrap_or_else(|| py.None().into_bound(py)));
            super::tls::failure(py, &cause, address.as_deref())
                .unwrap_or_else(|| ClientError::Socket(Box::new(cause)))
        }
        "timeout" => ClientError::Timeout { after },
        "closed" => ClientError::Closed { mid_reply },
        "closed_by_user" => ClientError::ClosedByUser,
        "closed_during_call" => ClientError::ClosedDuringCall,
        "stalled" => ClientError::Stalled {
            answered,
            total,
            window,
            after,
        },
        "rejected" => ClientError::Rejected {
            rejected: rejected.unwrap_or_default(),
            total,
        },
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown error kind {other:?}"
            )))
        }
    };
    Ok(PyErr::from(error).into_value(py).into_any())
}

/// `AsyncClient`'s ``put_many`` cut short by ``error`` (a
/// ClientSocketError) after ``acknowledged`` of its ``total`` points were
/// answered: the same exception, its message and ``acknowledged`` saying so
/// as `Client`'s do. Changed in place (each failed call has its own
/// instance) and returned.
#[pyfunction]
pub fn cut_short<'py>(
    error: Bound<'py, PyAny>,
    acknowledged: usize,
    total: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let message = cut_short_message(&error.str()?.to_cow()?, acknowledged, total);
    error.setattr("args", (message,))?;
    error.setattr("acknowledged", acknowledged)?;
    Ok(error)
}

/// `AsyncClient`'s constructor arguments, checked as `Client` checks them:
/// returns ``(addresses, timeout seconds or None, max_reply_bytes)``; a
/// ``retry`` that is not a Retry or None is refused.
#[pyfunction]
#[pyo3(signature = (host, port=None, timeout=None, max_reply_bytes=None, retry=None))]
#[allow(clippy::type_complexity)]
pub fn options(
    host: &Bound<'_, PyAny>,
    port: Option<&Bound<'_, PyAny>>,
    timeout: Option<&Bound<'_, PyAny>>,
    max_reply_bytes: Option<&Bound<'_, PyAny>>,
    retry: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Vec<(String, u16)>, Option<f64>, usize)> {
    let addresses = arguments::addresses(host, port).map_err(ClientError::from)?;
    let timeout = arguments::timeout(timeout, "timeout").map_err(ClientError::from)?;
    let max_reply_bytes = arguments::max_reply_bytes(max_reply_bytes, DEFAULT_MAX_REPLY_BYTES)
        .map_err(ClientError::from)?;
    super::retry::policy(retry)?;
    Ok((addresses, timeout.map(|t| t.as_secs_f64()), max_reply_bytes))
}

/// `put_many`'s ``window``: a positive int, or None.
#[pyfunction]
pub fn window(window: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    match window.filter(|w| !w.is_none()) {
        None => Ok(None),
        Some(w) => Ok(Some(
            arguments::count(w, "window").map_err(ClientError::from)?,
        )),
    }
}
