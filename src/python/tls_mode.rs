//! Which TLS a client speaks, from its `ssl`, `tls_ca`, `tls_cert` and
//! `tls_key` arguments: none, rustls in the Rust core (`ssl=True` or any
//! `tls_*` file: the fast path), or the caller's own `ssl.SSLContext`
//! through Python's `ssl` module (kept working, slower: every record goes
//! through Python).

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBool;

use super::tls;
use crate::client::error::ClientError;
use crate::client::tls::ClientTls;
use crate::protocol::ArgumentError;

#[derive(Clone)]
pub enum TlsMode {
    Plain,
    Native(ClientTls),
    Python(std::sync::Arc<Py<PyAny>>),
}

/// The `tls_*` files of a client (paths, as given).
#[derive(Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// The first file argument given, for errors about it.
    fn first_given(&self) -> Option<&'static str> {
        [
            ("tls_ca", &self.ca),
            ("tls_cert", &self.cert),
            ("tls_key", &self.key),
        ]
        .into_iter()
        .find_map(|(name, path)| path.as_ref().map(|_| name))
    }
}

impl TlsMode {
    /// Checks the arguments and, for the native path, reads the files (a
    /// file that cannot be used is a `ClientValueError` naming it).
    pub fn new(ssl: Option<&Bound<'_, PyAny>>, files: TlsFiles) -> PyResult<Self> {
        let ssl = ssl.filter(|s| !s.is_none());
        let flag = match ssl {
            None => None,
            Some(s) => match s.cast::<PyBool>() {
                Ok(flag) => Some(flag.is_true()),
                Err(_) => {
                    let context = tls::python_context(s)?;
                    if let Some(name) = files.first_given() {
                        let reason = "cannot be combined with an ssl.SSLContext \
                                      (load it into the context, or pass ssl=True)";
                        return Err(ClientError::from(ArgumentError::value(name, reason)).into());
                    }
                    return Ok(TlsMode::Python(std::sync::Arc::new(context)));
                }
            },
        };
        match (flag, files.first_given()) {
            (None | Some(false), None) => Ok(TlsMode::Plain),
            (Some(false), Some(name)) => {
                let reason = "asks for TLS, but ssl is False";
                Err(ClientError::from(ArgumentError::value(name, reason)).into())
            }
            (Some(true), _) | (None, Some(_)) => {
                let tls = ClientTls::new(
                    files.ca.as_deref(),
                    files.cert.as_deref(),
                    files.key.as_deref(),
                )?;
                Ok(TlsMode::Native(tls))
            }
        }
    }
}
