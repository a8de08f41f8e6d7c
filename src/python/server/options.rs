//! The server's own options (`Server(...)`, `serve`), converted from
//! Python: ports to listen on, the host, fsync, the Redis store, TLS files,
//! time spans. What client and server share stays in `arguments.rs`.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBool;

use crate::protocol::ArgumentError;
use crate::python::arguments::{as_int, key, seconds, type_name};
use crate::server::{FsyncPolicy, StoreAddress, TlsFiles};

/// The server's `retention` and `head_window`: seconds (int or float), a
/// `datetime.timedelta`, or a string such as `"30d"` (`s`, `m`, `h`, `d`,
/// `w`, `y`).
pub fn span(obj: &Bound<'_, PyAny>, argument: &'static str) -> Result<Duration, ArgumentError> {
    if let Ok(text) = obj.cast::<pyo3::types::PyString>() {
        let text = text
            .to_str()
            .map_err(|_| ArgumentError::value(argument, "must be valid Unicode"))?;
        return crate::server::engine::parse_duration(text)
            .map_err(|reason| ArgumentError::value(argument, reason));
    }
    if obj.hasattr("total_seconds").unwrap_or(false)
        && !obj.is_instance_of::<pyo3::types::PyFloat>()
    {
        let seconds = obj
            .call_method0("total_seconds")
            .and_then(|s| s.extract::<f64>())
            .map_err(|_| {
                ArgumentError::type_(
                    argument,
                    "must be seconds, a timedelta or a string such as '30d'",
                )
            })?;
        if seconds < 0.0 || !seconds.is_finite() {
            return Err(ArgumentError::value(
                argument,
                format!("must not be negative, got {seconds}"),
            ));
        }
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| ArgumentError::value(argument, "is too large"));
    }
    seconds(obj, argument)
}

/// The server's `port`: an int from 0 (any free port) to 65535.
pub fn listen_port(obj: &Bound<'_, PyAny>) -> Result<u16, ArgumentError> {
    named_port(obj, "port")
}

/// A port to listen on named `argument` (`port`, `graphite_port`,
/// `http_port`): an int from 0 (a free port) to 65535.
pub fn named_port(obj: &Bound<'_, PyAny>, argument: &'static str) -> Result<u16, ArgumentError> {
    if obj.is_instance_of::<PyBool>() {
        return Err(ArgumentError::type_(argument, "must be an int, got bool"));
    }
    let int = as_int(obj).ok_or_else(|| {
        ArgumentError::type_(argument, format!("must be an int, got {}", type_name(obj)))
    })?;
    int.extract()
        .map_err(|_| ArgumentError::value(argument, format!("must be from 0 to 65535, got {int}")))
}

/// `graphite_port`/`http_port` with `store`: the Graphite side reads and
/// writes the embedded store only.
pub fn graphite_needs_embedded(argument: &'static str, given: bool) -> Result<(), ArgumentError> {
    if !given {
        return Ok(());
    }
    Err(ArgumentError::value(
        argument,
        "serves the embedded store; a server storing in Redis cannot serve Graphite",
    ))
}

/// The server's `host`: a non-empty str (a name or an IP address).
pub fn host(obj: &Bound<'_, PyAny>) -> Result<String, ArgumentError> {
    let host = key(obj, "host")?;
    if host.is_empty() {
        return Err(ArgumentError::value("host", "must not be empty"));
    }
    Ok(host)
}

/// `fsync`: `"always"`, `"everysec"` or `"no"`.
pub fn fsync(obj: &Bound<'_, PyAny>) -> Result<FsyncPolicy, ArgumentError> {
    let text = key(obj, "fsync")?;
    text.parse().map_err(|_| {
        ArgumentError::value(
            "fsync",
            format!("must be 'always', 'everysec' or 'no', got {text:?}"),
        )
    })
}

/// `store`: where a gateway keeps its data (`redis://host:port` or
/// `redis-cluster://host:port,...`); `with_data` says `data` was given too,
/// which a gateway cannot use.
pub fn store(obj: &Bound<'_, PyAny>, with_data: bool) -> Result<StoreAddress, ArgumentError> {
    let text = key(obj, "store")?;
    if with_data {
        return Err(ArgumentError::value(
            "store",
            "a server storing in Redis keeps no data file: give store or data, not both",
        ));
    }
    StoreAddress::parse(&text).map_err(|e| ArgumentError::value("store", e.to_string()))
}

/// Refuses `argument`, a setting of the embedded store, when it was `given`
/// to a server storing in Redis (which has no journal to fsync and no store
/// of its own to bound: Redis's own settings do that).
pub fn embedded_only(argument: &'static str, given: bool) -> Result<(), ArgumentError> {
    if !given {
        return Ok(());
    }
    Err(ArgumentError::value(
        argument,
        "is a setting of the embedded store; a server storing in Redis uses Redis's own \
         (appendfsync, maxmemory) and the store's ?wait=N",
    ))
}

/// The server's TLS files: none, or a certificate and its key (and perhaps
/// a client CA).
pub fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<TlsFiles>, ArgumentError> {
    match (cert, key, client_ca) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), client_ca) => Ok(Some(TlsFiles {
            cert,
            key,
            client_ca,
        })),
        (None, _, _) => Err(ArgumentError::value(
            "tls_cert",
            "is needed with tls_key and tls_client_ca",
        )),
        (Some(_), None, _) => Err(ArgumentError::value("tls_key", "is needed with tls_cert")),
    }
}
