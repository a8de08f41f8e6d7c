//! Raw access to a client's connection, for tests and diagnostics:
//! `client.connection.sendall(data)` writes bytes as they are and
//! `client._read()` reads one reply, both on the first connection and never
//! retried. (`_read` and the `connection` getter stay in `Client`'s one
//! `#[pymethods]` block.)

use pyo3::prelude::*;

use super::Client;
use crate::client::error::ClientError;
use crate::client::session::Session;
use crate::python::arguments;
use crate::python::connector::{deliver_signals, PyConnector};

impl Client {
    /// `run` on the first connection, never retried: raw bytes written with
    /// `connection.sendall` are answered there, for `_read`.
    pub(super) fn run_raw<R: Send>(
        &self,
        py: Python<'_>,
        call: impl FnOnce(&mut Session<PyConnector>) -> Result<R, ClientError> + Send,
    ) -> PyResult<R> {
        py.detach(|| self.session.call_first(&mut deliver_signals, call))
            .map_err(PyErr::from)
    }
}

/// ``client.connection``: writes raw bytes on the client's connection.
#[pyclass(module = "client", name = "Connection", frozen)]
pub struct Connection {
    pub(super) client: Py<Client>,
}

#[pymethods]
impl Connection {
    /// Sends ``data`` (bytes, bytearray or memoryview) unchanged,
    /// connecting first if needed.
    fn sendall(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = arguments::bytes_like(data, "data").map_err(ClientError::from)?;
        self.client
            .get()
            .run_raw(py, |session| session.send_raw(&data))
    }

    fn __repr__(&self) -> String {
        format!(
            "<client.Connection of {}>",
            self.client.get().addresses_text()
        )
    }
}
