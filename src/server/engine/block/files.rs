//! The file system steps blocks and the keys file share: opening only
//! regular files, and publishing a finished file under its name.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const DIRECTORY: &str = "a directory, not a regular file";

/// Opens `path` for reading (and appending, when `append`), or says what
/// else than a regular file it is. Opened non-blocking, so a FIFO given by
/// mistake does not hang the open; reads from a regular file ignore it.
pub(crate) fn open_regular(path: &Path, append: bool) -> io::Result<Result<File, &'static str>> {
    let opened = OpenOptions::new()
        .read(true)
        .append(append)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        // Refused for writing.
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => return Ok(Err(DIRECTORY)),
        opened => opened?,
    };
    let kind = file.metadata()?.file_type();
    Ok(if kind.is_file() {
        Ok(file)
    } else if kind.is_dir() {
        Err(DIRECTORY)
    } else {
        Err("not a regular file")
    })
}

/// Renames `from` to `to` unless `to` exists, then fsyncs the directory so
/// the new name survives a crash.
pub(crate) fn publish(from: &Path, to: &Path) -> io::Result<()> {
    rename_new(from, to)?;
    let dir = match to.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn rename_new(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A file system without the flag: the engine's lock on the
        // directory leaves no one to race between the check and the rename.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            if to.symlink_metadata().is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists already", to.display()),
                ));
            }
            std::fs::rename(from, to)
        }
        Err(e) => Err(e.into()),
    }
}
