//! Framing of the request stream: lines ending in `\n`, each at most a
//! configured length. The server splits its receive buffer with
//! [`LineSplitter`] without copying or rescanning.

use memchr::memchr;
use thiserror::Error;

/// Longest request line a server accepts by default (without its `\n`):
/// a put line is a few dozen bytes, so 1 MiB leaves keys plenty of room
/// while bounding the memory one connection can pin.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// Splits request lines off the front of a receive buffer without rescanning
/// bytes already searched, and enforces the line length limit.
///
/// The caller keeps unconsumed bytes at the front of its buffer, appends new
/// bytes at the end, and after each `Some(len)` drops `len + 1` bytes (the
/// line and its `\n`) from the front.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max_line: usize,
    /// Bytes at the front of the buffer known to hold no `\n`.
    scanned: usize,
}

/// A request line (or the unfinished start of one) exceeds the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("request line exceeds the limit of {limit} bytes")]
pub struct LineTooLong {
    pub limit: usize,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line,
            scanned: 0,
        }
    }

    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The length of the first complete line in `buf` (without its `\n`), or
    /// `None` when the line is unfinished. Once an error is returned the
    /// stream cannot be resynchronised and should be closed.
    pub fn next_line(&mut self, buf: &[u8]) -> Result<Option<usize>, LineTooLong> {
        let from = self.scanned.min(buf.len());
        match memchr(b'\n', &buf[from..]) {
            Some(i) => {
                let len = from + i;
                self.scanned = 0;
                if len > self.max_line {
                    return Err(LineTooLong {
                        limit: self.max_line,
                    });
                }
                Ok(Some(len))
            }
            None => {
                self.scanned = buf.len();
                if buf.len() > self.max_line {
                    return Err(LineTooLong {
                        limit: self.max_line,
                    });
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_all(stream: &[u8], cuts: &[usize], max_line: usize) -> (Vec<Vec<u8>>, bool) {
        let mut splitter = LineSplitter::new(max_line);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        let mut bounds = cuts.to_vec();
        bounds.push(0);
        bounds.push(stream.len());
        bounds.sort_unstable();
        for pair in bounds.windows(2) {
            buf.extend_from_slice(&stream[pair[0]..pair[1]]);
            loop {
                match splitter.next_line(&buf) {
                    Ok(Some(len)) => {
                        lines.push(buf[..len].to_vec());
                        buf.drain(..=len);
                    }
                    Ok(None) => break,
                    Err(_) => return (lines, true),
                }
            }
        }
        (lines, false)
    }

    #[test]
    fn line_splitter_splits_and_limits() {
        let (lines, too_long) = split_all(b"a\nbb\n\nccc", &[1, 3], 3);
        assert_eq!(lines, vec![b"a".to_vec(), b"bb".to_vec(), Vec::new()]);
        assert!(!too_long);
        // exactly the limit is fine, one more byte is not (complete or not)
        assert_eq!(split_all(b"abc\n", &[], 3), (vec![b"abc".to_vec()], false));
        assert_eq!(split_all(b"abcd\n", &[], 3), (vec![], true));
        assert_eq!(
            split_all(b"x\nabcd", &[1, 4], 3),
            (vec![b"x".to_vec()], true)
        );
        assert_eq!(split_all(b"abc", &[1, 2], 3), (vec![], false));
    }

    #[test]
    fn line_splitter_does_not_rescan() {
        // A line trickling in byte by byte is scanned once overall; the
        // splitter remembers how far it has looked.
        let mut splitter = LineSplitter::new(100);
        let mut buf = Vec::new();
        for _ in 0..50 {
            buf.push(b'x');
            assert_eq!(splitter.next_line(&buf), Ok(None));
            assert_eq!(splitter.scanned, buf.len());
        }
        buf.push(b'\n');
        assert_eq!(splitter.next_line(&buf), Ok(Some(50)));
        assert_eq!(splitter.scanned, 0);
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_lines(
            stream in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'a'), Just(b' '), any::<u8>()], 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..10),
            max_line in 0usize..40,
        ) {
            let cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            // A partial line is a prefix of the line it starts, so the same
            // line trips the limit however the stream is cut.
            prop_assert_eq!(split_all(&stream, &cuts, max_line), split_all(&stream, &[], max_line));
        }
    }
}
