//! `/render`: targets (`target` and `target[]`, parsed by `target`), a range
//! (`from`, `until`, `now` in `time`'s syntax; by default the last day),
//! evaluation (`functions`, and `windows` for the functions over time, over
//! series read by `fetch` on the `series` model) and the output (`output`: `format=json`, the default here, or
//! `csv`; `maxDataPoints`, `noNullPoints`). Everything here is sans-IO:
//! the HTTP layer hands over the query's parameters and a way to read.

pub mod fetch;
pub mod functions;
pub mod output;
pub mod series;
pub mod target;
pub mod time;
mod windows;

use super::glob::PathError;
use super::source::Source;
use target::ParseError;
use time::TimeError;

/// Why a render request is refused (answered 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Target(#[from] ParseError),
    #[error("{param}: {error}")]
    Time {
        param: &'static str,
        error: TimeError,
    },
    #[error("bad path: {0}")]
    Path(PathError),
    #[error("{0}")]
    Argument(String),
    #[error("unknown function {0:?} (this server has sumSeries, averageSeries, maxSeries, minSeries, alias, aliasByNode, scale, summarize, derivative, perSecond and movingAverage)")]
    UnknownFunction(String),
    #[error("unsupported format {0:?}: use json or csv")]
    Format(String),
    #[error("maxDataPoints must be a positive integer, got {0:?}")]
    MaxDataPoints(String),
    #[error("the query would read more than {0} points: narrow the range or the paths")]
    TooManyPoints(usize),
    #[error("invalid empty time range: from and until are the same time")]
    EmptyRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// A parsed `/render` query.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub targets: Vec<target::Expr>,
    pub from: i64,
    pub until: i64,
    pub format: Format,
    pub max_data_points: Option<i64>,
    pub no_null_points: bool,
}

impl Request {
    /// Reads the query's parameters (from the URL and a form body alike);
    /// `now` is the server's clock, which a `now` parameter replaces.
    pub fn parse(params: &[(String, String)], now: i64) -> Result<Request, RenderError> {
        let get = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let time = |param: &'static str, text: &str, now: i64| {
            time::parse_time(text, now).map_err(|error| RenderError::Time { param, error })
        };
        let now = match get("now") {
            Some(text) => time("now", text, now)?,
            None => now,
        };
        let until = get("until").map_or(Ok(now), |t| time("until", t, now))?;
        let from = get("from").map_or_else(|| Ok(now - 86_400), |t| time("from", t, now))?;
        let (from, until) = (from.min(until), from.max(until));
        if from == until {
            return Err(RenderError::EmptyRange);
        }
        let mut targets = Vec::new();
        for (key, value) in params {
            if (key == "target" || key == "target[]") && !value.trim().is_empty() {
                targets.push(target::parse_target(value)?);
            }
        }
        let format = match get("format") {
            None | Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(other) => return Err(RenderError::Format(other.to_owned())),
        };
        // graphite-web ignores a maxDataPoints that is not all digits; a
        // client that sends one made a mistake worth hearing about.
        let max_data_points = match get("maxDataPoints") {
            None => None,
            Some(text) => match text.parse::<i64>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(RenderError::MaxDataPoints(text.to_owned())),
            },
        };
        Ok(Request {
            targets,
            from,
            until,
            format,
            max_data_points,
            no_null_points: get("noNullPoints").is_some(),
        })
    }
}

/// Lends the source to the function it is given (under the store's lock).
pub type Read<'r> = dyn FnMut(&mut dyn FnMut(&dyn Source)) + 'r;

/// Evaluates every target of `request`, reading through `read`, which
/// calls its argument with the source (the HTTP layer takes the store's
/// lock around each read). Returns the body and its content type.
pub fn render(
    request: &Request,
    read: &mut Read<'_>,
) -> Result<(Vec<u8>, &'static str), RenderError> {
    let mut budget = fetch::MAX_REQUEST_SLOTS;
    let mut fetch = |path: &str, from: i64, until: i64| {
        let mut result = Ok(Vec::new());
        read(&mut |source| result = fetch::fetch(source, path, from, until, &mut budget));
        result
    };
    let mut list = Vec::new();
    for target in &request.targets {
        let mut context = functions::Context {
            from: request.from,
            until: request.until,
            fetch: &mut fetch,
        };
        list.extend(functions::evaluate(target, &mut context)?);
    }
    Ok(match request.format {
        Format::Json => (
            output::json(list, request.max_data_points, request.no_null_points),
            "application/json",
        ),
        Format::Csv => (output::csv(&list), "text/csv"),
    })
}

#[cfg(test)]
mod query_tests;
#[cfg(test)]
mod tests;
