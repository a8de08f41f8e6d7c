//! Conversion of Python arguments into the core's types. Every rejection
//! names the argument and says what was expected; nothing is sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};

use crate::protocol::{ArgumentError, MetricValue};
use crate::server::parse_size;

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
pub(crate) fn as_int<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyInt>> {
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

/// `port`: an int from 1 to 65535.
pub fn port(obj: &Bound<'_, PyAny>) -> Result<u16, ArgumentError> {
    positive_int(obj, "port", "from 1 to 65535")
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
