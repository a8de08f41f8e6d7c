//! The writer against a disk that fails on command, driven the way
//! connections drive the journal.

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use super::*;
use crate::protocol::{Put, Selector};
use crate::server::command::put;
use crate::server::config::Limits;
use crate::server::journal::disk::faults::{FaultyDisk, Plan};
use crate::server::journal::{file, Journal};
use crate::server::shared::State;
use crate::server::store::Store;

const BOUND: Duration = Duration::from_secs(10);
const FULL: &str = "no space left on device";

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct Rig {
    shared: Arc<Shared>,
    plan: Arc<Mutex<Plan>>,
    policy: FsyncPolicy,
    path: PathBuf,
    writer: Option<JoinHandle<Result<(), ServerError>>>,
    logged: Arc<Mutex<Vec<String>>>,
}

impl Rig {
    fn start(policy: FsyncPolicy, name: &str) -> Rig {
        Rig::with_compaction(policy, name, u64::MAX, |_| {})
    }

    /// A rig whose writer compacts from `compact_min_bytes`; `prepare`
    /// gets the journal's path before the writer starts.
    fn with_compaction(
        policy: FsyncPolicy,
        name: &str,
        compact_min_bytes: u64,
        prepare: impl FnOnce(&std::path::Path),
    ) -> Rig {
        let dir = std::env::temp_dir().join(format!(
            "metrics-writer-{name}-{}-{policy}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.log");
        let mut store = Store::new();
        let (file, _) = file::open(&path)
            .unwrap()
            .replay(
                &mut store,
                None,
                &std::sync::atomic::AtomicBool::new(false),
                None,
                std::time::Duration::MAX,
            )
            .unwrap();
        prepare(&path);
        let logged = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                store,
                journal: Some(Journal::new(0)),
                sealed: None,
            }),
            journal_wake: Condvar::new(),
            durable: watch::Sender::new(Durability::default()),
            limits: Limits::default(),
            storage: crate::server::engine::Storage::default(),
            fsync: Some(policy),
            log: Some({
                let logged = Arc::clone(&logged);
                Arc::new(move |_, message: &str| logged.lock().unwrap().push(message.to_string()))
            }),
            connections: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
            budget: crate::server::budget::Budget::new(usize::MAX),
            tls: None,
            protected: false,
            gateway: None,
        });
        let plan = Arc::new(Mutex::new(Plan::default()));
        let writer = JournalWriter::new(
            Arc::clone(&shared),
            file,
            policy,
            FaultyDisk(Arc::clone(&plan)),
        );
        let writer = Some(std::thread::spawn(move || writer.run(compact_min_bytes)));
        Rig {
            shared,
            plan,
            policy,
            path,
            writer,
            logged,
        }
    }

    fn plan(&self, change: impl FnOnce(&mut Plan)) {
        change(&mut self.plan.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// What a connection does for a put: where its line ends in the journal
    /// and how many batches had been rejected then, or the refusal.
    fn put(&self, key: &str, value: f64, timestamp: i64) -> Result<(u64, u64), String> {
        let value_text = value.to_string();
        let request = Put {
            key,
            value,
            value_text: &value_text,
            timestamp,
        };
        let mut wake = false;
        let mut state = self.shared.lock();
        let defer = self.policy == FsyncPolicy::Always;
        match put::apply(&mut state, &request, None, defer, &mut wake) {
            put::Outcome::Refused(reason) => return Err(reason.to_string()),
            put::Outcome::Stored | put::Outcome::Deferred { .. } => {}
        }
        let journal = state.journal.as_ref().unwrap();
        let ticket = (journal.appended(), journal.rejections().count());
        drop(state);
        if wake {
            self.shared.wake_journal();
        }
        Ok(ticket)
    }

    /// Waits until the line ending at `at` is settled; returns whether it
    /// is durable (false: rejected, with the reason).
    fn settle(&self, (at, seen): (u64, u64)) -> Result<(), String> {
        let mut durable = self.shared.durability();
        wait_until("the put to settle", || {
            durable.borrow_and_update().settled >= at
        });
        let state = self.shared.lock();
        let rejections = state.journal.as_ref().unwrap().rejections();
        if rejections.count() == seen {
            return Ok(());
        }
        match rejections.after(seen) {
            Some((durable_to, _)) if durable_to >= at => Ok(()),
            Some((_, reason)) => Err(reason.to_string()),
            None => panic!("rejection forgotten"),
        }
    }

    fn refusal(&self) -> Option<String> {
        put::refusal(&self.shared.lock(), "k", 0, None).map(|r| r.into_owned())
    }

    fn wait_refused(&self) -> String {
        let mut reason = None;
        wait_until("puts to be refused", || {
            reason = self.refusal();
            reason.is_some()
        });
        reason.unwrap()
    }

    /// Puts `key` as soon as puts are accepted again.
    fn put_when_accepted(&self, key: &str, value: f64, timestamp: i64) -> (u64, u64) {
        let mut at = None;
        wait_until("puts to be accepted again", || {
            at = self.put(key, value, timestamp).ok();
            at.is_some()
        });
        at.unwrap()
    }

    fn stored(&self) -> Vec<(String, i64, f64)> {
        let state = self.shared.lock();
        let mut points = Vec::new();
        let mut cursor = state.store.cursor(Selector::All);
        state.store.walk(&mut cursor, |key, ts, value| {
            points.push((key.to_string(), ts, value));
            true
        });
        points
    }

    /// The journal as plain put lines (`put <key> <value> <timestamp>`):
    /// the header dropped, every frame checked and decoded; bytes that are
    /// not a whole frame (an unfinished write) are shown as `<n bytes>`.
    fn file(&self) -> String {
        use super::super::frames::{entries, frame, Frame, HEADER};
        let bytes = fs::read(&self.path).unwrap();
        let header = [HEADER, b"\n"].concat();
        let mut rest = bytes.strip_prefix(&header[..]).expect("a journal header");
        let mut keys = std::collections::HashMap::new();
        let mut out = String::new();
        while !rest.is_empty() {
            let Frame::Whole {
                len,
                records,
                payload,
            } = frame(rest)
            else {
                out += &format!("<{} bytes>", rest.len());
                break;
            };
            assert!(entries(payload, records, |e| {
                if let Some(key) = e.key {
                    keys.insert(e.id, key.to_string());
                }
                out += &format!("put {} {} {}\n", keys[&e.id], e.value, e.timestamp);
            }));
            rest = &rest[len..];
        }
        out
    }

    fn close(&mut self) -> Result<(), ServerError> {
        self.shared.lock().journal.as_mut().unwrap().close();
        self.shared.wake_journal();
        self.writer.take().unwrap().join().unwrap()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.close();
        }
        if let Some(dir) = self.path.parent() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn always_rejects_a_batch_it_cannot_write_and_never_stores_its_points() {
    let mut rig = Rig::start(FsyncPolicy::Always, "always-write");
    let a = rig.put("a", 1.0, 1).unwrap();
    assert_eq!(rig.settle(a), Ok(()));
    assert_eq!(rig.stored(), [("a".into(), 1, 1.0)]);

    // The disk fills in the middle of the next line.
    rig.plan(|p| p.append_writes_then_fails = Some(5));
    let b = rig.put("b", 2.0, 2).unwrap();
    assert_eq!(rig.settle(b), Err(FULL.to_string()));
    assert_eq!(
        rig.stored(),
        [("a".into(), 1, 1.0)],
        "a rejected point was stored"
    );
    assert_eq!(rig.file(), "put a 1 1\n", "half a record left in the file");
    assert_eq!(rig.put("c", 3.0, 3), Err(FULL.to_string()));

    // Space is freed: puts are taken again and reach file and store.
    rig.plan(|p| p.append_writes_then_fails = None);
    let c = rig.put_when_accepted("c", 3.0, 3);
    assert_eq!(rig.settle(c), Ok(()));
    assert_eq!(rig.stored(), [("a".into(), 1, 1.0), ("c".into(), 3, 3.0)]);
    assert_eq!(rig.file(), "put a 1 1\nput c 3 3\n");
    rig.close().unwrap();
}

#[test]
fn always_rejects_a_batch_whose_fsync_fails_and_cuts_it_off() {
    let mut rig = Rig::start(FsyncPolicy::Always, "always-sync");
    let a = rig.put("a", 1.0, 1).unwrap();
    assert_eq!(rig.settle(a), Ok(()));
    rig.plan(|p| p.sync_fails = true);
    let b = rig.put("b", 2.0, 2).unwrap();
    assert_eq!(rig.settle(b), Err("input/output error".to_string()));
    assert_eq!(rig.file(), "put a 1 1\n");
    assert_eq!(rig.stored(), [("a".into(), 1, 1.0)]);
    rig.plan(|p| p.sync_fails = false);
    let c = rig.put_when_accepted("b", 2.5, 2);
    assert_eq!(rig.settle(c), Ok(()));
    assert_eq!(rig.stored(), [("a".into(), 1, 1.0), ("b".into(), 2, 2.5)]);
    rig.close().unwrap();
    assert_eq!(rig.file(), "put a 1 1\nput b 2.5 2\n");
}

#[test]
fn everysec_keeps_acknowledged_lines_until_they_can_be_written() {
    let mut rig = Rig::start(FsyncPolicy::EverySec, "everysec-write");
    rig.plan(|p| p.append_writes_then_fails = Some(3));
    rig.put("a", 1.0, 1).unwrap(); // acknowledged at once under everysec
    assert_eq!(rig.wait_refused(), FULL);
    assert_eq!(rig.put("b", 2.0, 2), Err(FULL.to_string()));
    assert_eq!(rig.file(), "", "half a record left in the file");
    assert_eq!(rig.stored(), [("a".into(), 1, 1.0)]);
    // Retried while failing, never given up.
    let tries = rig.plan.lock().unwrap().appends;
    wait_until("a retry", || rig.plan.lock().unwrap().appends > tries);

    rig.plan(|p| p.append_writes_then_fails = None);
    rig.put_when_accepted("b", 2.0, 2);
    rig.close().unwrap();
    assert_eq!(rig.file(), "put a 1 1\nput b 2 2\n");
}

#[test]
fn everysec_writes_lines_again_after_a_failed_fsync() {
    let mut rig = Rig::start(FsyncPolicy::EverySec, "everysec-sync");
    rig.plan(|p| p.sync_fails = true);
    rig.put("a", 1.0, 1).unwrap();
    assert_eq!(rig.wait_refused(), "input/output error");
    assert_eq!(rig.file(), "", "lines after the last good fsync stay");
    rig.plan(|p| p.sync_fails = false);
    rig.put_when_accepted("b", 2.0, 2);
    rig.close().unwrap();
    assert_eq!(rig.file(), "put a 1 1\nput b 2 2\n");
}

#[test]
fn a_failed_cut_is_retried_before_anything_else_is_written() {
    let mut rig = Rig::start(FsyncPolicy::No, "cut");
    rig.plan(|p| {
        p.append_writes_then_fails = Some(4);
        p.truncate_fails = true;
    });
    rig.put("a", 1.0, 1).unwrap();
    assert_eq!(rig.wait_refused(), FULL);
    assert_eq!(rig.file(), "<4 bytes>", "the failed cut");
    // Writing works but cutting does not: nothing goes after the half
    // record.
    rig.plan(|p| p.append_writes_then_fails = None);
    let (appends, cuts) = {
        let plan = rig.plan.lock().unwrap();
        (plan.appends, plan.truncates)
    };
    wait_until("two more tries", || {
        rig.plan.lock().unwrap().truncates >= cuts + 2
    });
    assert_eq!(rig.plan.lock().unwrap().appends, appends);
    assert_eq!(rig.file(), "<4 bytes>");
    assert!(rig.refusal().is_some());
    rig.plan(|p| p.truncate_fails = false);
    rig.put_when_accepted("b", 2.0, 2);
    rig.close().unwrap();
    assert_eq!(rig.file(), "put a 1 1\nput b 2 2\n");
}

#[test]
fn close_reports_what_it_could_not_write() {
    let mut rig = Rig::start(FsyncPolicy::EverySec, "close");
    rig.plan(|p| p.append_writes_then_fails = Some(2));
    rig.put("a", 1.0, 1).unwrap();
    rig.wait_refused();
    let error = rig.close().unwrap_err();
    let text = error.to_string();
    let mut frames = super::super::frames::Frames::new(0);
    frames.push(0, "a", 1, 1.0);
    let mut record = Vec::new();
    frames.take(&mut record);
    assert!(
        text.contains(&format!(
            "{} bytes of puts could not be written",
            record.len()
        )) && text.contains(&rig.path.display().to_string()),
        "{text}"
    );
    assert_eq!(
        error.io_error().and_then(io::Error::raw_os_error),
        Some(libc::ENOSPC)
    );
    assert_eq!(rig.file(), "", "half a record left in the file");
}

#[test]
fn a_compaction_that_cannot_start_is_not_retried_after_every_batch() {
    let mut rig = Rig::with_compaction(FsyncPolicy::Always, "compaction", 1, |path| {
        // Where the compacted copy would go is taken.
        fs::create_dir_all(compaction_path(path)).unwrap();
    });
    for ts in 0..20 {
        let at = rig.put("k", ts as f64, 1).unwrap();
        assert_eq!(rig.settle(at), Ok(()));
    }
    rig.close().unwrap();
    let attempts = rig
        .logged
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.contains("cannot start compaction"))
        .count();
    assert_eq!(attempts, 1);
}
