//! `put_many`'s points: each `(key, value[, timestamp])` validated, then
//! encoded as a request line, for `Client.put_many` and the Codec of
//! `AsyncClient.put_many`. Nothing is sent if any point is invalid, so
//! every point is validated first, with the GIL held, into `PutPoints`
//! (its key's text copied, its value and timestamp converted); the lines
//! are then written from that copy, which needs no GIL and nothing of the
//! caller's objects: `Client.put_many` writes each chunk while the server
//! works on the one before (see `Session::pipeline_requests`), so other
//! threads may change the caller's list meanwhile without effect.
//!
//! The common shapes (a `str` key, a `float` or `int` value, an `int` or
//! no timestamp) take a short path: exact type checks, a key that is the
//! same object as the point before's neither validated nor copied again,
//! nothing allocated per point. Everything else, errors included, goes
//! through the general conversions of `arguments.rs`, so the results and
//! messages are the same either way.

use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyString, PyTuple};

use super::arguments;
use crate::client::error::ClientError;
use crate::client::requests::Requests;
use crate::protocol::{
    push_put_line, validate_key, validate_put, ArgumentError, KeyUse, MetricValue,
};

/// One validated point: its key is `PutPoints::spans[key]`.
struct Point {
    key: usize,
    value: MetricValue,
    timestamp: i64,
}

/// Validated points and the request lines written from them so far.
pub struct PutPoints {
    /// Every key's text, one after another; `spans` cuts them.
    keys: String,
    spans: Vec<(usize, usize)>,
    points: Vec<Point>,
    requests: Vec<u8>,
    ends: Vec<usize>,
}

/// The most bytes of buffers a client keeps between two `put_many` calls
/// (a batch of about 200,000 points needs them).
const SPARE_BYTES: usize = 16 << 20;

impl PutPoints {
    /// Empty, with room for `points`: in `spare`'s buffers when given.
    fn with_capacity(points: usize, spare: Option<PutPoints>) -> Self {
        let mut out = spare.unwrap_or(PutPoints {
            keys: String::new(),
            spans: Vec::new(),
            points: Vec::new(),
            requests: Vec::new(),
            ends: Vec::new(),
        });
        out.points.reserve(points);
        // About 40 bytes a request: growing a large buffer copies it
        // again and again.
        out.requests.reserve(points.saturating_mul(40));
        out.ends.reserve(points);
        out
    }

    /// The buffers emptied for the next call, unless they are larger than
    /// a client keeps. Reusing them matters: buffers of a few MiB freed
    /// after each call go back to the kernel (glibc trims and unmaps them),
    /// and faulting them in again cost more than 40 ns a point, as much as
    /// the rest of `put_many` (measured in `benches/storage_ingest.py`).
    pub fn into_spare(mut self) -> Option<PutPoints> {
        let bytes = self.keys.capacity()
            + self.spans.capacity() * std::mem::size_of::<(usize, usize)>()
            + self.points.capacity() * std::mem::size_of::<Point>()
            + self.requests.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>();
        if bytes > SPARE_BYTES {
            return None;
        }
        self.keys.clear();
        self.spans.clear();
        self.points.clear();
        self.requests.clear();
        self.ends.clear();
        Some(self)
    }

    fn push_key(&mut self, key: &str) -> usize {
        let start = self.keys.len();
        self.keys.push_str(key);
        self.spans.push((start, self.keys.len()));
        self.spans.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Every request, encoded, and the end offset of each.
    pub fn into_encoded(mut self) -> (Vec<u8>, Vec<usize>) {
        self.encoded(usize::MAX);
        (self.requests, self.ends)
    }
}

impl Requests for PutPoints {
    fn total(&self) -> usize {
        self.points.len()
    }

    fn encoded(&mut self, upto: usize) -> (&[u8], &[usize]) {
        let PutPoints {
            keys,
            spans,
            points,
            requests,
            ends,
        } = self;
        for point in &points[ends.len()..] {
            if requests.len() >= upto {
                break;
            }
            let (start, end) = spans[point.key];
            push_put_line(requests, &keys[start..end], point.value, point.timestamp);
            ends.push(requests.len());
        }
        (requests, ends)
    }
}

/// The points of `points`, validated (into `spare`'s buffers when given);
/// an error names the first bad one.
pub fn validate_put_many(
    py: Python<'_>,
    points: &Bound<'_, PyAny>,
    spare: Option<PutPoints>,
) -> PyResult<PutPoints> {
    let mut out = PutPoints::with_capacity(points.len().unwrap_or(0), spare);
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
    // The point before's key object, held so that no other object can take
    // its address while it is compared, and its index in `spans`.
    let mut previous: Option<(Bound<'_, PyString>, usize)> = None;
    for (index, item) in items.enumerate() {
        let item = item?;
        if !validate_common(&mut out, &mut previous, &item) {
            let (key, value, timestamp) = validate_item(index, &item).map_err(ClientError::from)?;
            let key = out.push_key(&key);
            out.points.push(Point {
                key,
                value,
                timestamp,
            });
        }
    }
    Ok(out)
}

/// The points of `points`, encoded: all the request bytes, and the end
/// offset of each request in them.
pub fn encode_put_many(
    py: Python<'_>,
    points: &Bound<'_, PyAny>,
) -> PyResult<(Vec<u8>, Vec<usize>)> {
    Ok(validate_put_many(py, points, None)?.into_encoded())
}

/// Takes `item` if it has one of the common shapes and is valid; returns
/// false, having taken nothing, otherwise.
fn validate_common<'py>(
    out: &mut PutPoints,
    previous: &mut Option<(Bound<'py, PyString>, usize)>,
    item: &Bound<'py, PyAny>,
) -> bool {
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
    // Only an exact `str` valid for `put` is taken here; `str`s are
    // immutable, so the same object as before is the same valid key.
    let Ok(key) = key.cast_exact::<PyString>() else {
        return false;
    };
    let key = match previous {
        Some((object, at)) if object.as_ptr() == key.as_ptr() => *at,
        _ => {
            let Ok(text) = key.to_str() else {
                return false;
            };
            if validate_key(text, KeyUse::Put).is_err() {
                return false;
            }
            let at = out.push_key(text);
            *previous = Some(((*key).clone(), at));
            at
        }
    };
    out.points.push(Point {
        key,
        value,
        timestamp,
    });
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
fn validate_item(
    index: usize,
    item: &Bound<'_, PyAny>,
) -> Result<(String, MetricValue, i64), ArgumentError> {
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
    validate_put(&key, value).map_err(at)?;
    Ok((key, value, timestamp))
}
