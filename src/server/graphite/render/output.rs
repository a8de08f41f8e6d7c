//! `/render`'s output formats, byte for byte as graphite-web 1.1 writes
//! them: JSON `[{"target": ..., "tags": {...}, "datapoints": [[value, ts],
//! ...]}, ...]` (Python's `json.dumps`: `", "` and `": "` separators, ASCII
//! escapes, `null` for no value or NaN, `1e9999` for infinity), with
//! `maxDataPoints` consolidation and `noNullPoints`; and CSV rows
//! `name,YYYY-MM-DD HH:MM:SS,value` (UTC, `\r\n` line ends).

use super::series::Series;
use super::time::format_utc;
use crate::protocol::{push_i64, push_py_float};
use crate::query::{bucket_start, fewest_steps_per_bucket};

/// graphite-web's `renderViewJson`.
pub fn json(mut list: Vec<Series>, max_points: Option<i64>, no_null_points: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + list.iter().map(|s| s.values.len() * 24).sum::<usize>());
    out.push(b'[');
    let start = list.iter().map(|s| s.start).min().unwrap_or(0);
    let end = list.iter().map(|s| s.end).max().unwrap_or(0);
    let range = i128::from(end) - i128::from(start);
    let mut first = true;
    for series in &mut list {
        let per_point = match max_points {
            None => 1,
            Some(1) => series.values.len().max(1),
            Some(max) => nudged(series, range, max),
        };
        let values = series.consolidated(per_point);
        let stride = series.step * per_point as i64;
        let points = values
            .iter()
            .zip((series.start..=series.end).step_by(usize::try_from(stride).unwrap_or(1).max(1)));
        if no_null_points && !values.iter().any(|v| v.is_some_and(|v| !v.is_nan())) {
            continue;
        }
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        out.extend_from_slice(b"{\"target\": ");
        push_string(&mut out, &series.name);
        out.extend_from_slice(b", \"tags\": {");
        for (i, (key, value)) in series.tags.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            push_string(&mut out, key);
            out.extend_from_slice(b": ");
            push_string(&mut out, value);
        }
        out.extend_from_slice(b"}, \"datapoints\": [");
        let mut first_point = true;
        for (value, ts) in points {
            if no_null_points && !value.is_some_and(|v| !v.is_nan()) {
                continue;
            }
            if !first_point {
                out.extend_from_slice(b", ");
            }
            first_point = false;
            out.push(b'[');
            push_value(&mut out, *value);
            out.extend_from_slice(b", ");
            push_i64(&mut out, ts);
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
    out
}

/// graphite-web's `maxDataPoints` for one series (of a list spanning
/// `range` seconds): how many values each point averages, the start moved
/// and the values it passed dropped. graphite-web computes
/// `ceil((range / step) / maxDataPoints)` in doubles when `maxDataPoints <
/// range / step`: that is the query API's fewest steps per bucket, above 1
/// exactly then (the same number for every range below 2^52 s, where the
/// doubles are exact enough; beyond, theirs are rounded and this is not).
/// What stays Graphite's: the points are groups of that many slots (`None`
/// ones included) from the new start, averaged without their `None`s,
/// where a rollup would bucket points by time; and the nudge: the start
/// moves to the first multiple of the group's seconds after it (the next
/// of the query API's buckets), plus its offset in its step, so that bands
/// stay put from one refresh to the next, but only one value fewer than
/// the slots it passes is dropped, so each group begins one slot before
/// the time it is reported at.
fn nudged(series: &mut Series, range: i128, max_points: i64) -> usize {
    let max_points = u64::try_from(max_points).unwrap_or(1).max(1);
    let per = fewest_steps_per_bucket(range, series.step, max_points);
    let seconds = per.saturating_mul(i128::from(series.step));
    let (Ok(per), Ok(seconds)) = (usize::try_from(per), i64::try_from(seconds)) else {
        return series.values.len().max(1);
    };
    if per <= 1 {
        return 1;
    }
    let start = bucket_start(series.start, seconds)
        .saturating_add(seconds)
        .saturating_add(series.start.rem_euclid(series.step));
    let nudge = start - series.start;
    series.start = start;
    let lose = usize::try_from(nudge / series.step - 1).unwrap_or(0);
    series.values.drain(..lose.min(series.values.len()));
    per
}

fn push_value(out: &mut Vec<u8>, value: Option<f64>) {
    match value {
        Some(v) if v.is_nan() => out.extend_from_slice(b"null"),
        Some(v) if v.is_infinite() => {
            out.extend_from_slice(if v > 0.0 { b"1e9999" } else { b"-1e9999" })
        }
        Some(v) => push_py_float(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string as Python's `json.dumps` (with `ensure_ascii`) writes it.
pub fn push_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
            c => out.push(c as u8),
        }
    }
    out.push(b'"');
}

/// graphite-web's `renderViewCsv` (Python's csv module, excel dialect).
pub fn csv(list: &[Series]) -> Vec<u8> {
    let mut out = Vec::new();
    for series in list {
        let mut name = Vec::new();
        if series.name.contains([',', '"', '\r', '\n']) {
            name.push(b'"');
            name.extend_from_slice(series.name.replace('"', "\"\"").as_bytes());
            name.push(b'"');
        } else {
            name.extend_from_slice(series.name.as_bytes());
        }
        for (i, value) in series.values.iter().enumerate() {
            out.extend_from_slice(&name);
            out.push(b',');
            out.extend_from_slice(format_utc(series.start + i as i64 * series.step).as_bytes());
            out.push(b',');
            match value {
                Some(v) if v.is_nan() => out.extend_from_slice(b"nan"),
                Some(v) if v.is_infinite() => {
                    out.extend_from_slice(if *v > 0.0 { b"inf" } else { b"-inf" })
                }
                Some(v) => push_py_float(&mut out, *v),
                None => {}
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: Vec<Option<f64>>) -> Series {
        let end = 100 + 10 * values.len() as i64;
        Series {
            values,
            ..Series::fetched("a.b", "a.*", 100, end, 10)
        }
    }

    #[test]
    fn json_as_graphite_web_writes_it() {
        let out = json(vec![series(vec![Some(1.0), None, Some(0.5)])], None, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"target": "a.b", "tags": {"name": "a.b"}, "datapoints": [[1.0, 100], [null, 110], [0.5, 120]]}]"#
        );
        let out = json(vec![series(vec![None, Some(f64::INFINITY)])], None, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"target": "a.b", "tags": {"name": "a.b"}, "datapoints": [[1e9999, 110]]}]"#
        );
        assert_eq!(json(vec![series(vec![None])], None, true), b"[]");
        let mut out = Vec::new();
        push_string(&mut out, "q\"\\\u{1}é😀");
        assert_eq!(out, br#""q\"\\\u0001\u00e9\ud83d\ude00""#);
    }

    #[test]
    fn max_data_points_consolidates_with_graphite_web_nudge() {
        // 10 values over [100, 200), at most 4 points: 3 values per point.
        let values = (0..10).map(|i| Some(f64::from(i))).collect();
        let out = String::from_utf8(json(vec![series(values)], Some(4), false)).unwrap();
        // nudge = 30 + 0 - (100 % 30 = 10) = 20: start 120, one value lost.
        assert!(
            out.ends_with(r#""datapoints": [[2.0, 120], [5.0, 150], [8.0, 180]]}]"#),
            "{out}"
        );
        let out = String::from_utf8(json(
            vec![series(vec![Some(1.0), Some(3.0)])],
            Some(1),
            false,
        ))
        .unwrap();
        assert!(out.ends_with(r#"[[2.0, 100]]}]"#), "{out}");
    }

    #[test]
    fn csv_as_graphite_web_writes_it() {
        let mut s = series(vec![Some(1.5), None]);
        s.name = "a,b".into();
        assert_eq!(
            String::from_utf8(csv(&[s])).unwrap(),
            "\"a,b\",1970-01-01 00:01:40,1.5\r\n\"a,b\",1970-01-01 00:01:50,\r\n"
        );
    }
}
