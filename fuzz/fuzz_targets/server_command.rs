//! The server's request parsing on arbitrary client bytes: splitting a
//! stream into lines under a length limit and parsing each line must never
//! panic, and every accepted command must be one the client could have sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_client::protocol::{
    encode_query, parse_command, validate_key, Command, KeyUse, LineSplitter, Put, Selector,
};

const MAX_LINE: usize = 256;

fuzz_target!(|data: &[u8]| {
    let mut splitter = LineSplitter::new(MAX_LINE);
    let mut buffer: Vec<u8> = Vec::new();
    // Feed in 7-byte pieces, as a slow client would.
    for piece in data.chunks(7) {
        buffer.extend_from_slice(piece);
        loop {
            match splitter.next_line(&buffer) {
                Ok(Some(len)) => {
                    assert!(len <= MAX_LINE);
                    check(&buffer[..len]);
                    buffer.drain(..=len);
                }
                Ok(None) => {
                    assert!(buffer.len() <= MAX_LINE);
                    break;
                }
                Err(_) => return,
            }
        }
    }
});

fn check(line: &[u8]) {
    match parse_command(line) {
        Ok(Command::Put(Put { key, value, timestamp: _, value_text })) => {
            assert!(validate_key(key, KeyUse::Put).is_ok(), "accepted put key {key:?}");
            assert!(value.is_finite(), "accepted non-finite value {value_text:?}");
            assert_eq!(value_text.parse::<f64>().ok(), Some(value));
        }
        Ok(Command::Get(Selector::Key(key))) => {
            assert!(validate_key(key, KeyUse::Get).is_ok(), "accepted get key {key:?}");
        }
        Ok(Command::Query(query)) => {
            // A query the server accepts is one the client's encoder could
            // have written: it validates and its line parses back to it.
            assert!(query.validate().is_ok(), "accepted invalid query {query:?}");
            let mut again = Vec::new();
            encode_query(&mut again, &query).expect("an accepted query encodes");
            let line = &again[..again.len() - 1];
            match parse_command(line) {
                Ok(Command::Query(back)) => assert_eq!(back, query),
                other => panic!("re-encoded query {line:?} parsed as {other:?}"),
            }
        }
        Ok(Command::Get(Selector::All)) | Err(_) => {}
    }
}
