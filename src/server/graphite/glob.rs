//! Graphite's path globs, node by node: `*` (any run of characters within
//! one node, never a `.`), `?` (one character), `[a-z0-9]` and `[!x]`
//! (character classes) and `{cpu,mem}` (alternatives, which may hold globs
//! themselves). A glob matches a key with exactly as many nodes.
//!
//! The render and find paths only need [`Glob::matches`] and
//! [`Glob::literal_prefix`] (what a key must start with, for a store to
//! narrow its search).

/// A compiled path glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    /// Per node, its alternatives (one unless the node has `{...}`).
    nodes: Vec<Vec<Vec<Token>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Why a glob cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("empty pattern")]
    Empty,
    #[error("unclosed '[' in {0:?}")]
    UnclosedClass(String),
    #[error("unclosed '{{' in {0:?}")]
    UnclosedBrace(String),
    #[error("nested '{{' in {0:?}")]
    NestedBrace(String),
}

/// Alternatives beyond this per node are refused (each costs a match).
const MAX_ALTERNATIVES: usize = 1024;

impl Glob {
    pub fn new(text: &str) -> Result<Glob, GlobError> {
        if text.is_empty() {
            return Err(GlobError::Empty);
        }
        let nodes = split_nodes(text)?
            .into_iter()
            .map(|node| {
                expand(node, text)?
                    .into_iter()
                    .map(|alternative| tokens(&alternative, text))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Glob {
            text: text.to_owned(),
            nodes,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// How many dot-separated nodes a matching key has.
    pub fn depth(&self) -> usize {
        self.nodes.len()
    }

    /// Whether `key` matches the whole glob.
    pub fn matches(&self, key: &str) -> bool {
        let mut parts = key.split('.');
        for node in &self.nodes {
            match parts.next() {
                Some(part) if node_matches(node, part) => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }

    /// Whether the first `depth` nodes of `key` match the glob's first
    /// `depth` nodes (for `/metrics/find`, which matches prefixes).
    pub fn matches_node(&self, index: usize, part: &str) -> bool {
        self.nodes
            .get(index)
            .is_some_and(|node| node_matches(node, part))
    }

    /// The text every matching key starts with: the glob up to its first
    /// metacharacter.
    pub fn literal_prefix(&self) -> &str {
        let end = self
            .text
            .find(['*', '?', '[', '{'])
            .unwrap_or(self.text.len());
        &self.text[..end]
    }
}

fn split_nodes(text: &str) -> Result<Vec<&str>, GlobError> {
    // Alternatives never span nodes (graphite's grammar has no dots inside
    // braces), so braces are only checked to be balanced and flat here.
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '{' if depth > 0 => return Err(GlobError::NestedBrace(text.to_owned())),
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if depth > 0 {
        return Err(GlobError::UnclosedBrace(text.to_owned()));
    }
    Ok(text.split('.').collect())
}

/// The alternatives of one node: `a{b,c}d` is `abd` and `acd`.
fn expand(node: &str, text: &str) -> Result<Vec<String>, GlobError> {
    let mut out = vec![String::new()];
    let mut rest = node;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or_else(|| GlobError::UnclosedBrace(text.to_owned()))?;
        let head = &rest[..open];
        let choices: Vec<&str> = rest[open + 1..close].split(',').collect();
        let mut next = Vec::with_capacity(out.len() * choices.len());
        for prefix in &out {
            for choice in &choices {
                next.push(format!("{prefix}{head}{choice}"));
            }
        }
        next.truncate(MAX_ALTERNATIVES);
        out = next;
        rest = &rest[close + 1..];
    }
    for alternative in &mut out {
        alternative.push_str(rest);
    }
    Ok(out)
}

fn tokens(alternative: &str, text: &str) -> Result<Vec<Token>, GlobError> {
    let mut out = Vec::new();
    let mut chars = alternative.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => {
                if out.last() == Some(&Token::Any) {
                    continue;
                }
                Token::Any
            }
            '?' => Token::One,
            '[' => {
                let negated = chars.next_if(|&c| c == '!' || c == '^').is_some();
                let mut ranges = Vec::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == ']' && !ranges.is_empty() {
                        closed = true;
                        break;
                    }
                    if chars.peek() == Some(&'-') {
                        let mut ahead = chars.clone();
                        ahead.next();
                        if let Some(&end) = ahead.peek().filter(|&&e| e != ']') {
                            chars.next();
                            chars.next();
                            ranges.push((c, end));
                            continue;
                        }
                    }
                    ranges.push((c, c));
                }
                if !closed {
                    return Err(GlobError::UnclosedClass(text.to_owned()));
                }
                Token::Class { negated, ranges }
            }
            c => Token::Char(c),
        });
    }
    Ok(out)
}

fn node_matches(alternatives: &[Vec<Token>], part: &str) -> bool {
    let chars: Vec<char> = part.chars().collect();
    alternatives
        .iter()
        .any(|tokens| tokens_match(tokens, &chars))
}

/// Iterative wildcard matching with one backtrack point (the last `*`):
/// linear in practice, quadratic at worst, never exponential.
fn tokens_match(tokens: &[Token], chars: &[char]) -> bool {
    let (mut t, mut c) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while c < chars.len() {
        match tokens.get(t) {
            Some(Token::Any) => {
                star = Some((t, c));
                t += 1;
                continue;
            }
            Some(token) if single(token, chars[c]) => {
                t += 1;
                c += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((st, sc)) => {
                t = st + 1;
                c = sc + 1;
                star = Some((st, sc + 1));
            }
            None => return false,
        }
    }
    tokens[t..].iter().all(|token| *token == Token::Any)
}

fn single(token: &Token, c: char) -> bool {
    match token {
        Token::Char(x) => *x == c,
        Token::One => true,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
        Token::Any => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, key: &str) -> bool {
        Glob::new(glob).unwrap().matches(key)
    }

    #[test]
    fn stars_stay_within_a_node() {
        assert!(m("a.*.c", "a.b.c"));
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a.b.c"));
        assert!(!m("*", "a.b"));
        assert!(m("a.b*d.c", "a.bd.c"));
        assert!(m("a.b*d.c", "a.bxxd.c"));
        assert!(!m("a.b*d.c", "a.bxxdx.c"));
        assert!(m("**x", "abx"));
    }

    #[test]
    fn classes_alternatives_and_single_characters() {
        assert!(m("cpu[0-3].user", "cpu2.user"));
        assert!(!m("cpu[0-3].user", "cpu4.user"));
        assert!(m("cpu[!0].user", "cpu4.user"));
        assert!(!m("cpu[!0].user", "cpu0.user"));
        assert!(m("host.{cpu,mem}.x", "host.mem.x"));
        assert!(m("host.{cpu*,mem}.x", "host.cpu12.x"));
        assert!(!m("host.{cpu,mem}.x", "host.disk.x"));
        assert!(m("a.?", "a.b"));
        assert!(!m("a.?", "a.bc"));
        assert!(m("a.[-x]", "a.-"));
    }

    #[test]
    fn bad_globs_are_refused_and_prefixes_are_literal() {
        assert!(matches!(
            Glob::new("a.[b"),
            Err(GlobError::UnclosedClass(_))
        ));
        assert!(matches!(
            Glob::new("a.{b"),
            Err(GlobError::UnclosedBrace(_))
        ));
        assert!(matches!(
            Glob::new("{a{b}}"),
            Err(GlobError::NestedBrace(_))
        ));
        assert_eq!(Glob::new("").unwrap_err(), GlobError::Empty);
        assert_eq!(Glob::new("a.b*.c").unwrap().literal_prefix(), "a.b");
        assert_eq!(Glob::new("a.b.c").unwrap().literal_prefix(), "a.b.c");
        assert_eq!(Glob::new("a.{x,y}").unwrap().depth(), 2);
    }
}
