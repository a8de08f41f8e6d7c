//! The connection to the store, under one retry policy for both kinds:
//! a Redis Cluster (redis-rs's cluster client follows `MOVED`/`ASK`,
//! reconnects and retries by itself) or a single node (a connection
//! manager reconnects after the node went away, e.g. restarted; the
//! command that met the broken connection, and those sent while it is
//! being replaced, are retried here, with the same waits and bounds).
//!
//! Retrying is safe because the gateway only writes `HSET` and `SADD`:
//! sending one again stores the same thing.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult, RetryMethod,
    ServerErrorKind, Value,
};
use tokio::sync::Semaphore;

use super::address::StoreAddress;

/// How long one command may take (per attempt, and for all of its retries
/// and redirections together).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const OVERALL_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Retries of a command (and of a single node's reconnection), waiting
/// 50 ms, 100 ms, ... up to 500 ms between them.
const RETRIES: u32 = 6;
const MIN_RETRY_WAIT: Duration = Duration::from_millis(50);
const MAX_RETRY_WAIT: Duration = Duration::from_millis(500);
/// See [`Link::in_flight`].
const PIPELINES_IN_FLIGHT: usize = 32;

enum Connection {
    Cluster(ClusterConnection),
    Single(ConnectionManager),
}

pub(super) struct Link {
    connection: Connection,
    /// Commands that failed or had to be retried so far: the known-keys
    /// set starts over when this moves (a restart or failover may have
    /// lost index entries).
    failures: AtomicU64,
    /// The master of each slot, as a number (empty for a single node):
    /// which commands can share a pipeline.
    slots: RwLock<Vec<u16>>,
    /// Pipelines in flight at once on a cluster connection: redis-rs's
    /// cluster client (1.8) stops answering pipelines when about a hundred
    /// are in flight together (each then times out), plain commands not.
    in_flight: Semaphore,
}

impl Link {
    /// Connects, bounded by the timeouts above.
    pub(super) async fn open(address: &StoreAddress) -> RedisResult<Link> {
        let connection = if address.cluster {
            let client = redis::cluster::ClusterClient::builder(address.urls())
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .overall_response_timeout(Some(OVERALL_TIMEOUT))
                .retries(RETRIES)
                .min_retry_wait(MIN_RETRY_WAIT.as_millis() as u64)
                .max_retry_wait(MAX_RETRY_WAIT.as_millis() as u64)
                .build()?;
            Connection::Cluster(client.get_async_connection().await?)
        } else {
            let client = redis::Client::open(address.urls()[0].as_str())?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(RETRIES as usize)
                .set_min_delay(MIN_RETRY_WAIT)
                .set_max_delay(MAX_RETRY_WAIT);
            let manager = ConnectionManager::new_with_config(client, config);
            match tokio::time::timeout(OVERALL_TIMEOUT, manager).await {
                Ok(manager) => Connection::Single(manager?),
                Err(_) => return Err(timed_out()),
            }
        };
        let link = Link {
            connection,
            failures: AtomicU64::new(0),
            slots: RwLock::new(Vec::new()),
            in_flight: Semaphore::new(PIPELINES_IN_FLIGHT),
        };
        link.read_slots().await;
        Ok(link)
    }

    /// Reads the cluster's slot map again (after slots moved); a failure
    /// leaves the old one (commands still reach their masters, only
    /// fewer share a pipeline).
    pub(super) async fn read_slots(&self) {
        if self.single() {
            return;
        }
        let mut slots = redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        if let Ok(Value::Array(ranges)) = self.query::<Value>(&slots).await {
            let map = slot_map(&ranges);
            *self.slots.write().unwrap_or_else(|e| e.into_inner()) = map;
        }
    }

    /// The master of each slot, as a number: commands for one number can
    /// be one pipeline. Read once for a whole batch.
    pub(super) fn masters(&self) -> Masters<'_> {
        Masters(self.slots.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether the link is to a single node (not a cluster).
    pub(super) fn single(&self) -> bool {
        matches!(self.connection, Connection::Single(_))
    }

    pub(super) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let result = match &self.connection {
            Connection::Cluster(connection) => cmd.query_async(&mut connection.clone()).await,
            Connection::Single(manager) => {
                self.retrying(|| async { cmd.query_async(&mut manager.clone()).await })
                    .await
            }
        };
        self.count(result)
    }

    /// Sends `pipe` (`len` commands) at once to the master of `slot` (to
    /// the node, for a single one); one value per command, a command's
    /// server error as its `Value::ServerError`. In a cluster every key of
    /// the pipeline must be on that master, else the whole pipeline fails
    /// once the redirections are used up.
    pub(super) async fn pipeline(
        &self,
        pipe: Pipeline,
        len: usize,
        slot: u16,
    ) -> RedisResult<Vec<Value>> {
        let result = match &self.connection {
            Connection::Cluster(connection) => {
                let _permit = self.in_flight.acquire().await.map_err(|_| timed_out())?;
                let route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
                connection.clone().route_pipeline(pipe, 0, len, route).await
            }
            Connection::Single(manager) => {
                self.retrying(|| async {
                    let values = manager.clone().req_packed_commands(&pipe, 0, len).await?;
                    // A node still loading its data answers each command
                    // with an error to retry, not the connection.
                    match values.iter().find_map(retried_server_error) {
                        Some(error) => Err(error),
                        None => Ok(values),
                    }
                })
                .await
            }
        };
        self.count(result)
    }

    /// Counts a failure; not slots that moved (nothing was lost).
    fn count<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if result.as_ref().is_err_and(|error| !slots_moved(error)) {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries or
    /// `OVERALL_TIMEOUT` are used up.
    async fn retrying<T, F, A>(&self, mut attempt: A) -> RedisResult<T>
    where
        A: FnMut() -> F,
        F: Future<Output = RedisResult<T>>,
    {
        let attempts = async {
            let mut retry = 0;
            loop {
                match attempt().await {
                    Err(error) if retry < RETRIES && retried(&error) => {
                        self.failures.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(retry_wait(retry)).await;
                        retry += 1;
                    }
                    done => return done,
                }
            }
        };
        match tokio::time::timeout(OVERALL_TIMEOUT, attempts).await {
            Ok(done) => done,
            Err(_) => Err(timed_out()),
        }
    }
}

/// See [`Link::masters`].
pub(super) struct Masters<'l>(RwLockReadGuard<'l, Vec<u16>>);

impl Masters<'_> {
    /// The master of `slot` (0 for a single node).
    pub(super) fn of(&self, slot: u16) -> u16 {
        self.0.get(usize::from(slot)).copied().unwrap_or(0)
    }
}

/// Whether a pipeline failed because its keys are not all on the master
/// the slot map said (it was sent to).
pub(super) fn slots_moved(error: &RedisError) -> bool {
    error.redirect_node().is_some()
        || matches!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::TryAgain | ServerErrorKind::CrossSlot)
        )
}

/// The master number of each slot from a `CLUSTER SLOTS` answer: ranges
/// `[start, end, [host, port, ...], replicas...]`, masters numbered in
/// order of first appearance; a slot not covered gets `u16::MAX`.
fn slot_map(ranges: &[Value]) -> Vec<u16> {
    let mut map = vec![u16::MAX; 16384];
    let mut masters: Vec<(&Value, &Value)> = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        let (Some(host), Some(port)) = (master.first(), master.get(1)) else {
            continue;
        };
        let node = match masters.iter().position(|&known| known == (host, port)) {
            Some(node) => node,
            None => {
                masters.push((host, port));
                masters.len() - 1
            }
        };
        let start = (*start).clamp(0, 16383) as usize;
        let end = (*end).clamp(0, 16383) as usize;
        for slot in map.iter_mut().take(end + 1).skip(start) {
            *slot = u16::try_from(node).unwrap_or(u16::MAX);
        }
    }
    map
}

/// Whether a single node's error is worth another attempt: the connection
/// broke or timed out, or the node said to try again (loading its data,
/// `TRYAGAIN`). Not an error about the command itself.
fn retried(error: &RedisError) -> bool {
    !matches!(
        error.retry_method(),
        RetryMethod::NoRetry | RetryMethod::AskRedirect | RetryMethod::MovedRedirect
    )
}

fn retried_server_error(value: &Value) -> Option<RedisError> {
    match value {
        Value::ServerError(error) => {
            let error = RedisError::from(error.clone());
            matches!(error.retry_method(), RetryMethod::WaitAndRetry).then_some(error)
        }
        _ => None,
    }
}

/// The wait before retry `retry` (from 0): doubling from the least wait,
/// at most the greatest.
fn retry_wait(retry: u32) -> Duration {
    MIN_RETRY_WAIT
        .saturating_mul(1 << retry.min(16))
        .min(MAX_RETRY_WAIT)
}

fn timed_out() -> RedisError {
    RedisError::from(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer within {} s", OVERALL_TIMEOUT.as_secs()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_map_numbers_masters_by_address() {
        let node = |port: i64| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
            ])
        };
        let range = |start: i64, end: i64, port: i64| {
            Value::Array(vec![
                Value::Int(start),
                Value::Int(end),
                node(port),
                node(port + 1),
            ])
        };
        let map = slot_map(&[
            range(0, 99, 7000),
            range(100, 16000, 7002),
            range(16001, 16383, 7000),
        ]);
        assert_eq!(
            (map[0], map[99], map[100], map[16000], map[16383]),
            (0, 0, 1, 1, 0)
        );
        assert_eq!(slot_map(&[range(0, 10, 7000)])[11], u16::MAX);
    }

    #[test]
    fn retry_waits_double_up_to_the_greatest() {
        let waits: Vec<u128> = (0..RETRIES).map(|r| retry_wait(r).as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 500, 500]);
    }

    #[test]
    fn only_errors_of_the_connection_or_a_busy_node_are_retried() {
        let dropped = RedisError::from(io::Error::from(io::ErrorKind::BrokenPipe));
        let timeout = RedisError::from(io::Error::from(io::ErrorKind::TimedOut));
        assert!(retried(&dropped) && retried(&timeout));
        let wrong_type = RedisError::from((redis::ErrorKind::Client, "wrong type"));
        assert!(!retried(&wrong_type));
    }
}
