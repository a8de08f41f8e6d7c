//! Graphite's protocols on the embedded server: plaintext ingest on
//! `graphite_port` (`plaintext` parses lines, `ingest` serves the
//! connections and stores points through the same put path as `put`), and
//! on `http_port` the part of graphite-web's HTTP API that Grafana's
//! Graphite data source reads (`http`): `/render` (`render`), the metric
//! tree (`metrics`) and a dashboard at `/` (`dashboard`). Reads go through
//! the narrow [`Source`] trait (`source`), with Graphite's globs (`glob`).

pub mod glob;
pub mod metrics;
pub mod plaintext;
pub mod render;
pub mod source;

pub use glob::{Glob, GlobError};
pub use plaintext::{parse_line, LineError};
pub use render::target::{parse_target, Expr, ParseError};
pub use render::time::{parse_offset, parse_time, TimeError};
pub use source::Source;
