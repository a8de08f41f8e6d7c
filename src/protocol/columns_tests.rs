use super::*;
use crate::protocol::{
    encode_columns_end, encode_columns_start, encode_get_reply_start, push_columns, Expect, Point,
    Reply, ReplyDecoder,
};
use proptest::prelude::*;

/// A whole columns reply of `series` (each written in one call).
fn frame(series: &[(&str, Vec<Point>)]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_get_reply_start(&mut out);
    encode_columns_start(&mut out);
    for (key, points) in series {
        push_columns(&mut out, key, points);
    }
    encode_columns_end(&mut out);
    out
}

fn decode(reply: &[u8]) -> Result<Option<(Columns, usize)>, DecodeError> {
    decode_with_limit(reply, usize::MAX)
}

fn decode_with_limit(reply: &[u8], limit: usize) -> Result<Option<(Columns, usize)>, DecodeError> {
    let mut decoder = ReplyDecoder::with_limit(Expect::Columns, limit);
    Ok(decoder.feed(reply)?.map(|done| match done.reply {
        Reply::Columns(columns) => (columns, done.used),
        other => panic!("not columns: {other:?}"),
    }))
}

fn series(key: &str, points: &[Point]) -> Series {
    Series {
        key: key.to_owned(),
        timestamps: points.iter().map(|p| p.0).collect(),
        values: points.iter().map(|p| p.1).collect(),
    }
}

/// A hand-made block (any lengths, any bytes).
fn block(out: &mut Vec<u8>, key: &[u8], count: u32, points: &[Point]) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend(points.iter().flat_map(|p| p.0.to_le_bytes()));
    out.extend(points.iter().flat_map(|p| p.1.to_le_bytes()));
}

fn frame_of_blocks(blocks: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = b"ok\n\0CF1".to_vec();
    blocks(&mut out);
    out.extend_from_slice(&[0; 4]);
    out
}

#[test]
fn the_frame_is_these_bytes() {
    let out = frame(&[("k", vec![(1, 0.5), (-2, 2.0)])]);
    let mut want = b"ok\n\0CF1".to_vec();
    want.extend_from_slice(&[1, 0, 0, 0, b'k', 2, 0, 0, 0]);
    want.extend_from_slice(&1i64.to_le_bytes());
    want.extend_from_slice(&(-2i64).to_le_bytes());
    want.extend_from_slice(&0.5f64.to_le_bytes());
    want.extend_from_slice(&2.0f64.to_le_bytes());
    want.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(out, want);
    // No points, no block.
    assert_eq!(frame(&[("k", vec![])]), b"ok\n\0CF1\0\0\0\0");
}

#[test]
fn a_round_trip_keeps_every_bit_and_the_bytes_after_the_frame() {
    let points: Vec<Point> = vec![(i64::MIN, f64::NAN), (0, -0.0), (i64::MAX, f64::INFINITY)];
    let mut reply = frame(&[("a.cpu", points.clone()), ("\u{e9}", vec![(5, 1e300)])]);
    let len = reply.len();
    reply.extend_from_slice(b"ok\n\n");
    let (columns, used) = decode(&reply).unwrap().unwrap();
    assert_eq!(used, len);
    assert_eq!(columns.len(), 2);
    assert_eq!(columns[0].key, "a.cpu");
    assert_eq!(columns[0].timestamps, [i64::MIN, 0, i64::MAX]);
    let bits: Vec<u64> = columns[0].values.iter().map(|v| v.to_bits()).collect();
    let want: Vec<u64> = points.iter().map(|p| p.1.to_bits()).collect();
    assert_eq!(bits, want);
    assert_eq!(columns[1], series("\u{e9}", &[(5, 1e300)]));
}

#[test]
fn a_long_series_comes_in_blocks_and_decodes_as_one() {
    let points: Vec<Point> = (0..(2 * MAX_BLOCK_POINTS + 3) as i64)
        .map(|t| (t, t as f64))
        .collect();
    let reply = frame(&[("k", points.clone())]);
    // Three blocks, each with its header.
    assert_eq!(reply.len(), 3 + 4 + 3 * 9 + 16 * points.len() + 4);
    let (columns, _) = decode(&reply).unwrap().unwrap();
    assert_eq!(columns, [series("k", &points)]);
}

#[test]
fn blocks_of_a_key_anywhere_join_its_series_sorted_stably() {
    let reply = frame_of_blocks(|out| {
        block(out, b"a", 2, &[(5, 1.0), (1, 2.0)]);
        block(out, b"b", 1, &[(0, 3.0)]);
        block(out, b"a", 2, &[(1, 4.0), (0, 5.0)]);
    });
    let (columns, _) = decode(&reply).unwrap().unwrap();
    assert_eq!(
        columns,
        [
            series("a", &[(0, 5.0), (1, 2.0), (1, 4.0), (5, 1.0)]),
            series("b", &[(0, 3.0)])
        ]
    );
}

#[test]
fn a_truncated_frame_waits_at_every_byte_and_any_split_decodes_the_same() {
    let reply = frame(&[
        ("a", vec![(1, 1.5), (2, 2.5)]),
        ("bb", vec![(3, 3.5)]),
        ("a.b.c", (0..20).map(|t| (t, -(t as f64))).collect()),
    ]);
    let whole = decode(&reply).unwrap().unwrap();
    for cut in 0..reply.len() {
        assert_eq!(decode(&reply[..cut]), Ok(None), "cut at {cut}");
        // The rest, fed to the same decoder, completes the same reply.
        let mut decoder = ReplyDecoder::new(Expect::Columns);
        assert_eq!(decoder.feed(&reply[..cut]), Ok(None));
        let done = decoder.feed(&reply[cut..]).unwrap().unwrap();
        assert_eq!(done.used, reply.len() - cut);
        assert_eq!(done.reply, Reply::Columns(whole.0.clone()), "cut at {cut}");
    }
    let mut decoder = ReplyDecoder::new(Expect::Columns);
    let mut got = None;
    for byte in &reply {
        if let Some(done) = decoder.feed(std::slice::from_ref(byte)).unwrap() {
            got = Some(done.reply);
        }
    }
    assert_eq!(got, Some(Reply::Columns(whole.0)));
    assert!(decoder.is_idle());
}

#[test]
fn hostile_lengths_are_refused_before_anything_is_allocated() {
    let huge_key = frame_of_blocks(|out| out.extend_from_slice(&u32::MAX.to_le_bytes()));
    let huge_count = frame_of_blocks(|out| {
        out.extend_from_slice(&[1, 0, 0, 0, b'k']);
        out.extend_from_slice(&u32::MAX.to_le_bytes());
    });
    let no_points = frame_of_blocks(|out| block(out, b"k", 0, &[]));
    let too_many = frame_of_blocks(|out| block(out, b"k", MAX_BLOCK_POINTS as u32 + 1, &[]));
    let long_key = frame_of_blocks(|out| {
        out.extend_from_slice(&(MAX_COLUMNS_KEY_BYTES as u32 + 1).to_le_bytes())
    });
    let not_utf8 = frame_of_blocks(|out| block(out, b"\xff", 1, &[(1, 1.0)]));
    for (reply, reason) in [
        (huge_key, "a key of 4294967295 bytes"),
        (huge_count, "a block of 4294967295 points"),
        (no_points, "a block of 0 points"),
        (too_many, "a block of 65537 points"),
        (long_key, "a key of 1048577 bytes"),
        (not_utf8, "a key is not UTF-8"),
    ] {
        let error = decode(&reply).unwrap_err().to_string();
        assert!(error.contains(reason), "{error}");
        assert!(
            error.starts_with("malformed columns frame at byte "),
            "{error}"
        );
    }
}

#[test]
fn a_text_reply_is_not_a_frame() {
    for reply in [&b"ok\n\n"[..], b"ok\nk 1.0 1\n\n", b"ok\nCF1\n"] {
        let error = decode(reply).unwrap_err().to_string();
        assert!(error.contains("not a columns frame"), "{error}");
    }
    // An error reply is one whatever was expected.
    let done = ReplyDecoder::new(Expect::Columns)
        .feed(b"error\nwrong command\n\n")
        .unwrap()
        .unwrap();
    assert_eq!(done.reply, Reply::Error("wrong command".into()));
}

#[test]
fn the_reply_limit_holds_for_the_frame() {
    let reply = frame(&[("k", (0..100).map(|t| (t, 1.0)).collect())]);
    assert!(decode_with_limit(&reply, reply.len()).unwrap().is_some());
    assert_eq!(
        decode_with_limit(&reply, reply.len() - 1),
        Err(DecodeError::TooLarge {
            limit: reply.len() - 1
        })
    );
    // A block announcing more than the limit fails once the limit is
    // passed, not when announced.
    let mut decoder = ReplyDecoder::with_limit(Expect::Columns, 64);
    let mut start = b"ok\n\0CF1".to_vec();
    start.extend_from_slice(&[1, 0, 0, 0, b'k']);
    start.extend_from_slice(&(MAX_BLOCK_POINTS as u32).to_le_bytes());
    assert_eq!(decoder.feed(&start), Ok(None));
    assert_eq!(
        decoder.feed(&[0; 64]),
        Err(DecodeError::TooLarge { limit: 64 })
    );
}

proptest! {
    #[test]
    fn any_frame_round_trips_in_any_split(
        data in proptest::collection::vec(
            ("[a-z.]{1,6}", proptest::collection::vec((any::<i64>(), any::<f64>()), 0..40)),
            0..6,
        ),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut keys = std::collections::HashSet::new();
        let data: Vec<(&str, Vec<Point>)> = data
            .iter()
            .filter(|(k, _)| keys.insert(k.clone()))
            .map(|(k, points)| {
                let mut points = points.clone();
                points.sort_by_key(|p| p.0);
                (k.as_str(), points)
            })
            .collect();
        let reply = frame(&data);
        let mut offsets: Vec<usize> = cuts.iter().map(|c| c.index(reply.len() + 1)).collect();
        offsets.extend([0, reply.len()]);
        offsets.sort_unstable();
        let mut decoder = ReplyDecoder::new(Expect::Columns);
        let mut got = None;
        for pair in offsets.windows(2) {
            if let Some(done) = decoder.feed(&reply[pair[0]..pair[1]]).unwrap() {
                prop_assert_eq!(done.used, pair[1] - pair[0]);
                got = Some(done.reply);
            }
        }
        let Some(Reply::Columns(columns)) = got else { panic!("no reply") };
        let want: Vec<Series> = data
            .iter()
            .filter(|(_, points)| !points.is_empty())
            .map(|(key, points)| series(key, points))
            .collect();
        // Compared bitwise: NaN is not equal to itself.
        prop_assert_eq!(format!("{columns:?}"), format!("{want:?}"));
    }

    #[test]
    fn arbitrary_bytes_after_ok_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        size in 1usize..17,
    ) {
        let mut reply = b"ok\n\0CF1".to_vec();
        reply.extend_from_slice(&body);
        let mut decoder = ReplyDecoder::with_limit(Expect::Columns, 256);
        for chunk in reply.chunks(size) {
            match decoder.feed(chunk) {
                Ok(Some(done)) => prop_assert!(done.used <= chunk.len()),
                Ok(None) => {}
                Err(_) => break,
            }
        }
    }
}
