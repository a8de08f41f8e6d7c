use super::*;
use proptest::prelude::*;

fn py(x: f64) -> String {
    PyFloat(x).to_string()
}

#[test]
fn floats_match_cpython_repr() {
    // Expected strings are what CPython 3.11 prints for repr(x).
    let cases: &[(f64, &str)] = &[
        (0.5, "0.5"),
        (2.0, "2.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (10.6, "10.6"),
        (-1.5, "-1.5"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (123456789012345680.0, "1.2345678901234568e+17"),
        (4.2e-05, "4.2e-05"),
        (0.0001, "0.0001"),
        (0.00012345, "0.00012345"),
        (1e-5, "1e-05"),
        (0.1 + 0.2, "0.30000000000000004"),
        (42000000.0, "42000000.0"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (2.5e100, "2.5e+100"),
        (-2.5e-100, "-2.5e-100"),
        (9999999999999998.0, "9999999999999998.0"),
        (f64::NAN, "nan"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ];
    for &(x, want) in cases {
        assert_eq!(py(x), want, "formatting {x:?}");
    }
}

#[test]
fn push_i64_matches_display() {
    for n in [
        0,
        1,
        -1,
        9,
        10,
        -10,
        99,
        100,
        101,
        -999,
        1000,
        1503319739,
        i64::MAX,
        i64::MIN,
    ] {
        let mut out = Vec::new();
        push_i64(&mut out, n);
        assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
    }
}

#[test]
fn rounding_below_2_52_is_f64_round() {
    let limit = 4_503_599_627_370_496.0_f64;
    let mut cases = vec![0.0, 0.25, 0.5, 0.75, 1.5, 2.5, 0.49999999999999994];
    cases.extend([
        limit - 0.5,
        limit - 1.0,
        limit / 2.0 - 0.25,
        limit / 2.0 + 0.5,
    ]);
    let mut x = 1e-300_f64;
    while x < limit {
        cases.extend([x, x * 1.5 + 0.5, (x * 7.0).next_up()]);
        x *= 3.0;
    }
    for x in cases.into_iter().filter(|x| *x < limit) {
        assert_eq!(round_below_2_52(x), x.round(), "{x:e}");
    }
}

fn fast(value: f64) -> String {
    let mut out = Vec::new();
    push_py_float(&mut out, value);
    String::from_utf8(out).unwrap()
}

#[test]
fn fast_float_text_matches_cpython() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (-7.0, "-7.0"),
        (0.5, "0.5"),
        (10.6, "10.6"),
        (2.156, "2.156"),
        (0.0001, "0.0001"),
        (0.00012, "0.00012"),
        (4.2e-05, "4.2e-05"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e15, "1000000000000000.0"),
        (1e15 + 0.125, "1000000000000000.1"),
        (4503599627370495.5, "4503599627370495.5"),
        (4503599627370496.0, "4503599627370496.0"),
        (9999999999999998.0, "9999999999999998.0"),
        (1e16, "1e+16"),
        (42000000.0, "42000000.0"),
        (123456.7891, "123456.7891"),
        (123456.78912, "123456.78912"),
    ];
    for &(value, want) in cases {
        assert_eq!(fast(value), want, "{value:?}");
        assert_eq!(fast(value), PyFloat(value).to_string(), "{value:?}");
    }
}

#[test]
fn number_parsers_match_the_standard_library_on_edge_cases() {
    for text in [
        "0",
        "-0",
        "0.0",
        "-0.0",
        "301",
        "0.5",
        "2.0",
        "1e+16",
        "4.2e-05",
        "1.",
        ".5",
        "-.5",
        "+1.5",
        "-",
        ".",
        "",
        "1.2.3",
        "007.25",
        "123456789012345",
        "1234567890123456",
        "0.30000000000000004",
        "9007199254740993",
        "inf",
        "-inf",
        "nan",
        "NaN",
        "1_0",
        "١",
        "1 ",
        " 1",
        "99999999999999999999",
        "-9223372036854775808",
        "9223372036854775807",
        "9223372036854775808",
        "+7",
        "-07",
    ] {
        let std_f64 = text.parse::<f64>().ok();
        let ours = parse_float(text.as_bytes());
        assert_eq!(
            ours.map(f64::to_bits),
            std_f64.map(f64::to_bits),
            "f64 {text:?}"
        );
        assert_eq!(
            parse_int(text.as_bytes()),
            text.parse::<i64>().ok(),
            "i64 {text:?}"
        );
    }
}

proptest! {
    #[test]
    fn formatted_floats_round_trip(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        prop_assume!(x.is_finite());
        let text = py(x);
        let back: f64 = text.parse().unwrap();
        prop_assert_eq!(back.to_bits(), x.to_bits(), "{}", text);
    }

    #[test]
    fn fast_float_text_equals_pyfloat(
        bits in any::<u64>(),
        m in -10_000_000_000_000_000i64..10_000_000_000_000_000,
        k in 0i32..7,
        small in -100_000i64..100_000,
    ) {
        let decimal = m as f64 / 10f64.powi(k);
        let short = small as f64 / 10f64.powi(k);
        for value in [f64::from_bits(bits), decimal, short, small as f64, m as f64] {
            prop_assume!(value.is_finite());
            prop_assert_eq!(fast(value), PyFloat(value).to_string(), "{:?}", value);
        }
    }

    #[test]
    fn rounding_below_2_52_matches_f64_round(x in 0.0..4_503_599_627_370_496.0_f64) {
        prop_assert_eq!(round_below_2_52(x), x.round());
    }

    #[test]
    fn push_i64_is_display(n in any::<i64>()) {
        let mut out = Vec::new();
        push_i64(&mut out, n);
        prop_assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
    }

    #[test]
    fn float_parsing_matches_the_standard_library(
        value in any::<f64>(),
        text in "-?[0-9]{0,18}(\\.[0-9]{0,18})?",
        bytes in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        let same = |field: &[u8]| {
            let std_f64 = std::str::from_utf8(field).ok().and_then(|t| t.parse::<f64>().ok());
            parse_float(field).map(f64::to_bits) == std_f64.map(f64::to_bits)
        };
        for shown in [format!("{value}"), format!("{value:?}"), format!("{value:e}")] {
            prop_assert!(same(shown.as_bytes()), "{}", shown);
        }
        prop_assert!(same(text.as_bytes()), "{}", text);
        prop_assert!(same(&bytes), "{:?}", bytes);
    }

    #[test]
    fn integer_parsing_matches_the_standard_library(
        value in any::<i64>(),
        text in "[-+]?[0-9]{0,21}",
        bytes in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        let same = |field: &[u8]| {
            parse_int(field)
                == std::str::from_utf8(field).ok().and_then(|t| t.parse::<i64>().ok())
        };
        let shown = value.to_string();
        prop_assert!(same(shown.as_bytes()), "{}", shown);
        prop_assert!(same(text.as_bytes()), "{}", text);
        prop_assert!(same(&bytes), "{:?}", bytes);
    }
}
