//! The `Server` class: a thin wrapper over `crate::server::Server`, which
//! serves from its own threads and never touches Python objects.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::{PyOSError, PyRuntimeWarning, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBool;

use crate::server::{self, Config, FsyncPolicy, Level, LogSink, ServerError};

/// An embedded metrics server, serving in background threads.
///
/// ``Server(host="127.0.0.1", port=0, data=None, fsync="everysec", *, log=False)``
/// binds and starts serving before it returns; ``port=0`` picks a free port,
/// see ``address``. Requests are served by Rust threads that never take the
/// GIL, so Python code (including a ``Client`` in the same process) runs
/// alongside.
///
/// ``data`` is a path to an append-only log of ``put`` lines, replayed when
/// the server starts; without it data lives in memory only. ``fsync`` says
/// when the log is forced to disk: ``"always"`` (before each ``ok``: an
/// acknowledged put survives ``kill -9`` and power loss), ``"everysec"``
/// (about once a second; a crash of the process loses at most the last
/// 0.1 s) or ``"no"`` (left to the OS). A torn last line left by a crash is
/// skipped with a ``RuntimeWarning``. The log is compacted in the
/// background once it holds mostly overwritten points. Two servers cannot
/// share one log. While the log cannot be written (a full disk), puts are
/// answered with the reason (``error\nno space left on device\n\n``) and
/// gets go on; puts are accepted again once writing works.
///
/// ``log=True`` writes what the server does (start, replay, compaction,
/// errors) to stderr; otherwise only errors are written there.
///
/// Limits: a request line may be at most 1 MiB (a longer one is answered
/// ``error\nline too long\n\n`` and the connection is closed); up to 10,000
/// connections at once.
///
/// ``close()`` (also on leaving a ``with`` block) stops the server and
/// writes and fsyncs the log whatever ``fsync`` says; it raises ``OSError``
/// naming the file and what is missing from it if that fails.
///
/// >>> with Server() as srv:                 # doctest: +SKIP
/// ...     Client(*srv.address).get("*")
/// {}
#[pyclass(module = "client", name = "Server", frozen)]
pub struct Server {
    inner: Mutex<server::Server>,
    host: String,
    port: u16,
    data: Option<PathBuf>,
    fsync: FsyncPolicy,
}

fn port_argument(port: &Bound<'_, PyAny>) -> PyResult<u16> {
    if port.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err("port must be an int, not bool"));
    }
    let number: i64 = port.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "port must be an int, not {}",
            port.get_type()
                .name()
                .map_or_else(|_| "?".to_string(), |n| n.to_string())
        ))
    })?;
    u16::try_from(number).map_err(|_| {
        PyValueError::new_err(format!("port must be between 0 and 65535, got {number}"))
    })
}

/// `OSError(errno, message[, filename])`, so Python picks the subclass
/// (`FileNotFoundError`, `PermissionError`, ...) from the errno.
fn to_python_error(error: ServerError) -> PyErr {
    let message = error.to_string();
    let errno = error.io_error().and_then(std::io::Error::raw_os_error);
    let message = match errno {
        Some(code) => message
            .trim_end_matches(&format!(" (os error {code})"))
            .to_string(),
        None => message,
    };
    match (errno, &error) {
        (Some(code), ServerError::Data { path, .. }) => {
            PyOSError::new_err((code, message, path.clone()))
        }
        (Some(code), _) => PyOSError::new_err((code, message)),
        (None, _) => PyOSError::new_err(message),
    }
}

fn sink(verbose: bool) -> LogSink {
    let stderr = server::stderr_sink();
    std::sync::Arc::new(move |level, message| {
        if verbose || level >= Level::Error {
            stderr(level, message);
        }
    })
}

fn warn(py: Python<'_>, message: &str) -> PyResult<()> {
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &text, 1)
}

impl Server {
    fn close_inner(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            self.inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .close()
        })
        .map_err(to_python_error)
    }
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(
        signature = (host="127.0.0.1", port=None, data=None, fsync="everysec", *, log=false),
        text_signature = "(host='127.0.0.1', port=0, data=None, fsync='everysec', *, log=False)"
    )]
    fn new(
        py: Python<'_>,
        host: &str,
        port: Option<&Bound<'_, PyAny>>,
        data: Option<PathBuf>,
        fsync: &str,
        log: bool,
    ) -> PyResult<Self> {
        let port = port.map(port_argument).transpose()?.unwrap_or(0);
        let fsync: FsyncPolicy = fsync.parse().map_err(PyValueError::new_err)?;
        if host.is_empty() {
            return Err(PyValueError::new_err("host must not be empty"));
        }
        let config = Config {
            host: host.to_owned(),
            port,
            data: data.clone(),
            fsync,
            log: Some(sink(log)),
            ..Config::default()
        };
        let inner = py
            .detach(|| server::Server::start(config))
            .map_err(to_python_error)?;
        if let Some(recovery) = inner.recovery() {
            for warning in recovery.warnings() {
                warn(py, &warning)?;
            }
        }
        let address = inner.local_addr();
        Ok(Server {
            inner: Mutex::new(inner),
            host: address.ip().to_string(),
            port: address.port(),
            data,
            fsync,
        })
    }

    /// ``(host, port)`` the server listens on, ready for ``Client(*address)``.
    #[getter]
    fn address(&self) -> (String, u16) {
        (self.host.clone(), self.port)
    }

    /// The data log's path, or None when data is kept in memory only.
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
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| {
            self.inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_closed()
        })
    }

    /// Stops accepting, closes every connection, then writes and fsyncs the
    /// log. Blocks until done; calling it again does nothing. Raises OSError
    /// if the log could not be written.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.close_inner(py)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Closes the server; exceptions from the ``with`` block propagate.
    #[pyo3(signature = (_exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close_inner(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let storage = match &self.data {
            Some(path) => format!("data={:?} fsync={}", path.display().to_string(), self.fsync),
            None => "in memory".to_string(),
        };
        let state = if self.closed(py) { " closed" } else { "" };
        format!("<client.Server {host}:{} {storage}{state}>", self.port)
    }
}
