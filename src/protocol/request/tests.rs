use super::*;
use crate::protocol::strategies::{finite, key_strategy};
use crate::protocol::ArgumentErrorKind;
use proptest::prelude::*;

fn put(line: &str) -> (String, f64, i64) {
    match parse_command(line.as_bytes()) {
        Ok(Command::Put(Put {
            key,
            value,
            timestamp,
            ..
        })) => (key.to_owned(), value, timestamp),
        other => panic!("{line:?} parsed as {other:?}"),
    }
}

fn get(line: &str) -> Selector<&str> {
    match parse_command(line.as_bytes()) {
        Ok(Command::Get(selector)) => selector,
        other => panic!("{line:?} parsed as {other:?}"),
    }
}

#[test]
fn put_lines_of_the_assignment() {
    assert_eq!(
        put("put huginn.cpu 10.6 1642667947"),
        ("huginn.cpu".into(), 10.6, 1642667947)
    );
    assert_eq!(
        put("put test_key 12.0 1503319740"),
        ("test_key".into(), 12.0, 1503319740)
    );
    assert_eq!(
        put("put another_key 10 1503319739"),
        ("another_key".into(), 10.0, 1503319739)
    );
}

#[test]
fn value_text_is_kept_verbatim() {
    let Ok(Command::Put(Put { value_text, .. })) = parse_command(b"put k 1.50e0 3") else {
        panic!()
    };
    assert_eq!(value_text, "1.50e0");
}

#[test]
fn accepted_number_forms() {
    for (text, want) in [
        ("0.5", 0.5f64),
        ("-1.5", -1.5),
        ("+2", 2.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e16", 1e16),
        ("1E-5", 1e-5),
        ("4.2e-05", 4.2e-05),
        ("-0", -0.0),
        (
            "170141183460469231731687303715884105727",
            1.7014118346046923e38,
        ),
    ] {
        let (_, value, _) = put(&format!("put k {text} 1"));
        assert_eq!(value.to_bits(), want.to_bits(), "{text}");
    }
    for (text, want) in [
        ("0", 0),
        ("-1", -1),
        ("+7", 7),
        ("007", 7),
        ("9223372036854775807", i64::MAX),
        ("-9223372036854775808", i64::MIN),
    ] {
        assert_eq!(put(&format!("put k 1 {text}")).2, want, "{text}");
    }
}

#[test]
fn whitespace_between_and_around_tokens_is_tolerated() {
    assert_eq!(get("get k "), Selector::Key("k"));
    assert_eq!(get("get k\r"), Selector::Key("k"));
    assert_eq!(get("get\tk  \t "), Selector::Key("k"));
    assert_eq!(get(" get k"), Selector::Key("k"));
    assert_eq!(get("get *"), Selector::All);
    assert_eq!(get("get * "), Selector::All);
    assert_eq!(put("put  k   1  2 \r"), ("k".into(), 1.0, 2));
}

#[test]
fn keys_may_be_any_non_space_unicode() {
    assert_eq!(put("put ключ.метрика 1 2").0, "ключ.метрика");
    assert_eq!(get("get ключ"), Selector::Key("ключ"));
    assert_eq!(get("get **"), Selector::Key("**"));
}

#[test]
fn wrong_commands() {
    use CommandError::*;
    let count = |command, expected, got| ArgumentCount {
        command,
        expected,
        got,
    };
    let cases: &[(&[u8], CommandError)] = &[
        (b"", Empty),
        (b"   \r", Empty),
        (b"got k", Unknown("got".into())),
        (b"PUT k 1 2", Unknown("PUT".into())),
        (b"Get k", Unknown("Get".into())),
        (b"malformed command test", Unknown("malformed".into())),
        (b"put", count("put", 3, 0)),
        (b"put k", count("put", 3, 1)),
        (b"put k 1", count("put", 3, 2)),
        (b"put k 1 2 3", count("put", 3, 4)),
        (b"get", count("get", 1, 0)),
        (b"get  ", count("get", 1, 0)),
        (b"get a b", count("get", 1, 2)),
        (b"get a from=1 b", count("get", 1, 3)),
        (b"get\xff", NotUtf8),
        (b"put k\xc3 1 2", NotUtf8),
    ];
    for (line, want) in cases {
        assert_eq!(parse_command(line).as_ref(), Err(want), "{line:?}");
    }
}

#[test]
fn bad_arguments_name_the_argument() {
    let cases: &[(&str, &str)] = &[
        ("put k x 1", "value"),
        ("put k 1,5 1", "value"),
        ("put k 1_0 1", "value"),
        ("put k 0x10 1", "value"),
        ("put k nan 1", "value"),
        ("put k NaN 1", "value"),
        ("put k inf 1", "value"),
        ("put k -infinity 1", "value"),
        ("put k 1e400 1", "value"),
        ("put k 1 1.5", "timestamp"),
        ("put k 1 1e3", "timestamp"),
        ("put k 1 x", "timestamp"),
        ("put k 1 9223372036854775808", "timestamp"),
        ("put k 1 1_000", "timestamp"),
        ("put * 1 1", "key"),
        ("put a\u{a0}b 1 1", "key"),
        ("put a\x0bb 1 1", "key"),
        ("put a\0 1 1", "key"),
        ("get a\u{2028}", "key"),
        ("get a\x01", "key"),
    ];
    for (line, argument) in cases {
        match parse_command(line.as_bytes()) {
            Err(CommandError::Argument(err)) => {
                assert_eq!(err.argument, *argument, "{line:?}");
                assert_eq!(err.kind, ArgumentErrorKind::Value);
            }
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }
}

#[test]
fn error_details_are_bounded() {
    let long = format!("{} k", "x".repeat(10_000));
    let err = parse_command(long.as_bytes()).unwrap_err().to_string();
    assert!(err.len() < 100, "{err}");
    let long = format!("put k {} 1", "9".repeat(10_000));
    // Parses (as 1e10000 = inf) and is refused as non-finite, briefly.
    let err = parse_command(long.as_bytes()).unwrap_err().to_string();
    assert!(err.len() < 150, "{err}");
}

fn put_line(key: &str, value: MetricValue, ts: i64) -> Result<String, ArgumentError> {
    let mut out = Vec::new();
    encode_put(&mut out, key, value, ts).map(|()| String::from_utf8(out).unwrap())
}

#[test]
fn put_lines_match_the_course_examples() {
    use MetricValue::*;
    assert_eq!(put_line("test", Float(0.5), 1).unwrap(), "put test 0.5 1\n");
    assert_eq!(put_line("test", Float(2.0), 2).unwrap(), "put test 2.0 2\n");
    assert_eq!(put_line("load", Int(301), 3).unwrap(), "put load 301 3\n");
    assert_eq!(
        put_line("huginn.cpu", Float(10.6), 1642667947).unwrap(),
        "put huginn.cpu 10.6 1642667947\n"
    );
    assert_eq!(
        put_line("big", Float(1e16), -1).unwrap(),
        "put big 1e+16 -1\n"
    );
}

#[test]
fn get_lines() {
    let mut out = Vec::new();
    encode_get(&mut out, "*").unwrap();
    encode_get(&mut out, "huginn.cpu").unwrap();
    assert_eq!(out, b"get *\nget huginn.cpu\n");
}

#[test]
fn rejected_requests_append_nothing() {
    let mut out = b"keep".to_vec();
    assert!(encode_put(&mut out, "a b", MetricValue::Int(1), 1).is_err());
    assert!(encode_put(&mut out, "*", MetricValue::Int(1), 1).is_err());
    assert!(encode_put(&mut out, "k", MetricValue::Float(f64::NAN), 1).is_err());
    assert!(encode_get(&mut out, "a\nb").is_err());
    assert!(encode_get(&mut out, "").is_err());
    assert_eq!(out, b"keep");
}

proptest! {
    #[test]
    fn the_client_encoder_and_this_parser_agree(
        key in key_strategy(),
        value in finite(),
        int_value in any::<i64>(),
        timestamp in any::<i64>(),
    ) {
        for value in [MetricValue::Float(value), MetricValue::Int(int_value.into())] {
            let mut line = Vec::new();
            encode_put(&mut line, &key, value, timestamp).unwrap();
            prop_assert_eq!(line.pop(), Some(b'\n'));
            match parse_command(&line) {
                Ok(Command::Put(Put { key: k, value: v, timestamp: t, .. })) => {
                    prop_assert_eq!(k, key.as_str());
                    prop_assert_eq!(v.to_bits(), value.as_f64().to_bits());
                    prop_assert_eq!(t, timestamp);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
        let mut line = Vec::new();
        encode_get(&mut line, &key).unwrap();
        line.pop();
        prop_assert_eq!(parse_command(&line), Ok(Command::Get(Selector::Key(key.as_str()))));
    }

    #[test]
    fn arbitrary_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_command(&line);
    }

    #[test]
    fn arbitrary_text_lines_never_panic(line in "(put|get|[a-z]{0,3})( {0,2}\\PC{0,8}){0,5}") {
        let _ = parse_command(line.as_bytes());
    }

    /// Lines near the plain shape (stray whitespace, signs, exponents,
    /// long digit runs, `*`, non-ASCII and control characters): wherever
    /// the one-pass parser answers, the general one answers the same.
    #[test]
    fn the_plain_put_path_agrees_with_the_general_parser(
        line in r"put[ \t]{1,2}([a-z.*]{0,3}|\PC{0,3}|\x7f)[ \t\r]{1,2}-?[0-9]{0,17}(\.[0-9]{0,3})?(e-?[0-9])?[ \t]{1,2}-?[0-9]{0,20}[ \r]?",
    ) {
        if let Some(put) = plain_put(line.as_bytes()) {
            prop_assert_eq!(parse_general(line.as_bytes()), Ok(Command::Put(put)));
        }
    }

    /// What a client sends takes the one-pass path whenever it is the
    /// plain shape, so the speed-up is not lost to a stricter check.
    #[test]
    fn encoded_plain_puts_take_the_plain_path(
        key in "[!-~]{1,40}",
        mantissa in -99_999_999_999i64..99_999_999_999,
        timestamp in -10i64.pow(17)..10i64.pow(17),
    ) {
        prop_assume!(key != "*");
        let value = MetricValue::Float(mantissa as f64 / 100.0);
        let mut line = Vec::new();
        encode_put(&mut line, &key, value, timestamp).unwrap();
        line.pop();
        let text = String::from_utf8(line.clone()).unwrap();
        // Only plain decimals: an exponent form goes the general way.
        prop_assume!(!text.rsplit(' ').nth(1).unwrap().contains('e'));
        let put = plain_put(&line);
        prop_assert!(put.is_some(), "{:?}", text);
        prop_assert_eq!(Ok(Command::Put(put.unwrap())), parse_general(&line));
    }
}
