//! Blocking byte transports under the protocol core, and the one routine that
//! drives a request through any of them.

mod exchange;
mod native;
mod socket;
mod tls;

pub use exchange::{exchange, read_replies, read_reply, Transport};
pub use native::{Framing, NativeSocket, Plain};
pub use socket::{WaitHook, WaitingSocket, WAIT_SLICE};
pub use tls::TlsSocket;
