//! The functions over time of one series at a time: `summarize` (buckets
//! of an interval), `perSecond` (a counter's rate) and `movingAverage`
//! (which fetches its target again, from earlier by the window), as
//! graphite-web computes them.

use super::functions::{bad, evaluate, Args, Context, Value};
use super::series::{py_float, AggFunc, Series};
use super::target::Expr;
use super::time::parse_offset;
use super::RenderError;

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
    Ok(list
        .into_iter()
        .map(|mut series| {
            let (start, mut end) = if align {
                (series.start, series.end)
            } else {
                (
                    series.start - series.start.rem_euclid(interval),
                    series.end - series.end.rem_euclid(interval) + interval,
                )
            };
            let count = usize::try_from((series.end - series.start) / series.step).unwrap_or(0);
            let points = count.min(series.values.len());
            let stamp = |i: usize| series.start + i as i64 * series.step;
            let mut values = Vec::new();
            let (mut i, mut bucket) = (0, start);
            while bucket < end {
                let (mut s, mut non_null) = (i, 0);
                while i < points && stamp(i) < bucket + interval {
                    if stamp(i) <= bucket {
                        s = i;
                    }
                    if stamp(i) >= bucket && series.values[i].is_some() {
                        non_null += 1;
                    }
                    i += 1;
                }
                values.push(if non_null > 0 {
                    agg.apply(&series.values[s..i])
                } else {
                    None
                });
                bucket += interval;
            }
            if align {
                end = bucket;
            }
            series.set_tag("summarize", interval_text.clone());
            series.set_tag("summarizeFunction", func.clone());
            let name = format!(
                "summarize({}, \"{interval_text}\", \"{func}\"{})",
                series.name,
                if align { ", true" } else { "" }
            );
            let mut out = series.renamed(name, values);
            (out.start, out.end, out.step) = (start, end, interval);
            out
        })
        .collect())
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
