//! The Rust core's TLS for `AsyncClient`: asyncio moves the bytes, these
//! objects turn them into plaintext and back (`client._async_tls`), with
//! the same rustls configuration, checks and error words as `Client`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::arguments;
use super::tls_mode::{TlsFiles, TlsMode};
use crate::client::error::ClientError;
use crate::client::tls::{ClientTls, TlsStream};

/// A client's native TLS configuration (whom it trusts, what it presents).
#[pyclass(module = "client", name = "TlsConfig", frozen)]
pub struct TlsConfig {
    tls: ClientTls,
}

#[pymethods]
impl TlsConfig {
    /// A new connection's TLS state, checking the server's certificate
    /// against ``host``; ``address`` (``host:port``) names it in errors.
    fn session(&self, host: &str, address: String) -> PyResult<TlsSession> {
        let stream = TlsStream::new(&self.tls, host, address)?;
        Ok(TlsSession { stream })
    }
}

/// One connection's TLS state: ``feed`` what came off the socket,
/// ``encrypt`` what goes on it, write ``outgoing`` when it is not empty.
#[pyclass(module = "client", name = "TlsSession")]
pub struct TlsSession {
    stream: TlsStream,
}

#[pymethods]
impl TlsSession {
    /// TLS bytes waiting to be written (the handshake's, alerts).
    fn outgoing<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::new();
        self.stream.outgoing(&mut out)?;
        Ok(PyBytes::new(py, &out))
    }

    /// The TLS records for ``data`` (bytes, bytearray or memoryview).
    fn encrypt<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = arguments::bytes_like(data, "data").map_err(ClientError::from)?;
        let mut out = Vec::with_capacity(data.len() + 64);
        self.stream.encrypt(&data, &mut out)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Takes bytes read off the socket (``b""``: it reached its end);
    /// returns ``(plaintext, outgoing)``. A TLS failure raises the
    /// ClientSocketError ``Client`` raises for it.
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let mut plaintext = Vec::new();
        self.stream
            .feed(data, &mut |chunk| plaintext.extend_from_slice(chunk))?;
        let mut out = Vec::new();
        self.stream.outgoing(&mut out)?;
        Ok((PyBytes::new(py, &plaintext), PyBytes::new(py, &out)))
    }

    /// Whether the handshake is still under way.
    #[getter]
    fn handshaking(&self) -> bool {
        self.stream.is_handshaking()
    }
}

/// What ``AsyncClient``'s ``ssl`` and ``tls_*`` arguments ask for, checked
/// as ``Client`` checks them: ``None`` (plain text), a ``TlsConfig``
/// (native TLS) or the caller's ``ssl.SSLContext`` (Python's ``ssl``).
#[pyfunction]
#[pyo3(signature = (ssl=None, tls_ca=None, tls_cert=None, tls_key=None))]
pub fn tls_mode(
    py: Python<'_>,
    ssl: Option<&Bound<'_, PyAny>>,
    tls_ca: Option<std::path::PathBuf>,
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
) -> PyResult<Py<PyAny>> {
    let files = TlsFiles {
        ca: tls_ca,
        cert: tls_cert,
        key: tls_key,
    };
    Ok(match TlsMode::new(ssl, files)? {
        TlsMode::Plain => py.None(),
        TlsMode::Native(tls) => Py::new(py, TlsConfig { tls })?.into_any(),
        TlsMode::Python(context) => context.clone_ref(py),
    })
}
