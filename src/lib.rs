//! Rust core of the `client` Python package: a sans-IO codec for the metrics
//! protocol, blocking transports, a session that owns one connection, and
//! (behind the `python` feature) the pyo3 bindings exposed as `client._native`.

pub mod call_lock;
pub mod error;
pub mod protocol;
pub mod server;
pub mod session;
pub mod transport;

#[cfg(feature = "python")]
mod python;
