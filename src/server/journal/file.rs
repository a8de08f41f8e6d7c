//! The journal file: opening and locking it, appending to it, and the paths
//! and directory syncs that renames need.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use memchr::memchr_iter;

use super::recovery::{replay, Recovery};
use crate::server::error::ServerError;
use crate::server::store::Store;

/// The log file, owned by the writer thread once the server runs.
#[derive(Debug)]
pub(crate) struct LogFile {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) len: u64,
    pub(super) lines: u64,
}

pub(super) fn compaction_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".compact");
    PathBuf::from(name)
}

pub(super) fn data_error(path: &Path, source: io::Error) -> ServerError {
    ServerError::Data {
        path: path.to_owned(),
        source,
    }
}

/// Takes an exclusive advisory lock so two servers never share a log.
pub(super) fn lock_exclusive(file: &File) -> io::Result<bool> {
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

pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
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

impl LogFile {
    pub(super) fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        self.lines += memchr_iter(b'\n', data).count() as u64;
        Ok(())
    }

    pub(super) fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}
