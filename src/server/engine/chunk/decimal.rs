//! Decimal values: a segment's values as integer mantissas times one
//! common power of ten, when every value round-trips through that
//! bit-exactly (what metrics mostly are: counters, gauges with a few
//! decimals). Like VictoriaMetrics, but checked value by value: a segment
//! that does not round-trip exactly is left to the other value codes.

use std::fmt::Write as _;
use std::io::Write as _;

/// Exact powers of ten as `f64` (all up to 10^22 are).
const POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Integers up to this magnitude are exact in an `f64`.
const EXACT: i64 = 1 << 53;

/// Decimal places tried by multiplying before formatting the shortest
/// digits (which is slower).
const QUICK_PLACES: usize = 4;

/// The exponents a segment may have; the header field holds 11 bits.
pub(super) const EXPONENT_BITS: u32 = 11;

/// The `f64` nearest to `mantissa` × 10^`exponent` (ties to even), as
/// Rust's parser gives for that decimal text; the same function checks
/// the encoder's values and rebuilds the decoder's, so they always agree.
pub(super) fn compose(mantissa: i64, exponent: i32) -> f64 {
    if mantissa.unsigned_abs() <= EXACT as u64 && exponent.unsigned_abs() < POWERS.len() as u32 {
        // Both operands exact, one rounding: correctly rounded (Clinger's
        // fast path).
        let power = POWERS[exponent.unsigned_abs() as usize];
        return if exponent >= 0 {
            mantissa as f64 * power
        } else {
            mantissa as f64 / power
        };
    }
    let mut text = [0u8; 40];
    let mut cursor = &mut text[..];
    // At most 20 digits and sign, 'e', 11 more: fits.
    let _ = write!(cursor, "{mantissa}e{exponent}");
    let left = cursor.len();
    let written = &text[..text.len() - left];
    std::str::from_utf8(written)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `out[i] = compose(mantissas[i], exponent)` for every `i`. When every
/// mantissa is exact and the power is too (nearly every segment), one
/// loop of a conversion and a multiply or divide each, which the compiler
/// vectorises; otherwise value by value.
pub(super) fn compose_all(mantissas: &[i64], exponent: i32, out: &mut [f64]) {
    let fast = exponent.unsigned_abs() < POWERS.len() as u32
        && mantissas.iter().all(|m| m.unsigned_abs() <= EXACT as u64);
    let pairs = out.iter_mut().zip(mantissas);
    match (fast, exponent >= 0) {
        (true, true) => {
            let power = POWERS[exponent as usize];
            pairs.for_each(|(slot, &m)| *slot = m as f64 * power);
        }
        (true, false) => {
            let power = POWERS[exponent.unsigned_abs() as usize];
            pairs.for_each(|(slot, &m)| *slot = m as f64 / power);
        }
        (false, _) => pairs.for_each(|(slot, &m)| *slot = compose(m, exponent)),
    }
}

/// `value` as mantissa × 10^exponent with the fewest decimal digits the
/// shortest round-trip text has, the mantissa without trailing zeros; zero
/// as `(0, i32::MAX)` (it fits any exponent). `None` for -0.0 and
/// non-finite values, which have no decimal mantissa.
fn decompose(value: f64, text: &mut String) -> Option<(i64, i32)> {
    if !value.is_finite() || value.to_bits() == (-0.0f64).to_bits() {
        return None;
    }
    if value == 0.0 {
        return Some((0, i32::MAX));
    }
    let (mut mantissa, mut exponent) = quick(value).or_else(|| shortest(value, text))?;
    while mantissa != 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        exponent += 1;
    }
    Some((mantissa, exponent))
}

/// Values with a few decimal places, found by multiplying.
fn quick(value: f64) -> Option<(i64, i32)> {
    for (places, &power) in POWERS.iter().enumerate().take(QUICK_PLACES + 1) {
        let scaled = (value * power).round();
        if scaled.abs() > EXACT as f64 {
            return None;
        }
        let exponent = -(places as i32);
        if compose(scaled as i64, exponent).to_bits() == value.to_bits() {
            return Some((scaled as i64, exponent));
        }
    }
    None
}

/// The shortest round-trip digits, from Rust's formatting (`1.25e-3`).
fn shortest(value: f64, text: &mut String) -> Option<(i64, i32)> {
    text.clear();
    let _ = write!(text, "{value:e}");
    let (digits, exponent) = text.split_once('e')?;
    let exponent: i32 = exponent.parse().ok()?;
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let mut mantissa: i64 = whole.parse().ok()?;
    for digit in fraction.bytes() {
        let digit = i64::from(digit.checked_sub(b'0')?);
        let next = mantissa.checked_mul(10)?;
        mantissa = if mantissa < 0 {
            next - digit
        } else {
            next + digit
        };
    }
    Some((mantissa, exponent - fraction.len() as i32))
}

/// A segment's values in decimal: `value[i]` is `mantissas[i]` ×
/// 10^`exponent`, except at the indexes in `exceptions` (in order), whose
/// values have no such mantissa (-0.0, NaN, infinities, too many digits)
/// and are kept raw; their mantissas repeat a neighbour's, to cost little.
#[derive(Debug, Default)]
pub(super) struct Decimals {
    pub(super) exponent: i32,
    pub(super) mantissas: Vec<i64>,
    pub(super) exceptions: Vec<usize>,
    /// Each value's own mantissa and exponent, if it has one.
    own: Vec<Option<(i64, i32)>>,
    exponents: Vec<i32>,
    text: String,
}

/// The fraction of a segment's values that may choose an exponent the
/// others cannot share, and so become exceptions: one in 32.
const OUTLIERS: usize = 32;

/// Values tried first: a segment whose first values are mostly
/// exceptions is not decimal, and formatting the rest would be wasted.
const SAMPLE: usize = 64;

impl Decimals {
    /// Fills `self` with `values` in decimal, if most of them are.
    pub(super) fn analyse(&mut self, values: &[f64]) -> bool {
        if values.len() > SAMPLE && !self.fill(&values[..SAMPLE]) {
            return false;
        }
        self.fill(values)
    }

    fn fill(&mut self, values: &[f64]) -> bool {
        self.own.clear();
        self.exponents.clear();
        for &value in values {
            let own = decompose(value, &mut self.text);
            if let Some((mantissa, exponent)) = own {
                if mantissa != 0 {
                    self.exponents.push(exponent);
                }
            }
            self.own.push(own);
        }
        // The common exponent: the smallest but for a few outliers.
        let outliers = self.exponents.len() / OUTLIERS;
        self.exponent = match self.exponents.is_empty() {
            true => 0,
            false => *self.exponents.select_nth_unstable(outliers).1,
        };
        let limit = 1 << (EXPONENT_BITS - 1);
        if !(-limit..limit).contains(&self.exponent) {
            return false;
        }
        self.mantissas.clear();
        self.exceptions.clear();
        for (index, (&own, &value)) in self.own.iter().zip(values).enumerate() {
            match own.and_then(|own| scale(own, self.exponent, value)) {
                Some(mantissa) => self.mantissas.push(mantissa),
                None => {
                    self.exceptions.push(index);
                    self.mantissas
                        .push(self.mantissas.last().copied().unwrap_or(0));
                }
            }
        }
        // Leading exceptions take the first real mantissa.
        let leading = self
            .exceptions
            .iter()
            .enumerate()
            .take_while(|&(j, &i)| i == j)
            .count();
        if let Some(&real) = self.mantissas.get(leading) {
            self.mantissas[..leading].fill(real);
        }
        self.exceptions.len() <= values.len() / 4
    }
}

/// `own` (mantissa, exponent) at `exponent`, if it fits an i64 there and
/// still round-trips to `value` bit-exactly.
fn scale((mantissa, own): (i64, i32), exponent: i32, value: f64) -> Option<i64> {
    let mantissa = match mantissa {
        0 => 0,
        _ => mantissa.checked_mul(10i64.checked_pow(u32::try_from(own - exponent).ok()?)?)?,
    };
    (compose(mantissa, exponent).to_bits() == value.to_bits()).then_some(mantissa)
}
