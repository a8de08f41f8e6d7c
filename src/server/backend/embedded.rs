//! The embedded backend: the storage engine (the store as the head over
//! the sealed blocks, the journal as its write-ahead log) under the
//! store's lock. Puts and small gets of a batch are done under one lock;
//! a large get or query is streamed chunk by chunk with the lock released
//! while each chunk is written; under `fsync=always` the `ok` of a put
//! waits for its fsync (`Connection::settle`).

use std::io;

use crate::protocol::{encode_error, encode_ok, Command};
use crate::server::command::{self, get, put, query};
use crate::server::connection::Connection;
use crate::server::stream::Stream;

/// Answers the parsed requests in order. Puts and small gets are done
/// under one lock; a large get is streamed chunk by chunk, the lock
/// released while each chunk is written.
///
/// Under `fsync=always` a put's point reaches the store only once its
/// line is fsynced (the journal writer stores it), so a get first waits
/// for this connection's own earlier puts to settle: it sees them, and
/// no other connection ever sees a point that is not durable.
pub(in crate::server) async fn execute(
    conn: &mut Connection<'_>,
    stream: &mut Stream,
) -> io::Result<()> {
    let chunk = conn.shared.limits.write_chunk_bytes;
    let mut i = 0;
    while i < conn.ops.len() {
        let mut streaming = None;
        let mut querying = None;
        let mut wake = false;
        let mut settle_first = false;
        {
            let mut state = conn.shared.lock();
            while i < conn.ops.len() {
                // SAFETY: `rbuf` is not changed between parsing a batch
                // and applying it (it is compacted after `execute`).
                let request = conn.ops[i]
                    .as_ref()
                    .map(|c| unsafe { command::resolve(&conn.rbuf, c) });
                match request {
                    Ok(Command::Put(request)) => {
                        let defer = conn.durable.is_some();
                        if defer {
                            let journal = state.journal.as_ref().expect("a journal");
                            let rejections = journal.rejections().count();
                            if conn.unsettled.is_empty() {
                                conn.unsettled_rejections = rejections;
                            } else if rejections != conn.unsettled_rejections {
                                // A batch was rejected since the unsettled
                                // puts were journaled: learn their fate
                                // before journaling more.
                                settle_first = true;
                                break;
                            }
                        }
                        let limit = conn.shared.limits.max_memory;
                        match put::apply(&mut state, &request, limit, defer, &mut wake) {
                            put::Outcome::Refused(reason) => {
                                encode_error(&mut conn.wbuf, &reason);
                            }
                            put::Outcome::Stored => encode_ok(&mut conn.wbuf),
                            put::Outcome::Deferred { settled_at } => {
                                conn.unsettled.push((conn.wbuf.len(), settled_at));
                                encode_ok(&mut conn.wbuf);
                            }
                        }
                    }
                    Ok(Command::Get(selector)) => {
                        if !conn.unsettled.is_empty() {
                            settle_first = true;
                            break;
                        }
                        let view = state.view(conn.shared);
                        streaming = get::start(&view, selector, &mut conn.wbuf, chunk);
                        if streaming.is_some() {
                            i += 1;
                            break;
                        }
                    }
                    Ok(Command::Query(request)) => {
                        if !conn.unsettled.is_empty() {
                            settle_first = true;
                            break;
                        }
                        let view = state.view(conn.shared);
                        querying = query::start(&view, &request, &mut conn.wbuf, chunk);
                        if querying.is_some() {
                            i += 1;
                            break;
                        }
                    }
                    Err(refusal) => refusal.encode(&mut conn.wbuf),
                }
                i += 1;
                if conn.wbuf.len() >= chunk {
                    break;
                }
            }
        }
        if wake {
            conn.shared.wake_journal();
        }
        if settle_first {
            conn.settle().await?;
            continue;
        }
        if let Some(mut cursor) = streaming {
            loop {
                conn.flush(stream).await?;
                let done = get::fill(
                    &conn.shared.lock().view(conn.shared),
                    &mut cursor,
                    &mut conn.wbuf,
                    chunk,
                );
                if done {
                    get::finish(&mut conn.wbuf);
                    break;
                }
            }
        }
        if let Some(mut cursor) = querying {
            loop {
                conn.flush(stream).await?;
                let done = query::fill(
                    &conn.shared.lock().view(conn.shared),
                    &mut cursor,
                    &mut conn.wbuf,
                    chunk,
                );
                if done {
                    query::finish(&cursor, &mut conn.wbuf);
                    break;
                }
            }
        }
        if conn.wbuf.len() >= chunk {
            conn.flush(stream).await?;
        }
    }
    Ok(())
}
