//! The blocking client: a session owns one connection and drives requests
//! through a transport; the call lock serializes callers that share it; a
//! shared session adds closing from any thread (the close signal aborts
//! calls in flight).
//! Everything here speaks the protocol through `crate::protocol` only.

pub mod call_lock;
pub mod closing;
pub mod error;
pub mod session;
pub mod shared;
pub mod transport;
