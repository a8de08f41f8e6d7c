use super::*;
use proptest::prelude::*;

fn glob(pattern: &str) -> Glob {
    Glob::compile(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"))
}

#[test]
fn graphite_examples() {
    let cases: &[(&str, &str, bool)] = &[
        ("host0*.cpu", "host01.cpu", true),
        ("host0*.cpu", "host0.cpu", true),
        ("host0*.cpu", "host1.cpu", false),
        ("host0*.cpu", "host0.x.cpu", false),
        ("*.cpu", "a.cpu", true),
        ("*.cpu", "a.b.cpu", false),
        ("*.*", "a.b", true),
        ("*.*", "a", false),
        ("host?.cpu", "host1.cpu", true),
        ("host?.cpu", "host12.cpu", false),
        ("a?b", "a.b", false),
        ("host[0-3].cpu", "host2.cpu", true),
        ("host[0-3].cpu", "host4.cpu", false),
        ("host[!0-3].cpu", "host4.cpu", true),
        ("host[!0-3].cpu", "host2.cpu", false),
        ("a[!x]b", "a.b", false),
        ("a[.]b", "a.b", false),
        ("h.{cpu,mem}", "h.cpu", true),
        ("h.{cpu,mem}", "h.mem", true),
        ("h.{cpu,mem}", "h.disk", false),
        ("h.{c*,m?m}", "h.cache", true),
        ("h.{c*,m?m}", "h.mem", true),
        ("{a,b}.{c,d}", "b.c", true),
        ("x{,y}", "x", true),
        ("x{,y}", "xy", true),
        ("a*b*c", "abxbc", true),
        ("a*b*c", "abxb", false),
        ("a**", "abc", true),
        ("[]]", "]", true),
        ("[!]]", "a", true),
        ("[a-]", "-", true),
        ("[z-a]", "m", true),
        ("ключ.*", "ключ.метрика", true),
        ("a,b", "a,b", true),
    ];
    for &(pattern, key, want) in cases {
        assert_eq!(glob(pattern).matches(key), want, "{pattern:?} ~ {key:?}");
    }
}

#[test]
fn a_bare_star_is_every_key_and_a_literal_is_one() {
    let all = glob("*");
    assert!(all.is_all() && all.matches("a.b.c") && all.matches("x"));
    assert_eq!(all.literal_prefix(), "");
    let one = glob("huginn.cpu");
    assert_eq!(one.literal(), Some("huginn.cpu"));
    assert!(one.matches("huginn.cpu") && !one.matches("huginn.cpu2"));
    assert_eq!(Glob::exact("a*").literal(), Some("a*"));
    assert!(Glob::exact("a*").matches("a*") && !Glob::exact("a*").matches("ab"));
    // `**` is a pattern (one star within a node), not the bare star.
    assert!(!glob("**").is_all() && !glob("**").matches("a.b"));
}

#[test]
fn literal_prefixes() {
    for (pattern, prefix) in [
        ("host0*.cpu", "host0"),
        ("host.{cpu,cache}", "host.c"),
        ("{a,b}", ""),
        ("?x", ""),
        ("ab[c]", "ab"),
        ("plain", "plain"),
        ("é{é1,é2}", "éé"),
        ("{éa,éb}", "é"),
    ] {
        assert_eq!(glob(pattern).literal_prefix(), prefix, "{pattern}");
    }
}

#[test]
fn malformed_patterns_say_what_is_wrong() {
    for (pattern, error) in [
        ("a[b", GlobError::UnclosedClass),
        ("a[!", GlobError::UnclosedClass),
        ("a{b", GlobError::UnclosedBrace),
        ("a}b", GlobError::StrayBrace),
        ("a{b{c}}", GlobError::NestedBrace),
        ("{x,[y}", GlobError::UnclosedClass),
        ("[!]", GlobError::UnclosedClass),
    ] {
        assert_eq!(Glob::compile(pattern), Err(error), "{pattern}");
    }
    let many = "{a,b,c,d}".repeat(5);
    assert_eq!(Glob::compile(&many), Err(GlobError::TooManyAlternatives));
    assert!(Glob::compile(&"{a,b}".repeat(8)).is_ok());
}

#[test]
fn metacharacters() {
    assert!(has_metacharacters("a*") && has_metacharacters("{a}") && has_metacharacters("a?"));
    assert!(has_metacharacters("[a]") && !has_metacharacters("a.b-c_d,e=f"));
}

/// An independent matcher: recursive backtracking straight over the pattern
/// text, braces included, on the restricted alphabet of the property test.
fn reference(pattern: &[char], key: &[char]) -> bool {
    match pattern.first() {
        None => key.is_empty(),
        Some('*') => (0..=key.len())
            .take_while(|&n| n == 0 || key[n - 1] != '.')
            .any(|n| reference(&pattern[1..], &key[n..])),
        Some('?') => key.first().is_some_and(|&c| c != '.') && reference(&pattern[1..], &key[1..]),
        Some('{') => {
            let close = pattern.iter().position(|&c| c == '}').unwrap();
            let rest = &pattern[close + 1..];
            pattern[1..close].split(|&c| c == ',').any(|option| {
                let mut joined = option.to_vec();
                joined.extend_from_slice(rest);
                reference(&joined, key)
            })
        }
        Some('[') => {
            let close = pattern.iter().position(|&c| c == ']').unwrap();
            let class = &pattern[1..close];
            let (negated, class) = match class.first() {
                Some('!') => (true, &class[1..]),
                _ => (false, class),
            };
            key.first()
                .is_some_and(|&c| c != '.' && class.contains(&c) != negated)
                && reference(&pattern[close + 1..], &key[1..])
        }
        Some(&c) => key.first() == Some(&c) && reference(&pattern[1..], &key[1..]),
    }
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        4 => "[ab.]",
        2 => Just("*".to_string()),
        1 => Just("?".to_string()),
        1 => "\\[!?[ab]{1,2}\\]",
        1 => "\\{[ab*?.]{0,2}(,[ab*?.]{0,2}){0,2}\\}",
    ];
    prop::collection::vec(atom, 1..7).prop_map(|atoms| atoms.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn matches_like_a_backtracking_reference(pattern in pattern_strategy(), key in "[ab.]{0,7}") {
        let compiled = Glob::compile(&pattern).unwrap();
        let p: Vec<char> = pattern.chars().collect();
        let k: Vec<char> = key.chars().collect();
        let want = if pattern == "*" { true } else { reference(&p, &k) };
        prop_assert_eq!(compiled.matches(&key), want, "{:?} ~ {:?}", pattern, key);
        if want {
            prop_assert!(key.starts_with(compiled.literal_prefix()));
        }
    }

    #[test]
    fn arbitrary_patterns_never_panic(pattern in "\\PC{0,12}", key in "\\PC{0,12}") {
        if let Ok(glob) = Glob::compile(&pattern) {
            let matched = glob.matches(&key);
            prop_assert!(!matched || key.starts_with(glob.literal_prefix()));
        }
    }
}
