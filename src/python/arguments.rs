//! Conversion of Python arguments into the core's types. Every rejection
//! names the argument and says what was expected; nothing is sent.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};

use crate::protocol::{ArgumentError, MetricValue};
use crate::server::{parse_size, FsyncPolicy, StoreAddress, TlsFiles};

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}

/// `key`: a `str` (validated for the wire by the protocol core).
pub fn key(obj: &Bound<'_, PyAny>, argument: &'static str) -> Result<String, ArgumentError> {
    let text = obj.cast::<PyString>().map_err(|_| {
        ArgumentError::type_(argument, format!("must be str, got {}", type_name(obj)))
    })?;
    text.to_cow()
        .map(|cow| cow.into_owned())
        .map_err(|_| ArgumentError::value(argument, "must be valid Unicode (no lone surrogates)"))
}

/// `value`: an int or float (or any object with `__index__` or `__float__`,
/// such as numpy scalars, Decimal, Fraction); never bool or str.
pub fn value(obj: &Bound<'_, PyAny>, argument: &'static str) -> Result<MetricValue, ArgumentError> {
    let wrong_type = || {
        ArgumentError::type_(
            argument,
            format!(
                "must be a real number (int or float), got {}",
                type_name(obj)
            ),
        )
    };
    if obj.is_instance_of::<PyBool>() || obj.is_instance_of::<PyString>() {
        return Err(wrong_type());
    }
    if let Ok(float) = obj.cast::<PyFloat>() {
        return finite(argument, float.value());
    }
    if let Some(int) = as_int(obj) {
        // The common case first: i128 conversion goes through a slower path
        // under the limited API.
        if let Ok(small) = int.extract::<i64>() {
            return Ok(MetricValue::Int(i128::from(small)));
        }
        return int.extract::<i128>().map(MetricValue::Int).map_err(|_| {
            ArgumentError::value(argument, "is too large an integer (beyond 128 bits)")
        });
    }
    if obj.hasattr("__float__").unwrap_or(false) {
        let float: f64 = obj.extract().map_err(|_| wrong_type())?;
        return finite(argument, float);
    }
    Err(wrong_type())
}

fn finite(argument: &'static str, value: f64) -> Result<MetricValue, ArgumentError> {
    MetricValue::float(value).map_err(|e| ArgumentError { argument, ..e })
}

/// The object as a Python int: ints themselves, or via `__index__`.
fn as_int<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyInt>> {
    if let Ok(int) = obj.cast::<PyInt>() {
        return Some(int.clone());
    }
    if obj.is_instance_of::<PyFloat>() || !obj.hasattr("__index__").unwrap_or(false) {
        return None;
    }
    let operator = obj.py().import("operator").ok()?;
    operator
        .call_method1("index", (obj,))
        .ok()?
        .cast_into::<PyInt>()
        .ok()
}

/// `timestamp`: whole seconds since the epoch as an int; `None` means now.
pub fn timestamp(
    obj: Option<&Bound<'_, PyAny>>,
    argument: &'static str,
) -> Result<i64, ArgumentError> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(now());
    };
    if obj.is_instance_of::<PyBool>() {
        return Err(ArgumentError::type_(argument, "must be an int, got bool"));
    }
    let Some(int) = as_int(obj) else {
        return Err(ArgumentError::type_(
            argument,
            format!(
                "must be an int (whole seconds since the epoch), got {}",
                type_name(obj)
            ),
        ));
    };
    int.extract::<i64>().map_err(|_| {
        ArgumentError::value(
            argument,
            "is out of range (must fit in a signed 64-bit integer)",
        )
    })
}

/// Seconds since the epoch, as `int(time.time())` gives them.
pub fn now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(elapsed) => elapsed.as_secs() as i64,
        Err(before) => -(before.duration().as_secs_f64().ceil() as i64),
    }
}

/// `timeout` (and the server's `idle_timeout`): `None` (wait forever) or a
/// positive number of seconds.
pub fn timeout(
    obj: Option<&Bound<'_, PyAny>>,
    argument: &'static str,
) -> Result<Option<Duration>, ArgumentError> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let seconds = match value(obj, argument)? {
        MetricValue::Int(i) => i as f64,
        MetricValue::Float(f) => f,
    };
    if seconds <= 0.0 {
        return Err(ArgumentError::value(
            argument,
            format!("must be None or a positive number of seconds, got {seconds}"),
        ));
    }
    Duration::try_from_secs_f64(seconds)
        .map(Some)
        .map_err(|_| ArgumentError::value(argument, "is too large"))
}

/// The servers to use: `host` and `port`, or (with `port` omitted) a list
/// or tuple of `(host, port)` pairs tried in turn.
pub fn addresses(
    host: &Bound<'_, PyAny>,
    port: Option<&Bound<'_, PyAny>>,
) -> Result<Vec<(String, u16)>, ArgumentError> {
    let port = port.filter(|p| !p.is_none());
    if host.is_instance_of::<PyString>() {
        let Some(port) = port else {
            return Err(ArgumentError::type_(
                "port",
                "is required with a host name (or give a list of (host, port) pairs)",
            ));
        };
        return Ok(vec![(key(host, "host")?, self::port(port)?)]);
    }
    let wrong = || {
        ArgumentError::type_(
            "host",
            format!(
                "must be str or a list of (host, port) pairs, got {}",
                type_name(host)
            ),
        )
    };
    let items: Vec<Bound<'_, PyAny>> = if let Ok(list) = host.cast::<PyList>() {
        list.iter().collect()
    } else if let Ok(tuple) = host.cast::<PyTuple>() {
        tuple.iter().collect()
    } else {
        return Err(wrong());
    };
    if port.is_some() {
        return Err(ArgumentError::type_(
            "port",
            "must be omitted when host is a list of (host, port) pairs",
        ));
    }
    if items.is_empty() {
        return Err(ArgumentError::value(
            "host",
            "must list at least one (host, port) pair",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let pair = item
                .cast::<PyTuple>()
                .ok()
                .filter(|t| t.len() == 2)
                .ok_or_else(|| {
                    ArgumentError::type_(
                        "host",
                        format!(
                            "item {index} must be a (host, port) pair, got {}",
                            type_name(item)
                        ),
                    )
                })?;
            let name = pair.get_item(0).map_err(|_| wrong())?;
            let number = pair.get_item(1).map_err(|_| wrong())?;
            Ok((key(&name, "host")?, self::port(&number)?))
        })
        .collect()
}

/// `max_connections` and `window`: a positive int.
pub fn count(obj: &Bound<'_, PyAny>, argument: &'static str) -> Result<usize, ArgumentError> {
    positive_int(obj, argument, "a positive int")
}

/// A positive number of seconds, zero allowed (`Retry`'s waits).
pub fn seconds(obj: &Bound<'_, PyAny>, argument: &'static str) -> Result<Duration, ArgumentError> {
    let seconds = match value(obj, argument)? {
        MetricValue::Int(i) => i as f64,
        MetricValue::Float(f) => f,
    };
    if seconds < 0.0 {
        return Err(ArgumentError::value(
            argument,
            format!("must not be negative, got {seconds}"),
        ));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| ArgumentError::value(argument, "is too large"))
}

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

/// `port`: an int from 1 to 65535.
pub fn port(obj: &Bound<'_, PyAny>) -> Result<u16, ArgumentError> {
    positive_int(obj, "port", "from 1 to 65535")
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

/// A size in bytes (`max_memory`, `max_request_buffers`): a positive int,
/// or a str such as `"2GiB"`.
pub fn size(obj: &Bound<'_, PyAny>, argument: &'static str) -> Result<usize, ArgumentError> {
    if let Ok(text) = obj.cast::<PyString>() {
        let text = key(text.as_any(), argument)?;
        return parse_size(&text).map_err(|e| ArgumentError::value(argument, e.to_string()));
    }
    let int = as_int(obj).filter(|_| !obj.is_instance_of::<PyBool>());
    let Some(int) = int else {
        return Err(ArgumentError::type_(
            argument,
            format!(
                "must be an int or a str such as '2GiB', not {}",
                type_name(obj)
            ),
        ));
    };
    match int.extract::<usize>() {
        Ok(bytes) if bytes > 0 => Ok(bytes),
        _ if int.gt(0).unwrap_or(false) => Err(ArgumentError::value(
            argument,
            format!("is too large: {int}"),
        )),
        _ => Err(ArgumentError::value(
            argument,
            format!("must be more than 0 bytes, got {int}"),
        )),
    }
}

/// `max_reply_bytes`: a positive int; `None` means the default.
pub fn max_reply_bytes(
    obj: Option<&Bound<'_, PyAny>>,
    default: usize,
) -> Result<usize, ArgumentError> {
    match obj.filter(|o| !o.is_none()) {
        None => Ok(default),
        Some(obj) => positive_int(obj, "max_reply_bytes", "a positive number of bytes"),
    }
}

/// An int (not bool) that fits `T` and is not zero; `expected` completes
/// "must be ..." in the error message.
fn positive_int<'py, T>(
    obj: &Bound<'py, PyAny>,
    argument: &'static str,
    expected: &str,
) -> Result<T, ArgumentError>
where
    T: pyo3::conversion::FromPyObjectOwned<'py> + Default + PartialEq,
{
    if obj.is_instance_of::<PyBool>() {
        return Err(ArgumentError::type_(argument, "must be an int, got bool"));
    }
    let int = as_int(obj).ok_or_else(|| {
        ArgumentError::type_(argument, format!("must be an int, got {}", type_name(obj)))
    })?;
    let extracted: Option<T> = int.extract().ok();
    match extracted {
        Some(n) if n != T::default() => Ok(n),
        _ => Err(ArgumentError::value(
            argument,
            format!("must be {expected}, got {int}"),
        )),
    }
}

/// Raw bytes to send: `bytes`, `bytearray` or a `memoryview` (copied: the
/// send runs with the GIL released, when a bytearray could be resized).
pub fn bytes_like(
    obj: &Bound<'_, PyAny>,
    argument: &'static str,
) -> Result<Vec<u8>, ArgumentError> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(array) = obj.cast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    if obj.is_instance_of::<PyMemoryView>() {
        let copy = obj.py().get_type::<PyBytes>().call1((obj,)).ok();
        if let Some(bytes) = copy.as_ref().and_then(|c| c.cast::<PyBytes>().ok()) {
            return Ok(bytes.as_bytes().to_vec());
        }
    }
    Err(ArgumentError::type_(
        argument,
        format!(
            "must be bytes, bytearray or memoryview, got {}",
            type_name(obj)
        ),
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
