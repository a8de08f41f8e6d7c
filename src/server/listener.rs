//! Listening and accepting: binding the address, lifting the descriptor
//! limit, and handing accepted connections to the workers round-robin.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

use super::connection;
use super::error::ServerError;
use super::log::Level;
use super::shared::Shared;
use super::workers::Handoff;
use super::{PROTECTED_MODE, TOO_MANY_CONNECTIONS};
use crate::protocol::host_port;

/// Refused connections lingering at once to deliver their error; beyond
/// this, a refused connection gets its error without lingering.
const MAX_REFUSING: usize = 256;

pub(super) fn bind(host: &str, port: u16) -> Result<TcpListener, ServerError> {
    let address = host_port(host, port);
    let fail = |source| ServerError::Bind {
        address: address.clone(),
        source,
    };
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
    for addr in (host, port).to_socket_addrs().map_err(fail)? {
        let attempt = (|| {
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(1024)
        })();
        match attempt {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(fail(last))
}

/// Lifts the soft limit on open files to the hard limit (as Go's runtime
/// does), so the default 1024 (256 on macOS) does not cap concurrent
/// connections.
pub(super) fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX).min(1 << 20);
    // macOS refuses a soft limit above OPEN_MAX when the hard limit is
    // "unlimited" (as Rust's own runtime and Go's know): try that next.
    for wanted in [hard, hard.min(OPEN_MAX)] {
        if limit.current.is_some_and(|current| current >= wanted) {
            return;
        }
        let raised = Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return;
        }
    }
}

/// macOS's per-process descriptor ceiling for `setrlimit` (`OPEN_MAX`).
const OPEN_MAX: u64 = 10_240;

/// Decrements the count of lingering refusals when one ends.
struct Refusing(Arc<Shared>);

impl Drop for Refusing {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers a connection the server will not serve `error\n<message>`, so
/// its client learns why, and closes it.
fn refuse(stream: tokio::net::TcpStream, shared: &Arc<Shared>, message: &'static str) {
    let Ok(stream) = stream.into_std() else {
        return;
    };
    let lingering = Refusing(Arc::clone(shared));
    if shared.refusing.fetch_add(1, Ordering::Relaxed) < MAX_REFUSING {
        let shared = Arc::clone(shared);
        drop(tokio::spawn(async move {
            connection::refuse(stream, &shared, message).await;
            drop(lingering);
        }));
    } else if shared.tls.is_none() {
        // The send buffer of a new connection is empty: this fits at once.
        let mut reply = Vec::new();
        crate::protocol::encode_error(&mut reply, message);
        let _ = std::io::Write::write(&mut &stream, &reply);
    }
}

/// Decrements the connection count when a connection task ends.
pub(super) struct ConnectionSlot(pub(super) Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    handoffs: Vec<Handoff>,
) {
    // Round-robin over this worker (turn 0) and the others.
    let mut turn: usize = 0;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if shared.protected && !peer.ip().to_canonical().is_loopback() {
                    shared.log(
                        Level::Info,
                        &format!("protected mode: refusing a connection from {peer}"),
                    );
                    refuse(stream, &shared, PROTECTED_MODE);
                    continue;
                }
                let open = shared.connections.fetch_add(1, Ordering::Relaxed);
                let slot = ConnectionSlot(Arc::clone(&shared));
                if open >= shared.limits.max_connections {
                    shared.log(
                        Level::Warning,
                        &format!(
                            "refusing a connection: {} connections open",
                            shared.limits.max_connections
                        ),
                    );
                    drop(slot);
                    refuse(stream, &shared, TOO_MANY_CONNECTIONS);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                // Leaves this worker's epoll set; the worker that serves the
                // connection registers it with its own.
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                turn = (turn + 1) % (handoffs.len() + 1);
                match turn.checked_sub(1) {
                    None => drop(tokio::spawn(connection::serve(stream, slot))),
                    Some(i) => {
                        // A worker that has stopped takes no connections;
                        // the server is closing and dropping this one is right.
                        let _ = handoffs[i].send((stream, slot));
                    }
                }
            }
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning;
                // other errors concern one aborted connection only.
                use rustix::io::Errno;
                let resource = matches!(
                    e.raw_os_error().map(Errno::from_raw_os_error),
                    Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
                );
                if resource {
                    shared.log(Level::Error, &format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
