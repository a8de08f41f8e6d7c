//! Metric values as the user gives them. Python keeps ints and floats apart
//! and writes them differently (`301` vs `301.0`), so we do too; the text of
//! either is Python's `str(value)` (see `number`).

use std::fmt;
use std::io::Write;

use super::number::{push_py_float, PyFloat};
use super::ArgumentError;

/// A metric value as the user gave it: Python keeps ints and floats apart and
/// writes them differently (`301` vs `301.0`), so we do too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricValue {
    Int(i128),
    Float(f64),
}

impl MetricValue {
    /// A float value; NaN and infinities are refused because no server can
    /// store them meaningfully and `float("nan")` would poison aggregates.
    pub fn float(value: f64) -> Result<Self, ArgumentError> {
        if value.is_finite() {
            Ok(MetricValue::Float(value))
        } else {
            Err(ArgumentError::value(
                "value",
                format!("must be a finite number, got {}", PyFloat(value)),
            ))
        }
    }

    /// Appends the value's wire text (Python's `str(value)`).
    pub fn push_text(self, out: &mut Vec<u8>) {
        match self {
            // Writing into a Vec cannot fail.
            MetricValue::Int(i) => drop(write!(out, "{i}")),
            MetricValue::Float(x) => push_py_float(out, x),
        }
    }

    /// The value as the float the server stores.
    pub fn as_f64(self) -> f64 {
        match self {
            MetricValue::Int(i) => i as f64,
            MetricValue::Float(f) => f,
        }
    }
}

impl fmt::Display for MetricValue {
    /// Same text as Python's `str(value)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricValue::Int(i) => write!(f, "{i}"),
            MetricValue::Float(x) => PyFloat(*x).fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_are_written_as_python_does() {
        assert_eq!(MetricValue::Int(301).to_string(), "301");
        assert_eq!(MetricValue::Int(-7).to_string(), "-7");
        assert_eq!(
            MetricValue::Int(i128::MAX).to_string(),
            "170141183460469231731687303715884105727"
        );
    }

    #[test]
    fn non_finite_floats_are_refused() {
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = MetricValue::float(x).unwrap_err();
            assert_eq!(err.argument, "value");
        }
        assert_eq!(MetricValue::float(1.5), Ok(MetricValue::Float(1.5)));
    }
}
