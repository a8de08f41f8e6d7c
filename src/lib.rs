//! Rust core of the `client` Python package, in five parts that depend on
//! each other one way only:
//!
//! - `query`: what a query means (globs, ranges, rollups), without I/O;
//! - `protocol`: the sans-IO codec (framing, requests, replies, number text);
//! - `client`: the blocking client (session, transports, call lock, errors);
//! - `server`: the embedded server (connections, commands, store, journal);
//! - `python` (behind the `python` feature): the pyo3 binding exposed as
//!   `client._native`, which only converts types and errors.

// Linux and macOS only: the transports and the server rely on POSIX sockets,
// advisory file locks and descriptor limits (through rustix). Stop here
// rather than fail later on something less clear.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
compile_error!(
    "metrics-client supports Linux and macOS only; this target is neither \
     (install a published wheel on a supported platform, or see the README)"
);

pub mod client;
pub mod pem;
pub mod protocol;
pub mod query;
pub mod server;

#[cfg(feature = "python")]
mod python;
