//! The text of a float that is known to be a short decimal: the storage
//! engine decodes most values from a mantissa and a power of ten, and
//! writing the mantissa's digits costs a fraction of finding a float's
//! shortest digits ([`super::push_py_float`]), which is most of a `get`.
//!
//! The text is exactly what `push_py_float` writes for the `f64` nearest
//! to `m / 10^k`, for `|m| < 2^51` and `k <= 4` (with `m` cut of its
//! trailing zeros): `push_py_float` looks for the smallest `k` whose
//! `k`-decimal text round-trips. Two texts of at most `k` decimals differ
//! by at least `10^-k`, but both round-trip only within one float spacing,
//! which below `2^52 / 10^k` is smaller; so `m / 10^k` is the only one
//! that does, and it does (the nearest float is the value). Its search at
//! `k` finds `m`: `|value| * 10^k` is within a quarter of `m` and its
//! rounding within an eighth (it is below `2^51`).

use std::num::NonZeroI64;

use super::number::push_i64;
use super::point::PointValue;

/// `m / 10^k` packed as `m * 8 + k` with the sign bit flipped, which
/// within the bounds above is never zero, so an `Option` of it takes 8
/// bytes. Only made by [`DecimalText::new`]. Trailing zeros of `m` are
/// cut when the text is written (the digits are at hand then; cutting
/// them here would cost a division per value decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalText(NonZeroI64);

/// Mantissas below this magnitude (2^51) have their text known.
const LIMIT: u64 = 1 << 51;
/// The most decimals covered.
const PLACES: i32 = 4;

impl DecimalText {
    /// The text of the `f64` nearest to `mantissa × 10^exponent`, when it
    /// is covered: at most 4 decimals and a mantissa below 2^51 (after
    /// multiplying out a positive exponent).
    #[inline(always)]
    pub fn new(mantissa: i64, exponent: i32) -> Option<DecimalText> {
        let (m, k) = match exponent {
            e if (-PLACES..=0).contains(&e) => (mantissa, -e),
            1..=15 => (mantissa.checked_mul(10i64.pow(exponent as u32))?, 0),
            _ => return None,
        };
        if m.unsigned_abs() >= LIMIT {
            return None;
        }
        NonZeroI64::new((m * 8 + i64::from(k)) ^ i64::MIN).map(DecimalText)
    }

    /// Appends the text: what `push_py_float` writes for the value.
    #[inline]
    pub fn push(self, out: &mut Vec<u8>) {
        let packed = self.0.get() ^ i64::MIN;
        let (m, k) = (packed >> 3, (packed & 7) as usize);
        if m < 0 {
            out.push(b'-');
        }
        let magnitude = m.unsigned_abs();
        // Constant divisors: a multiply each, not a division.
        let (whole, mut fraction) = match k {
            0 => (magnitude, 0),
            1 => (magnitude / 10, magnitude % 10),
            2 => (magnitude / 100, magnitude % 100),
            3 => (magnitude / 1000, magnitude % 1000),
            _ => (magnitude / 10_000, magnitude % 10_000),
        };
        // Below 2^51: the whole part fits an i64.
        push_i64(out, whole as i64);
        let mut digits = [b'.', b'0', b'0', b'0', b'0'];
        for slot in digits[1..=k.min(4)].iter_mut().rev() {
            *slot = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        // The shortest text has no trailing zeros but keeps one decimal.
        let mut len = k.clamp(1, 4) + 1;
        while len > 2 && digits[len - 1] == b'0' {
            len -= 1;
        }
        out.extend_from_slice(&digits[..len]);
    }
}

impl PointValue for DecimalText {
    fn push_text(&self, out: &mut Vec<u8>) {
        self.push(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::push_py_float;
    use proptest::prelude::*;

    /// The float `m × 10^e` decodes to: correctly rounded, as the
    /// engine's `compose` (and Rust's parser) gives it.
    fn nearest(m: i64, e: i32) -> f64 {
        format!("{m}e{e}").parse().unwrap()
    }

    fn texts(m: i64, e: i32) -> Option<(String, String)> {
        let text = DecimalText::new(m, e)?;
        let (mut ours, mut float) = (Vec::new(), Vec::new());
        text.push(&mut ours);
        push_py_float(&mut float, nearest(m, e));
        Some((
            String::from_utf8(ours).unwrap(),
            String::from_utf8(float).unwrap(),
        ))
    }

    #[test]
    fn a_text_that_may_be_absent_takes_a_word() {
        assert_eq!(std::mem::size_of::<Option<DecimalText>>(), 8);
    }

    #[test]
    fn edges_write_what_the_float_writes() {
        let below = (1i64 << 51) - 1;
        for m in [
            0,
            1,
            -1,
            9,
            10,
            -10,
            100_000,
            123_450,
            below,
            -below,
            below - 9,
        ] {
            for e in -PLACES..=3 {
                // Positive exponents are covered while the product is small.
                match texts(m, e) {
                    Some((ours, float)) => assert_eq!(ours, float, "{m}e{e}"),
                    None => assert!(e > 0 && m.abs() >= 1 << 48, "{m}e{e}"),
                }
            }
        }
        assert_eq!(texts(-5, -1).unwrap().0, "-0.5");
        assert_eq!(texts(0, -3).unwrap().0, "0.0");
        assert_eq!(texts(1200, -2).unwrap().0, "12.0");
        for (m, e) in [
            (1 << 51, 0),
            (-(1 << 51), -1),
            (1, -5),
            (1, 16),
            (i64::MAX, 1),
            (i64::MIN, 0),
        ] {
            assert_eq!(DecimalText::new(m, e), None, "{m}e{e}");
        }
    }

    proptest! {
        #[test]
        fn covered_decimals_write_what_the_float_writes(
            m in prop_oneof![-10_000i64..10_000, -(1i64 << 51)..(1 << 51), any::<i64>()],
            e in -6i32..17,
        ) {
            match texts(m, e) {
                Some((ours, float)) => prop_assert_eq!(ours, float, "{}e{}", m, e),
                None => prop_assert!(
                    !(-PLACES..=0).contains(&e) || m.unsigned_abs() >= LIMIT,
                    "{}e{} not covered", m, e
                ),
            }
        }
    }
}
