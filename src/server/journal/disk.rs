//! The writer's three operations on the journal's file, behind a trait so that
//! tests can make them fail the way a full or broken disk does (a write cut
//! short, then an error) without needing one.

use std::io;

use super::file::JournalFile;

pub(crate) trait Disk: Send {
    /// Appends `data`; on error part of it may be in the file.
    fn append(&mut self, file: &mut JournalFile, data: &[u8]) -> io::Result<()>;
    fn sync(&mut self, file: &mut JournalFile) -> io::Result<()>;
    /// Cuts the file back to `len` bytes holding `records` records.
    fn truncate(&mut self, file: &mut JournalFile, len: u64, records: u64) -> io::Result<()>;
}

/// The real file.
pub(crate) struct FileDisk;

impl Disk for FileDisk {
    fn append(&mut self, file: &mut JournalFile, data: &[u8]) -> io::Result<()> {
        file.append(data)
    }

    fn sync(&mut self, file: &mut JournalFile) -> io::Result<()> {
        file.sync()
    }

    fn truncate(&mut self, file: &mut JournalFile, len: u64, records: u64) -> io::Result<()> {
        // The file is opened for appending, so the next write lands at the
        // new end.
        file.handle.set_len(len)?;
        file.len = len;
        file.records = records;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod faults {
    //! A disk that fails on command.

    use std::io::Write;
    use std::sync::{Arc, Mutex, PoisonError};

    use super::*;

    /// What the next operations do; shared with the test driving them.
    #[derive(Debug, Default)]
    pub(crate) struct Plan {
        /// Appends write this many bytes of their data, then fail.
        pub(crate) append_writes_then_fails: Option<usize>,
        pub(crate) sync_fails: bool,
        pub(crate) truncate_fails: bool,
        pub(crate) appends: usize,
        pub(crate) syncs: usize,
        pub(crate) truncates: usize,
    }

    pub(crate) struct FaultyDisk(pub(crate) Arc<Mutex<Plan>>);

    pub(crate) fn no_space() -> io::Error {
        io::Error::from_raw_os_error(libc::ENOSPC)
    }

    impl FaultyDisk {
        fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl Disk for FaultyDisk {
        fn append(&mut self, file: &mut JournalFile, data: &[u8]) -> io::Result<()> {
            let cut = {
                let mut plan = self.plan();
                plan.appends += 1;
                plan.append_writes_then_fails
            };
            match cut {
                Some(n) => {
                    // What a disk filling up mid-write leaves: part of the
                    // data in the file, and the bookkeeping not updated.
                    file.handle.write_all(&data[..n.min(data.len())])?;
                    Err(no_space())
                }
                None => FileDisk.append(file, data),
            }
        }

        fn sync(&mut self, file: &mut JournalFile) -> io::Result<()> {
            let fails = {
                let mut plan = self.plan();
                plan.syncs += 1;
                plan.sync_fails
            };
            if fails {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            FileDisk.sync(file)
        }

        fn truncate(&mut self, file: &mut JournalFile, len: u64, records: u64) -> io::Result<()> {
            let fails = {
                let mut plan = self.plan();
                plan.truncates += 1;
                plan.truncate_fails
            };
            if fails {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            FileDisk.truncate(file, len, records)
        }
    }
}
