//! The client's TLS with rustls (ring, TLS 1.2 and 1.3, as the server's):
//! the configuration (whom to trust, which certificate to present), the
//! connection state one connection speaks through, and what a failure means
//! in words. No I/O here: the blocking transport (`transport::tls`) and
//! the asyncio glue each move the bytes their own way.

mod config;
mod describe;
mod stream;
mod verifier;

pub use config::ClientTls;
pub use describe::describe;
pub use stream::TlsStream;
