use super::*;
use crate::protocol::Metrics;
use proptest::prelude::*;

fn decode_all(expect: Expect, data: &[u8]) -> Result<Option<Decoded>, DecodeError> {
    ReplyDecoder::new(expect).feed(data)
}

/// Feeds `stream` until no complete reply is left in it; the replies found.
fn complete_replies(decoder: &mut ReplyDecoder, stream: &[u8]) -> Vec<Reply> {
    let mut rest = stream;
    let mut replies = Vec::new();
    while let Some(done) = decoder.feed(rest).unwrap() {
        replies.push(done.reply);
        rest = &rest[done.used..];
    }
    replies
}

fn points(data: &[u8]) -> Metrics {
    match decode_all(Expect::Points, data).unwrap().unwrap().reply {
        Reply::Points(m) => m,
        other => panic!("not points: {other:?}"),
    }
}

#[test]
fn a_run_of_acks_decodes_one_at_a_time_within_the_limit() {
    let mut decoder = ReplyDecoder::new(Expect::Ack);
    let replies = complete_replies(&mut decoder, b"ok\n\nok\n\nerror\nno\n\nok\n");
    assert_eq!(
        replies,
        [Reply::Ack, Reply::Ack, Reply::Error("no".to_string())]
    );
    // The last reply is unfinished: the decoder is not idle, and its
    // end completes it.
    assert!(!decoder.is_idle());
    let done = decoder.feed(b"\nok\n\n").unwrap().unwrap();
    assert_eq!((done.reply, done.used), (Reply::Ack, 1));
    // The limit holds for a bare `ok` as for any reply.
    for (limit, fits) in [(3, false), (4, true)] {
        let result = ReplyDecoder::with_limit(Expect::Ack, limit).feed(b"ok\n\n");
        assert_eq!(result.is_ok(), fits, "limit {limit}");
    }
}

#[test]
fn bare_ok_is_an_ack_or_no_points() {
    let done = decode_all(Expect::Ack, b"ok\n\n").unwrap().unwrap();
    assert_eq!(
        done,
        Decoded {
            reply: Reply::Ack,
            used: 4
        }
    );
    assert_eq!(points(b"ok\n\n"), Vec::new());
}

#[test]
fn points_are_grouped_and_sorted_stably() {
    let m = points(b"ok\ntest 0.5 1\nload 301 3\ntest 0.4 2\ntest 9 1\ntest 0.6 0\n\n");
    assert_eq!(
        m,
        vec![
            (
                "test".to_string(),
                vec![(0, 0.6), (1, 0.5), (1, 9.0), (2, 0.4)]
            ),
            ("load".to_string(), vec![(3, 301.0)]),
        ]
    );
}

#[test]
fn error_reply_carries_its_message() {
    let done = decode_all(Expect::Points, b"error\nwrong command\n\n")
        .unwrap()
        .unwrap();
    assert_eq!(done.reply, Reply::Error("wrong command".into()));
    let done = decode_all(Expect::Ack, b"error\n\n").unwrap().unwrap();
    assert_eq!(done.reply, Reply::Error(String::new()));
    let done = decode_all(Expect::Ack, b"error\nline one\nline two\n\n")
        .unwrap()
        .unwrap();
    assert_eq!(done.reply, Reply::Error("line one\nline two".into()));
}

#[test]
fn incomplete_replies_need_more() {
    for data in [
        &b""[..],
        b"o",
        b"ok",
        b"ok\n",
        b"ok\nk 1 2\n",
        b"error\nmsg\n",
    ] {
        assert_eq!(decode_all(Expect::Points, data), Ok(None), "{data:?}");
    }
}

#[test]
fn bytes_after_the_reply_are_left_unused() {
    let done = decode_all(Expect::Ack, b"ok\n\nok\n\n").unwrap().unwrap();
    assert_eq!(done.used, 4);
}

#[test]
fn decoder_is_reusable_for_pipelined_replies() {
    let mut decoder = ReplyDecoder::new(Expect::Ack);
    let replies = complete_replies(&mut decoder, b"ok\n\nerror\nbad\n\nok\n\n");
    assert_eq!(
        replies,
        vec![Reply::Ack, Reply::Error("bad".into()), Reply::Ack]
    );
    assert!(decoder.is_idle());
}

#[test]
fn malformed_replies_are_errors() {
    let cases: &[(Expect, &[u8])] = &[
        (Expect::Ack, b"OK\n\n"),
        (Expect::Ack, b"\n"),
        (Expect::Ack, b"okay\n\n"),
        (Expect::Ack, b"ok\nk 1 2\n\n"),
        (Expect::Points, b"ok\nk 1\n\n"),
        (Expect::Points, b"ok\nk 1 2 3\n\n"),
        (Expect::Points, b"ok\nk x 2\n\n"),
        (Expect::Points, b"ok\nk 1 2.5\n\n"),
        (Expect::Points, b"ok\nk 1 99999999999999999999\n\n"),
        (Expect::Points, b"ok\n\xff 1 2\n\n"),
    ];
    for (expect, data) in cases {
        assert!(
            decode_all(*expect, data).is_err(),
            "{data:?} should be refused"
        );
    }
}

#[test]
fn oversized_replies_are_refused_even_without_newlines() {
    let mut decoder = ReplyDecoder::with_limit(Expect::Points, 64);
    assert_eq!(decoder.feed(b"ok\n"), Ok(None));
    let err = decoder.feed(&[b'k'; 100]).unwrap_err();
    assert_eq!(err, DecodeError::TooLarge { limit: 64 });

    let mut decoder = ReplyDecoder::with_limit(Expect::Points, 64);
    let mut reply = b"ok\n".to_vec();
    for i in 0..10 {
        reply.extend_from_slice(format!("key {i} {i}\n").as_bytes());
    }
    assert_eq!(
        decoder.feed(&reply),
        Err(DecodeError::TooLarge { limit: 64 })
    );
}

#[test]
fn error_messages_quote_a_bounded_excerpt() {
    let mut line = b"ok\n".to_vec();
    line.extend(std::iter::repeat_n(b'x', 10_000));
    line.extend_from_slice(b"\n\n");
    let err = decode_all(Expect::Points, &line).unwrap_err().to_string();
    assert!(err.len() < 300, "{err}");
    assert!(err.contains("10000 bytes"), "{err}");
}

#[test]
fn fields_split_on_runs_of_spaces() {
    assert_eq!(
        fields(b"k 1.5 10"),
        Some((&b"k"[..], &b"1.5"[..], &b"10"[..]))
    );
    assert_eq!(
        fields(b"  k   1.5 10  "),
        Some((&b"k"[..], &b"1.5"[..], &b"10"[..]))
    );
    for line in [&b""[..], b"   ", b"k", b"k 1", b"k 1 2 3", b"k\t1 2"] {
        assert_eq!(fields(line), None, "{line:?}");
    }
}

fn reply_strategy() -> impl Strategy<Value = Vec<u8>> {
    let line =
        ("[a-z*.]{1,8}", -1e6f64..1e6, -5i64..5).prop_map(|(k, v, t)| format!("{k} {v} {t}\n"));
    prop_oneof![
        proptest::collection::vec(line, 0..20).prop_map(|lines| {
            let mut s = String::from("ok\n");
            s.extend(lines);
            s.push('\n');
            s.into_bytes()
        }),
        "[a-z][a-z ]{0,30}".prop_map(|m| format!("error\n{m}\n\n").into_bytes()),
    ]
}

proptest! {
    #[test]
    fn any_split_decodes_like_the_whole(
        reply in reply_strategy(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let whole = decode_all(Expect::Points, &reply).unwrap().unwrap();
        prop_assert_eq!(whole.used, reply.len());
        let mut offsets: Vec<usize> = cuts.iter().map(|c| c.index(reply.len() + 1)).collect();
        offsets.push(0);
        offsets.push(reply.len());
        offsets.sort_unstable();
        let mut decoder = ReplyDecoder::new(Expect::Points);
        let mut result = None;
        for pair in offsets.windows(2) {
            let chunk = &reply[pair[0]..pair[1]];
            if let Some(done) = decoder.feed(chunk).unwrap() {
                prop_assert_eq!(done.used, chunk.len());
                result = Some(done.reply);
            }
        }
        prop_assert_eq!(result, Some(whole.reply));
    }

    #[test]
    fn one_byte_at_a_time_decodes_like_the_whole(reply in reply_strategy()) {
        let whole = decode_all(Expect::Points, &reply).unwrap().unwrap().reply;
        let mut decoder = ReplyDecoder::new(Expect::Points);
        let mut result = None;
        for byte in &reply {
            if let Some(done) = decoder.feed(std::slice::from_ref(byte)).unwrap() {
                result = Some(done.reply);
            }
        }
        prop_assert_eq!(result, Some(whole));
    }

    #[test]
    fn the_fast_line_parser_agrees_with_the_general_one(
        key in prop_oneof![4 => "[a-z\u{e9}.]{1,4}", 1 => "[ a-z]{0,4}"],
        separators in proptest::collection::vec(
            prop_oneof![4 => Just(" "), 1 => Just(""), 1 => Just("  ")], 2),
        value in prop_oneof!["-?[0-9]{1,9}(\\.[0-9]{1,9})?", "[-+.0-9e]{0,20}"],
        timestamp in prop_oneof!["-?[0-9]{1,19}", "[-+0-9 ]{0,5}"],
        trailing in prop_oneof![3 => Just(""), 1 => Just(" ")],
    ) {
        let line = format!("{key}{}{value}{}{timestamp}{trailing}", separators[0], separators[1]);
        let line = line.as_bytes();
        if let Some((key, (timestamp, value))) = simple_line(line) {
            let (any_key, (any_timestamp, any_value)) = any_line(line).unwrap();
            prop_assert_eq!(key, any_key);
            prop_assert_eq!(timestamp, any_timestamp);
            prop_assert_eq!(value.to_bits(), any_value.to_bits());
        }
    }

    #[test]
    fn well_formed_lines_take_the_fast_path(
        key in "[a-z.]{1,12}",
        mantissa in 0u64..1_000_000_000_000_000,
        scale in 0u32..15,
        timestamp in -999_999_999_999i64..999_999_999_999,
    ) {
        let value = mantissa as f64 / 10f64.powi(scale as i32);
        let shown = value.to_string(); // shortest round trip, never an exponent
        prop_assume!(shown.bytes().filter(u8::is_ascii_digit).count() <= 15);
        let line = format!("{key} {shown} {timestamp}");
        prop_assert_eq!(
            simple_line(line.as_bytes()),
            Some((key.as_bytes(), (timestamp, value)))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        expect_points in any::<bool>(),
    ) {
        let expect = if expect_points { Expect::Points } else { Expect::Ack };
        let mut decoder = ReplyDecoder::with_limit(expect, 256);
        for chunk in &chunks {
            match decoder.feed(chunk) {
                Ok(Some(done)) => prop_assert!(done.used <= chunk.len()),
                Ok(None) => {}
                Err(_) => break,
            }
        }
    }
}
