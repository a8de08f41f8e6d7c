//! The `Server` class: a thin wrapper over `crate::server::Server`, which
//! serves from its own threads and never touches Python objects.

use std::ffi::CString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::exceptions::PyRuntimeWarning;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

mod life;
mod options;
mod settings;

use super::arguments;
use super::python_log::PythonLog;
use crate::protocol::host_port;
use crate::server::{self, FsyncPolicy, ServerError};
use life::{Loaded, State};
use settings::ServerArguments;

/// An embedded metrics server, serving in background threads.
///
/// ``Server(host="127.0.0.1", port=0, data=None, fsync=None, *, log=False, wait=True,
/// max_memory=None, max_connections=10000, idle_timeout=None,
/// max_request_buffers="256MiB")``
/// binds and starts serving before it returns; ``port=0`` picks a free port,
/// see ``address``. Requests are served by Rust threads that never take the
/// GIL, so Python code (including a ``Client`` in the same process) runs
/// alongside.
///
/// ``data`` is a path to the server's journal (an append-only file of
/// checksummed ``put`` records), replayed when the server starts; without it
/// data lives in memory only. A path that is not a regular file, or a file
/// that does not look like a journal, is refused with ``OSError`` and left
/// untouched. ``fsync`` says when the journal is forced to disk:
/// ``"always"`` (before each ``ok``: an acknowledged put survives ``kill -9``
/// and power loss), ``"everysec"`` (about once a second; a crash of the
/// process loses at most the last 0.1 s; the default, also for ``None``) or
/// ``"no"`` (left to the OS).
/// Records that fail their checksum, and garbage a crash left, are not
/// applied: they are copied to ``<data>.quarantine`` with a
/// ``RuntimeWarning``. The journal is compacted in the background once it
/// holds mostly overwritten points. Two servers cannot share one journal.
/// While the journal cannot be written (a full disk), puts are answered
/// with the reason (``error\nno space left on device\n\n``) and gets go on;
/// puts are accepted again once writing works.
///
/// Replaying runs with the GIL released and can be interrupted: Ctrl-C (or
/// any exception a signal handler raises) stops it within a few
/// milliseconds and leaves the journal as it was. ``wait=False`` returns as
/// soon as the journal is checked and the address bound, and replays in the
/// background: ``ready`` says whether it is serving, ``wait(timeout)``
/// waits for it (and raises the error if the start failed), and ``close()``
/// stops a replay in progress. Connections made meanwhile wait until it
/// serves.
///
/// What the server does (start, replay progress, compaction, errors) is
/// logged through Python's ``logging``, logger ``client.server`` (INFO,
/// WARNING, ERROR); ``log=True`` writes it straight to stderr instead, as
/// ``python -m client serve`` does.
///
/// Limits: a request line may be at most 1 MiB (a longer one is answered
/// ``error\nline too long\n\n`` and the connection is closed).
/// ``max_memory`` (bytes, or a string such as ``"2GiB"``; None: no limit)
/// bounds the stored keys and points: past it a put that would add a point
/// is answered ``error\nout of memory\n\n``. ``max_connections``: a
/// connection beyond it is answered ``error\ntoo many connections\n\n`` and
/// closed. ``idle_timeout`` (seconds; None: never) closes a connection that
/// makes no progress for that long. ``max_request_buffers`` bounds the memory
/// all connections together hold for unfinished long lines; past it those
/// holding the largest are answered ``error\nrequest buffers full\n\n`` and
/// closed.
///
/// TLS: with ``tls_cert`` and ``tls_key`` (PEM files) every connection
/// speaks TLS 1.2 or 1.3; with ``tls_client_ca`` too, only clients
/// presenting a certificate signed by that CA are served (mutual TLS).
/// A file that is missing, unreadable, expired or does not match stops the
/// start with ``OSError`` naming it. Protected mode: a server bound beyond
/// loopback without ``tls_client_ca`` answers peers beyond loopback
/// ``error\nprotected mode: ...\n\n`` and closes them, unless
/// ``insecure=True``; ``protected`` says whether it does.
/// ``store`` (keyword only) makes the server a stateless gateway to Redis:
/// ``"redis://host:port"`` or ``"redis-cluster://host:port,host:port,..."``,
/// optionally with ``?wait=N&wait_timeout=MS`` (a put is acknowledged only
/// once ``N`` replicas have it). Nothing is kept in the server, so any number
/// of servers can share one store; ``data``, ``fsync`` and ``max_memory``
/// (settings of the embedded store) cannot be given with it. A store
/// that does not answer at start raises ``OSError``; a Redis failure later
/// is the error reply of the requests it touched.
///
/// Graphite (keyword only, the embedded store only): ``graphite_port``
/// also accepts Graphite's plaintext protocol (``path value timestamp``
/// lines, no replies; stored as puts, with the same journal, fsync and
/// limits; bad lines are logged and skipped), ``http_port`` also serves
/// Graphite's HTTP API (``/render``, ``/metrics/find``, ``/metrics/expand``,
/// ``/metrics/index.json``) and a dashboard at ``/`` (see
/// ``dashboard_url``). Both listen on ``host`` (0 picks a free port) with
/// the same TLS and protected mode; ``graphite_address`` and
/// ``http_address`` say where.
///
/// Storage (keyword only): with ``data``, points older than
/// ``head_window`` (default ``"2h"``) are sealed in the background into
/// compressed, checksummed block files in ``<data>.blocks/`` (one per day
/// of data), and the journal then holds only the newer points, so start-up
/// replays only those. ``retention`` (for example ``"30d"``; seconds, a
/// ``timedelta`` or a string with ``s``, ``m``, ``h``, ``d``, ``w`` or
/// ``y``; default: keep everything) drops older points: they are never
/// answered again, and whole days of blocks are deleted as they pass it.
///
/// ``close()`` (also on leaving a ``with`` block) stops the server and
/// writes and fsyncs the journal whatever ``fsync`` says; it raises ``OSError``
/// naming the file and what is missing from it if that fails.
///
/// >>> with Server() as srv:                 # doctest: +SKIP
/// ...     Client(*srv.address).get("*")
/// {}
#[pyclass(module = "client", name = "Server", frozen)]
pub struct Server {
    state: Mutex<State>,
    loaded: Arc<Loaded>,
    host: String,
    port: u16,
    data: Option<PathBuf>,
    protected: bool,
    fsync: FsyncPolicy,
    store: Option<server::StoreAddress>,
    graphite_address: Option<SocketAddr>,
    http_address: Option<SocketAddr>,
    tls: bool,
    /// Declared after `state`: dropped after the server, so that what the
    /// server logs while closing still reaches Python.
    python_log: Option<PythonLog>,
}

fn host_argument(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(options::host(obj)?)
}

fn warn(py: Python<'_>, message: &str) -> PyResult<()> {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &text, 1)
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(
        signature = (host=String::from("127.0.0.1"), port=None, data=None, fsync=None, *, log=false, wait=true,
                     max_memory=None, max_connections=None, idle_timeout=None, max_request_buffers=None,
                     tls_cert=None, tls_key=None, tls_client_ca=None, insecure=false, store=None,
                     graphite_port=None, http_port=None, retention=None, head_window=None),
        text_signature = "(host='127.0.0.1', port=0, data=None, fsync=None, *, log=False, wait=True, max_memory=None, max_connections=10000, idle_timeout=None, max_request_buffers='256MiB', tls_cert=None, tls_key=None, tls_client_ca=None, insecure=False, store=None, graphite_port=None, http_port=None, retention=None, head_window='2h')"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = host_argument)] host: String,
        port: Option<&Bound<'_, PyAny>>,
        data: Option<PathBuf>,
        fsync: Option<&Bound<'_, PyAny>>,
        log: bool,
        wait: bool,
        max_memory: Option<&Bound<'_, PyAny>>,
        max_connections: Option<&Bound<'_, PyAny>>,
        idle_timeout: Option<&Bound<'_, PyAny>>,
        max_request_buffers: Option<&Bound<'_, PyAny>>,
        tls_cert: Option<PathBuf>,
        tls_key: Option<PathBuf>,
        tls_client_ca: Option<PathBuf>,
        insecure: bool,
        store: Option<&Bound<'_, PyAny>>,
        graphite_port: Option<&Bound<'_, PyAny>>,
        http_port: Option<&Bound<'_, PyAny>>,
        retention: Option<&Bound<'_, PyAny>>,
        head_window: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut config = ServerArguments {
            host,
            port,
            data: data.clone(),
            fsync,
            max_memory,
            max_connections,
            idle_timeout,
            max_request_buffers,
            tls_cert,
            tls_key,
            tls_client_ca,
            insecure,
            store,
            graphite_port,
            http_port,
            retention,
            head_window,
        }
        .config()?;
        let (python_log, sink) = if log {
            (None, server::stderr_sink())
        } else {
            let (python_log, sink) = PythonLog::start().map_err(ServerError::Threads)?;
            (Some(python_log), sink)
        };
        config.log = Some(sink);
        let (tls_on, fsync, store) = (config.tls.is_some(), config.fsync, config.store.clone());
        let loading = py.detach(|| server::Server::prepare(config));
        if let Some(python_log) = &python_log {
            python_log.flush(py);
        }
        let loading = loading?;
        let address = loading.local_addr();
        let (graphite_address, http_address) = (loading.graphite_addr(), loading.http_addr());
        let protected = loading.is_protected();
        let cancel = loading.canceller();
        let loaded = Arc::new(Loaded::default());
        let signal = Arc::clone(&loaded);
        let thread = std::thread::Builder::new()
            .name("metrics-replay".into())
            .spawn(move || {
                let result = loading.finish();
                *signal.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
                signal.wake.notify_all();
                result
            })
            .map_err(ServerError::Threads)?;
        let server = Server {
            state: Mutex::new(State::Loading { thread, cancel }),
            loaded,
            host: address.ip().to_string(),
            port: address.port(),
            data,
            fsync,
            protected,
            store,
            graphite_address,
            http_address,
            tls: tls_on,
            python_log,
        };
        if wait {
            // On KeyboardInterrupt (or a start error) the replay is
            // cancelled and the journal left as it was.
            if let Err(e) = server.wait_inner(py, None) {
                server.close_inner(py)?;
                return Err(e);
            }
        }
        Ok(server)
    }

    /// True once the server is serving (its journal replayed); False while
    /// it loads, and after ``close()`` or a failed start.
    #[getter]
    fn ready(&self, py: Python<'_>) -> PyResult<bool> {
        self.settle(py)?;
        Ok(matches!(*self.lock(), State::Running(ref s) if !s.is_closed()))
    }

    /// Waits until the server serves; ``timeout`` in seconds (None: no
    /// limit). Returns True when serving, False on timeout or if closed;
    /// raises the error that stopped the start (``OSError``), or what a
    /// signal handler raised (``KeyboardInterrupt``) meanwhile.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let timeout = timeout
            .filter(|t| !t.is_none())
            .map(|t| arguments::seconds(t, "timeout"))
            .transpose()?;
        self.wait_inner(py, timeout)
    }

    /// ``(host, port)`` the server listens on, ready for ``Client(*address)``.
    #[getter]
    fn address(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    /// ``(host, port)`` of the Graphite plaintext listener, or None
    /// without ``graphite_port``.
    #[getter]
    fn graphite_address(&self) -> Option<(String, u16)> {
        self.graphite_address
            .map(|a| (a.ip().to_string(), a.port()))
    }

    /// ``(host, port)`` of the Graphite HTTP API, or None without
    /// ``http_port``.
    #[getter]
    fn http_address(&self) -> Option<(String, u16)> {
        self.http_address.map(|a| (a.ip().to_string(), a.port()))
    }

    /// The dashboard's address, such as ``"http://127.0.0.1:8080/"``
    /// (``https`` with TLS), or None without ``http_port``.
    #[getter]
    fn dashboard_url(&self) -> Option<String> {
        let scheme = if self.tls { "https" } else { "http" };
        self.http_address
            .map(|a| format!("{scheme}://{}/", host_port(&a.ip().to_string(), a.port())))
    }

    /// True when the server is in protected mode: it listens beyond
    /// loopback without client-certificate authentication, so it serves
    /// loopback clients only (see ``insecure``).
    #[getter]
    fn protected(&self) -> bool {
        self.protected
    }

    /// The data file's path, or None when data is kept in memory only.
    #[getter]
    fn data(&self) -> Option<PathBuf> {
        self.data.clone()
    }

    /// The fsync policy: ``"always"``, ``"everysec"`` or ``"no"``.
    #[getter]
    fn fsync(&self) -> String {
        self.fsync.to_string()
    }

    /// True once ``close()`` has run.
    #[getter]
    fn closed(&self) -> bool {
        match &*self.lock() {
            State::Running(server) => server.is_closed(),
            State::Loading { .. } | State::Failed(_) => false,
            State::Closed => true,
        }
    }

    /// Stops accepting, closes every connection, then writes and fsyncs the
    /// journal. A replay still in progress is stopped within milliseconds,
    /// leaving the journal as it was. Blocks until done; calling it again
    /// does nothing. Raises OSError if the journal could not be written.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.close_inner(py)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Closes the server; exceptions from the ``with`` block propagate.
    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close_inner(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let storage = match (&self.store, &self.data) {
            (Some(store), _) => format!("store={}", store.nodes.join(",")),
            (None, Some(path)) => {
                format!("data={:?} fsync={}", path.display().to_string(), self.fsync)
            }
            (None, None) => "in memory".to_string(),
        };
        let state = match &*self.lock() {
            State::Loading { .. } => " loading",
            State::Failed(_) => " failed",
            State::Running(s) if !s.is_closed() => "",
            State::Running(_) | State::Closed => " closed",
        };
        format!(
            "<client.Server {} {storage}{state}>",
            host_port(&self.host, self.port)
        )
    }
}
