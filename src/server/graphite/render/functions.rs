//! Evaluating a target: paths are fetched through the caller's fetch
//! function, calls are graphite-web's functions with its names, tags and
//! edge cases (the JSON of the same query matches graphite-web's).

use super::series::{format_g, py_float, AggFunc, Series};
use super::target::{first_path, Expr};
use super::windows::{moving_average, per_second, summarize};
use super::RenderError;

/// Fetches the series a path expression matches over `[from, until]`.
pub type Fetch<'f> = dyn FnMut(&str, i64, i64) -> Result<Vec<Series>, RenderError> + 'f;

/// What a target is evaluated over.
pub struct Context<'f> {
    pub from: i64,
    pub until: i64,
    pub fetch: &'f mut Fetch<'f>,
}

/// An evaluated argument.
pub(super) enum Value {
    Series(Vec<Series>),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
}

pub(super) fn bad(function: &str, reason: impl std::fmt::Display) -> RenderError {
    RenderError::Argument(format!("{function}: {reason}"))
}

/// Evaluates a target into its series.
pub fn evaluate(expr: &Expr, context: &mut Context<'_>) -> Result<Vec<Series>, RenderError> {
    match value(expr, context)? {
        Value::Series(series) => Ok(series),
        _ => Err(RenderError::Argument(
            "a target must be a path or a function returning series".into(),
        )),
    }
}

fn value(expr: &Expr, context: &mut Context<'_>) -> Result<Value, RenderError> {
    Ok(match expr {
        Expr::Path(path) => Value::Series((context.fetch)(path, context.from, context.until)?),
        Expr::Call { name, args, kwargs } => Value::Series(call(name, args, kwargs, context)?),
        Expr::Int(i) => Value::Int(*i),
        Expr::Float(f) => Value::Float(*f),
        Expr::Str(s) => Value::Str(s.clone()),
        Expr::Bool(b) => Value::Bool(*b),
        Expr::None => Value::None,
    })
}

/// The arguments of one call, positional then by keyword.
pub(super) struct Args<'a> {
    pub(super) function: &'a str,
    pub(super) values: Vec<Option<Value>>,
    pub(super) names: &'static [&'static str],
}

impl Args<'_> {
    /// The parameter at `index`, for messages: a variadic function's last
    /// parameter (`seriesLists`) names every argument past it.
    fn name(&self, index: usize) -> String {
        match self.names.get(index).or(self.names.last()) {
            Some(name) if index < self.names.len() => (*name).to_string(),
            Some(name) => format!("{name} (argument {})", index + 1),
            None => format!("argument {}", index + 1),
        }
    }

    pub(super) fn take(&mut self, index: usize) -> Option<Value> {
        self.values.get_mut(index).and_then(Option::take)
    }

    pub(super) fn series(&mut self, index: usize) -> Result<Vec<Series>, RenderError> {
        match self.take(index) {
            Some(Value::Series(series)) => Ok(series),
            Some(_) => Err(bad(
                self.function,
                format!("{} must be a series list", self.name(index)),
            )),
            None => Err(bad(self.function, format!("missing {}", self.name(index)))),
        }
    }

    pub(super) fn number(&mut self, index: usize) -> Result<Option<f64>, RenderError> {
        match self.take(index) {
            Some(Value::Int(i)) => Ok(Some(i as f64)),
            Some(Value::Float(f)) => Ok(Some(f)),
            Some(Value::None) | None => Ok(None),
            Some(_) => Err(bad(
                self.function,
                format!("{} must be a number", self.name(index)),
            )),
        }
    }

    pub(super) fn text(&mut self, index: usize) -> Result<Option<String>, RenderError> {
        match self.take(index) {
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(Value::None) | None => Ok(None),
            Some(_) => Err(bad(
                self.function,
                format!("{} must be a quoted string", self.name(index)),
            )),
        }
    }
}

/// Parameter names of each function, for keyword arguments and messages.
fn parameters(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "sumSeries" | "sum" | "averageSeries" | "avg" | "maxSeries" | "minSeries" => {
            &["seriesLists"]
        }
        "alias" => &["seriesList", "newName"],
        "aliasByNode" => &["seriesList", "nodes"],
        "scale" => &["seriesList", "factor"],
        "summarize" => &["seriesList", "intervalString", "func", "alignToFrom"],
        "derivative" => &["seriesList"],
        "perSecond" => &["seriesList", "maxValue", "minValue"],
        "movingAverage" => &["seriesList", "windowSize", "xFilesFactor"],
        _ => return None,
    })
}

fn call(
    name: &str,
    args: &[Expr],
    kwargs: &[(String, Expr)],
    context: &mut Context<'_>,
) -> Result<Vec<Series>, RenderError> {
    let names = parameters(name).ok_or_else(|| RenderError::UnknownFunction(name.to_owned()))?;
    let variadic = matches!(names, ["seriesLists"] | [_, "nodes"]);
    let mut values: Vec<Option<Value>> = Vec::with_capacity(args.len().max(names.len()));
    for arg in args {
        values.push(Some(value(arg, context)?));
    }
    if !variadic && values.len() > names.len() {
        return Err(bad(
            name,
            format!("takes at most {} arguments", names.len()),
        ));
    }
    values.resize_with(values.len().max(names.len()), || None);
    for (key, arg) in kwargs {
        let index = names
            .iter()
            .position(|n| n == key)
            .filter(|_| !variadic)
            .ok_or_else(|| bad(name, format!("unknown keyword argument {key:?}")))?;
        if values[index].is_some() {
            return Err(bad(name, format!("{key} given twice")));
        }
        values[index] = Some(value(arg, context)?);
    }
    let mut a = Args {
        function: name,
        values,
        names,
    };
    match name {
        "sumSeries" | "sum" => aggregate(&mut a, AggFunc::Sum, "sum"),
        "averageSeries" | "avg" => aggregate(&mut a, AggFunc::Average, "average"),
        "maxSeries" => aggregate(&mut a, AggFunc::Max, "max"),
        "minSeries" => aggregate(&mut a, AggFunc::Min, "min"),
        "alias" => {
            let mut list = a.series(0)?;
            let new_name = a.text(1)?.ok_or_else(|| bad(name, "missing newName"))?;
            for series in &mut list {
                series.name = new_name.clone();
            }
            Ok(list)
        }
        "aliasByNode" => alias_by_node(&mut a),
        "scale" => {
            let list = a.series(0)?;
            // graphite-web's parameter check makes the factor a float
            // first, so `scale(x,10)` is tagged "10.0".
            let factor = a
                .number(1)?
                .ok_or_else(|| bad(name, "factor must be a number"))?;
            let text = py_float(factor);
            Ok(list
                .into_iter()
                .map(|mut series| {
                    series.set_tag("scale", text.clone());
                    let values = series
                        .values
                        .iter()
                        .map(|v| v.map(|v| v * factor))
                        .collect();
                    series.renamed(
                        format!("scale({},{})", series.name, format_g(factor)),
                        values,
                    )
                })
                .collect())
        }
        "summarize" => summarize(&mut a),
        "derivative" => Ok(a
            .series(0)?
            .into_iter()
            .map(|mut series| {
                series.set_tag("derivative", "1".into());
                let mut prev = None;
                let values = series
                    .values
                    .iter()
                    .map(|&v| {
                        let out = prev.zip(v).map(|(p, v)| v - p);
                        prev = v;
                        out
                    })
                    .collect();
                series.renamed(format!("derivative({})", series.name), values)
            })
            .collect()),
        "perSecond" => {
            let list = a.series(0)?;
            let (max, min) = (a.number(1)?, a.number(2)?);
            Ok(list.into_iter().map(|s| per_second(s, max, min)).collect())
        }
        "movingAverage" => {
            // The window reads further back: the series expression is
            // evaluated again, however it was given.
            let inner = args.first().or_else(|| {
                kwargs
                    .iter()
                    .find(|(key, _)| key == "seriesList")
                    .map(|(_, expr)| expr)
            });
            moving_average(&mut a, inner, context)
        }
        _ => Err(RenderError::UnknownFunction(name.to_owned())),
    }
}

/// graphite-web's `aggregate`: normalized to the coarsest step (the LCM),
/// zipped row by row, tagged with what the inputs share.
fn aggregate(a: &mut Args<'_>, agg: AggFunc, func: &str) -> Result<Vec<Series>, RenderError> {
    let mut list = Vec::new();
    for index in 0..a.values.len() {
        list.extend(a.series(index)?);
    }
    let Some(first) = list.first() else {
        return Ok(Vec::new());
    };
    let step = list.iter().fold(first.step, |acc, s| lcm(acc, s.step));
    let start = list.iter().map(|s| s.start).min().unwrap_or(0);
    let mut end = list.iter().map(|s| s.end).max().unwrap_or(0);
    end -= (end - start) % step;
    let mut expressions: Vec<&str> = Vec::new();
    for series in &list {
        if !expressions.contains(&series.path_expression.as_str()) {
            expressions.push(&series.path_expression);
        }
    }
    let name = format!("{func}Series({})", expressions.join(","));
    let columns: Vec<Vec<Option<f64>>> = list
        .iter()
        .map(|s| s.consolidated(usize::try_from(step / s.step).unwrap_or(1)))
        .collect();
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
    let mut row = Vec::with_capacity(columns.len());
    let values = (0..rows)
        .map(|i| {
            row.clear();
            row.extend(columns.iter().map(|c| c.get(i).copied().flatten()));
            agg.apply(&row)
        })
        .collect();
    let mut tags = first.tags.clone();
    for series in &list[1..] {
        tags.retain(|(k, v)| series.tag(k) == Some(v.as_str()));
    }
    let mut result = Series {
        name: name.clone(),
        path_expression: name.clone(),
        tags,
        start,
        end,
        step,
        values,
    };
    if result.tag("name").is_none() {
        result.set_tag("name", name);
    }
    result.set_tag("aggregatedBy", func.to_owned());
    Ok(vec![result])
}

fn lcm(a: i64, b: i64) -> i64 {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    if a == b {
        return a;
    }
    a / gcd(a, b) * b
}

fn alias_by_node(a: &mut Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = a.series(0)?;
    let mut nodes = Vec::new();
    for index in 1..a.values.len() {
        nodes.push(match a.take(index) {
            Some(Value::Int(i)) => Ok(i),
            Some(Value::Str(tag)) => Err(tag),
            _ => return Err(bad(a.function, "nodes must be integers or tag names")),
        });
    }
    if nodes.is_empty() {
        return Err(bad(a.function, "missing nodes"));
    }
    for series in &mut list {
        let path = if series.name.ends_with(')') {
            first_path(&series.name).to_owned()
        } else {
            series.name.clone()
        };
        let parts: Vec<&str> = path.split(';').next().unwrap_or("").split('.').collect();
        let picked: Vec<String> = nodes
            .iter()
            .map(|node| {
                let part = node.as_ref().ok().and_then(|&n| {
                    let len = parts.len() as i64;
                    let at = if n < 0 { n + len } else { n };
                    usize::try_from(at).ok().and_then(|at| parts.get(at))
                });
                match (part, node) {
                    (Some(part), _) => (*part).to_owned(),
                    (None, Ok(n)) => series.tag(&n.to_string()).unwrap_or("").to_owned(),
                    (None, Err(tag)) => series.tag(tag).unwrap_or("").to_owned(),
                }
            })
            .collect();
        series.name = picked.join(".");
    }
    Ok(list)
}
