//! The quarantine file beside the journal: every byte that recovery does
//! not apply is copied there once, with where it came from.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 60;
    let text = String::from_utf8_lossy(&line[..line.len().min(MAX)]).into_owned();
    if line.len() > MAX {
        format!("{text}... ({} bytes)", line.len())
    } else {
        text
    }
}

/// The side file that receives every byte recovery does not apply. Each
/// piece is a `#` line saying where it came from, the bytes as they were,
/// and a `\n`. A piece already there from an earlier start (the same
/// offset and bytes: the journal keeps an unapplied record until its next
/// compaction) is not copied again.
pub(super) struct Quarantine {
    path: PathBuf,
    source: PathBuf,
    file: Option<File>,
    /// (offset, length, CRC-32C) of the pieces the file holds already.
    copied: HashSet<(u64, u64, u32)>,
    /// Pieces found again and not copied again.
    pub(super) again: u64,
}

impl Quarantine {
    pub(super) fn new(path: PathBuf, source: &Path) -> Self {
        let copied = copied_pieces(&path).unwrap_or_default();
        Quarantine {
            path,
            source: source.to_owned(),
            file: None,
            copied,
            again: 0,
        }
    }

    pub(super) fn add(&mut self, offset: u64, bytes: &[u8], reason: &str) -> io::Result<()> {
        let piece = (offset, bytes.len() as u64, crc32c::crc32c(bytes));
        if !self.copied.insert(piece) {
            self.again += 1;
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&self.path)?,
            );
        }
        let file = self.file.as_mut().expect("opened above");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut piece = format!(
            "# {now} {} offset {offset} length {}: {reason}\n",
            self.source.display(),
            bytes.len()
        )
        .into_bytes();
        piece.extend_from_slice(bytes);
        piece.push(b'\n');
        file.write_all(&piece)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Makes what was copied durable; true when anything was.
    pub(super) fn sync(&mut self) -> io::Result<bool> {
        match &self.file {
            Some(file) => {
                file.sync_all()?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// The pieces a quarantine file holds: each `#` line names an offset and a
/// length, and that many bytes and a `\n` follow it. Read in pieces (the
/// file may be large); what does not parse ends the list (a file of ours is
/// never damaged in a way that matters here: at worst a piece is copied
/// twice).
fn copied_pieces(path: &Path) -> io::Result<HashSet<(u64, u64, u32)>> {
    let mut pieces = HashSet::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(pieces),
        Err(e) => return Err(e),
    };
    let mut reader = io::BufReader::new(file);
    let mut header = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        header.clear();
        if io::BufRead::read_until(&mut reader, b'\n', &mut header)? == 0 {
            return Ok(pieces);
        }
        let text = String::from_utf8_lossy(&header);
        let Some(at) = text.rfind(" offset ").filter(|_| text.starts_with("# ")) else {
            return Ok(pieces);
        };
        let mut words = text[at + 8..].split([' ', ':']);
        let (Some(offset), Some("length"), Some(len)) = (words.next(), words.next(), words.next())
        else {
            return Ok(pieces);
        };
        let (Ok(offset), Ok(len)) = (offset.parse::<u64>(), len.parse::<u64>()) else {
            return Ok(pieces);
        };
        let (mut left, mut crc) = (len, 0u32);
        while left > 0 {
            let want = left.min(chunk.len() as u64) as usize;
            io::Read::read_exact(&mut reader, &mut chunk[..want])?;
            crc = crc32c::crc32c_append(crc, &chunk[..want]);
            left -= want as u64;
        }
        io::Read::read_exact(&mut reader, &mut chunk[..1])?;
        pieces.insert((offset, len, crc));
    }
}
