//! The gateway backend: the server keeps nothing itself and stores every
//! point in Redis (one node, or a Redis Cluster), so any number of servers
//! can serve the same data. The data model is in `model`, the `store`
//! argument in `address`.
//!
//! Each connection's batch of puts is sent at once (every command of the
//! batch in flight together on the shared multiplexed connections) and
//! answered once Redis has answered all of them, then, with `wait=N`, once
//! `WAIT N` says enough replicas have them. A Redis failure is answered
//! `error\n<why>\n\n` for the requests it touched; commands are bounded by
//! the client's timeouts, so a dead or partitioned node never hangs a
//! connection.

mod address;
mod model;

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::{join_all, try_join};
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisError, RedisResult};
use thiserror::Error;

pub use address::{StoreAddress, StoreAddressError};

use crate::protocol::{
    encode_points_end, encode_points_start, parse_float, push_py_float, push_series, Point, Put,
    ReplyFormat, Selector,
};
use crate::query::Plan;
use model::{bucket_of, bucket_tags, index_key, series_key};

/// How long one command may take (per attempt, and for all of a cluster
/// command's retries and redirections together).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const OVERALL_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Index members asked for by one `SSCAN` of a `get *`.
const SCAN_PAGE: usize = 128;

/// Why a gateway could not start.
#[derive(Debug, Error)]
pub enum GatewayError {
    #[error("cannot connect to the store {store}: {reason}")]
    Connect { store: String, reason: String },
}

#[derive(Clone)]
enum Link {
    Cluster(ClusterConnection),
    Single(MultiplexedConnection),
}

impl Link {
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self.clone() {
            Link::Cluster(mut connection) => cmd.query_async(&mut connection).await,
            Link::Single(mut connection) => cmd.query_async(&mut connection).await,
        }
    }
}

/// The connection to the store every client connection of a server shares.
pub(crate) struct Gateway {
    link: Link,
    /// The name of each index bucket's set.
    index: Vec<String>,
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
    /// answers.
    pub(crate) async fn connect(address: &StoreAddress) -> Result<Gateway, GatewayError> {
        let failed = |error: RedisError| GatewayError::Connect {
            store: address.nodes.join(","),
            reason: error.to_string().replace('\n', " "),
        };
        let link = if address.cluster {
            let client = redis::cluster::ClusterClient::builder(address.urls())
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .overall_response_timeout(Some(OVERALL_TIMEOUT))
                .retries(6)
                .min_retry_wait(50)
                .max_retry_wait(500)
                .build()
                .map_err(failed)?;
            Link::Cluster(client.get_async_connection().await.map_err(failed)?)
        } else {
            let client = redis::Client::open(address.urls()[0].as_str()).map_err(failed)?;
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT));
            Link::Single(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(failed)?,
            )
        };
        let _: String = link.query(&redis::cmd("PING")).await.map_err(failed)?;
        Ok(Gateway {
            link,
            index: bucket_tags().iter().map(|tag| index_key(tag)).collect(),
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
        // The puts of a batch are in flight together, so Redis may apply
        // two of one key and timestamp in either order: only the last is
        // sent (the earlier ones are replaced by it, as a later put replaces
        // an earlier one in the embedded store).
        let mut last: HashSet<(&str, i64)> = HashSet::with_capacity(puts.len());
        let superseded: Vec<bool> = puts
            .iter()
            .rev()
            .map(|put| !last.insert((put.key, put.timestamp)))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let mut results = join_all(puts.iter().zip(superseded).map(
            |(put, superseded)| async move {
                match cutoff {
                    _ if superseded => Ok(()),
                    Some(cutoff) if put.timestamp < cutoff => Ok(()),
                    _ => self.put_one(put).await,
                }
            },
        ))
        .await;
        if self.wait_replicas > 0 && results.iter().any(Result::is_ok) {
            if let Err(reason) = self.wait().await {
                for result in results.iter_mut().filter(|r| r.is_ok()) {
                    *result = Err(reason.clone());
                }
            }
        }
        results
    }

    async fn put_one(&self, put: &Put<&str>) -> Result<(), String> {
        let series = series_key(put.key);
        // Stored as `get` writes it, so reading back is a plain copy of
        // what Python's str(float) gives.
        let mut value = Vec::with_capacity(24);
        push_py_float(&mut value, put.value);
        let mut index = redis::cmd("SADD");
        index.arg(&self.index[bucket_of(&series)]).arg(put.key);
        let mut point = redis::cmd("HSET");
        point.arg(&series).arg(put.timestamp).arg(value);
        // Both in flight at once; the put is acknowledged only when both are
        // stored (an index entry without its hash is skipped by `get *`).
        try_join(
            self.link.query::<redis::Value>(&index),
            self.link.query::<redis::Value>(&point),
        )
        .await
        .map(|_| ())
        .map_err(|e| reply_text(&e))
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

    /// A walk over the points `selector` asks for; none older than
    /// `cutoff` (the retention).
    pub(crate) fn get(&self, selector: Selector<String>, cutoff: Option<i64>) -> Walk<'_> {
        Walk {
            gateway: self,
            single: match selector {
                Selector::All => None,
                Selector::Key(key) => Some(key),
            },
            answer: Answer {
                plan: None,
                cutoff,
                format: ReplyFormat::Text,
            },
            bucket: 0,
            cursor: None,
            keys: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// A walk answering a query: the same walk over the index, each key
    /// the glob matches answered by the query code the embedded server and
    /// the client's fallback use (`crate::query`), so all three agree;
    /// written in `format` by the protocol's writer of it, as theirs is.
    pub(crate) fn query(&self, plan: Plan, format: ReplyFormat, cutoff: Option<i64>) -> Walk<'_> {
        let single = plan.glob.literal().map(str::to_owned);
        Walk {
            gateway: self,
            single,
            answer: Answer {
                plan: Some(plan),
                cutoff,
                format,
            },
            bucket: 0,
            cursor: None,
            keys: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Appends the lines of `key`'s answer to `out`.
    async fn encode_series(
        &self,
        key: &str,
        answer: &Answer,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let mut all = redis::cmd("HGETALL");
        all.arg(series_key(key));
        let fields: Vec<(String, String)> =
            self.link.query(&all).await.map_err(|e| reply_text(&e))?;
        encode_fields(key, fields, answer, out)
    }
}

/// What a walk answers for each key: every point (a `get`) or a query's
/// answer, none older than the retention's cut.
struct Answer {
    plan: Option<Plan>,
    cutoff: Option<i64>,
    format: ReplyFormat,
}

impl Answer {
    fn wants(&self, key: &str) -> bool {
        self.plan.as_ref().is_none_or(|plan| plan.glob.matches(key))
    }
}

fn encode_fields(
    key: &str,
    fields: Vec<(String, String)>,
    answer: &Answer,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut points = Vec::with_capacity(fields.len());
    for (timestamp, value) in fields {
        match (timestamp.parse::<i64>(), parse_float(value.as_bytes())) {
            (Ok(timestamp), Some(value)) => points.push((timestamp, value)),
            _ => {
                return Err(format!(
                    "store holds a malformed point for {key}: {timestamp} {value}"
                ))
            }
        }
    }
    points.sort_unstable_by_key(|&(timestamp, _)| timestamp);
    if let Some(cutoff) = answer.cutoff {
        points.retain(|p: &Point| p.0 >= cutoff);
    }
    let points = match &answer.plan {
        None => points,
        Some(plan) => match plan.answer(vec![(key.to_owned(), points)]).pop() {
            Some((_, answered)) => answered,
            None => return Ok(()),
        },
    };
    push_series(out, answer.format, key, &points);
    Ok(())
}

/// Where a `get` is: `get *` goes through the index buckets in order, each
/// with `SSCAN` pages, so what it holds is one page of key names and the
/// names seen in the current bucket (`SSCAN` may return a name twice).
pub(crate) struct Walk<'g> {
    gateway: &'g Gateway,
    single: Option<String>,
    answer: Answer,
    bucket: usize,
    /// The bucket's `SSCAN` cursor; `None` before its first page.
    cursor: Option<u64>,
    keys: Vec<String>,
    seen: HashSet<String>,
}

impl Walk<'_> {
    /// Appends the start of the walk's reply.
    pub(crate) fn start(&self, out: &mut Vec<u8>) {
        encode_points_start(out, self.answer.format);
    }

    /// Appends the end of the walk's reply, once `fill` says it is over.
    pub(crate) fn finish(&self, out: &mut Vec<u8>) {
        encode_points_end(out, self.answer.format);
    }

    /// Appends points to `out` until it holds `chunk` bytes (at least one
    /// key's points, however many); `Ok(true)` when the walk is over.
    pub(crate) async fn fill(&mut self, out: &mut Vec<u8>, chunk: usize) -> Result<bool, String> {
        let gateway = self.gateway;
        if let Some(key) = self.single.take() {
            gateway.encode_series(&key, &self.answer, out).await?;
            return Ok(true);
        }
        loop {
            if !self.keys.is_empty() {
                let keys = std::mem::take(&mut self.keys);
                let series = join_all(keys.iter().map(|key| {
                    let mut all = redis::cmd("HGETALL");
                    all.arg(series_key(key));
                    async move { gateway.link.query::<Vec<(String, String)>>(&all).await }
                }))
                .await;
                for (key, fields) in keys.iter().zip(series) {
                    encode_fields(key, fields.map_err(|e| reply_text(&e))?, &self.answer, out)?;
                }
                if out.len() >= chunk {
                    return Ok(false);
                }
                continue;
            }
            if self.bucket >= gateway.index.len() {
                return Ok(true);
            }
            if self.cursor == Some(0) {
                self.bucket += 1;
                self.cursor = None;
                self.seen.clear();
                continue;
            }
            let mut scan = redis::cmd("SSCAN");
            scan.arg(&gateway.index[self.bucket])
                .arg(self.cursor.unwrap_or(0))
                .arg("COUNT")
                .arg(SCAN_PAGE);
            let (next, page): (u64, Vec<String>) = gateway
                .link
                .query(&scan)
                .await
                .map_err(|e| reply_text(&e))?;
            self.cursor = Some(next);
            for key in page {
                if self.answer.wants(&key) && self.seen.insert(key.clone()) {
                    self.keys.push(key);
                }
            }
        }
    }
}
