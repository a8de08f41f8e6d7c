//! Bounded, printable excerpts of received bytes for error messages, so a
//! hostile peer cannot make an error message (or a log line) arbitrarily long.

/// At most this many bytes of the input are quoted.
const MAX: usize = 60;

/// The first bytes of `bytes` as text (invalid UTF-8 replaced), followed by
/// `... (N bytes)` when it was cut.
pub fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]).into_owned();
    if bytes.len() > MAX {
        format!("{text}... ({} bytes)", bytes.len())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_quoted_whole_and_long_input_is_cut() {
        assert_eq!(excerpt(b"wrong"), "wrong");
        assert_eq!(excerpt(b"\xffx"), "\u{fffd}x");
        let long = excerpt(&[b'x'; 1000]);
        assert_eq!(long, format!("{}... (1000 bytes)", "x".repeat(MAX)));
    }
}
