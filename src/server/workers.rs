//! The worker threads: each runs a single-threaded tokio runtime (its own
//! epoll set) until told to stop. The first also runs the accept loop. Why
//! this shape rather than tokio's multi-thread runtime: benches/README.md.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};

use super::connection;
use super::error::ServerError;
use super::listener::{accept_loop, ConnectionSlot};
use super::shared::Shared;

/// The worker threads, each running a single-threaded runtime until told
/// to stop.
pub(super) struct Workers {
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

/// Connections accepted by the first worker, on their way to another one.
pub(super) type Handoff = mpsc::UnboundedSender<(std::net::TcpStream, ConnectionSlot)>;

impl Workers {
    /// Starts one thread per runtime; the first accepts on `listener`.
    pub(super) fn start(
        runtimes: Vec<Runtime>,
        listener: TcpListener,
        shared: &Arc<Shared>,
    ) -> Result<Workers, ServerError> {
        let (stop, _) = watch::channel(false);
        let mut workers = Workers {
            stop,
            threads: Vec::with_capacity(runtimes.len()),
        };
        let mut handoffs = Vec::with_capacity(runtimes.len());
        let mut runtimes = runtimes.into_iter();
        let first = runtimes.next().expect("at least one worker");
        for runtime in runtimes {
            let (handoff, mut arrivals) = mpsc::unbounded_channel();
            handoffs.push(handoff);
            runtime.spawn(async move {
                while let Some((stream, slot)) = arrivals.recv().await {
                    tokio::spawn(connection::serve(stream, slot));
                }
            });
            // On failure `workers` drops here and stops the threads started.
            workers.spawn(runtime)?;
        }
        first.spawn(accept_loop(listener, Arc::clone(shared), handoffs));
        workers.spawn(first)?;
        Ok(workers)
    }

    fn spawn(&mut self, runtime: Runtime) -> Result<(), ServerError> {
        let mut stop = self.stop.subscribe();
        let thread = std::thread::Builder::new()
            .name("metrics-server".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stop.wait_for(|&stop| stop).await;
                });
                // Drops every task of this worker, closing its connections.
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .map_err(ServerError::Threads)?;
        self.threads.push(thread);
        Ok(())
    }

    /// Stops every worker and waits for them.
    pub(super) fn stop(mut self) {
        self.stop.send_replace(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
