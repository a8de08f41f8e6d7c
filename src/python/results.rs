//! Building the Python result of `get`: `{key: [(timestamp, value), ...]}`.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::protocol::Metrics;

pub fn metrics_to_dict(py: Python<'_>, metrics: Metrics) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    for (key, points) in metrics {
        let list = PyList::new(py, points)?;
        dict.set_item(key, list)?;
    }
    Ok(dict)
}
