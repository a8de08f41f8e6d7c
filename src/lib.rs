//! Rust core of the `client` Python package: a sans-IO codec for the metrics
//! protocol, blocking transports, and (behind the `python` feature) the pyo3
//! bindings that expose them as `client._native`.

pub mod protocol;
