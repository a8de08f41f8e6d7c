//! The gateway's reads: a `get` or a query is a walk over the key index
//! (or one key), each key's hash read and answered by the shared query
//! code, streamed chunk by chunk.

use std::collections::HashSet;

use futures_util::future::join_all;

use super::model::series_key;
use super::{reply_text, Gateway};
use crate::protocol::{
    encode_points_end, encode_points_start, parse_float, push_series, Point, ReplyFormat, Selector,
};
use crate::query::Plan;

/// Index members asked for by one `SSCAN` of a `get *`.
const SCAN_PAGE: usize = 128;

impl Gateway {
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
