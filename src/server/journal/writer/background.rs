//! The writer's work between batches: sealing old points into blocks and
//! compacting the journal, one bounded step at a time.

use super::*;

impl<D: Disk> JournalWriter<D> {
    /// A seal to run with the next compaction, when one is due (looked for
    /// every `seal_interval`).
    pub(super) fn begin_seal(&mut self) -> Option<Seal> {
        let sealer = self.sealer.as_mut()?;
        let now = Instant::now();
        if now < self.seal_check {
            return None;
        }
        self.seal_check = now + sealer.storage.seal_interval;
        let shared = Arc::clone(&self.shared);
        match sealer.repair_index(|| shared.lock()) {
            Ok(false) => {}
            Ok(true) => self.shared.log(Level::Info, "the keys index was rebuilt"),
            Err(e) => self.warn(&format!(
                "cannot rebuild the keys index ({e}); puts of keys not in memory are refused \
                 until it is"
            )),
        }
        let sealer = self.sealer.as_mut()?;
        let epoch = engine::now();
        let limit = self.shared.limits.max_memory;
        if !sealer.due(&self.shared.lock().store, epoch, limit) {
            return None;
        }
        match sealer.begin(epoch, || shared.lock()) {
            Ok(mut seal) => {
                if let Some(warning) = seal.warning.take() {
                    self.warn(&warning);
                }
                Some(seal)
            }
            Err(e) => {
                self.warn(&format!("cannot seal old points into blocks: {e}"));
                None
            }
        }
    }

    /// Runs one step of a compaction; returns it while it is unfinished.
    pub(super) fn compaction_step(&mut self, mut c: Compaction) -> Option<Compaction> {
        let before = (self.file.records, self.file.len);
        let stepped = c.step(&self.shared);
        let sealing = c.seal().map(|s| (s.sealed, s.dropped));
        match stepped {
            Ok(false) => {
                if let Some(line) = c.progress() {
                    self.shared.log(
                        Level::Info,
                        &format!("{}: {line}", self.file.path.display()),
                    );
                }
                return Some(c);
            }
            Ok(true) => match c.finish(&mut self.file, &self.shared) {
                Ok((records, bytes, took)) => {
                    // The new file was fsynced with everything in it.
                    self.synced = (self.file.len, self.file.records);
                    self.unsynced.clear();
                    self.dirty = false;
                    self.shared.log(
                        Level::Info,
                        &format!(
                            "{}: compacted {} records ({} bytes) to {records} records ({bytes} bytes){} in {:.3} s",
                            self.file.path.display(),
                            before.0,
                            before.1,
                            match sealing {
                                Some((sealed, dropped)) => format!(
                                    ", sealing {sealed} points into blocks and dropping {dropped} past the retention"
                                ),
                                None => String::new(),
                            },
                            took.as_secs_f64()
                        ),
                    );
                }
                // Stopping: given up, the journal and blocks as they were.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.warn(&format!(
                        "compaction failed, keeping the journal as it is: {e}"
                    ));
                    let _ = fs::remove_file(compaction_path(&self.file.path));
                    self.compaction_after = Some(Instant::now() + COMPACTION_RETRY);
                }
            },
            Err(e) => {
                self.warn(&format!(
                    "compaction failed, keeping the journal as it is: {e}"
                ));
                c.abandon(&self.shared);
                self.compaction_after = Some(Instant::now() + COMPACTION_RETRY);
            }
        }
        None
    }
}
