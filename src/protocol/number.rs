//! Number text: how values and timestamps are written and read on the wire.
//!
//! Writing: every float is written as CPython's `str(float)` writes it
//! ([`PyFloat`], with a fast path in [`push_py_float`]), every integer with
//! [`push_i64`]. Reading: [`parse_float`] and [`parse_int`] accept exactly
//! what `str::parse::<f64>` and `str::parse::<i64>` accept, with fast paths
//! for the plain decimals that nearly every line holds. Requests, replies and
//! the server's journal all go through these functions.

use std::fmt;
use std::io::Write;

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

/// Appends the text of [`PyFloat`] (CPython's `str(float)`), taking a fast
/// path for values with at most four decimals, which most metrics have.
///
/// The fast path looks for the smallest `k <= 4` such that `m / 10^k`, with
/// `m` the integer nearest `|value| * 10^k`, gives back `value` exactly. Both
/// that division and parsing `"<m>e-k"` round the same rational correctly,
/// so the text round-trips. Below `2^52 / 10^k` the spacing of floats is
/// under `10^-k`, so no other `k`-decimal text round-trips: it is the
/// shortest, as CPython's. Such values lie in `[1e-4, 2^52)`, where CPython
/// uses fixed notation. Everything else goes through `PyFloat`.
pub fn push_py_float(out: &mut Vec<u8>, value: f64) {
    const SCALES: [f64; 5] = [1.0, 10.0, 100.0, 1000.0, 10000.0];
    const LIMIT: f64 = 4_503_599_627_370_496.0; // 2^52
    let abs = value.abs();
    if abs < LIMIT {
        for (mut k, &scale) in SCALES.iter().enumerate() {
            let scaled = abs * scale;
            if scaled >= LIMIT {
                break;
            }
            let m = round_below_2_52(scaled);
            if m / scale != abs {
                continue;
            }
            let mut m = m as i64; // exact: m < 2^52
                                  // A miss at a smaller k (product rounding) could leave zeros.
            while k > 0 && m % 10 == 0 {
                m /= 10;
                k -= 1;
            }
            if value.is_sign_negative() {
                out.push(b'-');
            }
            let pow = 10i64.pow(k as u32);
            push_i64(out, m / pow);
            out.push(b'.');
            if k == 0 {
                out.push(b'0');
            } else {
                let frac = m % pow;
                let mut digits = [b'0'; 4];
                let mut rest = frac;
                for slot in digits[..k].iter_mut().rev() {
                    *slot = b'0' + (rest % 10) as u8;
                    rest /= 10;
                }
                out.extend_from_slice(&digits[..k]);
            }
            return;
        }
    }
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", PyFloat(value));
}

/// `x.round()` for `0 <= x < 2^52`, without the call into libm that
/// `f64::round` is on x86-64 without SSE4.1: the truncation and the
/// fraction below it are both exact in that range.
#[inline]
fn round_below_2_52(x: f64) -> f64 {
    let whole = (x as i64) as f64;
    if x - whole >= 0.5 {
        whole + 1.0
    } else {
        whole
    }
}

/// Decimal digits of `n` without going through `fmt`, two at a time.
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    while rest >= 100 {
        let pair = (rest % 100) as usize * 2;
        rest /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if rest >= 10 {
        let pair = rest as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + rest as u8;
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// 10^0 ..= 10^15, each exactly representable as an `f64`.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// A plain decimal at the start of `text`: `-?D+(.D+)?` with at most 15
/// digits in all, such as `0.5`, `-12.25` or `301` (most of what Python's
/// `str(float)` writes). Returns the value and the bytes it used; `None` when
/// `text` does not start that way (the standard parser then decides).
///
/// The digits as an integer `m < 10^15 < 2^53` and `10^k` with `k <= 15` are
/// both exact `f64`s, so the one division `m / 10^k` is correctly rounded:
/// the same result as `str::parse::<f64>` (Clinger's fast path).
#[inline]
pub(crate) fn simple_decimal(text: &[u8]) -> Option<(f64, usize)> {
    let negative = text.first() == Some(&b'-');
    let start = usize::from(negative);
    let mut mantissa = 0u64;
    let mut i = start;
    // Wrapping: a mantissa of more than 15 digits is refused below anyway.
    let mut digits = |i: &mut usize| {
        let first = *i;
        while let Some(d) = text.get(*i).filter(|b| b.is_ascii_digit()) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            *i += 1;
        }
        *i - first
    };
    let int_digits = digits(&mut i);
    let mut frac_digits = 0;
    if text.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = digits(&mut i);
        if frac_digits == 0 {
            return None;
        }
    }
    if int_digits == 0 || int_digits + frac_digits > 15 {
        return None;
    }
    let magnitude = mantissa as f64 / POW10[frac_digits];
    Some((if negative { -magnitude } else { magnitude }, i))
}

/// `-?D+` with at most 18 digits (no overflow possible), the whole field.
#[inline]
pub(crate) fn simple_integer(field: &[u8]) -> Option<i64> {
    let (negative, digits) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut magnitude = 0i64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude * 10 + i64::from(d - b'0');
    }
    Some(if negative { -magnitude } else { magnitude })
}

/// Parses a number exactly as `str::parse::<f64>` does, plain decimals fast.
pub fn parse_float(field: &[u8]) -> Option<f64> {
    match simple_decimal(field) {
        Some((value, used)) if used == field.len() => Some(value),
        _ => std::str::from_utf8(field).ok()?.parse().ok(),
    }
}

/// Parses an integer exactly as `str::parse::<i64>` does, plain digits fast.
pub fn parse_int(field: &[u8]) -> Option<i64> {
    simple_integer(field).or_else(|| std::str::from_utf8(field).ok()?.parse().ok())
}

#[cfg(test)]
mod tests;
