//! `Server(...)`'s keyword arguments, checked in the order they are
//! documented and turned into the server's `Config`. Kept apart from the
//! class, whose file holds its documentation and methods.

use std::path::PathBuf;

use pyo3::prelude::*;

use super::options;
use crate::python::arguments;
use crate::server::{Config, Limits};

/// The arguments as Python gave them; `None` where not given.
pub(super) struct ServerArguments<'a, 'py> {
    pub host: String,
    pub port: Option<&'a Bound<'py, PyAny>>,
    pub data: Option<PathBuf>,
    pub fsync: Option<&'a Bound<'py, PyAny>>,
    pub max_memory: Option<&'a Bound<'py, PyAny>>,
    pub max_connections: Option<&'a Bound<'py, PyAny>>,
    pub idle_timeout: Option<&'a Bound<'py, PyAny>>,
    pub max_request_buffers: Option<&'a Bound<'py, PyAny>>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub insecure: bool,
    pub store: Option<&'a Bound<'py, PyAny>>,
    pub graphite_port: Option<&'a Bound<'py, PyAny>>,
    pub http_port: Option<&'a Bound<'py, PyAny>>,
    pub retention: Option<&'a Bound<'py, PyAny>>,
    pub head_window: Option<&'a Bound<'py, PyAny>>,
}

impl ServerArguments<'_, '_> {
    /// The server's configuration, without a log sink (the caller picks
    /// where the log goes); the first argument that is wrong raises.
    pub fn config(self) -> PyResult<Config> {
        let storage = storage_settings(self.retention, self.head_window, self.data.is_some())?;
        let port = self
            .port
            .map(options::listen_port)
            .transpose()?
            .unwrap_or(0);
        let graphite_port = self
            .graphite_port
            .filter(|v| !v.is_none())
            .map(|v| options::named_port(v, "graphite_port"))
            .transpose()?;
        let http_port = self
            .http_port
            .filter(|v| !v.is_none())
            .map(|v| options::named_port(v, "http_port"))
            .transpose()?;
        let tls = options::tls_files(self.tls_cert, self.tls_key, self.tls_client_ca)?;
        let store = self
            .store
            .filter(|v| !v.is_none())
            .map(|v| options::store(v, self.data.is_some()))
            .transpose()?;
        let fsync = self.fsync.filter(|v| !v.is_none());
        let max_memory = self.max_memory.filter(|v| !v.is_none());
        if store.is_some() {
            // Settings of the embedded store would be silently ignored by a
            // gateway: a user asking for fsync=always must not believe it.
            options::embedded_only("fsync", fsync.is_some())?;
            options::embedded_only("max_memory", max_memory.is_some())?;
            options::graphite_needs_embedded("graphite_port", graphite_port.is_some())?;
            options::graphite_needs_embedded("http_port", http_port.is_some())?;
        }
        let fsync = self
            .fsync
            .map(options::fsync)
            .transpose()?
            .unwrap_or_default();
        let defaults = Limits::default();
        let limits = Limits {
            max_memory: max_memory
                .map(|v| arguments::size(v, "max_memory"))
                .transpose()?,
            max_connections: self
                .max_connections
                .filter(|v| !v.is_none())
                .map(|v| arguments::count(v, "max_connections"))
                .transpose()?
                .unwrap_or(defaults.max_connections),
            idle_timeout: arguments::timeout(self.idle_timeout, "idle_timeout")?,
            max_request_buffers: self
                .max_request_buffers
                .filter(|v| !v.is_none())
                .map(|v| arguments::size(v, "max_request_buffers"))
                .transpose()?
                .unwrap_or(defaults.max_request_buffers),
            ..defaults
        };
        Ok(Config {
            host: self.host,
            port,
            graphite_port,
            http_port,
            data: self.data,
            fsync,
            limits,
            tls,
            insecure: self.insecure,
            store,
            storage,
            ..Config::default()
        })
    }
}

/// `retention` and `head_window`: the head window only means something
/// with a data file (without one everything is in memory); the retention
/// holds for any server.
fn storage_settings(
    retention: Option<&Bound<'_, PyAny>>,
    head_window: Option<&Bound<'_, PyAny>>,
    has_data: bool,
) -> PyResult<crate::server::engine::Storage> {
    let mut storage = crate::server::engine::Storage::default();
    if let Some(retention) = retention.filter(|v| !v.is_none()) {
        let span = options::span(retention, "retention")?;
        if span.is_zero() {
            return Err(
                crate::protocol::ArgumentError::value("retention", "must be more than 0").into(),
            );
        }
        storage.retention = Some(span);
    }
    if let Some(window) = head_window.filter(|v| !v.is_none()) {
        if !has_data {
            return Err(crate::protocol::ArgumentError::value(
                "head_window",
                "needs data: without a data file every point stays in memory",
            )
            .into());
        }
        storage.head_window = options::span(window, "head_window")?;
    }
    // Look for points to seal every six-hundredth of the window, between a
    // second and a minute (12 s for the default two hours): looking is a
    // comparison under the lock, sealing happens only when due.
    let secs = (storage.head_window.as_secs() / 600).clamp(1, 60);
    storage.seal_interval = std::time::Duration::from_secs(secs);
    Ok(storage)
}
