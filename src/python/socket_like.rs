//! A transport over any Python object with `sendall(bytes)` and `recv(n)`:
//! `ssl.SSLSocket`, a socket subclass, or a test's fake socket. Only those
//! two methods are ever called while the client uses it, then `close()`.
//!
//! Closing the client from another thread while a call is inside the
//! object's `recv` or `sendall` calls the object's `shutdown(SHUT_RDWR)`,
//! if it has one: for a real socket (or an SSL socket) that wakes the
//! blocked method, as it does for the native transport. An object without
//! it (the course's fake socket) cannot be interrupted from outside: the
//! call ends when its method returns, then reports the close.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyTimeoutError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyType};

use super::errors::foreign;
use crate::client::closing::{Abort, CloseSignal};
use crate::client::error::ClientError;
use crate::client::transport::Transport;

const RECV_SIZE: usize = 256 * 1024;

pub struct PySocketLike {
    host: Arc<HostSocket>,
    closing: Arc<CloseSignal>,
    /// The server's address, when this is a TLS connection the client
    /// made (for `ssl` errors naming it).
    tls_peer: Option<String>,
    /// Where `recv_into` puts what an `ssl.SSLSocket` decrypted: one buffer
    /// for the connection's life, as `recv(n)` would allocate `n` bytes per
    /// call (for 256 KiB, an mmap and page faults on every reply).
    tls_buffer: Option<Py<PyByteArray>>,
}

/// A TLS socket the client made is its own to close when the connection is
/// discarded (a host's object is its owner's, closed by `close()` only).
impl Drop for PySocketLike {
    fn drop(&mut self) {
        if self.tls_peer.is_some() {
            self.close();
        }
    }
}

/// The most one `SSLSocket.recv_into` returns: one TLS record's plaintext.
const TLS_RECORD: usize = 16 * 1024;

/// The object, shared with the close signal.
struct HostSocket {
    socket: Py<PyAny>,
    /// A call is inside one of the object's methods (or about to enter it).
    in_method: AtomicBool,
}

impl Abort for HostSocket {
    fn abort(&self) {
        // An idle object is closed by the client's `close()` itself; only a
        // call inside it needs waking, so nothing else is ever called on an
        // object nobody is using.
        if self.in_method.load(Ordering::SeqCst) {
            Python::attach(|py| {
                // Again with the GIL: while this waited for it, a call that
                // saw the close before entering the method may have left
                // and closed the object (under the GIL, after clearing the
                // flag), and a closed object must not be shut down after.
                if self.in_method.load(Ordering::SeqCst) {
                    // socket.SHUT_RDWR, 2 on every platform.
                    call_quietly(self.socket.bind(py), intern!(py, "shutdown"), (2,));
                }
            });
        }
    }
}

/// Calls `obj.name(*args)` if `obj` has such a callable attribute; a fake
/// socket may lack it or have a non-callable one. Never raises: closing is
/// best-effort.
fn call_quietly<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, pyo3::types::PyString>,
    args: impl pyo3::call::PyCallArgs<'py>,
) {
    if let Ok(method) = obj.getattr(name) {
        if method.is_callable() {
            let _ = method.call1(args);
        }
    }
}

/// Resets `in_method` when a call leaves the object's method.
struct InMethod<'a>(&'a AtomicBool);

impl Drop for InMethod<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl PySocketLike {
    /// Drives `socket`, registered with `closing` so that closing the client
    /// can wake a call blocked inside it.
    pub fn new(socket: Py<PyAny>, closing: &Arc<CloseSignal>) -> Result<Self, ClientError> {
        let host = Arc::new(HostSocket {
            socket,
            in_method: AtomicBool::new(false),
        });
        let abort: Arc<dyn Abort> = host.clone();
        let registered = closing.register(Arc::downgrade(&abort));
        let socket_like = PySocketLike {
            host,
            closing: Arc::clone(closing),
            tls_peer: None,
            tls_buffer: None,
        };
        match registered {
            Ok(()) => Ok(socket_like),
            Err(e) => {
                let mut socket_like = socket_like;
                socket_like.close();
                Err(e)
            }
        }
    }

    /// Marks this as the client's own TLS connection to `address` (an
    /// `ssl.SSLSocket`, which has `recv_into`).
    pub fn speaking_tls_with(mut self, py: Python<'_>, address: String) -> Self {
        self.tls_peer = Some(address);
        self.tls_buffer = Some(PyByteArray::new(py, &[0; TLS_RECORD]).unbind());
        self
    }

    /// Marks a call as inside the object's methods, unless the client is
    /// closed. The flag is set before the signal is read, and `close()` sets
    /// the signal before it reads the flag: either this sees the close, or
    /// `close()` sees the call and shuts the object down.
    fn enter(&self) -> Result<InMethod<'_>, ClientError> {
        self.host.in_method.store(true, Ordering::SeqCst);
        let guard = InMethod(&self.host.in_method);
        if self.closing.is_closed() {
            return Err(ClientError::ClosedDuringCall);
        }
        Ok(guard)
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

/// OSErrors are network failures (`ssl` errors described as TLS failures);
/// anything else the object raises is the caller's own exception and
/// propagates unchanged.
fn failure(py: Python<'_>, error: PyErr, tls_peer: Option<&str>) -> ClientError {
    if let Some(tls) = super::tls::failure(py, &error, tls_peer) {
        tls
    } else if is_timeout(py, &error) {
        ClientError::Timeout { after: None }
    } else if error.is_instance_of::<PyOSError>(py) {
        ClientError::Socket(Box::new(error))
    } else {
        foreign(error)
    }
}

impl Transport for PySocketLike {
    fn send_all(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let _in_method = self.enter()?;
        Python::attach(|py| {
            self.host
                .socket
                .bind(py)
                .call_method1(intern!(py, "sendall"), (PyBytes::new(py, data),))
                .map(drop)
                .map_err(|e| failure(py, e, self.tls_peer.as_deref()))
        })
    }

    fn receive(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<usize, ClientError> {
        let _in_method = self.enter()?;
        Python::attach(|py| {
            if let Some(buffer) = &self.tls_buffer {
                let buffer = buffer.bind(py);
                let received: usize = self
                    .host
                    .socket
                    .bind(py)
                    .call_method1(intern!(py, "recv_into"), (buffer,))
                    .and_then(|n| n.extract())
                    .map_err(|e| failure(py, e, self.tls_peer.as_deref()))?;
                // SAFETY: no Python code runs while the slice is borrowed,
                // so nothing can resize or free the buffer meanwhile.
                let data = unsafe { buffer.as_bytes() };
                sink(&data[..received.min(data.len())]);
                return Ok(received);
            }
            let chunk = self
                .host
                .socket
                .bind(py)
                .call_method1(intern!(py, "recv"), (RECV_SIZE,))
                .map_err(|e| failure(py, e, self.tls_peer.as_deref()))?;
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

    fn close(&mut self) {
        Python::attach(|py| call_quietly(self.host.socket.bind(py), intern!(py, "close"), ()));
    }
}
