//! The render API's parsers on arbitrary query strings: target expressions,
//! times and the other parameters must never panic, and a request that
//! parses evaluates (against a small store) to an answer or an error,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_client::server::graphite::render::{render, Format, Request};
use metrics_client::server::graphite::{parse_offset, parse_target, parse_time, Source};
use metrics_client::server::Store;

/// Ranges wider than this are parsed but not evaluated (each slot costs
/// memory; the server's own bound is far larger than a fuzz run wants).
const MAX_RANGE: i64 = 100_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_target(text);
    let _ = parse_time(text, 1_700_000_000);
    let _ = parse_offset(text);
    let params: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let Ok(request) = Request::parse(&params, 1_700_000_000) else {
        return;
    };
    assert!(request.from < request.until);
    if request.until - request.from > MAX_RANGE {
        return;
    }
    let mut store = Store::new();
    for i in 0..50 {
        store.put(&format!("a.b{}.c", i % 3), 1_699_990_000 + 10 * i, i as f64);
    }
    let mut read = |work: &mut dyn FnMut(&dyn Source)| work(&store);
    if let Ok((body, _)) = render(&request, &mut read) {
        if request.format == Format::Json {
            assert!(body.starts_with(b"[") && body.ends_with(b"]"));
        }
    }
});
