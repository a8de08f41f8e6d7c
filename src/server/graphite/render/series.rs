//! Graphite's series model: a name, the path expression it came from, tags
//! (`name` first, then what functions add), and values at `start`,
//! `start + step`, ... before `end`, `None` where there is no data. The
//! aggregation functions are graphite-web's `safe*` ones: they skip `None`
//! and give `None` when nothing is left.
//!
//! Six of them are the query API's aggregations ([`Agg::over`]) over the
//! values that are not `None`: `safeAvg`, `safeSum`, `safeMin`, `safeMax`,
//! `safeLen` and `safeLast` skip `None` and then mean what `avg`, `sum`,
//! `min`, `max`, `count` and `last` mean for one bucket's points (Python
//! adds left to right as the rollup does; its `min`/`max` compare as
//! `Agg::over` does, NaN included). What only Graphite has: `count` of a
//! row without values is 0 (a rollup has no such bucket), and the
//! aggregations that see the `None` slots themselves (`avg_zero` counts
//! them, `multiply` refuses a row with one) or that the query API lacks
//! (`median`, `diff`, `stddev`, `range`).

use crate::protocol::push_py_float;
use crate::query::Agg;

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub path_expression: String,
    /// In insertion order, as graphite-web's tag dict.
    pub tags: Vec<(String, String)>,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub values: Vec<Option<f64>>,
}

impl Series {
    /// A series read from the store: named after its key, from the
    /// expression that matched it.
    pub fn fetched(key: &str, path_expression: &str, start: i64, end: i64, step: i64) -> Self {
        let slots = usize::try_from((end - start) / step).unwrap_or(0);
        Series {
            name: key.to_owned(),
            path_expression: path_expression.to_owned(),
            tags: vec![("name".into(), key.to_owned())],
            start,
            end,
            step,
            values: vec![None; slots],
        }
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a tag, keeping its place when it exists.
    pub fn set_tag(&mut self, key: &str, value: String) {
        match self.tags.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.tags.push((key.to_owned(), value)),
        }
    }

    /// A copy under a new name whose path expression is that name (as
    /// graphite-web's `series.copy(name=...)`).
    pub fn renamed(&self, name: String, values: Vec<Option<f64>>) -> Series {
        Series {
            path_expression: name.clone(),
            name,
            tags: self.tags.clone(),
            values,
            ..*self
        }
    }

    /// The values averaged `per_point` at a time (graphite's
    /// `consolidate`, with its default average and an xFilesFactor of 0):
    /// a group with no value is `None`, a short last group still counts.
    pub fn consolidated(&self, per_point: usize) -> Vec<Option<f64>> {
        if per_point <= 1 {
            return self.values.clone();
        }
        self.values
            .chunks(per_point)
            .map(|group| AggFunc::Average.apply(group))
            .collect()
    }
}

/// graphite-web's aggregation functions (`aggFuncs` and their aliases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    Average,
    AvgZero,
    Median,
    Sum,
    Min,
    Max,
    Diff,
    Stddev,
    Count,
    Range,
    Multiply,
    Last,
}

impl AggFunc {
    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name {
            "average" | "avg" => AggFunc::Average,
            "avg_zero" => AggFunc::AvgZero,
            "median" => AggFunc::Median,
            "sum" | "total" => AggFunc::Sum,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "diff" => AggFunc::Diff,
            "stddev" => AggFunc::Stddev,
            "count" => AggFunc::Count,
            "range" | "rangeOf" => AggFunc::Range,
            "multiply" => AggFunc::Multiply,
            "last" | "current" => AggFunc::Last,
            _ => return None,
        })
    }

    /// The query API's aggregation that this one is, over the values that
    /// are not `None`.
    pub fn shared(self) -> Option<Agg> {
        Some(match self {
            AggFunc::Average => Agg::Avg,
            AggFunc::Sum => Agg::Sum,
            AggFunc::Min => Agg::Min,
            AggFunc::Max => Agg::Max,
            AggFunc::Count => Agg::Count,
            AggFunc::Last => Agg::Last,
            _ => return None,
        })
    }

    pub fn apply(self, values: &[Option<f64>]) -> Option<f64> {
        let safe = || values.iter().flatten().copied();
        let count = safe().count();
        match self {
            // `safeLen` of a row of `None` is 0, not "no value".
            AggFunc::Count => Some(Agg::Count.over(safe()).unwrap_or(0.0)),
            AggFunc::Average | AggFunc::Sum | AggFunc::Min | AggFunc::Max | AggFunc::Last => {
                self.shared().and_then(|agg| agg.over(safe()))
            }
            AggFunc::AvgZero if values.is_empty() => None,
            AggFunc::AvgZero => Some(safe().sum::<f64>() / values.len() as f64),
            _ if count == 0 => None,
            AggFunc::Median => {
                let mut sorted: Vec<f64> = safe().collect();
                sorted.sort_by(f64::total_cmp);
                let mid = sorted.len() / 2;
                Some(if sorted.len() % 2 == 0 {
                    (sorted[mid - 1] + sorted[mid]) / 2.0
                } else {
                    sorted[mid]
                })
            }
            AggFunc::Diff => {
                let mut it = safe();
                let first = it.next().unwrap_or(0.0);
                Some(it.fold(first, |acc, v| acc - v))
            }
            AggFunc::Stddev => {
                // `safeStdDev`: the mean is `safeAvg`'s.
                let mean = Agg::Avg.over(safe())?;
                let squares = safe().map(|v| (v - mean) * (v - mean)).sum::<f64>();
                Some((squares / count as f64).sqrt())
            }
            // `safeSubtract(safeMax(row), safeMin(row))`.
            AggFunc::Range => Some(Agg::Max.over(safe())? - Agg::Min.over(safe())?),
            // `safeMul` refuses a row with any None in it.
            AggFunc::Multiply if count != values.len() => None,
            AggFunc::Multiply => Some(safe().product()),
        }
    }
}

/// Python's `str()` of a float.
pub fn py_float(value: f64) -> String {
    let mut out = Vec::new();
    push_py_float(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// Python's `'%g' % value`: six significant digits, exponent form below
/// 1e-4 and from 1e6, trailing zeros dropped.
pub fn format_g(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "nan".into()
        } else if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let scientific = format!("{value:.5e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |s: &str| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.abs())
    } else {
        let decimals = usize::try_from(5 - exponent).unwrap_or(0);
        trim(&format!("{value:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_python_does() {
        assert_eq!(format_g(2.0), "2");
        assert_eq!(format_g(0.5), "0.5");
        assert_eq!(format_g(-2.5), "-2.5");
        assert_eq!(format_g(1e6), "1e+06");
        assert_eq!(format_g(123456.0), "123456");
        assert_eq!(format_g(1234567.0), "1.23457e+06");
        assert_eq!(format_g(0.0001), "0.0001");
        assert_eq!(format_g(0.00001), "1e-05");
        assert_eq!(format_g(1.0 / 3.0), "0.333333");
        assert_eq!(py_float(10.0), "10.0");
        assert_eq!(py_float(0.1), "0.1");
    }

    #[test]
    fn aggregations_skip_none() {
        let row = [Some(1.0), None, Some(4.0), Some(2.0)];
        assert_eq!(AggFunc::Sum.apply(&row), Some(7.0));
        assert_eq!(AggFunc::Average.apply(&row), Some(7.0 / 3.0));
        assert_eq!(AggFunc::AvgZero.apply(&row), Some(7.0 / 4.0));
        assert_eq!(AggFunc::Median.apply(&row), Some(2.0));
        assert_eq!(AggFunc::Min.apply(&row), Some(1.0));
        assert_eq!(AggFunc::Max.apply(&row), Some(4.0));
        assert_eq!(AggFunc::Diff.apply(&row), Some(-5.0));
        assert_eq!(AggFunc::Count.apply(&row), Some(3.0));
        assert_eq!(AggFunc::Range.apply(&row), Some(3.0));
        assert_eq!(AggFunc::Multiply.apply(&row), None);
        assert_eq!(AggFunc::Last.apply(&row), Some(2.0));
        assert_eq!(AggFunc::Sum.apply(&[None, None]), None);
        assert_eq!(AggFunc::Count.apply(&[None]), Some(0.0));
        let series = Series {
            values: vec![Some(1.0), Some(3.0), None, None, Some(5.0)],
            ..Series::fetched("a", "a", 0, 50, 10)
        };
        assert_eq!(series.consolidated(2), vec![Some(2.0), None, Some(5.0)]);
    }
}
