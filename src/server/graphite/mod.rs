//! Graphite's protocols on the embedded server: plaintext ingest on
//! `graphite_port` (`plaintext` parses lines, `ingest` serves the
//! connections and stores points through the same put path as `put`), and
//! on `http_port` the part of graphite-web's HTTP API that Grafana's
//! Graphite data source reads (`http`): `/render` (`render`), the metric
//! tree (`metrics`) and a dashboard at `/` (`dashboard`). Reads go through
//! the narrow [`Source`] trait (`source`), with Graphite's globs (`glob`).

mod dashboard;
pub mod glob;
pub(super) mod http;
pub(super) mod ingest;
pub mod metrics;
pub mod plaintext;
pub mod render;
pub mod source;

pub use glob::{PathError, PathGlob};
pub use plaintext::{parse_line, LineError};
pub use render::target::{parse_target, Expr, ParseError};
pub use render::time::{parse_offset, parse_time, TimeError};
pub use source::Source;

pub use http::{MAX_BODY, MAX_HEAD};
pub use ingest::MAX_PLAINTEXT_LINE;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;

use super::config::Config;
use super::error::ServerError;
use super::listener::bind;
use super::log::Level;
use super::shared::Shared;

/// The Graphite listeners a server was asked for, bound at start (so a
/// port in use fails the start with the other binding errors), each with
/// the worker whose event loop accepts on it.
#[derive(Debug, Default)]
pub(super) struct Listeners {
    plaintext: Option<(TcpListener, SocketAddr, usize)>,
    http: Option<(TcpListener, SocketAddr, usize)>,
}

impl Listeners {
    /// Binds `graphite_port` and `http_port` on `config.host`. Where there
    /// are several workers each listener goes to a worker of its own, so
    /// ingest, HTTP and the metrics port spread out.
    pub(super) fn bind(config: &Config, runtimes: &[Runtime]) -> Result<Listeners, ServerError> {
        let one = |port: Option<u16>, worker: usize| {
            port.map(|port| {
                let worker = worker % runtimes.len();
                let _context = runtimes[worker].enter();
                let listener = bind(&config.host, port)?;
                let address = listener.local_addr().map_err(|source| ServerError::Bind {
                    address: crate::protocol::host_port(&config.host, port),
                    source,
                })?;
                Ok::<_, ServerError>((listener, address, worker))
            })
            .transpose()
        };
        Ok(Listeners {
            plaintext: one(config.graphite_port, 1)?,
            http: one(config.http_port, 2)?,
        })
    }

    pub(super) fn plaintext_addr(&self) -> Option<SocketAddr> {
        self.plaintext.as_ref().map(|l| l.1)
    }

    pub(super) fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|l| l.1)
    }

    /// Starts accepting (once the runtimes run); returns the plaintext and
    /// HTTP addresses.
    pub(super) fn spawn(
        self,
        runtimes: &[Runtime],
        shared: &Arc<Shared>,
    ) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let plaintext = self.plaintext.map(|(listener, address, worker)| {
            runtimes[worker].spawn(ingest::accept_loop(listener, Arc::clone(shared)));
            shared.log(Level::Info, &format!("Graphite plaintext on {address}"));
            address
        });
        let http = self.http.map(|(listener, address, worker)| {
            runtimes[worker].spawn(http::accept_loop(listener, Arc::clone(shared)));
            shared.log(
                Level::Info,
                &format!("Graphite HTTP API and dashboard on {address}"),
            );
            address
        });
        (plaintext, http)
    }
}
