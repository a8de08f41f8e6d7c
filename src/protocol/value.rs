//! Metric values and their text form on the wire.
//!
//! The course's Python clients format a value with `str(value)`, and servers
//! echo stored floats back with `str(float)`. We reproduce CPython's output
//! exactly so that a capture of our traffic is byte-identical to theirs.

use std::fmt;

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

/// Formats an `f64` exactly like CPython's `repr(float)` / `str(float)`:
/// the shortest digits that round-trip, fixed notation for decimal exponents
/// in `-5 < exp < 16`, otherwise scientific with a signed two-digit exponent.
#[derive(Debug, Clone, Copy)]
pub struct PyFloat(pub f64);

impl fmt::Display for PyFloat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if x.is_nan() {
            return f.write_str("nan");
        }
        if x.is_infinite() {
            return f.write_str(if x > 0.0 { "inf" } else { "-inf" });
        }
        // Rust's `{:e}` without a precision already yields the shortest
        // round-trip digits ("4.2e-5", "-1e16"); only the layout differs.
        let mut buf = [0u8; 40];
        let sci = {
            let mut w = SliceWriter {
                buf: &mut buf,
                len: 0,
            };
            fmt::write(&mut w, format_args!("{:e}", x.abs()))?;
            let len = w.len;
            &buf[..len]
        };
        let e_at = sci.iter().position(|&b| b == b'e').ok_or(fmt::Error)?;
        let mantissa = &sci[..e_at];
        let exponent: i32 = std::str::from_utf8(&sci[e_at + 1..])
            .map_err(|_| fmt::Error)?
            .parse()
            .map_err(|_| fmt::Error)?;
        let mut digits = [0u8; 20];
        let mut n_digits = 0;
        for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
            digits[n_digits] = b;
            n_digits += 1;
        }
        let digits = std::str::from_utf8(&digits[..n_digits]).map_err(|_| fmt::Error)?;

        if x.is_sign_negative() {
            f.write_str("-")?;
        }
        if (-5 < exponent) && (exponent < 16) {
            write_fixed(f, digits, exponent)
        } else {
            let (first, rest) = digits.split_at(1);
            f.write_str(first)?;
            if !rest.is_empty() {
                write!(f, ".{rest}")?;
            }
            let sign = if exponent < 0 { '-' } else { '+' };
            write!(f, "e{sign}{:02}", exponent.abs())
        }
    }
}

/// `digits` is d1 d2 ... with the value d1.d2... x 10^exponent.
fn write_fixed(f: &mut fmt::Formatter<'_>, digits: &str, exponent: i32) -> fmt::Result {
    if exponent < 0 {
        f.write_str("0.")?;
        for _ in 0..(-exponent - 1) {
            f.write_str("0")?;
        }
        return f.write_str(digits);
    }
    let int_len = exponent as usize + 1;
    if digits.len() <= int_len {
        f.write_str(digits)?;
        for _ in digits.len()..int_len {
            f.write_str("0")?;
        }
        f.write_str(".0")
    } else {
        let (int_part, frac_part) = digits.split_at(int_len);
        write!(f, "{int_part}.{frac_part}")
    }
}

struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(x: f64) -> String {
        PyFloat(x).to_string()
    }

    #[test]
    fn floats_match_cpython_repr() {
        // Expected strings are what CPython 3.11 prints for repr(x).
        let cases: &[(f64, &str)] = &[
            (0.5, "0.5"),
            (2.0, "2.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (10.6, "10.6"),
            (-1.5, "-1.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (4.2e-05, "4.2e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1e-5, "1e-05"),
            (0.1 + 0.2, "0.30000000000000004"),
            (42000000.0, "42000000.0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (2.5e100, "2.5e+100"),
            (-2.5e-100, "-2.5e-100"),
            (9999999999999998.0, "9999999999999998.0"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for &(x, want) in cases {
            assert_eq!(py(x), want, "formatting {x:?}");
        }
    }

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

    proptest::proptest! {
        #[test]
        fn formatted_floats_round_trip(bits in proptest::num::u64::ANY) {
            let x = f64::from_bits(bits);
            proptest::prop_assume!(x.is_finite());
            let text = py(x);
            let back: f64 = text.parse().unwrap();
            proptest::prop_assert_eq!(back.to_bits(), x.to_bits(), "{}", text);
        }
    }
}
