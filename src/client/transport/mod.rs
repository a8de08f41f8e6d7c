//! Blocking byte transports under the protocol core, and the one routine that
//! drives a request through any of them.

mod exchange;
mod native;

pub use exchange::{exchange, read_replies, read_reply, Transport};
pub use native::{NativeSocket, WaitHook, WAIT_SLICE};
