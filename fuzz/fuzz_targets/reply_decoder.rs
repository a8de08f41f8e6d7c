//! The client's reply decoder on arbitrary server bytes, fed in arbitrary
//! chunks: it must never panic, never claim more bytes than it was given,
//! stay within its size limit, and decode a split stream exactly as the
//! whole. The first byte picks what the replies answer: `C` a query in
//! columns (the binary frame after `ok`), else a put (even) or a get (odd).
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_client::protocol::{Expect, Reply, ReplyDecoder};

const LIMIT: usize = 4096;

/// All replies in `data`, fed in chunks of the given sizes (cycled).
fn decode(data: &[u8], expect: Expect, sizes: &[usize]) -> (Vec<Reply>, bool) {
    let mut decoder = ReplyDecoder::with_limit(expect, LIMIT);
    let mut replies = Vec::new();
    let mut offset = 0;
    let mut size_index = 0;
    while offset < data.len() {
        let size = sizes[size_index % sizes.len()].max(1);
        size_index += 1;
        let end = (offset + size).min(data.len());
        let mut chunk = &data[offset..end];
        offset = end;
        loop {
            match decoder.feed(chunk) {
                Ok(Some(done)) => {
                    assert!(done.used >= 1 && done.used <= chunk.len());
                    replies.push(done.reply);
                    chunk = &chunk[done.used..];
                    if chunk.is_empty() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => return (replies, false),
            }
        }
    }
    (replies, true)
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let expect = match selector {
        b'C' => Expect::Columns,
        even if even & 1 == 0 => Expect::Ack,
        _ => Expect::Points,
    };
    let sizes: Vec<usize> = data.iter().take(4).map(|&b| b as usize % 17 + 1).collect();
    let (whole, whole_ok) = decode(data, expect, &[data.len().max(1)]);
    let (split, split_ok) = decode(data, expect, if sizes.is_empty() { &[1] } else { &sizes });
    if whole_ok && split_ok {
        // Compared as text: a server may send `nan`, and NaN != NaN.
        assert_eq!(format!("{whole:?}"), format!("{split:?}"), "a split stream decoded differently");
    }
    for reply in whole.iter().chain(&split) {
        match reply {
            Reply::Points(metrics) => {
                for (_, points) in metrics {
                    assert!(points.windows(2).all(|w| w[0].0 <= w[1].0), "points not sorted");
                }
            }
            Reply::Columns(columns) => {
                for series in columns {
                    assert!(!series.key.is_empty(), "a series without a key");
                    assert_eq!(series.timestamps.len(), series.values.len(), "columns differ");
                    assert!(series.timestamps.is_sorted(), "timestamps not sorted");
                    // Every point arrived as 16 bytes of the reply.
                    assert!(16 * series.timestamps.len() <= LIMIT, "more points than bytes");
                }
            }
            Reply::Ack | Reply::Error(_) => {}
        }
    }
});
