//! The functions over time of one series at a time: `summarize` (buckets
//! of an interval), `perSecond` (a counter's rate) and `movingAverage`
//! (which fetches its target again, from earlier by the window), as
//! graphite-web computes them.

use super::fetch::MAX_REQUEST_SLOTS;
use super::functions::{bad, evaluate, Args, Context, Value};
use super::series::{py_float, AggFunc, Series};
use super::target::Expr;
use super::time::parse_offset;
use super::RenderError;
use crate::query::bucket_start;

pub(super) fn summarize(a: &mut Args<'_>) -> Result<Vec<Series>, RenderError> {
    let list = a.series(0)?;
    let interval_text = a
        .text(1)?
        .ok_or_else(|| bad(a.function, "missing intervalString"))?;
    let interval = parse_offset(&interval_text).map_err(|e| bad(a.function, e))?;
    if interval <= 0 {
        return Err(bad(a.function, "the interval must be positive"));
    }
    let func = a.text(2)?.unwrap_or_else(|| "sum".into());
    let agg = AggFunc::from_name(&func).ok_or_else(|| {
        bad(
            a.function,
            format!("unsupported aggregation function: {func}"),
        )
    })?;
    let align = match a.take(3) {
        Some(Value::Bool(b)) => b,
        None | Some(Value::None) => false,
        Some(_) => return Err(bad(a.function, "alignToFrom must be true or false")),
    };
    list.into_iter()
        .map(|mut series| {
            let (start, end, values) = summarize_values(&series, interval, agg, align)?;
            series.set_tag("summarize", interval_text.clone());
            series.set_tag("summarizeFunction", func.clone());
            let name = format!(
                "summarize({}, \"{interval_text}\", \"{func}\"{})",
                series.name,
                if align { ", true" } else { "" }
            );
            let mut out = series.renamed(name, values);
            (out.start, out.end, out.step) = (start, end, interval);
            Ok(out)
        })
        .collect()
}

/// graphite-web's `_summarizeValues` (with its default xFilesFactor of 0):
/// the query API's buckets of `interval` seconds, aligned to multiples of
/// it ([`bucket_start`]) or, with `alignToFrom`, to the series' start, each
/// the aggregate of the slots in it. What stays Graphite's: the answer is a
/// fixed-step series from the first bucket to past the last slot (its
/// `end`), a bucket without a value is a `None` slot where a rollup has no
/// bucket at all, and the aggregation sees the bucket's `None` slots (only
/// `avg_zero` and `multiply` care). With `alignToFrom` the series ends
/// where the last bucket does; without, one bucket past `end`'s.
/// Returns the start, the end and the values; refuses more buckets than a
/// request may read slots.
pub(super) fn summarize_values(
    series: &Series,
    interval: i64,
    agg: AggFunc,
    align: bool,
) -> Result<(i64, i64, Vec<Option<f64>>), RenderError> {
    // graphite-web walks the buckets and, in each, the slots before its
    // end; as slots and buckets both begin at or after the start, that is
    // the slots whose bucket (by `bucket_start`) it is.
    let origin = if align { series.start } else { 0 };
    let bucket_of = |t: i64| origin + bucket_start(t - origin, interval);
    let start = bucket_of(series.start);
    let end = if align {
        series.end
    } else {
        bucket_of(series.end).saturating_add(interval)
    };
    let span = i128::from(end) - i128::from(start);
    let buckets = (span + i128::from(interval) - 1).div_euclid(i128::from(interval));
    // Each bucket is a slot of the answer: as many as a request may read.
    if buckets > MAX_REQUEST_SLOTS as i128 {
        return Err(RenderError::TooManyPoints(MAX_REQUEST_SLOTS));
    }
    let buckets = usize::try_from(buckets).unwrap_or(0);
    let slots = usize::try_from((series.end - series.start) / series.step)
        .unwrap_or(0)
        .min(series.values.len());
    let stamp = |i: usize| series.start + i as i64 * series.step;
    let mut values = vec![None; buckets];
    let mut first = 0;
    while first < slots {
        let bucket = bucket_of(stamp(first));
        let past = (first..slots)
            .find(|&i| bucket_of(stamp(i)) != bucket)
            .unwrap_or(slots);
        let group = &series.values[first..past];
        if group.iter().any(Option::is_some) {
            let index = usize::try_from((bucket - start) / interval).unwrap_or(usize::MAX);
            if let Some(slot) = values.get_mut(index) {
                *slot = agg.apply(group);
            }
        }
        first = past;
    }
    let end = if align {
        start.saturating_add(interval.saturating_mul(buckets as i64))
    } else {
        end
    };
    Ok((start, end, values))
}

/// graphite-web's `perSecond`: a non-negative delta per second, rounded to
/// six decimals; a counter that went down gives `None` unless `maxValue`
/// says where it wrapped.
pub(super) fn per_second(mut series: Series, max: Option<f64>, min: Option<f64>) -> Series {
    let step = series.step as f64;
    let mut prev: Option<f64> = None;
    let values = series
        .values
        .iter()
        .map(|&val| {
            let out_of_range =
                val.is_some_and(|v| max.is_some_and(|m| v > m) || min.is_some_and(|m| v < m));
            let delta = if out_of_range {
                prev = None;
                None
            } else {
                let delta = match (prev, val) {
                    (Some(p), Some(v)) if v >= p => Some(v - p),
                    (Some(p), Some(v)) => match (max, min) {
                        (Some(max), min) => Some(max + 1.0 + v - p - min.unwrap_or(0.0)),
                        (None, Some(min)) => Some(v - min),
                        (None, None) => None,
                    },
                    _ => None,
                };
                prev = val;
                delta
            };
            // Python's round(x, 6) and Rust's {:.6} both round the exact value.
            delta.map(|d| format!("{:.6}", d / step).parse().unwrap_or(d / step))
        })
        .collect();
    series.set_tag("perSecond", "1".into());
    let name = format!("perSecond({})", series.name);
    series.renamed(name, values)
}

/// graphite-web's `movingWindow` with `average`: the target is fetched
/// again from earlier by the window, and each point is the average of the
/// window *before* it.
pub(super) fn moving_average(
    a: &mut Args<'_>,
    inner: Option<&Expr>,
    context: &mut Context<'_>,
) -> Result<Vec<Series>, RenderError> {
    let list = a.series(0)?;
    let inner = inner.ok_or_else(|| bad(a.function, "missing seriesList"))?;
    let window = a
        .take(1)
        .ok_or_else(|| bad(a.function, "missing windowSize"))?;
    let xff = a.number(2)?.unwrap_or(0.0);
    if list.is_empty() {
        return Ok(list);
    }
    let (preview, window_text) = match &window {
        Value::Str(text) => (
            parse_offset(text).map_err(|e| bad(a.function, e))?.abs(),
            text.clone(),
        ),
        Value::Int(n) if *n >= 0 => (
            list.iter()
                .map(|s| s.step)
                .max()
                .unwrap_or(1)
                .saturating_mul(*n),
            n.to_string(),
        ),
        Value::Float(f) if *f >= 0.0 && f.is_finite() => (
            list.iter()
                .map(|s| s.step)
                .max()
                .unwrap_or(1)
                .saturating_mul(*f as i64),
            py_float(*f),
        ),
        _ => {
            return Err(bad(
                a.function,
                "windowSize must be a non-negative number or an interval string",
            ))
        }
    };
    let mut again = Context {
        from: context.from.saturating_sub(preview),
        until: context.until,
        fetch: &mut *context.fetch,
    };
    let previewed = evaluate(inner, &mut again)?;
    Ok(previewed
        .into_iter()
        .map(|mut series| {
            let (name, points) = match &window {
                Value::Str(_) => (
                    format!("movingAverage({},\"{window_text}\")", series.name),
                    usize::try_from(preview / series.step).unwrap_or(0),
                ),
                Value::Float(f) => (
                    format!("movingAverage({},{window_text})", series.name),
                    *f as usize,
                ),
                _ => (
                    format!("movingAverage({},{window_text})", series.name),
                    window_text.parse().unwrap_or(0),
                ),
            };
            series.set_tag("movingAverage", window_text.clone());
            let values = (points..series.values.len())
                .map(|i| {
                    let window = &series.values[i - points..i];
                    let non_null = window.iter().flatten().count();
                    if non_null > 0 && non_null as f64 / points as f64 >= xff {
                        AggFunc::Average.apply(window)
                    } else {
                        None
                    }
                })
                .collect();
            let mut out = series.renamed(name, values);
            out.start = series.start + preview;
            out
        })
        .collect())
}
