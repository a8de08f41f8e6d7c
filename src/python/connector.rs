//! Opening connections the way the course's clients do, through
//! `socket.create_connection`, looked up at call time so that tests can
//! patch it. A plain `socket.socket` is then taken over by Rust (I/O without
//! the GIL); anything else is driven through its own methods.

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyOSError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use super::errors::foreign;
use super::socket_like::{is_timeout, PySocketLike};
use super::tls;
use super::tls_mode::TlsMode;
use crate::client::closing::CloseSignal;
use crate::client::error::ClientError;
use crate::client::session::Connector;
use crate::client::transport::{NativeSocket, TlsSocket, Transport};
use crate::protocol::host_port;

/// `socket.socket` as it was when `client` was imported: a test may patch the
/// module attribute later, and a patched class must not be taken over.
static SOCKET_CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

pub fn capture_socket_class(py: Python<'_>) -> PyResult<()> {
    SOCKET_CLASS.import(py, "socket", "socket").map(drop)
}

pub enum AnyTransport {
    Native(NativeSocket),
    /// TLS in the Rust core (rustls).
    Tls(Box<NativeSocket<TlsSocket>>),
    Python(PySocketLike),
}

/// Runs `$call` on whichever transport `$self` holds.
macro_rules! each {
    ($self:expr, $t:ident => $call:expr) => {
        match $self {
            AnyTransport::Native($t) => $call,
            AnyTransport::Tls($t) => $call,
            AnyTransport::Python($t) => $call,
        }
    };
}

impl Transport for AnyTransport {
    fn send_all(&mut self, data: &[u8]) -> Result<(), ClientError> {
        each!(self, t => t.send_all(data))
    }

    fn receive(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<usize, ClientError> {
        each!(self, t => t.receive(sink))
    }

    fn set_deadline(&mut self, deadline: Option<std::time::Instant>) {
        each!(self, t => t.set_deadline(deadline))
    }

    fn is_reusable(&mut self) -> bool {
        each!(self, t => t.is_reusable())
    }

    fn close(&mut self) {
        each!(self, t => t.close())
    }
}

/// Opens connections to one of the client's server addresses: the one that
/// worked last, else the next ones in turn, so a client given several
/// servers moves on when one is down. Clones (one per pooled session) share
/// which address worked last.
#[derive(Clone)]
pub struct PyConnector {
    pub addresses: Arc<[(String, u16)]>,
    pub timeout: Option<Duration>,
    preferred: Arc<AtomicUsize>,
    /// Which TLS every connection speaks, if any.
    tls: TlsMode,
}

impl PyConnector {
    pub fn new(addresses: Vec<(String, u16)>, timeout: Option<Duration>, tls: TlsMode) -> Self {
        PyConnector {
            addresses: addresses.into(),
            timeout,
            preferred: Arc::new(AtomicUsize::new(0)),
            tls,
        }
    }

    /// Tries every address once, starting with the one that worked last;
    /// when all fail, the error is the last address's.
    fn open_any(
        &self,
        py: Python<'_>,
        closing: &Arc<CloseSignal>,
    ) -> Result<AnyTransport, ClientError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let count = self.addresses.len();
        let mut last_error = None;
        for index in (0..count).map(|i| (first + i) % count) {
            let (host, port) = &self.addresses[index];
            match self.open(py, host, *port, closing) {
                Ok(transport) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(transport);
                }
                Err(error @ ClientError::Connect { .. }) => last_error = Some(error),
                Err(other) => return Err(other),
            }
        }
        Err(last_error.expect("a client has at least one address"))
    }

    fn open(
        &self,
        py: Python<'_>,
        host: &str,
        port: u16,
        closing: &Arc<CloseSignal>,
    ) -> Result<AnyTransport, ClientError> {
        let connect_error = |error: PyErr| ClientError::Connect {
            address: host_port(host, port),
            timed_out: is_timeout(py, &error),
            source: Box::new(error),
        };
        let create_connection = py
            .import(intern!(py, "socket"))
            .and_then(|m| m.getattr(intern!(py, "create_connection")))
            .map_err(foreign)?;
        let timeout = self.timeout.map(|t| t.as_secs_f64());
        let socket = create_connection
            .call1(((host, port), timeout))
            .map_err(|e| {
                if e.is_instance_of::<PyOSError>(py) {
                    connect_error(e)
                } else {
                    foreign(e)
                }
            })?;
        let address = host_port(host, port);
        if let TlsMode::Python(context) = &self.tls {
            let wrapped = tls::wrap(context.bind(py), socket, host, &address)?;
            return PySocketLike::new(wrapped.unbind(), closing)
                .map(|s| AnyTransport::Python(s.speaking_tls_with(py, address)));
        }
        let socket_class = SOCKET_CLASS
            .import(py, "socket", "socket")
            .map_err(foreign)?;
        if !socket.get_type().is(socket_class) {
            if let TlsMode::Native(_) = &self.tls {
                let type_name = socket.get_type().name().map_err(foreign)?;
                let message = format!(
                    "TLS needs a socket.socket from socket.create_connection, not {type_name}"
                );
                return Err(foreign(pyo3::exceptions::PyTypeError::new_err(message)));
            }
            return PySocketLike::new(socket.unbind(), closing).map(AnyTransport::Python);
        }
        // `detach()` hands us the descriptor; the Python object no longer
        // owns it and will not close it.
        let stream = take_over(&socket).map_err(foreign)?;
        let on_wait = Box::new(deliver_signals);
        match &self.tls {
            TlsMode::Native(config) => {
                // The handshake waits for the server: without the GIL.
                let timeout = self.timeout;
                let tls = py.detach(|| {
                    NativeSocket::handshake(
                        stream, timeout, on_wait, closing, config, host, address,
                    )
                })?;
                Ok(AnyTransport::Tls(Box::new(tls)))
            }
            _ => {
                let native = NativeSocket::new(stream, self.timeout, on_wait, closing)?;
                Ok(AnyTransport::Native(native))
            }
        }
    }
}

impl Connector for PyConnector {
    type Transport = AnyTransport;

    fn connect(&mut self, closing: &Arc<CloseSignal>) -> Result<AnyTransport, ClientError> {
        Python::attach(|py| self.open_any(py, closing))
    }
}

/// Runs Python's signal handlers (only effective on the main thread), so a
/// Ctrl-C during a long wait raises KeyboardInterrupt promptly.
pub fn deliver_signals() -> Result<(), ClientError> {
    Python::attach(|py| py.check_signals()).map_err(foreign)
}

fn take_over(socket: &Bound<'_, PyAny>) -> PyResult<TcpStream> {
    use std::os::fd::{FromRawFd, RawFd};
    let fd: RawFd = socket
        .call_method0(intern!(socket.py(), "detach"))?
        .extract()?;
    // SAFETY: `detach()` transferred ownership of this open TCP socket
    // descriptor to us; nothing else will close it.
    Ok(unsafe { TcpStream::from_raw_fd(fd) })
}
