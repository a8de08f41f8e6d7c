//! The columnar form of a `get`'s result: per key, a numpy `int64` array
//! of timestamps and a `float64` array of values, made from the decoded
//! reply without a Python object per point. Each array is filled in Rust as
//! a `bytearray` (one copy of the points) and wrapped by `numpy.frombuffer`
//! (no copy; the array is writable and owns its bytearray), which needs no
//! numpy at build time and works with the stable ABI. numpy is imported
//! when first needed: `pip install 'metrics-client[numpy]'`.

use pyo3::exceptions::PyImportError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict, PyTuple};

use crate::protocol::Metrics;

pub fn metrics_to_columns(py: Python<'_>, metrics: Metrics) -> PyResult<Bound<'_, PyDict>> {
    let numpy = py.import("numpy").map_err(|error| {
        let err = PyImportError::new_err(
            "the columnar form needs numpy: pip install 'metrics-client[numpy]'",
        );
        err.set_cause(py, Some(error));
        err
    })?;
    let frombuffer = numpy.getattr("frombuffer")?;
    let int64 = numpy.getattr("int64")?;
    let float64 = numpy.getattr("float64")?;
    let dict = PyDict::new(py);
    for (key, points) in metrics {
        let timestamps = PyByteArray::new_with(py, points.len() * 8, |buf| {
            for (out, &(timestamp, _)) in buf.chunks_exact_mut(8).zip(&points) {
                out.copy_from_slice(&timestamp.to_ne_bytes());
            }
            Ok(())
        })?;
        let values = PyByteArray::new_with(py, points.len() * 8, |buf| {
            for (out, &(_, value)) in buf.chunks_exact_mut(8).zip(&points) {
                out.copy_from_slice(&value.to_ne_bytes());
            }
            Ok(())
        })?;
        let timestamps = frombuffer.call1((timestamps, &int64))?;
        let values = frombuffer.call1((values, &float64))?;
        dict.set_item(key, PyTuple::new(py, [timestamps, values])?)?;
    }
    Ok(dict)
}
