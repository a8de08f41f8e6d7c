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
    let (_, recovery) = open(path)?.replay(
        &mut store,
        None,
        &AtomicBool::new(false),
        None,
        Duration::MAX,
    )?;
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
        .replay(
            &mut store,
            None,
            &AtomicBool::new(true),
            None,
            Duration::MAX,
        )
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
