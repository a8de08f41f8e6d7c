//! The target expressions of `/render` (sans-IO), in graphite-web's
//! grammar: a path (with globs) or a call `name(arg, ..., key=arg)`, whose
//! arguments are expressions, numbers, quoted strings, booleans, `None` or
//! `inf`; `expr|call(args)` pipes `expr` in as the call's first argument.

/// A parsed target or argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Path(String),
    Call {
        name: String,
        args: Vec<Expr>,
        kwargs: Vec<(String, Expr)>,
    },
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
}

/// Why a target does not parse: what was expected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad target at character {at}: {reason}")]
pub struct ParseError {
    pub at: usize,
    pub reason: String,
}

/// Calls nested deeper than this are refused (the parser recurses).
const MAX_DEPTH: usize = 64;

/// Characters that end a path element (graphite's grammar symbols).
const SYMBOLS: &[u8] = b"(){},=.'\"\\|";

/// Parses one target.
pub fn parse_target(text: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser { text, at: 0 };
    parser.blank();
    let expr = parser.expression(0)?;
    parser.blank();
    if parser.at < text.len() {
        return Err(parser.error("unexpected text after the expression"));
    }
    Ok(expr)
}

/// The first path in `name` when it parses as an expression (graphite's
/// `_getFirstPathExpression`), else `name` itself.
pub fn first_path(name: &str) -> &str {
    fn walk(expr: &Expr) -> Option<&str> {
        match expr {
            Expr::Path(path) => Some(path),
            Expr::Call { args, kwargs, .. } => args
                .iter()
                .chain(kwargs.iter().map(|(_, e)| e))
                .find_map(walk),
            _ => None,
        }
    }
    let Ok(expr) = parse_target(name) else {
        return name;
    };
    match walk(&expr) {
        // Found again in `name`, so the borrow is of the caller's text.
        Some(path) => name
            .find(path)
            .map_or(name, |at| &name[at..at + path.len()]),
        None => name,
    }
}

struct Parser<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Parser<'t> {
    fn error(&self, reason: &str) -> ParseError {
        ParseError {
            at: self.at,
            reason: reason.to_owned(),
        }
    }

    fn rest(&self) -> &'t [u8] {
        &self.text.as_bytes()[self.at..]
    }

    fn peek(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    fn blank(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.blank();
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A call or a path, then any piped calls.
    fn expression(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("expression nested too deeply"));
        }
        let mut expr = self.call_or_path(depth)?;
        while self.eat(b'|') {
            self.blank();
            let start = self.at;
            match self.call_or_path(depth)? {
                Expr::Call { name, args, kwargs } => {
                    let mut piped = Vec::with_capacity(args.len() + 1);
                    piped.push(expr);
                    piped.extend(args);
                    expr = Expr::Call {
                        name,
                        args: piped,
                        kwargs,
                    };
                }
                _ => {
                    self.at = start;
                    return Err(self.error("a pipe must be followed by a function call"));
                }
            }
        }
        Ok(expr)
    }

    fn call_or_path(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let start = self.at;
        let name_len = self
            .rest()
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        let is_name = self
            .peek()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if is_name && self.rest().get(name_len) == Some(&b'(') {
            let name = self.text[start..start + name_len].to_owned();
            self.at += name_len + 1;
            let (args, kwargs) = self.arguments(depth)?;
            return Ok(Expr::Call { name, args, kwargs });
        }
        self.path()
    }

    fn path(&mut self) -> Result<Expr, ParseError> {
        let start = self.at;
        let bytes = self.text.as_bytes();
        let mut element_empty = true;
        while let Some(&b) = bytes.get(self.at) {
            match b {
                b'.' => {
                    if element_empty {
                        return Err(self.error("empty node in path"));
                    }
                    element_empty = true;
                    self.at += 1;
                }
                b'{' => {
                    let close = self.rest().iter().position(|&c| c == b'}');
                    let Some(close) = close else {
                        return Err(self.error("unclosed '{' in path"));
                    };
                    let inner = &self.rest()[1..close];
                    if inner
                        .iter()
                        .any(|c| c.is_ascii_whitespace() || b"(){'\"|.".contains(c))
                    {
                        return Err(self.error("bad character inside '{...}'"));
                    }
                    self.at += close + 1;
                    element_empty = false;
                }
                b'\\' => {
                    let next = bytes.get(self.at + 1).copied();
                    if !next.is_some_and(|c| SYMBOLS.contains(&c)) {
                        return Err(self.error("'\\' must escape one of (){},=.'\"\\|"));
                    }
                    self.at += 2;
                    element_empty = false;
                }
                b if b.is_ascii_whitespace() || b.is_ascii_control() || SYMBOLS.contains(&b) => {
                    break
                }
                _ => {
                    // One whole character (paths may hold UTF-8).
                    let c = self.text[self.at..]
                        .chars()
                        .next()
                        .map_or(1, char::len_utf8);
                    self.at += c;
                    element_empty = false;
                }
            }
        }
        if self.at == start {
            return Err(self.error("expected a path or a function call"));
        }
        if element_empty {
            return Err(self.error("empty node in path"));
        }
        Ok(Expr::Path(self.text[start..self.at].to_owned()))
    }

    /// After `(`: arguments up to the closing `)`.
    #[allow(clippy::type_complexity)]
    fn arguments(&mut self, depth: usize) -> Result<(Vec<Expr>, Vec<(String, Expr)>), ParseError> {
        let (mut args, mut kwargs) = (Vec::new(), Vec::new());
        if self.eat(b')') {
            return Ok((args, kwargs));
        }
        loop {
            self.blank();
            if let Some(name) = self.keyword() {
                kwargs.push((name, self.argument(depth)?));
            } else if !kwargs.is_empty() {
                return Err(self.error("positional argument after a keyword argument"));
            } else {
                args.push(self.argument(depth)?);
            }
            if self.eat(b')') {
                return Ok((args, kwargs));
            }
            if !self.eat(b',') {
                return Err(self.error("expected ',' or ')'"));
            }
        }
    }

    /// `name=` ahead (consumed), as the start of a keyword argument.
    fn keyword(&mut self) -> Option<String> {
        let rest = self.rest();
        let len = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        if len == 0 || !rest[0].is_ascii_alphabetic() && rest[0] != b'_' {
            return None;
        }
        let mut after = len;
        while rest.get(after).is_some_and(|b| b.is_ascii_whitespace()) {
            after += 1;
        }
        if rest.get(after) != Some(&b'=') {
            return None;
        }
        let name = self.text[self.at..self.at + len].to_owned();
        self.at += after + 1;
        Some(name)
    }

    fn argument(&mut self, depth: usize) -> Result<Expr, ParseError> {
        self.blank();
        match self.peek() {
            Some(quote @ (b'\'' | b'"')) => {
                let close = self.rest()[1..].iter().position(|&c| c == quote);
                let Some(close) = close else {
                    return Err(self.error("unclosed string"));
                };
                let text = self.text[self.at + 1..self.at + 1 + close].to_owned();
                self.at += close + 2;
                return Ok(Expr::Str(text));
            }
            None => return Err(self.error("expected an argument")),
            _ => {}
        }
        if let Some(scalar) = self.scalar() {
            return Ok(scalar);
        }
        self.expression(depth + 1)
    }

    /// A number, boolean, `None` or `inf` standing alone as an argument
    /// (followed by `,` or `)`): `1.5` is a number, `1.5min` a path.
    fn scalar(&mut self) -> Option<Expr> {
        let rest = self.rest();
        let len = rest
            .iter()
            .position(|b| b.is_ascii_whitespace() || b",)".contains(b))
            .unwrap_or(rest.len());
        let word = &self.text[self.at..self.at + len];
        let mut after = self.at + len;
        while self
            .text
            .as_bytes()
            .get(after)
            .is_some_and(u8::is_ascii_whitespace)
        {
            after += 1;
        }
        if !matches!(self.text.as_bytes().get(after), Some(b',' | b')')) {
            return None;
        }
        let scalar = match word.to_ascii_lowercase().as_str() {
            "true" => Expr::Bool(true),
            "false" => Expr::Bool(false),
            "none" => Expr::None,
            "inf" => Expr::Float(f64::INFINITY),
            _ => number(word)?,
        };
        self.at += len;
        Some(scalar)
    }
}

fn number(word: &str) -> Option<Expr> {
    let digits = word.strip_prefix('-').unwrap_or(word);
    if digits.is_empty() {
        return None;
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        return word.parse().ok().map(Expr::Int);
    }
    let numeric = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b))
        && digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if !numeric {
        return None;
    }
    word.parse::<f64>().ok().map(Expr::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Expr {
        Expr::Path(p.into())
    }

    fn call(name: &str, args: Vec<Expr>) -> Expr {
        Expr::Call {
            name: name.into(),
            args,
            kwargs: vec![],
        }
    }

    #[test]
    fn paths_calls_and_scalars() {
        assert_eq!(parse_target("a.b-1.c_d:e").unwrap(), path("a.b-1.c_d:e"));
        assert_eq!(
            parse_target(" a.{x,y}.*[0-9]? ").unwrap(),
            path("a.{x,y}.*[0-9]?")
        );
        assert_eq!(
            parse_target("sumSeries(a.*, b.c)").unwrap(),
            call("sumSeries", vec![path("a.*"), path("b.c")])
        );
        assert_eq!(
            parse_target("summarize(scale(a,-2.5),'1h',\"max\", true)").unwrap(),
            call(
                "summarize",
                vec![
                    call("scale", vec![path("a"), Expr::Float(-2.5)]),
                    Expr::Str("1h".into()),
                    Expr::Str("max".into()),
                    Expr::Bool(true)
                ]
            )
        );
        assert_eq!(
            parse_target("aliasByNode(a.b, 0, -1)").unwrap(),
            call(
                "aliasByNode",
                vec![path("a.b"), Expr::Int(0), Expr::Int(-1)]
            )
        );
        assert_eq!(
            parse_target("movingAverage(a, windowSize=5, xFilesFactor=None)").unwrap(),
            Expr::Call {
                name: "movingAverage".into(),
                args: vec![path("a")],
                kwargs: vec![
                    ("windowSize".into(), Expr::Int(5)),
                    ("xFilesFactor".into(), Expr::None)
                ]
            }
        );
        assert_eq!(
            parse_target("a.b|scale(2)|alias('x')").unwrap(),
            call(
                "alias",
                vec![
                    call("scale", vec![path("a.b"), Expr::Int(2)]),
                    Expr::Str("x".into())
                ]
            )
        );
        assert_eq!(parse_target("f()").unwrap(), call("f", vec![]));
        assert_eq!(
            parse_target("scale(1.5min, 1e3)").unwrap(),
            call("scale", vec![path("1.5min"), Expr::Float(1000.0)])
        );
    }

    #[test]
    fn bad_targets_say_where() {
        for bad in [
            "",
            "a..b",
            "a.",
            "sum(a",
            "sum(a,)",
            "sum(a b)",
            "a)",
            "f('x)",
            "a{b",
            "f(x=1, a)",
            "a|b",
            "a\\x",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_target("sum(a b)").unwrap_err().at, 6);
        let deep = "f(".repeat(100) + "a" + &")".repeat(100);
        assert!(parse_target(&deep).unwrap_err().reason.contains("deeply"));
    }

    #[test]
    fn first_path_of_a_series_name() {
        assert_eq!(first_path("sumSeries(a.b.*,c)"), "a.b.*");
        assert_eq!(first_path("summarize(x.y, \"1h\", \"sum\")"), "x.y");
        assert_eq!(first_path("a.b"), "a.b");
        assert_eq!(first_path("not ( parsable"), "not ( parsable");
    }
}
