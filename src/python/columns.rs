//! The columnar form of a `get`'s result: per key, a numpy `int64` array
//! of timestamps and a `float64` array of values, made without a Python
//! object per point, from a columns reply (`format=columns`) or from the
//! points of a text one. Each array is filled in Rust as a `bytearray`
//! (one copy of the points) and wrapped by `numpy.frombuffer` (no copy;
//! the array is writable and owns its bytearray), which needs no numpy at
//! build time and works with the stable ABI. numpy is imported when first
//! needed: `pip install 'metrics-client[numpy]'`.

use pyo3::exceptions::PyImportError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict, PyTuple};

use crate::protocol::{Columns, Metrics};

/// What the arrays are made with.
struct Numpy<'py> {
    frombuffer: Bound<'py, PyAny>,
    int64: Bound<'py, PyAny>,
    float64: Bound<'py, PyAny>,
}

impl<'py> Numpy<'py> {
    fn import(py: Python<'py>) -> PyResult<Self> {
        let numpy = py.import("numpy").map_err(|error| {
            let err = PyImportError::new_err(
                "the columnar form needs numpy: pip install 'metrics-client[numpy]'",
            );
            err.set_cause(py, Some(error));
            err
        })?;
        Ok(Numpy {
            frombuffer: numpy.getattr("frombuffer")?,
            int64: numpy.getattr("int64")?,
            float64: numpy.getattr("float64")?,
        })
    }

    /// An array of `len` 8-byte elements, `bytes` of each in native order.
    fn array(
        &self,
        dtype: &Bound<'py, PyAny>,
        len: usize,
        bytes: impl Iterator<Item = [u8; 8]>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let buffer = PyByteArray::new_with(dtype.py(), len * 8, |buf| {
            for (out, element) in buf.chunks_exact_mut(8).zip(bytes) {
                out.copy_from_slice(&element);
            }
            Ok(())
        })?;
        self.frombuffer.call1((buffer, dtype))
    }
}

/// Checks that numpy can be imported (before anything is sent).
pub fn require_numpy(py: Python<'_>) -> PyResult<()> {
    Numpy::import(py).map(drop)
}

pub fn metrics_to_columns(py: Python<'_>, metrics: Metrics) -> PyResult<Bound<'_, PyDict>> {
    let numpy = Numpy::import(py)?;
    let dict = PyDict::new(py);
    for (key, points) in metrics {
        let n = points.len();
        let timestamps = numpy.array(&numpy.int64, n, points.iter().map(|p| p.0.to_ne_bytes()))?;
        let values = numpy.array(&numpy.float64, n, points.iter().map(|p| p.1.to_ne_bytes()))?;
        dict.set_item(key, PyTuple::new(py, [timestamps, values])?)?;
    }
    Ok(dict)
}

pub fn columns_to_numpy(py: Python<'_>, columns: Columns) -> PyResult<Bound<'_, PyDict>> {
    let numpy = Numpy::import(py)?;
    let dict = PyDict::new(py);
    for series in columns {
        let n = series.timestamps.len();
        let timestamps = series.timestamps.iter().map(|t| t.to_ne_bytes());
        let timestamps = numpy.array(&numpy.int64, n, timestamps)?;
        let values = series.values.iter().map(|v| v.to_ne_bytes());
        let values = numpy.array(&numpy.float64, n, values)?;
        dict.set_item(series.key, PyTuple::new(py, [timestamps, values])?)?;
    }
    Ok(dict)
}
