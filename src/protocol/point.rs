//! The text of one point, `<key> <value> <timestamp>\n`: the body of a
//! `put` request after its `put `, a data line of a `get` reply, and a record
//! of the server's journal. One writer for all of them.

use super::number::push_i64;
use super::MetricValue;

/// A value that can be written as point text.
pub trait PointValue {
    fn push_text(&self, out: &mut Vec<u8>);
}

/// A stored float, written as Python's `str(float)`.
impl PointValue for f64 {
    fn push_text(&self, out: &mut Vec<u8>) {
        super::number::push_py_float(out, *self);
    }
}

/// A user's value, written as Python's `str(value)`.
impl PointValue for MetricValue {
    fn push_text(&self, out: &mut Vec<u8>) {
        MetricValue::push_text(*self, out);
    }
}

/// Value text exactly as received (already validated by the parser).
impl PointValue for &str {
    fn push_text(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

/// Appends `<key> <value> <timestamp>\n`. Nothing is validated here: keys
/// and values come from the parser or from [`crate::protocol::encode_put`].
pub fn push_point(out: &mut Vec<u8>, key: &str, value: impl PointValue, timestamp: i64) {
    out.extend_from_slice(key.as_bytes());
    out.push(b' ');
    value.push_text(out);
    out.push(b' ');
    push_i64(out, timestamp);
    out.push(b'\n');
}

/// Appends `put <key> <value> <timestamp>\n`.
pub fn push_put_line(out: &mut Vec<u8>, key: &str, value: impl PointValue, timestamp: i64) {
    out.extend_from_slice(b"put ");
    push_point(out, key, value, timestamp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_use_python_float_text() {
        let cases: &[(f64, i64, &str)] = &[
            (10.0, 1503319739, "k 10.0 1503319739\n"),
            (0.5, 1, "k 0.5 1\n"),
            (1e16, -1, "k 1e+16 -1\n"),
            (4.2e-05, 0, "k 4.2e-05 0\n"),
            (-0.0, i64::MIN, "k -0.0 -9223372036854775808\n"),
            (42000000.0, i64::MAX, "k 42000000.0 9223372036854775807\n"),
        ];
        for &(value, ts, want) in cases {
            let mut out = Vec::new();
            push_point(&mut out, "k", value, ts);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn every_value_kind_writes_the_same_line_shape() {
        let mut out = Vec::new();
        push_put_line(&mut out, "k", 0.5, 1);
        push_put_line(&mut out, "k", MetricValue::Int(301), -2);
        push_put_line(&mut out, "k", "1.50e0", 3);
        assert_eq!(out, b"put k 0.5 1\nput k 301 -2\nput k 1.50e0 3\n");
    }
}
