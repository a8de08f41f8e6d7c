//! The Redis backend: the gateway keeps nothing itself (see `gateway`).
//! Each run of puts of a batch is sent at once; a get or a query streams
//! chunk by chunk from the gateway's walk over its index, a query answered
//! by the same query code as the embedded backend's.

use std::io;

/// Requests of a gateway connection parsed into one batch, and the read
/// buffer a pipelining client's connection grows to so a read holds them:
/// a batch costs one round trip to each master it touches, so the larger
/// the batches of a `put_many`, the fewer round trips (the embedded store
/// takes 512 at a time, which bounds how long it holds its lock).
pub(in crate::server) const BATCH_OPS: usize = 4096;
pub(in crate::server) const BATCH_READ_BYTES: usize = 64 << 10;

use crate::protocol::{encode_error, encode_ok, Command, Put, Selector};
use crate::query::Plan;
use crate::server::command;
use crate::server::connection::Connection;
use crate::server::engine::now;
use crate::server::gateway::Gateway;
use crate::server::stream::Stream;

/// Answers the parsed requests in order from Redis: each run of puts is
/// sent as one batch, a get or a query streams chunk by chunk. A Redis
/// failure is the error reply of the requests it touched.
pub(in crate::server) async fn execute(
    conn: &mut Connection<'_>,
    gateway: &Gateway,
    stream: &mut Stream,
) -> io::Result<()> {
    let chunk = conn.shared.limits.write_chunk_bytes;
    let cutoff = conn.shared.storage.cutoff(now());
    let mut i = 0;
    while i < conn.ops.len() {
        let puts: Vec<Put<&str>> = conn.ops[i..]
            .iter()
            .map_while(
                // SAFETY: as in `execute`: `rbuf` holds, unchanged, the
                // bytes the batch was parsed from until it is compacted.
                |op| match op
                    .as_ref()
                    .map(|c| unsafe { command::resolve(&conn.rbuf, c) })
                {
                    Ok(Command::Put(put)) => Some(put),
                    _ => None,
                },
            )
            .collect();
        if !puts.is_empty() {
            i += puts.len();
            let results = gateway.put(&puts, cutoff).await;
            drop(puts);
            for result in results {
                match result {
                    Ok(()) => encode_ok(&mut conn.wbuf),
                    Err(reason) => encode_error(&mut conn.wbuf, &reason),
                }
            }
        } else {
            drop(puts);
            // SAFETY: as above.
            match conn.ops[i]
                .as_ref()
                .map(|c| unsafe { command::resolve(&conn.rbuf, c) })
            {
                Ok(Command::Get(selector)) => {
                    let selector = match selector {
                        Selector::All => Selector::All,
                        Selector::Key(key) => Selector::Key(key.to_owned()),
                    };
                    let walk = gateway.get(selector, cutoff);
                    stream_walk(conn, walk, stream).await?;
                }
                Ok(Command::Query(query)) => match Plan::new(&query) {
                    Ok(plan) => {
                        let format = query.format.unwrap_or_default();
                        let walk = gateway.query(plan, format, cutoff);
                        stream_walk(conn, walk, stream).await?;
                    }
                    Err(e) => encode_error(&mut conn.wbuf, &format!("bad query: {e}")),
                },
                Err(refusal) => refusal.encode(&mut conn.wbuf),
                // Runs of puts are sent above.
                Ok(Command::Put(_)) => {}
            }
            i += 1;
        }
        if conn.wbuf.len() >= chunk {
            conn.flush(stream).await?;
        }
    }
    Ok(())
}

/// Streams the reply of a walk. A Redis failure before anything was
/// written is the error reply; after, it can no longer be, and closes the
/// connection (the client sees a broken reply).
async fn stream_walk(
    conn: &mut Connection<'_>,
    mut walk: crate::server::gateway::Walk<'_>,
    stream: &mut Stream,
) -> io::Result<()> {
    let chunk = conn.shared.limits.write_chunk_bytes;
    let start = conn.wbuf.len();
    let mut written = false;
    walk.start(&mut conn.wbuf);
    loop {
        match walk.fill(&mut conn.wbuf, chunk).await {
            Ok(true) => {
                walk.finish(&mut conn.wbuf);
                return Ok(());
            }
            Ok(false) => {
                conn.flush(stream).await?;
                written = true;
            }
            Err(reason) if written => return Err(io::Error::other(reason)),
            Err(reason) => {
                conn.wbuf.truncate(start);
                encode_error(&mut conn.wbuf, &reason);
                return Ok(());
            }
        }
    }
}
