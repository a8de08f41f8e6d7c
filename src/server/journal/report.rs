//! What replaying the journal found, and what of it a user should hear.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::format::Format;

/// What replaying the journal found; `warnings()` says what a user should hear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The data file as configured (possibly a symlink).
    pub path: PathBuf,
    /// The format the file was in when opened (`None`: it was new or empty).
    pub format: Option<Format>,
    /// Records applied to the store.
    pub replayed: u64,
    /// Size of the journal after recovery.
    pub bytes: u64,
    /// Size of the journal before recovery.
    pub original_bytes: u64,
    /// A torn final record (offset, length) that was copied to the
    /// quarantine file and cut off.
    pub torn: Option<(u64, u64)>,
    /// Records, frames (or runs of garbage) that were not applied, and their bytes;
    /// all of them are in the quarantine file.
    pub quarantined: u64,
    pub quarantined_bytes: u64,
    /// Of those, whole frames (checksum right, but a record invalid or
    /// using an id whose definition was lost) and the records they held.
    pub quarantined_frames: u64,
    pub quarantined_frame_records: u64,
    /// Of those, found already copied by an earlier start (the journal
    /// keeps them until its next compaction): not copied again.
    pub quarantined_before: u64,
    /// Where unapplied bytes were copied, when there were any.
    pub quarantine: Option<PathBuf>,
    /// The first few unapplied pieces: offset and a printable excerpt.
    pub samples: Vec<(u64, String)>,
    /// An unfinished compaction file from a crash was removed.
    pub removed_compaction: bool,
    /// Keys and points in the store after the replay.
    pub keys: usize,
    pub points: u64,
    pub elapsed: Duration,
    /// What opening the blocks found that a user should hear (damaged
    /// blocks moved to quarantine, a torn keys record).
    pub blocks: Vec<String>,
    /// Every record id in the file is below this (version 3): the ids
    /// this process writes start here.
    pub id_base: u64,
}

impl Recovery {
    pub(super) fn new(path: &Path) -> Self {
        Recovery {
            path: path.to_owned(),
            format: None,
            replayed: 0,
            bytes: 0,
            original_bytes: 0,
            torn: None,
            quarantined: 0,
            quarantined_bytes: 0,
            quarantined_frames: 0,
            quarantined_frame_records: 0,
            quarantined_before: 0,
            quarantine: None,
            samples: Vec::new(),
            removed_compaction: false,
            id_base: 0,
            keys: 0,
            points: 0,
            elapsed: Duration::ZERO,
            blocks: Vec::new(),
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        let path = self.path.display();
        let side = self
            .quarantine
            .as_ref()
            .map_or_else(String::new, |q| q.display().to_string());
        let mut warnings = Vec::new();
        if let Some((offset, len)) = self.torn {
            warnings.push(format!(
                "{path}: cut a torn final record of {len} bytes at offset {offset} \
                 (an unfinished write from a crash); a copy is in {side}"
            ));
        }
        let unreadable = self.quarantined - u64::from(self.torn.is_some());
        if unreadable > 0 {
            let samples: Vec<String> = self
                .samples
                .iter()
                .map(|(offset, text)| format!("offset {offset}: {text:?}"))
                .collect();
            let before = match self.quarantined_before {
                0 => String::new(),
                n => {
                    format!(" ({n} of them already there from an earlier start, not copied again)")
                }
            };
            // A frame holds many records: say so, rather than count it
            // as one.
            let frames = self.quarantined_frames;
            let mut kinds = String::new();
            if frames > 0 {
                let records = self.quarantined_frame_records;
                kinds = format!(": {frames} whole frame(s) of {records} record(s)");
                let other = unreadable - frames;
                if other > 0 {
                    kinds += &format!(" and {other} other piece(s) (damaged bytes or lines)");
                }
            }
            warnings.push(format!(
                "{path}: {unreadable} unreadable piece(s){kinds} were not applied and were \
                 copied to {side}{before} ({} bytes in all, with the torn record if any; {})",
                self.quarantined_bytes,
                samples.join("; ")
            ));
        }
        if self.removed_compaction {
            warnings.push(format!(
                "{path}: removed an unfinished compaction file from an earlier run"
            ));
        }
        warnings.extend(self.blocks.iter().cloned());
        warnings
    }

    /// The line logged when the replay is done.
    pub fn summary(&self) -> String {
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.original_bytes as f64 / seconds / 1e6
        } else {
            0.0
        };
        let format = match self.format {
            None => "new file".to_string(),
            Some(Format::Plain) => {
                "format 1 (no checksums; new records are written in format 3)".to_string()
            }
            Some(Format::Checksummed) => {
                "format 2 (text; new records are written in format 3)".to_string()
            }
            Some(Format::Binary) => "format 3".to_string(),
        };
        let mut text = format!(
            "{}: replayed {} records ({} bytes, {format}) in {seconds:.2} s ({rate:.0} MB/s): \
             {} points, {} keys",
            self.path.display(),
            self.replayed,
            self.original_bytes,
            self.points,
            self.keys
        );
        if self.quarantined > 0 {
            text += &format!(
                "; {} record(s), {} bytes not applied, copied to {}",
                self.quarantined,
                self.quarantined_bytes,
                self.quarantine
                    .as_ref()
                    .map_or_else(String::new, |q| q.display().to_string())
            );
        }
        text
    }
}
