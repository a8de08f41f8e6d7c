//! Graphite's path globs, matched by the query globs of
//! [`crate::query::Glob`] (`*` within one node, `?`, `[a-z0-9]` and `[!x]`,
//! `{cpu,mem}` alternatives) with Graphite's meaning of a path: it matches
//! keys with exactly as many dot-separated nodes. The one place the two
//! differ is a bare `*`: here the keys of one node, as in graphite-web,
//! where the course's `get *` is every key.
//!
//! `/metrics/find` also matches node by node ([`PathGlob::matches_node`]),
//! so each node is compiled on its own too.

use crate::query::{Glob, GlobError};

/// A compiled Graphite path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGlob {
    text: String,
    whole: Glob,
    nodes: Vec<Glob>,
}

/// Why a path is not a glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty pattern")]
    Empty,
    #[error("{error} {text:?}")]
    Glob { error: GlobError, text: String },
}

impl PathGlob {
    pub fn new(text: &str) -> Result<PathGlob, PathError> {
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        let compile = |pattern: &str| {
            Glob::compile(pattern).map_err(|error| PathError::Glob {
                error,
                text: text.to_owned(),
            })
        };
        // Graphite's grammar has no dots inside braces or classes, so a
        // path's nodes are its dot-separated parts.
        let nodes = text.split('.').map(compile).collect::<Result<_, _>>()?;
        Ok(PathGlob {
            text: text.to_owned(),
            whole: compile(text)?,
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

    /// Whether `key` matches the whole path.
    pub fn matches(&self, key: &str) -> bool {
        // No metacharacter crosses a dot, so a match of the whole pattern
        // has as many nodes as the path; only a bare `*` (every key, for the
        // query glob) needs the count checked.
        self.whole.matches(key) && (!self.whole.is_all() || !key.contains('.'))
    }

    /// Whether node `index` of the path matches `part` (one node of a key,
    /// for `/metrics/find`, which matches prefixes).
    pub fn matches_node(&self, index: usize, part: &str) -> bool {
        self.nodes.get(index).is_some_and(|node| node.matches(part))
    }

    /// The text every matching key starts with.
    pub fn literal_prefix(&self) -> &str {
        self.whole.literal_prefix()
    }

    /// The one key the path names, when it has no metacharacter.
    pub fn literal(&self) -> Option<&str> {
        self.whole.literal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, key: &str) -> bool {
        PathGlob::new(glob).unwrap().matches(key)
    }

    #[test]
    fn stars_stay_within_a_node() {
        assert!(m("a.*.c", "a.b.c"));
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a.b.c"));
        assert!(!m("*", "a.b"));
        assert!(m("*", "a"));
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
    fn nodes_match_one_at_a_time() {
        let glob = PathGlob::new("a.{b,c}*.d").unwrap();
        assert!(glob.matches_node(0, "a"));
        assert!(glob.matches_node(1, "cx"));
        assert!(!glob.matches_node(1, "x"));
        assert!(!glob.matches_node(3, "d"));
        assert!(PathGlob::new("*").unwrap().matches_node(0, "anything"));
    }

    #[test]
    fn bad_globs_are_refused_and_prefixes_are_literal() {
        let error = |text| PathGlob::new(text).unwrap_err();
        assert!(matches!(
            error("a.[b"),
            PathError::Glob {
                error: GlobError::UnclosedClass,
                ..
            }
        ));
        assert!(matches!(
            error("a.{b"),
            PathError::Glob {
                error: GlobError::UnclosedBrace,
                ..
            }
        ));
        assert!(matches!(
            error("{a{b}}"),
            PathError::Glob {
                error: GlobError::NestedBrace,
                ..
            }
        ));
        assert_eq!(error(""), PathError::Empty);
        assert_eq!(
            error("a.[b").to_string(),
            "unclosed '[' in pattern \"a.[b\""
        );
        assert_eq!(PathGlob::new("a.b*.c").unwrap().literal_prefix(), "a.b");
        assert_eq!(PathGlob::new("a.b.c").unwrap().literal(), Some("a.b.c"));
        assert_eq!(PathGlob::new("a.{x,y}").unwrap().depth(), 2);
    }
}
