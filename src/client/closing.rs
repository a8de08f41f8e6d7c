//! Closing a client from any thread, even while calls are blocked on its
//! connections.
//!
//! `close()` must never wait for a call in flight (it may be blocked on a
//! silent server with no timeout), so it cannot take the call lock. Instead
//! every connection registers itself here when it is opened, and `close()`
//! marks the client closed and aborts every registered connection: a native
//! socket is shut down (shutdown(2) wakes a thread blocked reading or
//! writing it at once), other transports do what they can. A call that then
//! fails reports that the client was closed during it.
//!
//! Connections are held as `Weak` references: a registration never keeps a
//! connection open, and aborting upgrades the reference first, so the
//! descriptor stays open (owned by the `Arc`) while it is being shut down.
//! That rules out the descriptor-reuse race of shutting down a raw fd that
//! its owner has meanwhile closed and the process reused for something else.
//! One signal can serve any number of connections (a pool shares one).
//!
//! After `fork()` a child shares its parent's sockets: shutting one down
//! would break the parent's connection too. So `close()` aborts only the
//! connections this process registered; a child closing an inherited client
//! merely stops using the parent's connections (the session drops its copy
//! of each descriptor).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::client::error::ClientError;

/// Something `close()` can wake up: called from the closing thread while
/// another thread may be blocked using it. Must not block for long and
/// must tolerate being called at any time, even after the connection
/// finished its call.
pub trait Abort: Send + Sync {
    fn abort(&self);
}

impl Abort for std::net::TcpStream {
    fn abort(&self) {
        // Wakes a blocked read (it returns 0) or write (EPIPE). The error of
        // a socket that is already shut down or reset does not matter here.
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

#[derive(Default)]
pub struct CloseSignal {
    /// Set once, under `connections`' lock, and never cleared. Read without
    /// the lock on every wait slice.
    closed: AtomicBool,
    connections: Mutex<Vec<Registered>>,
}

struct Registered {
    /// The process that opened the connection.
    pid: u32,
    connection: Weak<dyn Abort>,
}

impl CloseSignal {
    pub fn new() -> Arc<Self> {
        Arc::new(CloseSignal::default())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Registers a connection for `close()` to abort. Fails when the client
    /// is already closed: the caller must then not use the connection.
    pub fn register(&self, connection: Weak<dyn Abort>) -> Result<(), ClientError> {
        let mut connections = self.connections();
        // Checked under the lock `close()` sets the flag under: either this
        // registration is seen by `close()`, or this sees the flag.
        if self.is_closed() {
            return Err(ClientError::ClosedByUser);
        }
        // Forget connections that are gone, so reconnecting for a long time
        // keeps the list as short as the connections alive.
        connections.retain(|c| c.connection.strong_count() > 0);
        connections.push(Registered {
            pid: std::process::id(),
            connection,
        });
        Ok(())
    }

    /// Marks the client closed and aborts every connection this process
    /// registered that is still open. Returns at once; calling it again
    /// does nothing more.
    pub fn close(&self) {
        let pid = std::process::id();
        let alive: Vec<Arc<dyn Abort>> = {
            let mut connections = self.connections();
            self.closed.store(true, Ordering::SeqCst);
            connections
                .drain(..)
                .filter(|c| c.pid == pid)
                .filter_map(|c| c.connection.upgrade())
                .collect()
        };
        // Outside the lock: aborting may need other locks (a Python object
        // needs the GIL), and a thread holding one of those may be waiting
        // to register a connection.
        for connection in alive {
            connection.abort();
        }
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Vec<Registered>> {
        // Nothing that can panic runs under this lock.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Abort for Counter {
        fn abort(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn weak(counter: &Arc<Counter>) -> Weak<dyn Abort> {
        let counter: Arc<dyn Abort> = counter.clone();
        Arc::downgrade(&counter)
    }

    #[test]
    fn close_aborts_the_connections_alive_once() {
        let signal = CloseSignal::new();
        let (a, b) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
        signal.register(weak(&a)).unwrap();
        signal.register(weak(&b)).unwrap();
        drop(b);
        assert!(!signal.is_closed());
        signal.close();
        signal.close();
        assert!(signal.is_closed());
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn registering_after_close_fails() {
        let signal = CloseSignal::new();
        signal.close();
        let a = Arc::new(Counter::default());
        assert!(matches!(
            signal.register(weak(&a)),
            Err(ClientError::ClosedByUser)
        ));
        assert_eq!(a.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn connections_of_another_process_are_not_aborted() {
        // What a child sees after fork(): its parent's registrations.
        let signal = CloseSignal::new();
        let a = Arc::new(Counter::default());
        signal.register(weak(&a)).unwrap();
        signal.connections()[0].pid = std::process::id().wrapping_add(1);
        signal.close();
        assert!(signal.is_closed());
        assert_eq!(a.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn connections_that_are_gone_are_forgotten() {
        let signal = CloseSignal::new();
        for _ in 0..1000 {
            let a = Arc::new(Counter::default());
            signal.register(weak(&a)).unwrap();
        }
        assert_eq!(signal.connections().len(), 1);
    }

    #[test]
    fn close_wakes_a_thread_blocked_reading_a_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream =
            Arc::new(std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap());
        let (_server, _) = listener.accept().unwrap();
        let signal = CloseSignal::new();
        let as_abort: Arc<dyn Abort> = stream.clone();
        signal.register(Arc::downgrade(&as_abort)).unwrap();
        drop(as_abort);
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buffer = [0u8; 16];
            (&*stream).read(&mut buffer)
        });
        // Whether the reader is already blocked or not, shutdown makes its
        // read return end-of-stream.
        signal.close();
        let read = reader.join().unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}
