//! `put_many`'s points: each `(key, value[, timestamp])` validated and
//! encoded as a request line, for `Client.put_many` and the Codec of
//! `AsyncClient.put_many`. Nothing is sent if any point is invalid, so the
//! whole batch is encoded before the exchange starts, with the GIL held:
//! this is where a large batch spends the time it does not spend on the
//! network.
//!
//! The common shapes (a `str` key, a `float` or `int` value, an `int` or
//! no timestamp) take a short path: exact type checks, the key's text
//! borrowed rather than copied, nothing allocated per point. Everything
//! else, errors included, goes through the general conversions of
//! `arguments.rs`, so the results and messages are the same either way.

use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyString, PyTuple};

use super::arguments;
use crate::client::error::ClientError;
use crate::protocol::{
    encode_put, push_put_line, validate_key, ArgumentError, KeyUse, MetricValue,
};

/// The points of `points`, encoded: all the request bytes, and the end
/// offset of each request in them.
pub fn encode_put_many(
    py: Python<'_>,
    points: &Bound<'_, PyAny>,
) -> PyResult<(Vec<u8>, Vec<usize>)> {
    // Sized up front when the iterable knows its length (about 40 bytes a
    // request): growing a large buffer copies it again and again.
    let hint = points.len().unwrap_or(0);
    let mut requests = Vec::with_capacity(hint.saturating_mul(40));
    let mut ends = Vec::with_capacity(hint);
    let items = points.try_iter().map_err(|e| {
        if e.is_instance_of::<pyo3::exceptions::PyTypeError>(py) {
            ClientError::from(ArgumentError::type_(
                "points",
                format!(
                    "must be an iterable of (key, value[, timestamp]) tuples, got {}",
                    arguments::type_name(points)
                ),
            ))
            .into()
        } else {
            e
        }
    })?;
    for (index, item) in items.enumerate() {
        let item = item?;
        if !encode_common(&mut requests, &item) {
            encode_put_item(&mut requests, index, &item).map_err(ClientError::from)?;
        }
        ends.push(requests.len());
    }
    Ok((requests, ends))
}

/// Encodes `item` if it has one of the common shapes and is valid;
/// returns false, having written nothing, otherwise.
fn encode_common(out: &mut Vec<u8>, item: &Bound<'_, PyAny>) -> bool {
    let Ok(tuple) = item.cast::<PyTuple>() else {
        return false;
    };
    let (Ok(key), Ok(value)) = (tuple.get_borrowed_item(0), tuple.get_borrowed_item(1)) else {
        return false;
    };
    let timestamp = match tuple.len() {
        2 => None,
        3 => match tuple.get_borrowed_item(2) {
            Ok(timestamp) => Some(timestamp),
            Err(_) => return false,
        },
        _ => return false,
    };
    let Some(value) = common_value(&value) else {
        return false;
    };
    let timestamp = match timestamp {
        Some(t) if t.is_exact_instance_of::<PyInt>() => match t.extract::<i64>() {
            Ok(seconds) => seconds,
            Err(_) => return false,
        },
        // Other objects (whose conversion may run their own code) go
        // through the general path only, so it runs once.
        Some(t) if !t.is_none() => return false,
        _ => arguments::now(),
    };
    // The key's text is borrowed from the `str` (no copy): only an exact
    // `str` valid for `put` is taken here.
    let Ok(key) = key.cast_exact::<PyString>() else {
        return false;
    };
    let Ok(key) = key.to_str() else {
        return false;
    };
    if validate_key(key, KeyUse::Put).is_err() {
        return false;
    }
    push_put_line(out, key, value, timestamp);
    true
}

/// A finite `float` or an `int` within 64 bits, without the general
/// conversion's checks for the other accepted types.
fn common_value(value: &Borrowed<'_, '_, PyAny>) -> Option<MetricValue> {
    if let Ok(float) = value.cast_exact::<PyFloat>() {
        return MetricValue::float(float.value()).ok();
    }
    if value.is_exact_instance_of::<PyInt>() {
        return value
            .extract::<i64>()
            .ok()
            .map(|n| MetricValue::Int(i128::from(n)));
    }
    None
}

/// One `put_many` item by the general conversions: `(key, value)` or
/// `(key, value, timestamp)`; an error names the item.
fn encode_put_item(
    out: &mut Vec<u8>,
    index: usize,
    item: &Bound<'_, PyAny>,
) -> Result<(), ArgumentError> {
    let at = |e: ArgumentError| ArgumentError {
        argument: "points",
        reason: format!("item {index}: {} {}", e.argument, e.reason),
        kind: e.kind,
    };
    let tuple = item.cast::<PyTuple>().map_err(|_| {
        ArgumentError::type_(
            "points",
            format!("item {index} must be a (key, value[, timestamp]) tuple"),
        )
    })?;
    if !(2..=3).contains(&tuple.len()) {
        return Err(ArgumentError::value(
            "points",
            format!(
                "item {index} has {} fields, expected (key, value[, timestamp])",
                tuple.len()
            ),
        ));
    }
    let field = |i: usize| tuple.get_item(i).ok();
    let key = field(0).ok_or_else(|| at(ArgumentError::value("key", "is missing")))?;
    let value = field(1).ok_or_else(|| at(ArgumentError::value("value", "is missing")))?;
    let timestamp = field(2);
    let key = arguments::key(&key, "key").map_err(at)?;
    let value = arguments::value(&value, "value").map_err(at)?;
    let timestamp = arguments::timestamp(timestamp.as_ref(), "timestamp").map_err(at)?;
    encode_put(out, &key, value, timestamp).map_err(at)
}
