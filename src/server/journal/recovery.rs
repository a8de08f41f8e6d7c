//! Replaying the journal into the store at start, and what was found.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use memchr::{memchr, memchr_iter};

use crate::protocol::{parse_command, Command};
use crate::server::store::Store;

/// What replaying the log found; `warnings()` says what a user should hear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub path: PathBuf,
    /// Put lines applied to the store.
    pub replayed: u64,
    /// Size of the log after recovery.
    pub bytes: u64,
    /// A torn last line (offset, length) that was skipped and cut off.
    pub torn: Option<(u64, u64)>,
    /// Complete lines that were not valid put lines, skipped.
    pub corrupt: u64,
    /// The first few corrupt lines: offset and a printable excerpt.
    pub corrupt_samples: Vec<(u64, String)>,
    /// An unfinished compaction file from a crash was removed.
    pub removed_compaction: bool,
}

impl Recovery {
    pub fn warnings(&self) -> Vec<String> {
        let path = self.path.display();
        let mut warnings = Vec::new();
        if let Some((offset, len)) = self.torn {
            warnings.push(format!(
                "{path}: skipped a torn last line of {len} bytes at offset {offset} \
                 (an unfinished write from a crash); it was never acknowledged"
            ));
        }
        if self.corrupt > 0 {
            let samples: Vec<String> = self
                .corrupt_samples
                .iter()
                .map(|(offset, text)| format!("offset {offset}: {text:?}"))
                .collect();
            warnings.push(format!(
                "{path}: skipped {} unreadable line(s) ({})",
                self.corrupt,
                samples.join("; ")
            ));
        }
        if self.removed_compaction {
            warnings.push(format!(
                "{path}: removed an unfinished compaction file from an earlier run"
            ));
        }
        warnings
    }
}

pub(super) fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 60;
    let text = String::from_utf8_lossy(&line[..line.len().min(MAX)]).into_owned();
    if line.len() > MAX {
        format!("{text}... ({} bytes)", line.len())
    } else {
        text
    }
}

/// Applies every complete put line; returns the length up to the last `\n`
/// and the number of complete lines.
pub(super) fn replay(
    mut file: &File,
    store: &mut Store,
    recovery: &mut Recovery,
) -> io::Result<(u64, u64)> {
    const SAMPLES: usize = 3;
    let mut chunk = vec![0u8; 1 << 20];
    // An unfinished line carried over from the previous chunk.
    let mut carry: Vec<u8> = Vec::new();
    let mut offset = 0u64; // file offset of the start of `carry`
    let mut lines = 0u64;
    let mut apply = |line: &[u8], at: u64, recovery: &mut Recovery| match parse_command(line) {
        Ok(Command::Put {
            key,
            value,
            timestamp,
            ..
        }) => {
            store.put(key, timestamp, value);
            recovery.replayed += 1;
        }
        _ => {
            recovery.corrupt += 1;
            if recovery.corrupt_samples.len() < SAMPLES {
                recovery.corrupt_samples.push((at, excerpt(line)));
            }
        }
    };
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let data = &chunk[..n];
        let mut start = 0;
        if !carry.is_empty() {
            match memchr(b'\n', data) {
                Some(end) => {
                    carry.extend_from_slice(&data[..end]);
                    apply(&carry, offset, recovery);
                    lines += 1;
                    offset += carry.len() as u64 + 1;
                    carry.clear();
                    start = end + 1;
                }
                None => {
                    carry.extend_from_slice(data);
                    continue;
                }
            }
        }
        let first = start;
        for end in memchr_iter(b'\n', &data[first..]).map(|i| i + first) {
            apply(&data[start..end], offset, recovery);
            lines += 1;
            offset += (end - start) as u64 + 1;
            start = end + 1;
        }
        carry.extend_from_slice(&data[start..]);
    }
    Ok((offset, lines))
}
