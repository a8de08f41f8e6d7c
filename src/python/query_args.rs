//! The keywords of the query form of `get` (`since`, `until`, `step`,
//! `agg`, `max_points`), shared by `Client` and `AsyncClient`'s codec, and
//! the `_native.Query` object carrying a query's requests for `AsyncClient`.
//!
//! `since`/`until` are an int (epoch seconds), a `datetime` (aware, or
//! naive meaning local time, as `datetime.timestamp()` takes it) or a
//! `timedelta` meaning that long before now. A fractional instant `x`
//! becomes `ceil(x)`: for whole-second timestamps `t >= x` is `t >=
//! ceil(x)` and `t < x` is `t < ceil(x)`, so the range is exactly the
//! instants asked for.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;

use super::arguments::{self, type_name};
use crate::client::error::ClientError;
use crate::client::query::QueryRequest;
use crate::protocol::{ArgumentError, Match, Query, QueryError};
use crate::query::{has_metacharacters, Agg};

/// The keywords as Python passed them.
pub struct Keywords<'a, 'py> {
    pub since: Option<&'a Bound<'py, PyAny>>,
    pub until: Option<&'a Bound<'py, PyAny>>,
    pub step: Option<&'a Bound<'py, PyAny>>,
    pub agg: Option<&'a Bound<'py, PyAny>>,
    pub max_points: Option<&'a Bound<'py, PyAny>>,
}

/// The query `get(key, **keywords)` asks for, or `None` for the course's
/// plain `get` (no keyword, and a key without glob metacharacters or the
/// bare `*`). Nothing is sent when this fails.
pub fn query_request(key: &str, keywords: &Keywords<'_, '_>) -> PyResult<Option<QueryRequest>> {
    let Some(query) = query_of(key, keywords)? else {
        return Ok(None);
    };
    QueryRequest::new(&query)
        .map(Some)
        .map_err(|e| ClientError::from(argument_error(e)).into())
}

/// The requests of `get_columns(key, **keywords)`: the query (a plain
/// `get` has none but the format) asked for in columns first.
pub fn columns_request(key: &str, keywords: &Keywords<'_, '_>) -> PyResult<QueryRequest> {
    let query = query_of(key, keywords)?.unwrap_or_else(|| Query::new(key));
    QueryRequest::columns(&query).map_err(|e| ClientError::from(argument_error(e)).into())
}

/// The query of the keywords, or `None` for the plain `get`.
fn query_of<'k>(key: &'k str, keywords: &Keywords<'_, '_>) -> PyResult<Option<Query<&'k str>>> {
    let mut query = Query::new(key);
    query.from = given(keywords.since)
        .map(|o| instant(o, "since"))
        .transpose()?;
    query.until = given(keywords.until)
        .map(|o| instant(o, "until"))
        .transpose()?;
    query.step = given(keywords.step).map(step).transpose()?;
    query.points = given(keywords.max_points)
        .map(|o| arguments::count(o, "max_points").map(|n| n as u64))
        .transpose()
        .map_err(ClientError::from)?;
    let agg = given(keywords.agg).map(agg).transpose()?;
    query.agg = agg.filter(|&a| a != Agg::Avg);
    let plain = query == Query::new(key);
    if plain && (key == "*" || !has_metacharacters(key)) {
        // Still checked, so a bad key fails the same way either form.
        crate::protocol::validate_key(key, crate::protocol::KeyUse::Get)
            .map_err(ClientError::from)?;
        return Ok(None);
    }
    if plain {
        query.matching = Some(Match::Glob);
    }
    Ok(Some(query))
}

/// A keyword that was given (`None` counts as not given).
fn given<'a, 'py>(obj: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    obj.filter(|o| !o.is_none())
}

fn argument_error(error: QueryError) -> ArgumentError {
    match error {
        QueryError::Key(error) => error,
        QueryError::Pattern(error) => ArgumentError::value(
            "key",
            format!("{error} (a key with *, ?, [ or {{ is a Graphite glob)"),
        ),
        other => ArgumentError::value("query", other.to_string()),
    }
}

fn now() -> f64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(elapsed) => elapsed.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// Whole seconds of `x`, rounded up (see the module's documentation).
fn ceil_seconds(x: f64, argument: &'static str) -> PyResult<i64> {
    let up = x.ceil();
    if !(-9.2e18..9.2e18).contains(&up) {
        return Err(ClientError::from(ArgumentError::value(argument, "is out of range")).into());
    }
    Ok(up as i64)
}

fn is_instance(obj: &Bound<'_, PyAny>, class: &str) -> PyResult<bool> {
    let class = obj.py().import("datetime")?.getattr(class)?;
    obj.is_instance(&class)
}

fn instant(obj: &Bound<'_, PyAny>, argument: &'static str) -> PyResult<i64> {
    if is_instance(obj, "datetime")? {
        let seconds: f64 = obj.call_method0("timestamp")?.extract()?;
        return ceil_seconds(seconds, argument);
    }
    if is_instance(obj, "timedelta")? {
        let back: f64 = obj.call_method0("total_seconds")?.extract()?;
        return ceil_seconds(now() - back, argument);
    }
    arguments::timestamp(Some(obj), argument).map_err(|e| {
        let e = if e.kind == crate::protocol::ArgumentErrorKind::Type {
            ArgumentError::type_(
                argument,
                format!(
                    "must be an int (epoch seconds), a datetime or a timedelta, got {}",
                    type_name(obj)
                ),
            )
        } else {
            e
        };
        ClientError::from(e).into()
    })
}

fn step(obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    let bad = |reason: String| -> PyErr {
        ClientError::from(ArgumentError::value("step", reason)).into()
    };
    if is_instance(obj, "timedelta")? {
        let seconds: f64 = obj.call_method0("total_seconds")?.extract()?;
        if seconds.fract() != 0.0 || seconds <= 0.0 {
            return Err(bad(format!(
                "must be a positive whole number of seconds, got {seconds}"
            )));
        }
        return ceil_seconds(seconds, "step");
    }
    let n = arguments::count(obj, "step").map_err(|e| {
        let e = if e.kind == crate::protocol::ArgumentErrorKind::Type {
            ArgumentError::type_(
                "step",
                format!(
                    "must be an int (seconds) or a timedelta, got {}",
                    type_name(obj)
                ),
            )
        } else {
            ArgumentError::value("step", "must be a positive number of seconds")
        };
        ClientError::from(e)
    })?;
    i64::try_from(n).map_err(|_| bad("is out of range".into()))
}

fn agg(obj: &Bound<'_, PyAny>) -> PyResult<Agg> {
    let name = arguments::key(obj, "agg").map_err(|_| {
        ClientError::from(ArgumentError::type_(
            "agg",
            format!("must be a str, got {}", type_name(obj)),
        ))
    })?;
    Agg::from_name(&name).ok_or_else(|| {
        ClientError::from(ArgumentError::value(
            "agg",
            format!("must be one of avg, min, max, sum, count, last, got {name:?}"),
        ))
        .into()
    })
}

/// A query's requests, for `AsyncClient`: `request` is the query line,
/// `fallback` the plain `get` whose reply `Codec` turns into the same
/// answer when the server lacks queries, `columns` (for `get_columns`) the
/// query asking for the columns reply.
#[pyclass(module = "client._native", name = "Query", frozen)]
pub struct PyQuery {
    pub request: QueryRequest,
}

#[pymethods]
impl PyQuery {
    /// The query line.
    #[getter]
    fn request<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, &self.request.query)
    }

    /// The plain `get` to compute the answer from without the extension.
    #[getter]
    fn fallback<'py>(&self, py: Python<'py>) -> Bound<'py, pyo3::types::PyBytes> {
        pyo3::types::PyBytes::new(py, &self.request.fallback)
    }

    /// The query line asking for the columns reply (`format=columns`), for
    /// a query made with ``columns=True``; else None.
    #[getter]
    fn columns<'py>(&self, py: Python<'py>) -> Option<Bound<'py, pyo3::types::PyBytes>> {
        let line = self.request.columns.as_ref()?;
        Some(pyo3::types::PyBytes::new(py, line))
    }

    /// Whether ``error`` (a ClientProtocolError's message) is the answer
    /// of a server without the columns reply (or without queries).
    #[staticmethod]
    fn means_no_columns(message: &str) -> bool {
        QueryRequest::means_no_columns(&ClientError::Protocol(message.to_owned()))
    }

    /// Whether ``error`` (a ClientProtocolError's message) is the answer
    /// of a server without queries.
    #[staticmethod]
    fn means_unsupported(message: &str) -> bool {
        QueryRequest::means_unsupported(&ClientError::Protocol(message.to_owned()))
    }
}
