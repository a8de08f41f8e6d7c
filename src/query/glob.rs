//! Graphite globs over metric keys: `*` matches any run of characters within
//! one dot-separated node (never a `.`), `?` one character other than `.`,
//! `[a-z0-9]` / `[!x]` a character class (never matching `.`), and
//! `{cpu,mem}` alternatives, which may hold globs themselves (not nested
//! braces). A bare `*` keeps its course meaning: every key, dots included.
//!
//! A pattern is compiled once: its alternatives are expanded (a bounded
//! number of them) into token lists, matched by a small NFA simulation, so
//! a match costs O(key length x pattern length) with no backtracking blow-up.
//! [`Glob::literal_prefix`] is what every key a pattern matches starts with,
//! so an index sorted by key can skip straight to the candidates.

use thiserror::Error;

/// Alternatives a pattern may expand to (`{a,b}{c,d}` is four): bounds the
/// work and memory one query line can ask for.
pub const MAX_ALTERNATIVES: usize = 256;

/// Why a pattern is not a glob.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GlobError {
    #[error("unclosed '[' in pattern")]
    UnclosedClass,
    #[error("empty character class '[]' in pattern")]
    EmptyClass,
    #[error("unclosed '{{' in pattern")]
    UnclosedBrace,
    #[error("'}}' without '{{' in pattern")]
    StrayBrace,
    #[error("nested '{{' in pattern (alternatives cannot be nested)")]
    NestedBrace,
    #[error("pattern expands to more than {MAX_ALTERNATIVES} alternatives")]
    TooManyAlternatives,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    One,
    /// `*`
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    kind: Kind,
    prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Bare `*`: every key.
    All,
    /// No metacharacter: exactly this key.
    Literal(String),
    Alternatives(Vec<Vec<Token>>),
}

/// Whether `key` has a glob metacharacter (`*`, `?`, `[`, `{`): such a key
/// is sent as a query, not as a course `get`.
pub fn has_metacharacters(key: &str) -> bool {
    key.contains(['*', '?', '[', '{'])
}

impl Glob {
    /// Compiles `pattern`.
    pub fn compile(pattern: &str) -> Result<Glob, GlobError> {
        if pattern == "*" {
            return Ok(Glob {
                kind: Kind::All,
                prefix: String::new(),
            });
        }
        let alternatives = expand(pattern)?;
        let mut compiled = Vec::with_capacity(alternatives.len());
        for text in &alternatives {
            compiled.push(tokens(text)?);
        }
        let literal = |tokens: &Vec<Token>| -> Option<String> {
            tokens
                .iter()
                .map(|t| match t {
                    Token::Char(c) => Some(*c),
                    _ => None,
                })
                .collect()
        };
        if let [only] = compiled.as_slice() {
            if let Some(key) = literal(only) {
                return Ok(Glob {
                    prefix: key.clone(),
                    kind: Kind::Literal(key),
                });
            }
        }
        let prefix = common_prefix(compiled.iter().map(|tokens| {
            tokens
                .iter()
                .map_while(|t| match t {
                    Token::Char(c) => Some(*c),
                    _ => None,
                })
                .collect::<String>()
        }));
        Ok(Glob {
            kind: Kind::Alternatives(compiled),
            prefix,
        })
    }

    /// A glob matching exactly `key` (the query option `match=exact`).
    pub fn exact(key: &str) -> Glob {
        Glob {
            kind: Kind::Literal(key.to_owned()),
            prefix: key.to_owned(),
        }
    }

    /// True for the bare `*`, which matches every key.
    pub fn is_all(&self) -> bool {
        self.kind == Kind::All
    }

    /// The one key this glob matches, when it has no metacharacter.
    pub fn literal(&self) -> Option<&str> {
        match &self.kind {
            Kind::Literal(key) => Some(key),
            _ => None,
        }
    }

    /// What every matching key starts with (empty when nothing is known).
    pub fn literal_prefix(&self) -> &str {
        &self.prefix
    }

    pub fn matches(&self, key: &str) -> bool {
        match &self.kind {
            Kind::All => true,
            Kind::Literal(literal) => literal == key,
            Kind::Alternatives(alternatives) => {
                key.starts_with(&self.prefix) && alternatives.iter().any(|t| matches(t, key))
            }
        }
    }
}

fn common_prefix(mut texts: impl Iterator<Item = String>) -> String {
    let Some(mut prefix) = texts.next() else {
        return String::new();
    };
    for text in texts {
        let same = prefix
            .char_indices()
            .zip(text.chars())
            .find(|((_, a), b)| a != b)
            .map_or(prefix.len().min(text.len()), |((at, _), _)| at);
        // `same` is a char boundary of `prefix` (from char_indices, or the
        // end of the shorter string, a boundary of both as they agree).
        prefix.truncate(same);
    }
    prefix
}

/// Expands `{a,b}` groups into every combination, left to right.
fn expand(pattern: &str) -> Result<Vec<String>, GlobError> {
    let mut results = vec![String::new()];
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' => {
                // Copied through whole: a brace or comma inside a class is
                // a character of the class.
                let mut class = String::from('[');
                let mut closed = false;
                let mut first = true;
                for c in chars.by_ref() {
                    class.push(c);
                    if c == ']' && !first && class != "[!]" {
                        closed = true;
                        break;
                    }
                    first = false;
                }
                if !closed {
                    return Err(GlobError::UnclosedClass);
                }
                results.iter_mut().for_each(|r| r.push_str(&class));
            }
            '{' => {
                let mut options = vec![String::new()];
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '}' => {
                            closed = true;
                            break;
                        }
                        ',' => options.push(String::new()),
                        '{' => return Err(GlobError::NestedBrace),
                        '[' => {
                            let last = options.last_mut().expect("never empty");
                            last.push('[');
                            let mut first = true;
                            let mut done = false;
                            for c in chars.by_ref() {
                                last.push(c);
                                if c == ']' && !first && !last.ends_with("[!]") {
                                    done = true;
                                    break;
                                }
                                first = false;
                            }
                            if !done {
                                return Err(GlobError::UnclosedClass);
                            }
                        }
                        c => options.last_mut().expect("never empty").push(c),
                    }
                }
                if !closed {
                    return Err(GlobError::UnclosedBrace);
                }
                if results.len().saturating_mul(options.len()) > MAX_ALTERNATIVES {
                    return Err(GlobError::TooManyAlternatives);
                }
                results = results
                    .iter()
                    .flat_map(|r| options.iter().map(move |o| format!("{r}{o}")))
                    .collect();
            }
            '}' => return Err(GlobError::StrayBrace),
            c => results.iter_mut().for_each(|r| r.push(c)),
        }
    }
    // Equal alternatives (`{a,a}`) would only repeat the same work.
    results.sort();
    results.dedup();
    Ok(results)
}

/// Tokens of one brace-free alternative.
fn tokens(text: &str) -> Result<Vec<Token>, GlobError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => {
                // `**` within a node is one `*`.
                if out.last() == Some(&Token::Star) {
                    continue;
                }
                Token::Star
            }
            '?' => Token::One,
            '[' => {
                let negated = chars.next_if_eq(&'!').is_some();
                let mut ranges = Vec::new();
                let mut closed = false;
                let mut first = true;
                while let Some(c) = chars.next() {
                    if c == ']' && !first {
                        closed = true;
                        break;
                    }
                    first = false;
                    // `a-z` is a range; a `-` first or last is itself.
                    if chars.peek() == Some(&'-') {
                        let mut ahead = chars.clone();
                        ahead.next();
                        match ahead.peek() {
                            Some(&end) if end != ']' => {
                                chars.next();
                                chars.next();
                                ranges.push((c.min(end), c.max(end)));
                                continue;
                            }
                            _ => {}
                        }
                    }
                    ranges.push((c, c));
                }
                if !closed {
                    return Err(GlobError::UnclosedClass);
                }
                if ranges.is_empty() {
                    return Err(GlobError::EmptyClass);
                }
                Token::Class { negated, ranges }
            }
            c => Token::Char(c),
        });
    }
    Ok(out)
}

fn token_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Char(want) => *want == c,
        Token::One | Token::Star => c != '.',
        Token::Class { negated, ranges } => {
            c != '.' && (ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated)
        }
    }
}

/// Simulates the pattern's NFA over `key`: `states[i]` is true when the
/// first `i` tokens can have matched the key so far.
fn matches(tokens: &[Token], key: &str) -> bool {
    let n = tokens.len();
    let mut states = vec![false; n + 1];
    let mut next = vec![false; n + 1];
    states[0] = true;
    close_over_stars(tokens, &mut states);
    for c in key.chars() {
        next.iter_mut().for_each(|s| *s = false);
        let mut any = false;
        for i in 0..n {
            if !states[i] || !token_matches(&tokens[i], c) {
                continue;
            }
            any = true;
            if tokens[i] == Token::Star {
                next[i] = true; // the star goes on (and may end: see below)
            } else {
                next[i + 1] = true;
            }
        }
        if !any {
            return false;
        }
        std::mem::swap(&mut states, &mut next);
        close_over_stars(tokens, &mut states);
    }
    states[n]
}

/// A star may match nothing: a state before a star is also after it.
fn close_over_stars(tokens: &[Token], states: &mut [bool]) {
    for i in 0..tokens.len() {
        if states[i] && tokens[i] == Token::Star {
            states[i + 1] = true;
        }
    }
}

#[cfg(test)]
#[path = "glob_tests.rs"]
mod tests;
