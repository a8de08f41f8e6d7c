//! Socket I/O for connections: non-blocking reads and writes on an
//! `AsyncFd`, bounded waits, and the linger that lets a client read a last
//! error before the connection closes. Nothing here knows the protocol.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// After refusing an over-long line, input is drained (so the client reads
/// the error instead of a reset) for at most this long or this many bytes.
pub(super) const LINGER: Duration = Duration::from_secs(1);
pub(super) const LINGER_BYTES: usize = 16 << 20;

/// Runs `work` unless `stop` completes first (then `work` is dropped and
/// the result is `None`).
pub(super) async fn unless<T>(
    work: impl Future<Output = T>,
    stop: impl Future<Output = ()>,
) -> Option<T> {
    let mut work = pin!(work);
    let mut stop = pin!(stop);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        stop.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// `io`, failing with `TimedOut` when it makes no progress for `idle`.
pub(super) async fn within<T>(
    idle: Option<Duration>,
    io: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match idle {
        None => io.await,
        Some(limit) => tokio::time::timeout(limit, io)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "idle"))),
    }
}

/// After the last reply: stops sending, then drains input for a moment (at
/// most `LINGER`, `LINGER_BYTES`), so the client reads the reply instead of
/// a reset.
pub(super) async fn linger(sock: &Socket, buf: &mut [u8]) {
    let _ = sock.get_ref().shutdown(std::net::Shutdown::Write);
    let _ = tokio::time::timeout(LINGER, async {
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match read(sock, buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The connection's socket. `AsyncFd` rather than tokio's `TcpStream` so
/// that a short read can clear readiness: the next wait then goes straight
/// to epoll instead of first failing a `recv` with EAGAIN, saving one system
/// call per request for request-reply clients.
pub(super) type Socket = AsyncFd<std::net::TcpStream>;

/// Reads what is available, waiting for at least one byte or EOF.
pub(super) async fn read(sock: &Socket, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = sock.readable().await?;
        match guard.try_io(|s| s.get_ref().read(buf)) {
            Ok(Ok(n)) => {
                // Fewer bytes than asked for: the receive queue was drained
                // at that instant, and data arriving later raises a new
                // edge (with a new tick, so this clear cannot swallow it).
                // Closed states are never cleared.
                if n > 0 && n < buf.len() {
                    guard.clear_ready();
                }
                return Ok(n);
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
}

/// Reads what is available without waiting (`WouldBlock` if nothing is).
pub(super) fn read_now(sock: &Socket, buf: &mut [u8]) -> io::Result<usize> {
    sock.try_io(Interest::READABLE, |mut s| s.read(buf))
}

/// Writes all of `buf`, failing when the peer takes nothing for `idle`.
pub(super) async fn write_all(
    sock: &Socket,
    mut buf: &[u8],
    idle: Option<Duration>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match sock.try_io(Interest::WRITABLE, |mut s| s.write(buf)) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut guard = within(idle, sock.writable()).await?;
                match guard.try_io(|s| s.get_ref().write(buf)) {
                    Ok(Ok(n)) => buf = &buf[n..],
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => {}
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
