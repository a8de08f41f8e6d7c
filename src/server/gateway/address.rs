//! The `store` argument of a gateway: which Redis to use and how durable an
//! acknowledged put must be.
//!
//! `redis://host:port` (one Redis) or `redis-cluster://host:port,host:port,...`
//! (seed nodes of a Redis Cluster; the others are discovered), optionally
//! followed by `?wait=N&wait_timeout=MS`: each batch of puts is acknowledged
//! only once `N` replicas have it (Redis's `WAIT N MS`), otherwise it is
//! answered with an error.

use std::time::Duration;

use thiserror::Error;

/// A parsed `store` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAddress {
    /// `host:port` of every node named.
    pub nodes: Vec<String>,
    pub cluster: bool,
    /// Replicas that must have a put before it is acknowledged (0: none).
    pub wait_replicas: u32,
    pub wait_timeout: Duration,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum StoreAddressError {
    #[error("store {0:?}: expected redis://host:port or redis-cluster://host:port,host:port,...")]
    Scheme(String),
    #[error("store {store:?}: {node:?} is not host:port")]
    Node { store: String, node: String },
    #[error("store {store:?}: unknown option {option:?} (known: wait, wait_timeout)")]
    Option { store: String, option: String },
    #[error("store {store:?}: {option} must be a whole number, not {value:?}")]
    Number {
        store: String,
        option: &'static str,
        value: String,
    },
    #[error("store {0:?}: redis:// names exactly one node; use redis-cluster:// for several")]
    OneNode(String),
}

impl StoreAddress {
    pub fn parse(store: &str) -> Result<StoreAddress, StoreAddressError> {
        let (cluster, rest) = if let Some(rest) = store.strip_prefix("redis-cluster://") {
            (true, rest)
        } else if let Some(rest) = store.strip_prefix("redis://") {
            (false, rest)
        } else {
            return Err(StoreAddressError::Scheme(store.to_owned()));
        };
        let (nodes_text, options) = rest.split_once('?').unwrap_or((rest, ""));
        let mut nodes = Vec::new();
        for node in nodes_text.split(',') {
            let valid = node
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(StoreAddressError::Node {
                    store: store.to_owned(),
                    node: node.to_owned(),
                });
            }
            nodes.push(node.to_owned());
        }
        if !cluster && nodes.len() != 1 {
            return Err(StoreAddressError::OneNode(store.to_owned()));
        }
        let mut address = StoreAddress {
            nodes,
            cluster,
            wait_replicas: 0,
            wait_timeout: Duration::from_millis(1000),
        };
        for option in options.split('&').filter(|o| !o.is_empty()) {
            let (name, value) = option.split_once('=').unwrap_or((option, ""));
            let number = |option: &'static str| {
                value.parse::<u32>().map_err(|_| StoreAddressError::Number {
                    store: store.to_owned(),
                    option,
                    value: value.to_owned(),
                })
            };
            match name {
                "wait" => address.wait_replicas = number("wait")?,
                "wait_timeout" => {
                    address.wait_timeout = Duration::from_millis(number("wait_timeout")?.into())
                }
                _ => {
                    return Err(StoreAddressError::Option {
                        store: store.to_owned(),
                        option: name.to_owned(),
                    })
                }
            }
        }
        Ok(address)
    }

    /// The URLs the Redis client connects to.
    pub(super) fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://{node}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes_and_the_wait_options() {
        let one = StoreAddress::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!(
            (one.nodes.len(), one.cluster, one.wait_replicas),
            (1, false, 0)
        );
        let many = StoreAddress::parse("redis-cluster://a:1,b:2?wait=1&wait_timeout=250").unwrap();
        assert_eq!(many.nodes, ["a:1", "b:2"]);
        assert!(many.cluster);
        assert_eq!(many.wait_replicas, 1);
        assert_eq!(many.wait_timeout, Duration::from_millis(250));
        assert_eq!(many.urls(), ["redis://a:1", "redis://b:2"]);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "http://a:1",
            "redis://a",
            "redis://a:1,b:2",
            "redis-cluster://a:1?wait=x",
            "redis-cluster://a:1?fsync=1",
            "redis-cluster://:1",
        ] {
            assert!(StoreAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
