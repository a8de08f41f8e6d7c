//! The `Client` class: argument conversion, then the Rust session does the
//! work with the GIL released. Raw access to its connection (the
//! `Connection` class) is in `connection`.

mod connection;

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::arguments;
use super::columns::{columns_to_numpy, metrics_to_columns, require_numpy};
use super::connector::{deliver_signals, PyConnector};
use super::points::{validate_put_many, PutPoints};
use super::query_args::{columns_request, query_request, Keywords};
use super::results::metrics_to_dict;
use super::retry;
use super::tls_mode::{TlsFiles, TlsMode};
use crate::client::closing::CloseSignal;
use crate::client::error::ClientError;
use crate::client::query::{self, Answer, QuerySupport};
use crate::client::retry::RetryPolicy;
use crate::client::session::Session;
use crate::client::shared::SharedSession;
use crate::protocol::{
    encode_get, encode_put, host_port, Expect, Metrics, Reply, DEFAULT_MAX_REPLY_BYTES,
};

pub use connection::Connection;

/// A blocking client for the metrics server.
///
/// ``Client(host, port, timeout=None)`` connects at once (through
/// ``socket.create_connection``). ``timeout`` (seconds) bounds the
/// connection attempt and each call as a whole, waiting for a free
/// connection included; ``None`` waits as long as it takes, but Ctrl-C
/// still interrupts. ``Client([(host, port), ...])`` is given several
/// servers: it connects to the one that worked last, else the next.
///
/// TLS: ``ssl=True`` checks the server against the system's CAs and the
/// host name; ``tls_ca="ca.pem"`` trusts that CA instead, ``tls_cert=`` and
/// ``tls_key=`` present a client certificate (any ``tls_*`` means TLS).
/// That TLS is rustls in the Rust core; an ``ssl.SSLContext`` as ``ssl``
/// goes through Python's ``ssl`` module instead, which is slower.
///
/// After any failure in the middle of a call (timeout, reset, malformed reply,
/// interruption) the connection is discarded and the next call reconnects; a
/// failed request is resent only as ``retry=client.Retry(...)`` says (never
/// by default). One client may be shared by threads: calls that overlap run
/// on up to ``max_connections`` connections (16 by default; more are opened
/// only when calls overlap), and ``close()`` from any thread aborts every
/// call under way (it raises ClientSocketError) without waiting for it.
#[pyclass(module = "client", name = "Client", frozen)]
pub struct Client {
    session: SharedSession<PyConnector>,
    addresses: Vec<(String, u16)>,
    timeout: Option<Duration>,
    max_reply_bytes: usize,
    max_connections: usize,
    retry: RetryPolicy,
    /// Whether the server is known to lack queries or columns (shared by every
    /// connection of the client: asked once, not on each query).
    queries: QuerySupport,
    /// The buffers of the last `put_many`, for the next one.
    spare: std::sync::Mutex<Option<PutPoints>>,
}

/// Connections a shared client opens at most, unless told otherwise: one
/// per thread for a typical pool of worker threads.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

impl Client {
    /// Runs `call` on the session with the GIL released. The session is
    /// waited for only while detached, so a thread holding the GIL never
    /// waits for it; the wait counts against the call's timeout and Ctrl-C
    /// interrupts it.
    fn run<R: Send>(
        &self,
        py: Python<'_>,
        call: impl FnMut(&mut Session<PyConnector>) -> Result<R, ClientError> + Send,
    ) -> PyResult<R> {
        py.detach(|| {
            self.session
                .call_retrying(&self.retry, &mut deliver_signals, call)
        })
        .map_err(PyErr::from)
    }

    fn points<'py>(py: Python<'py>, reply: Reply) -> PyResult<Bound<'py, PyDict>> {
        metrics_to_dict(py, Self::metrics(reply))
    }

    fn metrics(reply: Reply) -> Metrics {
        match reply {
            Reply::Points(metrics) => metrics,
            Reply::Ack | Reply::Error(_) | Reply::Columns(_) => Vec::new(),
        }
    }

    /// The points of a `get`, plain or with the query keywords.
    fn fetch(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        keywords: &Keywords<'_, '_>,
    ) -> PyResult<Metrics> {
        let key = arguments::key(key, "key").map_err(ClientError::from)?;
        match query_request(&key, keywords)? {
            None => {
                let mut request = Vec::with_capacity(key.len() + 5);
                encode_get(&mut request, &key).map_err(ClientError::from)?;
                let reply = self.run(py, |session| session.request(&request, Expect::Points))?;
                Ok(Self::metrics(reply))
            }
            Some(request) => {
                let support = &self.queries;
                self.run(py, |session| query::run(session, &request, support))
            }
        }
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (
        host, port=None, timeout=None, *, max_reply_bytes=None, max_connections=None, retry=None,
        ssl=None, tls_ca=None, tls_cert=None, tls_key=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        host: &Bound<'_, PyAny>,
        port: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        max_reply_bytes: Option<&Bound<'_, PyAny>>,
        max_connections: Option<&Bound<'_, PyAny>>,
        retry: Option<&Bound<'_, PyAny>>,
        ssl: Option<&Bound<'_, PyAny>>,
        tls_ca: Option<PathBuf>,
        tls_cert: Option<PathBuf>,
        tls_key: Option<PathBuf>,
    ) -> PyResult<Self> {
        let addresses = arguments::addresses(host, port).map_err(ClientError::from)?;
        let timeout = arguments::timeout(timeout, "timeout").map_err(ClientError::from)?;
        let max_reply_bytes = arguments::max_reply_bytes(max_reply_bytes, DEFAULT_MAX_REPLY_BYTES)
            .map_err(ClientError::from)?;
        let max_connections = match max_connections.filter(|m| !m.is_none()) {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(m) => arguments::count(m, "max_connections").map_err(ClientError::from)?,
        };
        let retry = retry::policy(retry)?;
        let files = TlsFiles {
            ca: tls_ca,
            cert: tls_cert,
            key: tls_key,
        };
        let tls = TlsMode::new(ssl, files)?;
        let connector = PyConnector::new(addresses.clone(), timeout, tls);
        let closing = CloseSignal::new();
        let mut sessions: Vec<_> = (0..max_connections)
            .map(|_| Session::new(connector.clone(), closing.clone(), timeout, max_reply_bytes))
            .collect();
        py.detach(|| sessions[0].connect())?;
        Ok(Client {
            session: SharedSession::new(sessions),
            addresses,
            timeout,
            max_reply_bytes,
            max_connections,
            retry,
            queries: QuerySupport::default(),
            spare: std::sync::Mutex::default(),
        })
    }

    /// Stores ``value`` for ``key`` at ``timestamp`` (default: now, as
    /// ``int(time.time())``). Raises ClientError on failure; returns None.
    #[pyo3(signature = (key, value, timestamp=None))]
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let key = arguments::key(key, "key").map_err(ClientError::from)?;
        let value = arguments::value(value, "value").map_err(ClientError::from)?;
        let timestamp = arguments::timestamp(timestamp, "timestamp").map_err(ClientError::from)?;
        let mut request = Vec::with_capacity(key.len() + 48);
        encode_put(&mut request, &key, value, timestamp).map_err(ClientError::from)?;
        // Encoded once: every attempt sends the same timestamp.
        self.run(py, |session| session.request(&request, Expect::Ack))
            .map(drop)
    }

    /// Returns ``{key: [(timestamp, value), ...]}`` for ``key``, or for every
    /// key when ``key`` is ``"*"``; each list is sorted by timestamp. A key
    /// with no data gives ``{}``.
    ///
    /// A key with glob metacharacters (``*``, ``?``, ``[``, ``{``; not the
    /// bare ``"*"``) is a Graphite glob, and the keywords ask for a range
    /// (``since`` inclusive, ``until`` exclusive: int epoch seconds, a
    /// datetime, or a timedelta back from now) and a rollup (``step``
    /// seconds or timedelta, ``agg`` one of avg, min, max, sum, count, last;
    /// ``max_points`` at most that many points per key). Sent as the query
    /// form of get; a server without it gets a plain get and the answer is
    /// computed here, the same.
    #[pyo3(signature = (key, *, since=None, until=None, step=None, agg=None, max_points=None))]
    #[allow(clippy::too_many_arguments)]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        since: Option<&Bound<'py, PyAny>>,
        until: Option<&Bound<'py, PyAny>>,
        step: Option<&Bound<'py, PyAny>>,
        agg: Option<&Bound<'py, PyAny>>,
        max_points: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let keywords = Keywords {
            since,
            until,
            step,
            agg,
            max_points,
        };
        let metrics = self.fetch(py, key, &keywords)?;
        metrics_to_dict(py, metrics)
    }

    /// ``get`` in columns: ``{key: (timestamps, values)}``, numpy arrays of
    /// int64 and float64, made without a Python object per point (needs
    /// numpy: ``pip install 'metrics-client[numpy]'``). The server is asked
    /// for its binary columns reply; one without it answers in text, made
    /// into the same columns (and not asked again).
    #[pyo3(signature = (key, *, since=None, until=None, step=None, agg=None, max_points=None))]
    #[allow(clippy::too_many_arguments)]
    fn get_columns<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        since: Option<&Bound<'py, PyAny>>,
        until: Option<&Bound<'py, PyAny>>,
        step: Option<&Bound<'py, PyAny>>,
        agg: Option<&Bound<'py, PyAny>>,
        max_points: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let keywords = Keywords {
            since,
            until,
            step,
            agg,
            max_points,
        };
        // numpy first: without it nothing is sent.
        require_numpy(py)?;
        let key = arguments::key(key, "key").map_err(ClientError::from)?;
        let request = columns_request(&key, &keywords)?;
        let support = &self.queries;
        let answer = self.run(py, |session| query::run_columns(session, &request, support))?;
        match answer {
            Answer::Columns(columns) => columns_to_numpy(py, columns),
            Answer::Points(metrics) => metrics_to_columns(py, metrics),
        }
    }

    /// Stores many points in one pipelined exchange. ``points`` is an
    /// iterable of ``(key, value)`` or ``(key, value, timestamp)`` tuples
    /// (timestamp ``None`` means now). Every point is validated before
    /// anything is sent. If the server refuses some points the others are
    /// still stored and ClientRejectedError lists the refused ones.
    ///
    /// At most ``window`` requests are unanswered at any time (``None``:
    /// as many as fit in two 64 KiB chunks). ``window=1`` works with any
    /// server; a server that answers fewer replies than requests and then
    /// falls silent gives ClientTimeoutError (with a timeout) saying how
    /// many of the batch were answered. Whenever the connection fails
    /// part-way, the ClientSocketError's ``acknowledged`` is how many
    /// points, from the start, the server answered: resend the others.
    #[pyo3(signature = (points, *, window=None))]
    fn put_many(
        &self,
        py: Python<'_>,
        points: &Bound<'_, PyAny>,
        window: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let window = match window.filter(|w| !w.is_none()) {
            None => None,
            Some(w) => Some(arguments::count(w, "window").map_err(ClientError::from)?),
        };
        // Held only to take or give back the buffers, never across a
        // call; a poisoned lock only means no buffers to reuse.
        let spare = self.spare.lock().ok().and_then(|mut spare| spare.take());
        let mut points = validate_put_many(py, points, spare)?;
        let replies = match points.is_empty() {
            true => Ok(Vec::new()),
            false => self.run(py, |session| {
                session.pipeline_requests(&mut points, Expect::Ack, window)
            }),
        };
        if let Ok(mut spare) = self.spare.lock() {
            *spare = points.into_spare();
        }
        rejected(replies?).map_err(PyErr::from)
    }

    /// Closes the connection. A call under way in another thread is aborted
    /// (it raises ClientSocketError) and never waited for; later calls raise
    /// ClientSocketError.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.session.close());
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py);
        Ok(false)
    }

    fn __repr__(&self) -> String {
        // Never wait for the lock: a repr must not block behind a long call.
        let state = match self.session.is_connected() {
            _ if self.session.is_closed() => "closed",
            Some(true) => "connected",
            Some(false) => "disconnected",
            None => "busy",
        };
        let timeout = self
            .timeout
            .map_or("None".to_string(), |t| t.as_secs_f64().to_string());
        let address = self.addresses_text();
        format!("<client.Client {address} timeout={timeout} {state}>")
    }

    /// The (first) server's host name or address, as given.
    #[getter]
    fn host(&self) -> &str {
        &self.addresses[0].0
    }

    /// The (first) server's port.
    #[getter]
    fn port(&self) -> u16 {
        self.addresses[0].1
    }

    /// Every server address given, as ``[(host, port), ...]``.
    #[getter]
    fn addresses(&self) -> Vec<(String, u16)> {
        self.addresses.clone()
    }

    /// Connections open at most at once (calls that overlap beyond this wait).
    #[getter]
    fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// How many connections are open now (busy ones included); never waits.
    #[getter]
    fn connection_count(&self) -> usize {
        self.session.connection_count()
    }

    /// Seconds each call may take, or None.
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.timeout.map(|t| t.as_secs_f64())
    }

    /// The largest reply accepted, in bytes; a larger one raises ClientReplyError.
    #[getter]
    fn max_reply_bytes(&self) -> usize {
        self.max_reply_bytes
    }

    /// Raw access to the connection: ``connection.sendall(data)`` writes
    /// bytes as they are. Pair it with ``_read()``.
    #[getter]
    fn connection(slf: Bound<'_, Self>) -> Connection {
        Connection {
            client: slf.unbind(),
        }
    }

    /// Reads one reply from the connection (after ``connection.sendall``)
    /// and returns it as ``get`` would; an ``error`` reply raises
    /// ClientProtocolError.
    fn _read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let reply = self.run_raw(py, |session| session.read_raw(Expect::Points))?;
        Self::points(py, reply)
    }
}

impl Client {
    fn addresses_text(&self) -> String {
        self.addresses
            .iter()
            .map(|(host, port)| host_port(host, *port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The outcome of a batch from its replies: `Rejected` lists the points
/// the server answered `error` to.
fn rejected(replies: Vec<Reply>) -> Result<(), ClientError> {
    let total = replies.len();
    let rejected: Vec<(usize, String)> = replies
        .into_iter()
        .enumerate()
        .filter_map(|(index, reply)| match reply {
            Reply::Error(message) => Some((index, message)),
            _ => None,
        })
        .collect();
    if rejected.is_empty() {
        Ok(())
    } else {
        Err(ClientError::Rejected { rejected, total })
    }
}
