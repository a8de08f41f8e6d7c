//! Building the Python result of `get`: `{key: [(timestamp, value), ...]}`.
//!
//! A large `get` makes millions of objects, so the lists and tuples are built
//! with the C API directly (`PyList_New` + `PyList_SetItem`, `PyTuple_New` +
//! `PyTuple_SetItem`, `PyLong_FromLongLong`, `PyFloat_FromDouble`): every
//! call is part of the stable ABI, each result is checked, and a failure
//! (only `MemoryError` is possible) is returned as a Python exception.
//!
//! Each `(int, float)` tuple is untracked by the cycle collector right after
//! it is made. It refers only to an int and a float, so it can never be part
//! of a cycle, and CPython's own collector untracks such tuples the first
//! time it sees them (`_PyTuple_MaybeUntrack`). Doing it at once keeps a
//! million new tuples from triggering full collections that would traverse
//! them all while the result is built: about a fifth of the time of a large
//! `get` otherwise.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::protocol::{Metrics, Point};

pub fn metrics_to_dict(py: Python<'_>, metrics: Metrics) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    for (key, points) in metrics {
        dict.set_item(key, points_to_list(py, &points)?)?;
    }
    Ok(dict)
}

/// `[(timestamp, value), ...]` as a new list.
fn points_to_list<'py>(py: Python<'py>, points: &[Point]) -> PyResult<Bound<'py, PyList>> {
    let len = ffi::Py_ssize_t::try_from(points.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("too many points for a list"))?;
    // SAFETY: PyList_New returns a new reference or NULL with an exception
    // set, which `from_owned_ptr_or_err` turns into `Err`. The result is a
    // list, so the unchecked cast is correct.
    let list = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyList_New(len))?.cast_into_unchecked::<PyList>()
    };
    for (index, &point) in (0..len).zip(points) {
        let tuple = point_to_tuple(py, point)?;
        // SAFETY: `list` is a list of length `len` and `index < len`; the
        // slot is empty (NULL) and PyList_SetItem steals the reference we
        // give it, which `into_ptr` releases from our ownership. Until every
        // slot is filled the list is only reachable from here, and a list
        // with NULL slots is safe to free if we return early.
        if unsafe { ffi::PyList_SetItem(list.as_ptr(), index, tuple.into_ptr()) } != 0 {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(list)
}

/// `(timestamp, value)` as a new tuple, untracked by the cycle collector.
fn point_to_tuple(py: Python<'_>, (timestamp, value): Point) -> PyResult<Bound<'_, PyTuple>> {
    // SAFETY: every pointer is a new reference checked for NULL by
    // `from_owned_ptr_or_err` before use; the tuple has 2 empty slots and
    // PyTuple_SetItem steals the references given with `into_ptr` (a tuple
    // with NULL slots is safe to free on the error paths).
    unsafe {
        let tuple = Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(2))?;
        let timestamp = Bound::from_owned_ptr_or_err(py, ffi::PyLong_FromLongLong(timestamp))?;
        if ffi::PyTuple_SetItem(tuple.as_ptr(), 0, timestamp.into_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        let value = Bound::from_owned_ptr_or_err(py, ffi::PyFloat_FromDouble(value))?;
        if ffi::PyTuple_SetItem(tuple.as_ptr(), 1, value.into_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        // Holds only an int and a float: it can never be in a reference
        // cycle (see the module documentation).
        ffi::PyObject_GC_UnTrack(tuple.as_ptr().cast());
        Ok(tuple.cast_into_unchecked::<PyTuple>())
    }
}
