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

use memchr::{memchr, memchr_iter};

use super::format::{decode_plain, is_torn_record, Format, HEADER, MAX_RECORD};
use super::quarantine::{excerpt, Quarantine};
use super::recovery::{replay, Control, Stop, Tail};
use super::report::Recovery;
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
    pub(super) lines: u64,
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
    if head.is_empty() || (head.len() < header_line.len() && header_line.starts_with(&head)) {
        return Ok(None);
    }
    if head.starts_with(&header_line) {
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
    /// ready for version 2 records. Stops early, changing nothing in the
    /// journal, once `cancel` is set.
    pub(crate) fn replay(
        self,
        store: &mut Store,
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
        match format {
            Some(format) => {
                recovery.format = Some(format);
                let control = Control {
                    cancel,
                    log,
                    progress_interval,
                };
                tail = match replay(
                    &file,
                    len,
                    format,
                    store,
                    &mut recovery,
                    &mut quarantine,
                    &control,
                ) {
                    Ok(tail) => tail,
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
        if format != Some(Format::Checksummed) || size == 0 {
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
        let lines = recovery.replayed + recovery.quarantined;
        Ok((
            JournalFile {
                path: target,
                handle: file,
                len: size,
                lines,
            },
            recovery,
        ))
    }
}

impl JournalFile {
    pub(super) fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.handle.write_all(data)?;
        self.len += data.len() as u64;
        self.lines += memchr_iter(b'\n', data).count() as u64;
        Ok(())
    }

    pub(super) fn sync(&mut self) -> io::Result<()> {
        self.handle.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::encode_record;
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "journal-file-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn record(key: &str, value: &str, ts: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(&mut out, key, value, ts);
        out
    }

    fn replay_file(path: &Path) -> Result<(Store, Recovery), ServerError> {
        let mut store = Store::new();
        let (_, recovery) =
            open(path)?.replay(&mut store, &AtomicBool::new(false), None, Duration::MAX)?;
        Ok((store, recovery))
    }

    fn points(store: &Store) -> Vec<(String, i64, f64)> {
        let mut out = Vec::new();
        store.walk(&mut crate::server::store::Cursor::all(), |k, ts, v| {
            out.push((k.to_string(), ts, v));
            true
        });
        out
    }

    fn journal(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = [HEADER, b"\n"].concat();
        for part in parts {
            out.extend_from_slice(part);
        }
        out
    }

    #[test]
    fn a_nul_run_before_a_record_is_quarantined_and_the_record_kept() {
        let dir = Dir::new();
        let path = dir.0.join("j");
        let content = journal(&[&record("a", "1", 1), &[0; 300], &record("b", "2", 2)]);
        fs::write(&path, &content).unwrap();
        let (store, recovery) = replay_file(&path).unwrap();
        assert_eq!(points(&store), [("a".into(), 1, 1.0), ("b".into(), 2, 2.0)]);
        assert_eq!((recovery.quarantined, recovery.quarantined_bytes), (1, 300));
        assert_eq!(recovery.torn, None);
        assert_eq!(fs::read(&path).unwrap(), content);
        let side = fs::read(quarantine_path(&path)).unwrap();
        assert!(side.ends_with(&[&[0u8; 300][..], b"\n"].concat()));
    }

    #[test]
    fn a_garbage_line_longer_than_any_record_is_bounded_and_the_next_record_kept() {
        let dir = Dir::new();
        let path = dir.0.join("j");
        let garbage = vec![b'x'; 3 * READ_LIMIT_HINT];
        let content = journal(&[&garbage, &record("k", "2.5", 7)]);
        fs::write(&path, &content).unwrap();
        let (store, recovery) = replay_file(&path).unwrap();
        assert_eq!(points(&store), [("k".into(), 7, 2.5)]);
        assert_eq!(recovery.quarantined_bytes, garbage.len() as u64);
    }

    /// Bigger than a read and than two records, so garbage is streamed.
    const READ_LIMIT_HINT: usize = 9 << 20;

    #[test]
    fn a_flipped_bit_is_not_applied_but_quarantined() {
        let dir = Dir::new();
        let path = dir.0.join("j");
        let mut bad = record("k", "7.5", 1);
        bad[6] = b'9';
        fs::write(&path, journal(&[&bad, &record("k", "1", 2)])).unwrap();
        let (store, recovery) = replay_file(&path).unwrap();
        assert_eq!(points(&store), [("k".into(), 2, 1.0)]);
        assert_eq!(recovery.quarantined, 1);
        assert_eq!(recovery.warnings().len(), 1);
        assert!(recovery.warnings()[0].contains(".quarantine"));
    }

    #[test]
    fn a_complete_final_record_without_newline_is_kept_and_terminated() {
        let dir = Dir::new();
        let path = dir.0.join("j");
        let last = record("k", "3", 3);
        fs::write(&path, journal(&[&last[..last.len() - 1]])).unwrap();
        let (store, recovery) = replay_file(&path).unwrap();
        assert_eq!(points(&store).len(), 1);
        assert_eq!(recovery.torn, None);
        assert_eq!(fs::read(&path).unwrap(), journal(&[&last]));
    }

    #[test]
    fn a_torn_final_record_is_copied_then_cut() {
        let dir = Dir::new();
        let path = dir.0.join("j");
        let content = journal(&[&record("a", "1", 1), b"put b 2"]);
        fs::write(&path, &content).unwrap();
        let (_, recovery) = replay_file(&path).unwrap();
        assert_eq!(recovery.torn, Some((content.len() as u64 - 7, 7)));
        assert_eq!(fs::read(&path).unwrap(), journal(&[&record("a", "1", 1)]));
        let side = fs::read_to_string(quarantine_path(&path)).unwrap();
        assert!(side.ends_with("\nput b 2\n"), "{side:?}");
    }

    #[test]
    fn a_torn_header_is_replaced() {
        let dir = Dir::new();
        let path = dir.0.join("j");
        fs::write(&path, b"metrics-jo").unwrap();
        let (_, recovery) = replay_file(&path).unwrap();
        assert_eq!(recovery.torn, Some((0, 10)));
        assert_eq!(fs::read(&path).unwrap(), journal(&[]));
    }

    #[test]
    fn a_plain_journal_gets_a_header_before_new_records_and_reads_back() {
        let dir = Dir::new();
        let path = dir.0.join("j");
        fs::write(&path, b"put a 1 1\nput b 2 2\n").unwrap();
        let (_, recovery) = replay_file(&path).unwrap();
        assert_eq!(recovery.format, Some(Format::Plain));
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&record("c", "3", 3)).unwrap();
        let (store, recovery) = replay_file(&path).unwrap();
        assert_eq!(recovery.quarantined, 0);
        assert_eq!(points(&store).len(), 3);
    }

    #[test]
    fn files_that_are_not_journals_are_refused_untouched() {
        let dir = Dir::new();
        let cases: [(&str, Vec<u8>); 4] = [
            ("no newline", vec![b'a'; 2 << 20]),
            ("text", b"Dear diary,\nput the kettle on\n".to_vec()),
            ("binary", (0..=255u8).cycle().take(5000).collect()),
            ("nul", vec![0; 100]),
        ];
        for (name, content) in cases {
            let path = dir.0.join(name);
            fs::write(&path, &content).unwrap();
            let err = replay_file(&path).unwrap_err();
            assert!(
                matches!(err, ServerError::NotAJournal { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(&path.display().to_string()));
            assert_eq!(fs::read(&path).unwrap(), content, "{name}");
            assert!(!quarantine_path(&path).exists());
        }
    }

    #[test]
    fn a_directory_or_device_is_refused_before_reading() {
        let dir = Dir::new();
        for (path, kind) in [
            (dir.0.clone(), "directory"),
            (PathBuf::from("/dev/zero"), "character device"),
        ] {
            let err = open(&path).unwrap_err();
            assert!(err.to_string().contains(kind), "{err}");
        }
    }

    #[test]
    fn a_cancelled_replay_changes_nothing() {
        let dir = Dir::new();
        let path = dir.0.join("j");
        let content = b"put a 1 1\nput b 2".to_vec();
        fs::write(&path, &content).unwrap();
        let mut store = Store::new();
        let err = open(&path)
            .unwrap()
            .replay(&mut store, &AtomicBool::new(true), None, Duration::MAX)
            .unwrap_err();
        assert!(matches!(err, ServerError::Cancelled));
        assert_eq!(fs::read(&path).unwrap(), content);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_bytes_after_a_header_never_panic_and_lose_nothing(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000)
        ) {
            let dir = Dir::new();
            let path = dir.0.join("j");
            let content = journal(&[&bytes]);
            fs::write(&path, &content).unwrap();
            let (_, recovery) = replay_file(&path).unwrap();
            let now = fs::read(&path).unwrap();
            match recovery.torn {
                // Only a torn record is cut, and only after it was copied.
                Some((offset, _)) => prop_assert_eq!(&now[..offset as usize], &content[..offset as usize]),
                None => prop_assert_eq!(&now[..content.len()], &content[..]),
            }
        }
    }
}
