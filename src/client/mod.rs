//! The blocking client: a session owns one connection and drives requests
//! through a transport; the call lock serializes callers on a session; a
//! shared session is a pool of sessions for threads, with closing from any
//! thread (the close signal aborts calls in flight) and retries; `query`
//! runs queries, falling back to a plain get on servers without them.
//! Everything here speaks the protocol through `crate::protocol` only.

pub mod call_lock;
pub mod closing;
pub mod error;
pub mod query;
pub mod requests;
pub mod retry;
pub mod session;
pub mod shared;
pub mod tls;
pub mod transport;
