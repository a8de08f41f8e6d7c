//! The gateway backend: the server keeps nothing itself and stores every
//! point in Redis (one node, or a Redis Cluster), so any number of servers
//! can serve the same data. The data model is in `model`, the `store`
//! argument in `address`, the connection and its retries in `link`, how a
//! batch of puts becomes commands in `batch`, reads in `walk`.
//!
//! Each connection's batch of puts is sent at once (every pipeline of the
//! batch in flight together on the shared multiplexed connections) and
//! answered once Redis has answered all of them, then, with `wait=N`, once
//! `WAIT N` says enough replicas have them. A Redis failure is answered
//! `error\n<why>\n\n` for the requests it touched; commands are bounded by
//! the client's timeouts, so a dead or partitioned node never hangs a
//! connection.

mod address;
mod batch;
mod known;
mod link;
mod model;
mod walk;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::RedisError;
use thiserror::Error;

pub use address::{StoreAddress, StoreAddressError};
pub(crate) use walk::Walk;

use crate::protocol::Put;
use batch::Batch;
use known::{KeyHasher, KnownKeys};
use link::Link;
use model::{bucket_tags, index_key};

/// Why a gateway could not start.
#[derive(Debug, Error)]
pub enum GatewayError {
    #[error("cannot connect to the store {store}: {reason}")]
    Connect { store: String, reason: String },
    #[error(
        "store {store}: wait={wanted} asks for {wanted} replicas, the node has {connected} \
         (a single node's puts are as durable as its appendfsync; drop wait or add replicas)"
    )]
    Replicas {
        store: String,
        wanted: u32,
        connected: u32,
    },
}

/// The connection to the store every client connection of a server shares.
pub(crate) struct Gateway {
    link: Link,
    /// The name of each index bucket's set.
    index: Vec<String>,
    /// Keys known to be indexed: their puts send no `SADD`.
    known: Mutex<KnownKeys>,
    /// The hash of a key in `known` (and in a batch).
    hasher: KeyHasher,
    wait_replicas: u32,
    wait_timeout: Duration,
}

/// The text of the error reply for a failed Redis command: one line.
fn reply_text(error: &RedisError) -> String {
    let text = format!("store failed: {error}");
    text.replace(['\n', '\r'], " ")
}

impl Gateway {
    /// Connects (bounded by the client's timeouts) and checks the store
    /// answers, and, for one node with `wait=N`, that it has N replicas.
    pub(crate) async fn connect(address: &StoreAddress) -> Result<Gateway, GatewayError> {
        let store = address.nodes.join(",");
        let failed = |error: RedisError| GatewayError::Connect {
            store: store.clone(),
            reason: error.to_string().replace('\n', " "),
        };
        let link = Link::open(address).await.map_err(failed)?;
        let _: String = link.query(&redis::cmd("PING")).await.map_err(failed)?;
        if link.single() && address.wait_replicas > 0 {
            // WAIT counts replicas: on a node without them every put would
            // be refused after wait_timeout. Said at start instead.
            let mut info = redis::cmd("INFO");
            info.arg("replication");
            let text: String = link.query(&info).await.map_err(failed)?;
            let connected = connected_replicas(&text);
            if connected < address.wait_replicas {
                return Err(GatewayError::Replicas {
                    store,
                    wanted: address.wait_replicas,
                    connected,
                });
            }
        }
        Ok(Gateway {
            link,
            index: bucket_tags().iter().map(|tag| index_key(tag)).collect(),
            known: Mutex::new(KnownKeys::new(Instant::now())),
            hasher: KeyHasher::new(),
            wait_replicas: address.wait_replicas,
            wait_timeout: address.wait_timeout,
        })
    }

    /// Stores a batch of puts; one result per put, in order (`Err` holds
    /// the text of its error reply). A point older than `cutoff` (past the
    /// retention) is acknowledged and not stored: it would never be read.
    pub(crate) async fn put(
        &self,
        puts: &[Put<&str>],
        cutoff: Option<i64>,
    ) -> Vec<Result<(), String>> {
        let mut sent: Vec<bool> = puts
            .iter()
            .map(|put| cutoff.is_none_or(|cutoff| put.timestamp >= cutoff))
            .collect();
        let failures = self.link.failures();
        let batch = {
            let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            known.refresh(Instant::now(), failures);
            Batch::new(
                puts,
                &mut sent,
                &self.hasher,
                Some(&known),
                &self.link,
                &self.index,
            )
        };
        let mut results: Vec<Result<(), String>> = vec![Ok(()); puts.len()];
        let mut indexed = batch
            .send(&self.link, &self.index, |i, result| results[i] = result)
            .await;
        if self.link.failures() != failures {
            // The store failed meanwhile (a restart, a failover): the index
            // entries taken as known may have gone with it. The puts stored
            // are sent again with their keys' entries (both idempotent).
            for (sent, result) in sent.iter_mut().zip(&results) {
                *sent &= result.is_ok();
            }
            indexed = Batch::new(puts, &mut sent, &self.hasher, None, &self.link, &self.index)
                .send(&self.link, &self.index, |i, result| results[i] = result)
                .await;
        }
        if self.wait_replicas > 0 && results.iter().any(Result::is_ok) {
            if let Err(reason) = self.wait().await {
                for result in results.iter_mut().filter(|r| r.is_ok()) {
                    *result = Err(reason.clone());
                }
                return results;
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let (now, failures) = (Instant::now(), self.link.failures());
        for hash in indexed {
            known.insert(hash, now, failures);
        }
        results
    }

    /// `WAIT wait_replicas wait_timeout` (on every master of a cluster;
    /// the least answer counts).
    async fn wait(&self) -> Result<(), String> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.wait_replicas)
            .arg(self.wait_timeout.as_millis() as u64);
        let acknowledged: u64 = self.link.query(&wait).await.map_err(|e| reply_text(&e))?;
        if acknowledged < u64::from(self.wait_replicas) {
            return Err(format!(
                "not replicated: {acknowledged} of {} replicas acknowledged within {} ms",
                self.wait_replicas,
                self.wait_timeout.as_millis()
            ));
        }
        Ok(())
    }
}

/// `connected_slaves` of an `INFO replication` answer (0 if absent).
fn connected_replicas(info: &str) -> u32 {
    info.lines()
        .find_map(|line| line.trim().strip_prefix("connected_slaves:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_replica_count_of_info() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=...\r\n";
        assert_eq!(super::connected_replicas(info), 2);
        assert_eq!(super::connected_replicas("role:master\r\n"), 0);
    }
}
