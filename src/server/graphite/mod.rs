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

pub use glob::{Glob, GlobError};
pub use plaintext::{parse_line, LineError};
pub use render::target::{parse_target, Expr, ParseError};
pub use render::time::{parse_offset, parse_time, TimeError};
pub use source::Source;

pub use http::{MAX_BODY, MAX_HEAD};
pub use ingest::MAX_PLAINTEXT_LINE;
