use super::*;
use crate::protocol::{parse_command, Command, CommandError};
use proptest::prelude::*;

fn query(line: &str) -> Query<&str> {
    match parse_command(line.as_bytes()) {
        Ok(Command::Query(query)) => query,
        other => panic!("{line:?} parsed as {other:?}"),
    }
}

fn error(line: &str) -> String {
    match parse_command(line.as_bytes()) {
        Err(CommandError::Query(e)) => format!("bad query: {e}"),
        other => panic!("{line:?} parsed as {other:?}"),
    }
}

#[test]
fn options_in_any_order() {
    let q = query(
        "get host0*.cpu until=20 from=-5 format=columns agg=max step=60 points=100 match=glob",
    );
    assert_eq!(
        q,
        Query {
            pattern: "host0*.cpu",
            from: Some(-5),
            until: Some(20),
            step: Some(60),
            agg: Some(Agg::Max),
            points: Some(100),
            matching: Some(Match::Glob),
            format: Some(ReplyFormat::Columns),
        }
    );
    assert_eq!(query("get k match=exact").matching, Some(Match::Exact));
    // The format alone makes a query: a plain get answered in columns.
    assert_eq!(query("get k format=text").format, Some(ReplyFormat::Text));
    assert_eq!(query("get * format=columns").pattern, "*");
    assert_eq!(query("get * from=0\r").from, Some(0));
    for agg in Agg::ALL {
        assert_eq!(query(&format!("get k agg={}", agg.name())).agg, Some(agg));
    }
}

#[test]
fn bad_queries_say_what_is_wrong() {
    for (line, message) in [
        (
            "get k step=0",
            "bad query: step must be a positive integer, got '0'",
        ),
        (
            "get k step=-5",
            "bad query: step must be a positive integer, got '-5'",
        ),
        (
            "get k step=1.5",
            "bad query: step must be a positive integer, got '1.5'",
        ),
        (
            "get k points=0",
            "bad query: points must be a positive integer, got '0'",
        ),
        (
            "get k from=x",
            "bad query: from must be a 64-bit integer, got 'x'",
        ),
        (
            "get k until=",
            "bad query: until must be a 64-bit integer, got ''",
        ),
        (
            "get k until=99999999999999999999",
            "bad query: until must be a 64-bit integer, got '99999999999999999999'",
        ),
        (
            "get k agg=median",
            "bad query: agg must be one of avg, min, max, sum, count, last, got 'median'",
        ),
        (
            "get k match=regex",
            "bad query: match must be glob or exact, got 'regex'",
        ),
        (
            "get k format=binary",
            "bad query: format must be text or columns, got 'binary'",
        ),
        (
            "get k format=text format=columns",
            "bad query: option format given twice",
        ),
        ("get k from=1 from=2", "bad query: option from given twice"),
        (
            "get k to=5",
            "bad query: unknown option 'to' (options: from, until, step, agg, points, match, format)",
        ),
        (
            "get k =5",
            "bad query: unknown option '' (options: from, until, step, agg, points, match, format)",
        ),
        ("get a[b from=1", "bad query: unclosed '[' in pattern"),
        ("get a{b from=1", "bad query: unclosed '{' in pattern"),
    ] {
        assert_eq!(error(line), message, "{line}");
    }
    // An exact key may hold what a glob may not.
    assert_eq!(query("get a[b match=exact").pattern, "a[b");
}

#[test]
fn lines_that_are_not_the_query_form_stay_course_errors() {
    for line in ["get a b", "get a from=1 b", "get"] {
        assert!(
            matches!(
                parse_command(line.as_bytes()),
                Err(CommandError::ArgumentCount { .. })
            ),
            "{line}"
        );
    }
}

#[test]
fn encoding_refuses_what_parsing_would() {
    let mut out = b"keep".to_vec();
    let bad = [
        Query::new("k"),
        Query {
            step: Some(0),
            ..Query::new("k")
        },
        Query {
            points: Some(0),
            ..Query::new("k")
        },
        Query {
            from: Some(1),
            ..Query::new("a b")
        },
        Query {
            from: Some(1),
            ..Query::new("a[")
        },
    ];
    for query in bad {
        assert!(encode_query(&mut out, &query).is_err(), "{query:?}");
    }
    assert_eq!(out, b"keep");
    encode_query(
        &mut out,
        &Query {
            matching: Some(Match::Glob),
            ..Query::new("h*")
        },
    )
    .unwrap();
    assert_eq!(out, b"keepget h* match=glob\n");
}

fn query_strategy() -> impl Strategy<Value = Query<String>> {
    (
        prop_oneof![
            "[a-c.]{1,6}",
            Just("*".to_string()),
            "[a-c]{1,3}\\*\\.\\{x,y\\}"
        ],
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<i64>()),
        proptest::option::of(1i64..=i64::MAX),
        proptest::option::of(proptest::sample::select(Agg::ALL.to_vec())),
        proptest::option::of(1u64..=i64::MAX as u64),
        proptest::option::of(prop_oneof![Just(Match::Glob), Just(Match::Exact)]),
        proptest::option::of(prop_oneof![
            Just(ReplyFormat::Text),
            Just(ReplyFormat::Columns)
        ]),
    )
        .prop_map(
            |(pattern, from, until, step, agg, points, matching, format)| Query {
                pattern,
                from,
                until,
                step,
                agg,
                points,
                matching,
                format,
            },
        )
        .prop_filter("a query has an option", |q| q.has_option())
}

proptest! {
    #[test]
    fn the_encoder_and_the_parser_agree(q in query_strategy()) {
        let q = q.map(|p| p.as_str());
        let mut line = Vec::new();
        encode_query(&mut line, &q).unwrap();
        prop_assert_eq!(line.pop(), Some(b'\n'));
        prop_assert_eq!(parse_command(&line), Ok(Command::Query(q)));
    }

    #[test]
    fn arbitrary_queries_never_panic(line in "get \\PC{1,6}( (from|until|step|agg|points|match|format|x)=\\PC{0,5}){1,4}") {
        let _ = parse_command(line.as_bytes());
    }
}
