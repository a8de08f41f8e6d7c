//! The blocking client: a session owns one connection and drives requests
//! through a transport; the call lock serializes callers that share it.
//! Everything here speaks the protocol through `crate::protocol` only.

pub mod call_lock;
pub mod error;
pub mod session;
pub mod transport;
