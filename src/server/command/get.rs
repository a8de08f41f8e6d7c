//! `get <key>` and `get *`: `ok`, then one `<key> <value> <timestamp>` line
//! per point from a cursor into the store, then an empty line. The points
//! are encoded in chunks so that `get *` never copies the data set: the
//! connection writes each chunk, with the lock released, before the next.

use crate::protocol::{encode_get_reply_end, encode_get_reply_start, push_point, Selector};
use crate::server::engine::{View, Walk};

/// Starts the reply to a get of `selector` in `out`, filling it until it
/// holds `chunk` bytes. Returns the cursor to go on from when the reply is
/// not complete (continue with [`fill`], then [`finish`]).
pub(in crate::server) fn start(
    view: &View<'_>,
    selector: Selector<&str>,
    out: &mut Vec<u8>,
    chunk: usize,
) -> Option<Walk> {
    let mut cursor = view.walk_start(selector);
    encode_get_reply_start(out);
    if fill(view, &mut cursor, out, chunk) {
        finish(out);
        None
    } else {
        Some(cursor)
    }
}

/// Encodes points from `cursor` until `out` holds `chunk` bytes; true when
/// the walk is over.
pub(in crate::server) fn fill(
    view: &View<'_>,
    cursor: &mut Walk,
    out: &mut Vec<u8>,
    chunk: usize,
) -> bool {
    view.walk_texts(cursor, |key, timestamp, value, text| {
        // A value decoded from a decimal is written from its digits: the
        // same text, without searching for the float's shortest digits.
        match text {
            Some(text) => push_point(out, key, text, timestamp),
            None => push_point(out, key, value, timestamp),
        }
        out.len() < chunk
    })
}

/// Ends a reply whose walk is over.
pub(in crate::server) fn finish(out: &mut Vec<u8>) {
    encode_get_reply_end(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::Store;

    #[test]
    fn a_reply_in_chunks_is_the_reply_in_one() {
        let mut store = Store::new();
        for i in 0..100 {
            store.put(&format!("k{}", i % 7), i, i as f64 / 4.0);
        }
        let mut whole = Vec::new();
        assert!(start(&View::of(&store), Selector::All, &mut whole, usize::MAX).is_none());
        assert!(whole.starts_with(b"ok\n") && whole.ends_with(b"\n\n"));
        assert_eq!(whole.iter().filter(|&&b| b == b'\n').count(), 102);

        let mut chunked = Vec::new();
        let mut chunks = 1;
        let mut cursor =
            start(&View::of(&store), Selector::All, &mut chunked, 64).expect("more to come");
        while !fill(
            &View::of(&store),
            &mut cursor,
            &mut chunked,
            whole.len().min(64 * (chunks + 1)),
        ) {
            chunks += 1;
        }
        finish(&mut chunked);
        assert!(chunks > 10, "{chunks}");
        assert_eq!(chunked, whole);

        let mut one = Vec::new();
        assert!(start(&View::of(&store), Selector::Key("k3"), &mut one, usize::MAX).is_none());
        let text = String::from_utf8(one).unwrap();
        assert!(text.starts_with("ok\nk3 0.75 3\n"), "{text}");
        assert!(text
            .lines()
            .skip(1)
            .all(|l| l.is_empty() || l.starts_with("k3 ")));
    }
}
