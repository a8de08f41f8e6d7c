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

use super::number::push_i64;
use super::point::PointValue;

/// `m / 10^k` stripped to its shortest, packed as `m * 8 + k`; only made
/// by [`DecimalText::new`], so always within the bounds above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalText(i64);

/// Mantissas below this magnitude (2^51) have their text known.
const LIMIT: u64 = 1 << 51;
/// The most decimals covered.
const PLACES: i32 = 4;
const POWERS: [u64; PLACES as usize + 1] = [1, 10, 100, 1000, 10_000];

impl DecimalText {
    /// The text of the `f64` nearest to `mantissa × 10^exponent`, when it
    /// is covered: at most 4 decimals and a mantissa below 2^51 (after
    /// multiplying out a positive exponent).
    #[inline]
    pub fn new(mantissa: i64, exponent: i32) -> Option<DecimalText> {
        let (mut m, mut k) = match exponent {
            e if (-PLACES..=0).contains(&e) => (mantissa, -e),
            1..=15 => (mantissa.checked_mul(10i64.pow(exponent as u32))?, 0),
            _ => return None,
        };
        if m.unsigned_abs() >= LIMIT {
            return None;
        }
        while k > 0 && m % 10 == 0 {
            m /= 10;
            k -= 1;
        }
        Some(DecimalText(m * 8 + i64::from(k)))
    }

    /// Appends the text: what `push_py_float` writes for the value.
    #[inline]
    pub fn push(self, out: &mut Vec<u8>) {
        let (m, k) = (self.0 >> 3, (self.0 & 7) as usize);
        if m < 0 {
            out.push(b'-');
        }
        let magnitude = m.unsigned_abs();
        let power = POWERS[k.min(PLACES as usize)];
        // Below 2^51: the whole part fits an i64.
        push_i64(out, (magnitude / power) as i64);
        out.push(b'.');
        if k == 0 {
            out.push(b'0');
            return;
        }
        let mut digits = [b'0'; PLACES as usize];
        let mut rest = magnitude % power;
        for slot in digits[..k].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend_from_slice(&digits[..k]);
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
