//! The `Client` class: argument conversion, then the Rust session does the
//! work with the GIL released.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::arguments;
use super::connector::{deliver_signals, format_address, PyConnector};
use super::results::metrics_to_dict;
use crate::client::closing::CloseSignal;
use crate::client::error::ClientError;
use crate::client::session::Session;
use crate::client::shared::SharedSession;
use crate::protocol::{
    encode_get, encode_put, ArgumentError, Expect, Reply, DEFAULT_MAX_REPLY_BYTES,
};

/// A blocking client for the metrics server.
///
/// ``Client(host, port, timeout=None)`` connects at once (through
/// ``socket.create_connection``) and keeps one connection for all calls.
/// ``timeout`` (seconds) bounds the connection attempt and each call as a
/// whole; ``None`` waits as long as it takes, but Ctrl-C still interrupts.
///
/// After any failure in the middle of a call (timeout, reset, malformed reply,
/// interruption) the connection is discarded and the next call reconnects; a
/// failed request is never resent automatically. One client may be shared by
/// threads: calls are serialized, and ``close()`` from any thread aborts a
/// call under way (it raises ClientSocketError) without waiting for it.
#[pyclass(module = "client", name = "Client", frozen)]
pub struct Client {
    session: SharedSession<PyConnector>,
    host: String,
    port: u16,
    timeout: Option<Duration>,
    max_reply_bytes: usize,
}

impl Client {
    /// Runs `call` on the session with the GIL released. The session is
    /// waited for only while detached, so a thread holding the GIL never
    /// waits for it; the wait counts against the call's timeout and Ctrl-C
    /// interrupts it.
    fn run<R: Send>(
        &self,
        py: Python<'_>,
        call: impl FnOnce(&mut Session<PyConnector>) -> Result<R, ClientError> + Send,
    ) -> PyResult<R> {
        py.detach(|| self.session.call(&mut deliver_signals, call))
            .map_err(PyErr::from)
    }

    fn points<'py>(py: Python<'py>, reply: Reply) -> PyResult<Bound<'py, PyDict>> {
        match reply {
            Reply::Points(metrics) => metrics_to_dict(py, metrics),
            Reply::Ack | Reply::Error(_) => Ok(PyDict::new(py)),
        }
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (host, port, timeout=None, *, max_reply_bytes=None))]
    fn new(
        py: Python<'_>,
        host: &Bound<'_, PyAny>,
        port: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
        max_reply_bytes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let host = arguments::key(host, "host").map_err(ClientError::from)?;
        let port = arguments::port(port).map_err(ClientError::from)?;
        let timeout = arguments::timeout(timeout).map_err(ClientError::from)?;
        let max_reply_bytes = arguments::max_reply_bytes(max_reply_bytes, DEFAULT_MAX_REPLY_BYTES)
            .map_err(ClientError::from)?;
        let connector = PyConnector {
            host: host.clone(),
            port,
            timeout,
        };
        let mut session = Session::new(connector, CloseSignal::new(), timeout, max_reply_bytes);
        py.detach(|| session.connect())?;
        Ok(Client {
            session: SharedSession::new(session),
            host,
            port,
            timeout,
            max_reply_bytes,
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
        self.run(py, |session| session.request(&request, Expect::Ack))
            .map(drop)
    }

    /// Returns ``{key: [(timestamp, value), ...]}`` for ``key``, or for every
    /// key when ``key`` is ``"*"``; each list is sorted by timestamp. A key
    /// with no data gives ``{}``.
    #[pyo3(signature = (key))]
    fn get<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let key = arguments::key(key, "key").map_err(ClientError::from)?;
        let mut request = Vec::with_capacity(key.len() + 5);
        encode_get(&mut request, &key).map_err(ClientError::from)?;
        let reply = self.run(py, |session| session.request(&request, Expect::Points))?;
        Self::points(py, reply)
    }

    /// Stores many points in one pipelined exchange. ``points`` is an
    /// iterable of ``(key, value)`` or ``(key, value, timestamp)`` tuples
    /// (timestamp ``None`` means now). Every point is validated before
    /// anything is sent. If the server refuses some points the others are
    /// still stored and ClientRejectedError lists the refused ones.
    #[pyo3(signature = (points))]
    fn put_many(&self, py: Python<'_>, points: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut requests = Vec::new();
        let mut ends = Vec::new();
        let items = points.try_iter().map_err(|e| {
            if e.is_instance_of::<pyo3::exceptions::PyTypeError>(py) {
                ClientError::from(ArgumentError::type_(
                    "points",
                    format!(
                        "must be an iterable of (key, value[, timestamp]) tuples, got {}",
                        arguments::type_name(points)
                    ),
                ))
                .into()
            } else {
                e
            }
        })?;
        for (index, item) in items.enumerate() {
            let item = item?;
            encode_put_item(&mut requests, index, &item).map_err(ClientError::from)?;
            ends.push(requests.len());
        }
        if ends.is_empty() {
            return Ok(());
        }
        let replies = self.run(py, |session| {
            session.pipeline(&requests, &ends, Expect::Ack)
        })?;
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
            Err(ClientError::Rejected {
                rejected,
                total: ends.len(),
            }
            .into())
        }
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
        let address = format_address(&self.host, self.port);
        format!("<client.Client {address} timeout={timeout} {state}>")
    }

    /// The server's host name or address, as given.
    #[getter]
    fn host(&self) -> &str {
        &self.host
    }

    /// The server's port.
    #[getter]
    fn port(&self) -> u16 {
        self.port
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
        let reply = self.run(py, |session| session.read_raw(Expect::Points))?;
        Self::points(py, reply)
    }
}

/// One `put_many` item: `(key, value)` or `(key, value, timestamp)`.
fn encode_put_item(
    out: &mut Vec<u8>,
    index: usize,
    item: &Bound<'_, PyAny>,
) -> Result<(), ArgumentError> {
    let at = |e: ArgumentError| ArgumentError {
        argument: "points",
        reason: format!("item {index}: {} {}", e.argument, e.reason),
        kind: e.kind,
    };
    let tuple = item.cast::<PyTuple>().map_err(|_| {
        ArgumentError::type_(
            "points",
            format!("item {index} must be a (key, value[, timestamp]) tuple"),
        )
    })?;
    if !(2..=3).contains(&tuple.len()) {
        return Err(ArgumentError::value(
            "points",
            format!(
                "item {index} has {} fields, expected (key, value[, timestamp])",
                tuple.len()
            ),
        ));
    }
    let field = |i: usize| tuple.get_item(i).ok();
    let key = field(0).ok_or_else(|| at(ArgumentError::value("key", "is missing")))?;
    let value = field(1).ok_or_else(|| at(ArgumentError::value("value", "is missing")))?;
    let timestamp = field(2);
    let key = arguments::key(&key, "key").map_err(at)?;
    let value = arguments::value(&value, "value").map_err(at)?;
    let timestamp = arguments::timestamp(timestamp.as_ref(), "timestamp").map_err(at)?;
    encode_put(out, &key, value, timestamp).map_err(at)
}

/// ``client.connection``: writes raw bytes on the client's connection.
#[pyclass(module = "client", name = "Connection", frozen)]
pub struct Connection {
    client: Py<Client>,
}

#[pymethods]
impl Connection {
    /// Sends ``data`` (bytes, bytearray or memoryview) unchanged,
    /// connecting first if needed.
    fn sendall(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = arguments::bytes_like(data, "data").map_err(ClientError::from)?;
        self.client.get().run(py, |session| session.send_raw(&data))
    }

    fn __repr__(&self) -> String {
        format!(
            "<client.Connection of {}>",
            format_address(&self.client.get().host, self.client.get().port)
        )
    }
}
