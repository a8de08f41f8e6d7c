//! Rust core of the `client` Python package, in four parts that depend on
//! each other one way only:
//!
//! - `protocol`: the sans-IO codec (framing, requests, replies, number text);
//! - `client`: the blocking client (session, transports, call lock, errors);
//! - `server`: the embedded server (connections, commands, store, journal);
//! - `python` (behind the `python` feature): the pyo3 binding exposed as
//!   `client._native`, which only converts types and errors.

pub mod client;
pub mod protocol;
pub mod server;

#[cfg(feature = "python")]
mod python;
