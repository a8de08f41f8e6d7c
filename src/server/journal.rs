//! Durability: an append-only log of the protocol's own put lines
//! (`put <key> <value> <timestamp>\n`), replayed at start.
//!
//! Connections apply a put to the store and append its line to an in-memory
//! buffer under the same lock, so the log's order is the store's order. One
//! writer thread moves the buffer to the file and fsyncs it:
//!
//! * `always`: the writer writes and fsyncs whatever has accumulated (group
//!   commit) and publishes how far the file is durable; a connection sends
//!   the `ok` for a put only after that point passes its line.
//! * `everysec`: the buffer is written at least every 100 ms (and as soon as
//!   it holds 4 MiB) and fsynced about once a second. `kill -9` loses at most
//!   the last 100 ms, a machine crash about a second.
//! * `no`: written like `everysec`, never fsynced (the kernel decides).
//!
//! Closing the server always writes and fsyncs everything.
//!
//! Recovery: a last line without its `\n` is a torn write from a crash; it is
//! skipped with a warning and cut off so new lines start cleanly. Any other
//! unreadable line is skipped with a warning. Start never fails on content.
//!
//! Compaction: when the file is at least `compact_min_bytes` and holds at
//! least twice as many lines as the store has points, the writer rewrites it
//! as one line per point into `<path>.compact` while serving, appends the
//! lines logged meanwhile, fsyncs and renames it over the log.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memchr::{memchr, memchr_iter};

use super::store::{Cursor, Store};
use super::{Level, ServerError, Shared};
use crate::protocol::{encode_point, parse_command, push_i64, Command};

/// When the log is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Before every acknowledgement (group commit across connections).
    Always,
    /// About once a second.
    #[default]
    EverySec,
    /// Never explicitly, except when the server closes.
    No,
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "always" => Ok(FsyncPolicy::Always),
            "everysec" => Ok(FsyncPolicy::EverySec),
            "no" => Ok(FsyncPolicy::No),
            other => Err(format!(
                "fsync must be 'always', 'everysec' or 'no', got {other:?}"
            )),
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::EverySec => "everysec",
            FsyncPolicy::No => "no",
        })
    }
}

/// How often buffered lines reach the file when not fsyncing each put.
const WRITE_INTERVAL: Duration = Duration::from_millis(100);
/// How often `everysec` fsyncs.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Buffered bytes that make the writer write before `WRITE_INTERVAL`.
const HIGH_WATER: usize = 4 << 20;
/// Bytes of snapshot the compactor makes per step (under the store's lock,
/// about half a millisecond) before writing them and servicing the buffer.
const COMPACT_STEP: usize = 64 << 10;

/// How far the log is known durable, published to connections waiting to
/// acknowledge puts under `always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Durability {
    /// Logical bytes (counted since start) that are in the file and fsynced.
    pub synced: u64,
    /// The log failed; nothing more becomes durable.
    pub failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Writing or about to look at the buffer: no need to wake it.
    Busy,
    /// Waiting for lines to arrive.
    Idle,
    /// Holding buffered lines back until `WRITE_INTERVAL` has passed.
    Batching,
}

/// The in-memory side of the log, guarded by the store's lock.
#[derive(Debug)]
pub(crate) struct Journal {
    pending: Vec<u8>,
    /// Logical bytes appended since start; a put's line is durable once
    /// `Durability::synced` reaches the value after its append.
    appended: u64,
    failed: bool,
    closing: bool,
    writer: Writer,
}

impl Journal {
    pub(crate) fn new() -> Self {
        Journal {
            pending: Vec::new(),
            appended: 0,
            failed: false,
            closing: false,
            writer: Writer::Busy,
        }
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    pub(crate) fn appended(&self) -> u64 {
        self.appended
    }

    /// Buffers one put line. Returns true when the writer thread must be
    /// woken (call `Shared::wake_journal` after releasing the lock).
    pub(crate) fn append_put(&mut self, key: &str, value_text: &str, timestamp: i64) -> bool {
        let before = self.pending.len();
        self.pending.extend_from_slice(b"put ");
        self.pending.extend_from_slice(key.as_bytes());
        self.pending.push(b' ');
        self.pending.extend_from_slice(value_text.as_bytes());
        self.pending.push(b' ');
        push_i64(&mut self.pending, timestamp);
        self.pending.push(b'\n');
        self.appended += (self.pending.len() - before) as u64;
        let wake = match self.writer {
            Writer::Busy => false,
            Writer::Idle => true,
            Writer::Batching => self.pending.len() >= HIGH_WATER,
        };
        if wake {
            self.writer = Writer::Busy;
        }
        wake
    }

    pub(crate) fn fail(&mut self) {
        self.failed = true;
        self.pending.clear();
    }

    pub(crate) fn close(&mut self) {
        self.closing = true;
    }
}

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

/// The log file, owned by the writer thread once the server runs.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
    len: u64,
    lines: u64,
}

fn compaction_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".compact");
    PathBuf::from(name)
}

fn data_error(path: &Path, source: io::Error) -> ServerError {
    ServerError::Data {
        path: path.to_owned(),
        source,
    }
}

/// Takes an exclusive advisory lock so two servers never share a log.
fn lock_exclusive(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(err)
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 60;
    let text = String::from_utf8_lossy(&line[..line.len().min(MAX)]).into_owned();
    if line.len() > MAX {
        format!("{text}... ({} bytes)", line.len())
    } else {
        text
    }
}

/// Opens (creating if needed) and locks the log at `path`, replays it into
/// `store`, repairs a torn tail and removes a stale compaction file.
pub(crate) fn open(path: &Path, store: &mut Store) -> Result<(LogFile, Recovery), ServerError> {
    let existed = path.exists();
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| data_error(path, e))?;
    if !lock_exclusive(&file).map_err(|e| data_error(path, e))? {
        return Err(ServerError::DataInUse {
            path: path.to_owned(),
        });
    }
    if !existed {
        sync_dir(path).map_err(|e| data_error(path, e))?;
    }
    let mut recovery = Recovery {
        path: path.to_owned(),
        ..Recovery::default()
    };
    let stale = compaction_path(path);
    match fs::remove_file(&stale) {
        Ok(()) => recovery.removed_compaction = true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(data_error(&stale, e)),
    }

    let (good_len, lines) = replay(&file, store, &mut recovery).map_err(|e| data_error(path, e))?;
    let total = file.metadata().map_err(|e| data_error(path, e))?.len();
    if good_len < total {
        recovery.torn = Some((good_len, total - good_len));
        file.set_len(good_len).map_err(|e| data_error(path, e))?;
        file.sync_all().map_err(|e| data_error(path, e))?;
    }
    recovery.bytes = good_len;
    Ok((
        LogFile {
            path: path.to_owned(),
            file,
            len: good_len,
            lines,
        },
        recovery,
    ))
}

/// Applies every complete put line; returns the length up to the last `\n`
/// and the number of complete lines.
fn replay(mut file: &File, store: &mut Store, recovery: &mut Recovery) -> io::Result<(u64, u64)> {
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

impl LogFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        self.lines += memchr_iter(b'\n', data).count() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// A compaction in progress: the snapshot written so far and where the live
/// log stood when it began.
struct Compaction {
    tmp_path: PathBuf,
    tmp: File,
    cursor: Cursor,
    /// Log length when the snapshot began: lines after it are copied over.
    start_len: u64,
    lines: u64,
    bytes: u64,
    buf: Vec<u8>,
    started: Instant,
}

impl Compaction {
    fn begin(log: &LogFile) -> io::Result<Self> {
        let tmp_path = compaction_path(&log.path);
        let tmp = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&tmp_path)?;
        Ok(Compaction {
            tmp_path,
            tmp,
            cursor: Cursor::all(),
            start_len: log.len,
            lines: 0,
            bytes: 0,
            buf: Vec::with_capacity(COMPACT_STEP + 4096),
            started: Instant::now(),
        })
    }

    /// Writes the next piece of the snapshot; true when it is complete.
    fn step(&mut self, shared: &Shared) -> io::Result<bool> {
        let buf = &mut self.buf;
        let mut lines = 0;
        let done = {
            let state = shared.lock();
            state.store.walk(&mut self.cursor, |key, ts, value| {
                // What `encode_put` writes for a float, without `fmt`: the
                // lock is held meanwhile.
                buf.extend_from_slice(b"put ");
                encode_point(buf, key, value, ts);
                lines += 1;
                buf.len() < COMPACT_STEP
            })
        };
        self.tmp.write_all(buf)?;
        self.lines += lines;
        self.bytes += buf.len() as u64;
        buf.clear();
        Ok(done)
    }

    /// Appends what was logged since the snapshot began and swaps the files.
    fn finish(mut self, log: &mut LogFile) -> io::Result<(u64, u64, Duration)> {
        let mut at = self.start_len;
        self.buf.resize(COMPACT_STEP, 0);
        while at < log.len {
            let want = ((log.len - at) as usize).min(self.buf.len());
            let n = log.file.read_at(&mut self.buf[..want], at)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "log shrank during compaction",
                ));
            }
            self.tmp.write_all(&self.buf[..n])?;
            self.lines += memchr_iter(b'\n', &self.buf[..n]).count() as u64;
            self.bytes += n as u64;
            at += n as u64;
        }
        self.tmp.sync_all()?;
        if !lock_exclusive(&self.tmp)? {
            return Err(io::Error::other(
                "compacted log is locked by another process",
            ));
        }
        fs::rename(&self.tmp_path, &log.path)?;
        sync_dir(&log.path)?;
        log.file = self.tmp;
        log.len = self.bytes;
        log.lines = self.lines;
        Ok((self.lines, self.bytes, self.started.elapsed()))
    }

    fn abandon(self) {
        drop(self.tmp);
        let _ = fs::remove_file(&self.tmp_path);
    }
}

/// The writer thread: runs until the journal is closed, then writes and
/// fsyncs everything left. Returns the first I/O error, if any.
pub(crate) fn run_writer(
    shared: Arc<Shared>,
    mut log: LogFile,
    policy: FsyncPolicy,
    compact_min_bytes: u64,
) -> io::Result<()> {
    let mut batch: Vec<u8> = Vec::new();
    let mut last_write = Instant::now();
    let mut last_sync = Instant::now();
    let mut dirty = false;
    let mut compaction: Option<Compaction> = None;
    let mut failure: Option<io::Error> = None;

    loop {
        let (closing, seq, points) = {
            let mut state = shared.lock();
            loop {
                let journal = state.journal.as_mut().expect("journal");
                journal.writer = Writer::Busy;
                if journal.closing {
                    break;
                }
                let now = Instant::now();
                let wait = if failure.is_some() {
                    None
                } else if !journal.pending.is_empty() {
                    let due = last_write + WRITE_INTERVAL;
                    if policy == FsyncPolicy::Always
                        || compaction.is_some()
                        || journal.pending.len() >= HIGH_WATER
                        || now >= due
                    {
                        break;
                    }
                    journal.writer = Writer::Batching;
                    Some(due - now)
                } else if compaction.is_some() {
                    break;
                } else if dirty && policy == FsyncPolicy::EverySec {
                    let due = last_sync + SYNC_INTERVAL;
                    if now >= due {
                        break;
                    }
                    journal.writer = Writer::Idle;
                    Some(due - now)
                } else {
                    journal.writer = Writer::Idle;
                    None
                };
                state = match wait {
                    Some(timeout) => shared.journal_wait_timeout(state, timeout),
                    None => shared.journal_wait(state),
                };
            }
            let journal = state.journal.as_mut().expect("journal");
            std::mem::swap(&mut journal.pending, &mut batch);
            (journal.closing, journal.appended, state.store.points())
        };

        if failure.is_none() {
            let result = (|| -> io::Result<()> {
                if !batch.is_empty() {
                    log.append(&batch)?;
                    last_write = Instant::now();
                    dirty = true;
                }
                let sync = match policy {
                    FsyncPolicy::Always => true,
                    FsyncPolicy::EverySec => last_sync.elapsed() >= SYNC_INTERVAL,
                    FsyncPolicy::No => false,
                };
                if dirty && (sync || closing) {
                    log.sync()?;
                    dirty = false;
                    last_sync = Instant::now();
                }
                Ok(())
            })();
            match result {
                Ok(()) if policy == FsyncPolicy::Always || !dirty => shared.publish(Durability {
                    synced: seq,
                    failed: false,
                }),
                Ok(()) => {}
                Err(e) => {
                    shared.log(
                        Level::Error,
                        &format!(
                            "{}: cannot write the log, puts are refused from now on: {e}",
                            log.path.display()
                        ),
                    );
                    shared.fail_journal();
                    failure = Some(e);
                }
            }
        }
        batch.clear();
        if batch.capacity() > 4 * HIGH_WATER {
            batch.shrink_to(HIGH_WATER);
        }

        if closing {
            if let Some(c) = compaction.take() {
                c.abandon();
            }
            return match failure {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        if failure.is_some() {
            if let Some(c) = compaction.take() {
                c.abandon();
            }
            continue;
        }

        if compaction.is_none()
            && log.len >= compact_min_bytes
            && log.lines > 0
            && log.lines >= points.saturating_mul(2)
        {
            match Compaction::begin(&log) {
                Ok(c) => compaction = Some(c),
                Err(e) => shared.log(
                    Level::Warning,
                    &format!("{}: cannot start compaction: {e}", log.path.display()),
                ),
            }
        }
        if let Some(mut c) = compaction.take() {
            let before = (log.lines, log.len);
            match c.step(&shared) {
                Ok(false) => compaction = Some(c),
                Ok(true) => match c.finish(&mut log) {
                    Ok((lines, bytes, took)) => shared.log(
                        Level::Info,
                        &format!(
                            "{}: compacted {} lines ({} bytes) to {lines} lines ({bytes} bytes) in {:.3} s",
                            log.path.display(),
                            before.0,
                            before.1,
                            took.as_secs_f64()
                        ),
                    ),
                    Err(e) => {
                        shared.log(
                            Level::Warning,
                            &format!("{}: compaction failed, keeping the log: {e}", log.path.display()),
                        );
                        let _ = fs::remove_file(compaction_path(&log.path));
                    }
                },
                Err(e) => {
                    shared.log(
                        Level::Warning,
                        &format!("{}: compaction failed, keeping the log: {e}", log.path.display()),
                    );
                    c.abandon();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::push_py_float;

    #[test]
    fn fsync_policies_parse_and_print() {
        for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
            assert_eq!(policy.to_string().parse::<FsyncPolicy>(), Ok(policy));
        }
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
        assert!("Always".parse::<FsyncPolicy>().is_err());
    }

    #[test]
    fn appended_lines_are_normalised_put_lines() {
        let mut journal = Journal::new();
        assert!(!journal.append_put("k", "1.50", -3)); // writer busy: no wake
        journal.writer = Writer::Idle;
        assert!(journal.append_put("ключ", "2", 10));
        assert_eq!(journal.writer, Writer::Busy);
        assert_eq!(journal.pending, "put k 1.50 -3\nput ключ 2 10\n".as_bytes());
        assert_eq!(journal.appended(), journal.pending.len() as u64);
    }

    #[test]
    fn snapshot_lines_are_what_the_client_encodes() {
        use crate::protocol::{encode_put, MetricValue};
        let mut store = Store::new();
        let points = [
            ("a", 1, 0.5),
            ("a", -3, 1e16),
            ("ключ", 7, -0.0),
            ("b", 0, 0.1 + 0.2),
        ];
        for (key, ts, value) in points {
            store.put(key, ts, value);
        }
        let mut mine = Vec::new();
        let mut cursor = Cursor::all();
        assert!(store.walk(&mut cursor, |key, ts, value| {
            mine.extend_from_slice(b"put ");
            mine.extend_from_slice(key.as_bytes());
            mine.push(b' ');
            push_py_float(&mut mine, value);
            mine.push(b' ');
            push_i64(&mut mine, ts);
            mine.push(b'\n');
            true
        }));
        let mut theirs = Vec::new();
        let mut cursor = Cursor::all();
        store.walk(&mut cursor, |key, ts, value| {
            encode_put(&mut theirs, key, MetricValue::Float(value), ts).unwrap();
            true
        });
        assert_eq!(
            String::from_utf8(mine).unwrap(),
            String::from_utf8(theirs).unwrap()
        );
    }

    #[test]
    fn batching_writer_is_woken_only_at_high_water() {
        let mut journal = Journal::new();
        journal.writer = Writer::Batching;
        assert!(!journal.append_put("k", "1", 1));
        journal.pending.resize(HIGH_WATER, b'x');
        assert!(journal.append_put("k", "1", 1));
    }
}
