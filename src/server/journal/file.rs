//! The journal file: checking, opening and locking it, replaying it,
//! appending to it, and the paths and directory syncs that renames need.
//!
//! Opening refuses, before reading or changing anything, a path that is not
//! a regular file once symlinks are followed (a directory, a FIFO,
//! `/dev/zero`), and a file that does not look like a journal (neither the
//! version 2 header nor a plain put line at its start). A symlink is kept:
//! the journal is its target, and compaction renames into the target's own
//! directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use memchr::memchr;

use super::format::{decode_plain, is_torn_record, Format, HEADER as TEXT_HEADER, MAX_RECORD};
use super::frames::{self, HEADER};
use super::quarantine::{excerpt, Quarantine};
use super::recovery::{replay, Control, Stop, Tail};
use super::report::Recovery;
use crate::server::engine::Sealed;
use crate::server::error::ServerError;
use crate::server::log::{Level, LogSink};
use crate::server::store::Store;

/// The journal's file, owned by the writer thread once the server runs.
#[derive(Debug)]
pub(crate) struct JournalFile {
    /// The real file (a symlink's target), where renames must happen.
    pub(super) path: PathBuf,
    pub(super) handle: File,
    pub(super) len: u64,
    pub(super) records: u64,
    /// Text records (versions 1 and 2) come before its frames: the writer
    /// compacts it at once, which rewrites it all as version 3.
    pub(super) mixed: bool,
}

pub(super) fn compaction_path(path: &Path) -> PathBuf {
    sibling(path, ".compact")
}

/// Where recovery copies what it does not apply.
pub(super) fn quarantine_path(path: &Path) -> PathBuf {
    sibling(path, ".quarantine")
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

pub(super) fn data_error(path: &Path, source: io::Error) -> ServerError {
    ServerError::Data {
        path: path.to_owned(),
        source,
    }
}

/// Takes an exclusive advisory lock so two servers never share a journal.
pub(super) fn lock_exclusive(file: &File) -> io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn file_kind(file_type: fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &Path, file_type: fs::FileType) -> ServerError {
    ServerError::NotRegular {
        path: path.to_owned(),
        kind: file_kind(file_type),
    }
}

/// A journal that is open, locked and recognised, not yet replayed.
#[derive(Debug)]
pub(crate) struct OpenJournal {
    path: PathBuf,
    target: PathBuf,
    file: File,
    existed: bool,
    len: u64,
    /// `None`: empty, or only the start of a header (a crash while creating).
    format: Option<Format>,
}

/// Opens (creating if needed), checks and locks the journal at `path`.
/// Nothing in an existing file is read beyond its start or changed.
pub(crate) fn open(path: &Path) -> Result<OpenJournal, ServerError> {
    let existed = match fs::metadata(path) {
        Ok(meta) if meta.is_file() => true,
        Ok(meta) => return Err(not_regular(path, meta.file_type())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(data_error(path, e)),
    };
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| data_error(path, e))?;
    let meta = file.metadata().map_err(|e| data_error(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, meta.file_type()));
    }
    if !lock_exclusive(&file).map_err(|e| data_error(path, e))? {
        return Err(ServerError::DataInUse {
            path: path.to_owned(),
        });
    }
    let target = fs::canonicalize(path).map_err(|e| data_error(path, e))?;
    let len = meta.len();
    let format = recognise(path, &file, len)?;
    Ok(OpenJournal {
        path: path.to_owned(),
        target,
        file,
        existed,
        len,
        format,
    })
}

/// The format of a journal, from its first line; an error for anything
/// that is not one.
fn recognise(path: &Path, file: &File, len: u64) -> Result<Option<Format>, ServerError> {
    let mut head = vec![0u8; (len as usize).min(MAX_RECORD + 1)];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| data_error(path, e))?;
    let header_line = [HEADER, b"\n"].concat();
    let text_header_line = [TEXT_HEADER, b"\n"].concat();
    let header_start = |line: &[u8]| head.len() < line.len() && line.starts_with(&head);
    if head.is_empty() || header_start(&header_line) || header_start(&text_header_line) {
        return Ok(None);
    }
    if head.starts_with(&header_line) {
        return Ok(Some(Format::Binary));
    }
    if head.starts_with(&text_header_line) {
        return Ok(Some(Format::Checksummed));
    }
    let plain = match memchr(b'\n', &head) {
        Some(end) => decode_plain(&head[..end]).is_some(),
        // A single record cut short by a crash.
        None => head.len() as u64 == len && is_torn_record(&head),
    };
    if plain {
        return Ok(Some(Format::Plain));
    }
    let detail = match memchr(b'\n', &head) {
        Some(end) => format!("its first line is {:?}", excerpt(&head[..end])),
        None => format!(
            "it starts with {:?} and has no line break in its first {} bytes",
            excerpt(&head),
            head.len()
        ),
    };
    Err(ServerError::NotAJournal {
        path: path.to_owned(),
        detail,
    })
}

impl OpenJournal {
    /// Replays the journal into `store`, copies whatever is not applied to
    /// the quarantine file, cuts a torn final record, and makes the file
    /// ready for version 3 records. Stops early, changing nothing in the
    /// journal, once `cancel` is set.
    pub(crate) fn replay(
        self,
        store: &mut Store,
        sealed: Option<&Sealed>,
        cancel: &AtomicBool,
        log: Option<&LogSink>,
        progress_interval: Duration,
    ) -> Result<(JournalFile, Recovery), ServerError> {
        let OpenJournal {
            path,
            target,
            mut file,
            existed,
            len,
            format,
        } = self;
        let error = |e: io::Error| data_error(&path, e);
        let started = Instant::now();
        let mut recovery = Recovery::new(&path);
        recovery.original_bytes = len;
        let mut quarantine = Quarantine::new(quarantine_path(&target), &path);
        if let (Some(log), true) = (log, len > 0) {
            log(
                Level::Info,
                &format!(
                    "{}: replaying {len} bytes ({:.1} MB)",
                    path.display(),
                    len as f64 / 1e6
                ),
            );
        }
        let mut tail = Tail::Clean;
        // The format new records follow: a text journal ends in text
        // until a version 3 header is appended.
        let mut ends_in = format;
        match format {
            Some(format) => {
                recovery.format = Some(format);
                let control = Control {
                    cancel,
                    log,
                    progress_interval,
                };
                // Read from the first line, whose header switches the
                // reading to frames.
                let first = match format {
                    Format::Binary => Format::Checksummed,
                    text => text,
                };
                (tail, ends_in) = match replay(
                    &file,
                    len,
                    first,
                    store,
                    sealed,
                    &mut recovery,
                    &mut quarantine,
                    &control,
                ) {
                    Ok((tail, ends_in)) => (tail, Some(ends_in)),
                    Err(Stop::Cancelled) => return Err(ServerError::Cancelled),
                    Err(Stop::Io(e)) => return Err(error(e)),
                };
            }
            None if len > 0 => {
                // The start of a header: the server crashed creating the file.
                let mut head = vec![0u8; len as usize];
                file.read_exact_at(&mut head, 0).map_err(error)?;
                quarantine
                    .add(0, &head, "torn journal header")
                    .map_err(error)?;
                recovery.torn = Some((0, len));
                recovery.quarantined = 1;
                recovery.quarantined_bytes = len;
                recovery.quarantine = Some(quarantine.path().to_owned());
                tail = Tail::Torn(0);
            }
            None => {}
        }
        // Whatever is cut below must be safely in the quarantine first.
        quarantine.sync().map_err(error)?;
        let mut size = len;
        if let Tail::Torn(offset) = tail {
            file.set_len(offset).map_err(error)?;
            recovery.torn = Some((offset, len - offset));
            size = offset;
        }
        let mut start = Vec::new();
        if matches!(tail, Tail::Unterminated | Tail::Garbage) {
            start.push(b'\n');
        }
        // A text journal goes on in version 3 after a header line (read
        // as the switch to frames); the next compaction rewrites it whole.
        if ends_in != Some(Format::Binary) || size == 0 {
            start.extend_from_slice(HEADER);
            start.push(b'\n');
        }
        if !start.is_empty() {
            file.write_all(&start).map_err(error)?;
            size += start.len() as u64;
        }
        if !start.is_empty() || matches!(tail, Tail::Torn(_)) {
            file.sync_all().map_err(error)?;
        }
        if !existed {
            sync_dir(&target).map_err(error)?;
        }
        let stale = compaction_path(&target);
        match fs::remove_file(&stale) {
            Ok(()) => recovery.removed_compaction = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(data_error(&stale, e)),
        }
        recovery.bytes = size;
        recovery.points = store.points();
        recovery.keys = store.keys();
        recovery.elapsed = started.elapsed();
        let records = recovery.replayed + recovery.quarantined;
        Ok((
            JournalFile {
                path: target,
                handle: file,
                len: size,
                records,
                mixed: matches!(format, Some(Format::Plain | Format::Checksummed)),
            },
            recovery,
        ))
    }
}

impl JournalFile {
    pub(super) fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.handle.write_all(data)?;
        self.len += data.len() as u64;
        self.records += frames::count_records(data);
        Ok(())
    }

    pub(super) fn sync(&mut self) -> io::Result<()> {
        self.handle.sync_data()
    }
}

#[cfg(test)]
mod tests;
