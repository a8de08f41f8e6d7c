//! A transport over any Python object with `sendall(bytes)` and `recv(n)`:
//! `ssl.SSLSocket`, a socket subclass, or a test's fake socket. Only those
//! two methods are ever called while the client uses it.

use pyo3::exceptions::{PyOSError, PyTimeoutError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyType};

use super::errors::foreign;
use crate::client::error::ClientError;
use crate::client::transport::Transport;

const RECV_SIZE: usize = 256 * 1024;

pub struct PySocketLike {
    socket: Py<PyAny>,
}

impl PySocketLike {
    pub fn new(socket: Py<PyAny>) -> Self {
        PySocketLike { socket }
    }

    /// Closes the object if it has a working `close()`. A fake socket may not
    /// have one, or have an attribute that is not callable: closing is
    /// best-effort and never raises.
    pub fn close_quietly(self, py: Python<'_>) {
        let socket = self.socket.bind(py);
        if let Ok(close) = socket.getattr(intern!(py, "close")) {
            if close.is_callable() {
                let _ = close.call0();
            }
        }
    }
}

/// True for `TimeoutError` and, on Python 3.9 where it is a separate class,
/// `socket.timeout`.
pub fn is_timeout(py: Python<'_>, error: &PyErr) -> bool {
    static SOCKET_TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    error.is_instance_of::<PyTimeoutError>(py)
        || SOCKET_TIMEOUT
            .import(py, "socket", "timeout")
            .is_ok_and(|t| error.get_type(py).is_subclass(t).unwrap_or(false))
}

/// OSErrors are network failures; anything else the object raises is the
/// caller's own exception and propagates unchanged.
fn failure(py: Python<'_>, error: PyErr) -> ClientError {
    if is_timeout(py, &error) {
        ClientError::Timeout { after: None }
    } else if error.is_instance_of::<PyOSError>(py) {
        ClientError::Socket(Box::new(error))
    } else {
        foreign(error)
    }
}

impl Transport for PySocketLike {
    fn send_all(&mut self, data: &[u8]) -> Result<(), ClientError> {
        Python::attach(|py| {
            self.socket
                .bind(py)
                .call_method1(intern!(py, "sendall"), (PyBytes::new(py, data),))
                .map(drop)
                .map_err(|e| failure(py, e))
        })
    }

    fn receive(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<usize, ClientError> {
        Python::attach(|py| {
            let chunk = self
                .socket
                .bind(py)
                .call_method1(intern!(py, "recv"), (RECV_SIZE,))
                .map_err(|e| failure(py, e))?;
            if let Ok(bytes) = chunk.cast::<PyBytes>() {
                sink(bytes.as_bytes());
                return Ok(bytes.as_bytes().len());
            }
            if let Ok(array) = chunk.cast::<PyByteArray>() {
                let copy = array.to_vec();
                sink(&copy);
                return Ok(copy.len());
            }
            let type_name = chunk
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            Err(foreign(PyTypeError::new_err(format!(
                "recv() returned {type_name}, expected bytes"
            ))))
        })
    }
}
