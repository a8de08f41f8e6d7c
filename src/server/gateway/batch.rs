//! A batch of puts as few Redis commands, and as few round trips, as it
//! can be:
//! - the points of one key are one `HSET` with a field/value pair each,
//!   in batch order (so of two puts of one timestamp the last stays);
//! - the keys not known to be indexed (`known`) are one `SADD` per index
//!   bucket, with all of them;
//! - the commands for one master are one pipeline to it (the link knows
//!   which master holds which slots).
//!
//! A pipeline the cluster refuses after its redirections (slots moved
//! since the link last read the slot map, e.g. during a resharding) is sent
//! again command by command, each routed on its own, and the slot map is
//! read again.

use std::collections::HashSet;
use std::ops::Range;

use futures_util::future::join_all;
use hashbrown::HashTable;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisResult, Value};

use super::known::{KeyHasher, KnownKeys};
use super::link::{slots_moved, Link};
use super::model::{bucket_of_slot, slot, write_series_key, INDEX_BUCKETS};
use super::reply_text;
use crate::protocol::{push_py_float, Put};

/// The puts of a batch that are sent, by key and by master.
pub(super) struct Batch<'p> {
    keys: Vec<Series<'p>>,
    /// The points of every key, key after key, each with the index of its
    /// put in the batch (a key's are `Series::points` of it).
    points: Vec<(i64, f64, usize)>,
    /// For each index bucket, the keys (positions in `keys`) to add to it.
    unindexed: Vec<Vec<usize>>,
    groups: Vec<Group>,
}

struct Series<'p> {
    key: &'p str,
    /// Its keyed hash, made once: how the batch finds the key, and how the
    /// known keys hold it.
    hash: u64,
    /// The slot of its hash.
    slot: u16,
    bucket: usize,
    /// Where its points are in `Batch::points`.
    points: Range<usize>,
    /// Known to be in the index: no `SADD` for it.
    indexed: bool,
}

/// The commands for one master: `HSET`s of `keys`, then `SADD`s to the
/// sets of `buckets`.
struct Group {
    master: u16,
    keys: Vec<usize>,
    buckets: Vec<usize>,
}

/// The group of `master`: a cluster has a few masters, so a look along
/// the groups costs less than hashing.
fn group_of(groups: &mut Vec<Group>, master: u16) -> &mut Group {
    let g = match groups.iter().position(|group| group.master == master) {
        Some(g) => g,
        None => {
            groups.push(Group {
                master,
                keys: Vec::new(),
                buckets: Vec::new(),
            });
            groups.len() - 1
        }
    };
    &mut groups[g]
}

impl<'p> Batch<'p> {
    /// Groups the puts that are `sent`; `known` says which keys are
    /// already indexed (`None`: index them all). Of two puts of one key
    /// and timestamp only the last is sent (it replaces the earlier, as a
    /// later put replaces an earlier one in the embedded store): the
    /// earlier is marked not `sent`.
    pub(super) fn new(
        puts: &[Put<&'p str>],
        sent: &mut [bool],
        hasher: &KeyHasher,
        known: Option<&KnownKeys>,
        link: &Link,
        index: &[String],
    ) -> Batch<'p> {
        // Each put's key numbered in order of first appearance, then the
        // points laid out key after key (a counting sort, stable, so a
        // key's points stay in batch order).
        let mut keys: Vec<Series<'p>> = Vec::new();
        let mut number: HashTable<usize> = HashTable::with_capacity(puts.len());
        let mut numbered: Vec<(usize, usize)> = Vec::with_capacity(puts.len());
        let mut name = Vec::with_capacity(64);
        for (i, put) in puts.iter().enumerate().filter(|&(i, _)| sent[i]) {
            let hash = hasher.hash(put.key);
            let s = match number.find(hash, |&s| keys[s].key == put.key).copied() {
                Some(s) => s,
                None => {
                    write_series_key(&mut name, put.key);
                    let slot = slot(&name);
                    keys.push(Series {
                        key: put.key,
                        hash,
                        slot,
                        bucket: bucket_of_slot(slot),
                        points: 0..0,
                        indexed: false,
                    });
                    number.insert_unique(hash, keys.len() - 1, |&s| keys[s].hash);
                    keys.len() - 1
                }
            };
            keys[s].points.end += 1;
            numbered.push((s, i));
        }
        let mut start = 0;
        for series in &mut keys {
            let len = series.points.end;
            series.points = start..start;
            start += len;
        }
        let mut points = vec![(0, 0.0, 0); numbered.len()];
        for (s, i) in numbered {
            let at = &mut keys[s].points.end;
            points[*at] = (puts[i].timestamp, puts[i].value, i);
            *at += 1;
        }
        drop_replaced(&mut keys, &mut points, sent);
        if let Some(known) = known {
            // Apart from the rest: each lookup is a cache miss, and a loop
            // of nothing else has several in flight.
            for series in &mut keys {
                series.indexed = known.contains(series.hash);
            }
        }
        let mut unindexed = vec![Vec::new(); usize::from(INDEX_BUCKETS)];
        let mut groups = Vec::new();
        let masters = link.masters();
        for (s, series) in keys.iter().enumerate() {
            group_of(&mut groups, masters.of(series.slot)).keys.push(s);
            if !series.indexed {
                if unindexed[series.bucket].is_empty() {
                    let set = slot(index[series.bucket].as_bytes());
                    group_of(&mut groups, masters.of(set))
                        .buckets
                        .push(series.bucket);
                }
                unindexed[series.bucket].push(s);
            }
        }
        drop(masters);
        Batch {
            keys,
            points,
            unindexed,
            groups,
        }
    }

    /// Sends every master's commands at once; calls `outcome` with each
    /// put's index and result, and returns the hashes of the keys indexed
    /// just now.
    pub(super) async fn send(
        &self,
        link: &Link,
        index: &[String],
        mut outcome: impl FnMut(usize, Result<(), String>),
    ) -> Vec<u64> {
        let answers = join_all(
            self.groups
                .iter()
                .map(|group| self.send_group(group, link, index)),
        )
        .await;
        let mut written: Vec<Option<RedisResult<()>>> = vec![None; self.keys.len()];
        let mut added: Vec<Option<RedisResult<()>>> = vec![None; usize::from(INDEX_BUCKETS)];
        for (group, answer) in self.groups.iter().zip(answers) {
            let mut answer = answer.into_iter();
            for (&s, result) in group.keys.iter().zip(answer.by_ref()) {
                written[s] = Some(result);
            }
            for (&bucket, result) in group.buckets.iter().zip(answer) {
                added[bucket] = Some(result);
            }
        }
        let mut indexed = Vec::new();
        for (series, written) in self.keys.iter().zip(written) {
            let added = if series.indexed {
                None
            } else {
                added[series.bucket].clone()
            };
            let result = match (written, added) {
                (Some(Err(e)), _) | (_, Some(Err(e))) => Err(reply_text(&e)),
                (Some(Ok(())), _) => Ok(()),
                (None, _) => Err("store failed: no answer".to_owned()),
            };
            if result.is_ok() && !series.indexed {
                indexed.push(series.hash);
            }
            for &(_, _, i) in &self.points[series.points.clone()] {
                outcome(i, result.clone());
            }
        }
        indexed
    }

    /// The group's commands: an `HSET` per key, then an `SADD` per bucket.
    fn commands(&self, group: &Group, index: &[String]) -> Vec<Cmd> {
        let mut value = Vec::with_capacity(24);
        let mut name = Vec::with_capacity(64);
        let mut commands = Vec::with_capacity(group.keys.len() + group.buckets.len());
        for &s in &group.keys {
            let series = &self.keys[s];
            let points = &self.points[series.points.clone()];
            // Room for the arguments and their bytes (a timestamp and a
            // value take about 30), so building it does not reallocate.
            let mut hset = Cmd::with_capacity(
                2 + 2 * points.len(),
                8 + series.key.len() + 32 * points.len(),
            );
            write_series_key(&mut name, series.key);
            hset.arg("HSET").arg(&name[..]);
            for &(timestamp, point, _) in points {
                // Stored as `get` writes it, so reading back is a plain
                // copy of what Python's str(float) gives.
                value.clear();
                push_py_float(&mut value, point);
                hset.arg(timestamp).arg(&value[..]);
            }
            commands.push(hset);
        }
        for &bucket in &group.buckets {
            let mut sadd = redis::cmd("SADD");
            sadd.arg(&index[bucket]);
            for &s in &self.unindexed[bucket] {
                sadd.arg(self.keys[s].key);
            }
            commands.push(sadd);
        }
        commands
    }

    /// One result per command of [`Batch::commands`].
    async fn send_group(
        &self,
        group: &Group,
        link: &Link,
        index: &[String],
    ) -> Vec<RedisResult<()>> {
        let commands = self.commands(group, index);
        let len = commands.len();
        // The master of the first command's key is the group's.
        let route = match group.keys.first() {
            Some(&s) => self.keys[s].slot,
            None => slot(index[group.buckets[0]].as_bytes()),
        };
        let mut pipe = Pipeline::with_capacity(len);
        for command in commands {
            pipe.add_command(command);
        }
        match link.pipeline(pipe, len, route).await {
            Ok(values) if values.len() == len => values.into_iter().map(written).collect(),
            Ok(values) => {
                let error = RedisError::from((
                    ErrorKind::Client,
                    "store answered a pipeline of",
                    format!("{len} commands with {} answers", values.len()),
                ));
                vec![Err(error); len]
            }
            Err(error) if slots_moved(&error) => {
                link.read_slots().await;
                let commands = self.commands(group, index);
                join_all(
                    commands.iter().map(|command| async move {
                        link.query::<Value>(command).await.map(|_| ())
                    }),
                )
                .await
            }
            Err(error) => vec![Err(error); len],
        }
    }
}

/// Takes out of `points` each point followed by one of the same key and
/// timestamp, and marks its put not `sent`; the rest keep their order.
fn drop_replaced(keys: &mut [Series], points: &mut Vec<(i64, f64, usize)>, sent: &mut [bool]) {
    let mut timestamps: HashSet<i64> = HashSet::new();
    let mut to = 0;
    for series in keys {
        let from = series.points.clone();
        if from.len() > 1 {
            timestamps.clear();
            // From the last: the last of each timestamp is kept.
            for &(timestamp, _, i) in points[from.clone()].iter().rev() {
                if !timestamps.insert(timestamp) {
                    sent[i] = false;
                }
            }
        }
        let start = to;
        for p in from {
            if sent[points[p].2] {
                points[to] = points[p];
                to += 1;
            }
        }
        series.points = start..to;
    }
    points.truncate(to);
}

fn written(value: Value) -> RedisResult<()> {
    match value {
        Value::ServerError(error) => Err(error.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_two_points_of_a_key_and_timestamp_only_the_last_is_sent() {
        let series = |key, points| Series {
            key,
            hash: 1,
            slot: 0,
            bucket: 0,
            points,
            indexed: false,
        };
        // Key a: puts 0, 2, 4 (0 and 4 of timestamp 10); key b: puts 1, 3.
        let mut keys = [series("a", 0..3), series("b", 3..5)];
        let mut points = vec![
            (10, 1.0, 0),
            (11, 2.0, 2),
            (10, 3.0, 4),
            (10, 4.0, 1),
            (12, 5.0, 3),
        ];
        let mut sent = [true; 5];
        drop_replaced(&mut keys, &mut points, &mut sent);
        assert_eq!(sent, [false, true, true, true, true]);
        assert_eq!(
            points,
            [(11, 2.0, 2), (10, 3.0, 4), (10, 4.0, 1), (12, 5.0, 3)]
        );
        assert_eq!(
            (keys[0].points.clone(), keys[1].points.clone()),
            (0..2, 2..4)
        );
    }
}
