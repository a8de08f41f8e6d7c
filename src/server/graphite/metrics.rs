//! `/metrics/find`, `/metrics/expand` and `/metrics/index.json` (sans-IO):
//! the tree of dot-separated names, as graphite-web lists it. A glob of N
//! nodes finds the N-node prefixes of stored keys it matches: a leaf when a
//! key ends there, a branch (expandable) when longer keys go on below it.

use std::collections::BTreeMap;

use super::glob::{PathError, PathGlob};
use super::render::output::push_string;
use super::source::Source;

/// One node a find query matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The whole path down to this node.
    pub path: String,
    pub is_leaf: bool,
}

impl Node {
    /// The node's own name (its last part).
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }
}

/// The nodes `query` matches, sorted by name, then path. A path that is both a key and
/// the parent of longer keys is listed once, as a branch.
pub fn find(source: &dyn Source, query: &str) -> Result<Vec<Node>, PathError> {
    let glob = PathGlob::new(query)?;
    let depth = glob.depth();
    let prefix = glob.literal_prefix();
    let mut found: BTreeMap<String, bool> = BTreeMap::new();
    source.all_keys(&mut |key| {
        if !key.starts_with(prefix) {
            return;
        }
        let mut parts = key.split('.');
        let mut end = 0;
        for index in 0..depth {
            match parts.next() {
                Some(part) if glob.matches_node(index, part) => {
                    end += part.len() + usize::from(index > 0);
                }
                _ => return,
            }
        }
        let leaf = parts.next().is_none();
        let entry = found.entry(key[..end].to_owned()).or_insert(leaf);
        *entry &= leaf;
    });
    let mut nodes: Vec<Node> = found
        .into_iter()
        .map(|(path, is_leaf)| Node { path, is_leaf })
        .collect();
    // graphite-web sorts by the node's own name; the path breaks ties
    // (graphite-web leaves those in the file system's order).
    nodes.sort_by(|a, b| a.name().cmp(b.name()).then_with(|| a.path.cmp(&b.path)));
    Ok(nodes)
}

/// graphite-web's `treejson` format: branches first, then leaves, each
/// `{"text", "id", "allowChildren", "expandable", "leaf"}`; the id is the
/// query's text up to its last dot followed by the node's name.
pub fn tree_json(query: &str, nodes: &[Node]) -> Vec<u8> {
    let base = query.rsplit_once('.').map_or("", |(head, _)| head);
    let mut out = b"[".to_vec();
    // One entry per name, the first in path order (as graphite-web).
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&Node> = nodes.iter().filter(|n| seen.insert(n.name())).collect();
    let ordered = unique
        .iter()
        .filter(|n| !n.is_leaf)
        .chain(unique.iter().filter(|n| n.is_leaf));
    for (i, node) in ordered.enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(b"{\"text\": ");
        push_string(&mut out, node.name());
        out.extend_from_slice(b", \"id\": ");
        let id = if base.is_empty() {
            node.name().to_owned()
        } else {
            format!("{base}.{}", node.name())
        };
        push_string(&mut out, &id);
        out.extend_from_slice(if node.is_leaf {
            b", \"allowChildren\": 0, \"expandable\": 0, \"leaf\": 1}"
        } else {
            b", \"allowChildren\": 1, \"expandable\": 1, \"leaf\": 0}"
        });
    }
    out.push(b']');
    out
}

/// graphite-web's `completer` format: `{"metrics": [{"path", "name",
/// "is_leaf"}]}`, a branch's path ending in a dot.
pub fn completer_json(nodes: &[Node]) -> Vec<u8> {
    let mut out = b"{\"metrics\": [".to_vec();
    for (i, node) in nodes.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(b"{\"path\": ");
        let path = if node.is_leaf {
            node.path.clone()
        } else {
            format!("{}.", node.path)
        };
        push_string(&mut out, &path);
        out.extend_from_slice(b", \"name\": ");
        push_string(&mut out, node.name());
        out.extend_from_slice(if node.is_leaf {
            b", \"is_leaf\": \"1\"}"
        } else {
            b", \"is_leaf\": \"0\"}"
        });
    }
    out.extend_from_slice(b"]}");
    out
}

/// A JSON list of strings.
pub fn string_list(items: &[String]) -> Vec<u8> {
    let mut out = b"[".to_vec();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        push_string(&mut out, item);
    }
    out.push(b']');
    out
}

/// `/metrics/expand`: `{"results": [...]}`, the sorted union of the
/// queries' paths, or with `group_by_expr` `{"results": {query: [...]}}`.
pub fn expand(
    source: &dyn Source,
    queries: &[String],
    leaves_only: bool,
    group_by_expr: bool,
) -> Result<Vec<u8>, PathError> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for query in queries {
        let mut paths: Vec<String> = find(source, query)?
            .into_iter()
            .filter(|n| n.is_leaf || !leaves_only)
            .map(|n| n.path)
            .collect();
        paths.sort_unstable();
        groups.push((query.clone(), paths));
    }
    let mut out = b"{\"results\": ".to_vec();
    if group_by_expr {
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        groups.dedup_by(|a, b| a.0 == b.0);
        out.push(b'{');
        for (i, (query, paths)) in groups.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            push_string(&mut out, query);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&string_list(paths));
        }
        out.push(b'}');
    } else {
        let mut all: Vec<String> = groups.into_iter().flat_map(|(_, p)| p).collect();
        all.sort();
        all.dedup();
        out.extend_from_slice(&string_list(&all));
    }
    out.push(b'}');
    Ok(out)
}

/// `/metrics/index.json`: every key, sorted.
pub fn index(source: &dyn Source) -> Vec<u8> {
    let mut keys = Vec::new();
    source.all_keys(&mut |key| keys.push(key.to_owned()));
    keys.sort_unstable();
    string_list(&keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::Store;

    fn store() -> Store {
        let mut store = Store::new();
        for key in ["a.b.c", "a.b.d", "a.x", "a.b", "z"] {
            store.put(key, 1, 1.0);
        }
        store
    }

    #[test]
    fn find_lists_branches_then_leaves() {
        let s = store();
        let nodes = find(&s, "a.*").unwrap();
        assert_eq!(
            nodes,
            vec![
                Node {
                    path: "a.b".into(),
                    is_leaf: false
                },
                Node {
                    path: "a.x".into(),
                    is_leaf: true
                }
            ]
        );
        assert_eq!(
            String::from_utf8(tree_json("a.*", &nodes)).unwrap(),
            r#"[{"text": "b", "id": "a.b", "allowChildren": 1, "expandable": 1, "leaf": 0}, {"text": "x", "id": "a.x", "allowChildren": 0, "expandable": 0, "leaf": 1}]"#
        );
        assert_eq!(find(&s, "*").unwrap().len(), 2);
        assert!(find(&s, "q.*").unwrap().is_empty());
        assert_eq!(
            String::from_utf8(completer_json(&find(&s, "a.b.*").unwrap())).unwrap(),
            r#"{"metrics": [{"path": "a.b.c", "name": "c", "is_leaf": "1"}, {"path": "a.b.d", "name": "d", "is_leaf": "1"}]}"#
        );
    }

    #[test]
    fn expand_and_index() {
        let s = store();
        let out = expand(&s, &["a.*".into(), "z".into()], false, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"results": ["a.b", "a.x", "z"]}"#
        );
        let out = expand(&s, &["a.*".into()], true, true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"results": {"a.*": ["a.x"]}}"#
        );
        assert_eq!(
            String::from_utf8(index(&s)).unwrap(),
            r#"["a.b", "a.b.c", "a.b.d", "a.x", "z"]"#
        );
    }
}
