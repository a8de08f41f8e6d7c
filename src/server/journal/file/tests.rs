use super::super::frames::Frames;
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

/// A version 2 record, as earlier servers wrote them.
fn record(key: &str, value: &str, ts: i64) -> Vec<u8> {
    let mut out = format!("put {key} {value} {ts}").into_bytes();
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(format!(" {crc:08x}\n").as_bytes());
    out
}

/// The version 3 header line, which the server appends to a text journal.
const V3: &[u8] = b"metrics-journal 3\n";

/// One write of version 3 frames: `(series id, key, timestamp, value)`.
fn write_of(base: u64, points: &[(usize, &str, i64, f64)]) -> Vec<u8> {
    let mut frames = Frames::new(base);
    for &(id, key, ts, value) in points {
        frames.push(id, key, ts, value);
    }
    let mut out = Vec::new();
    frames.take(&mut out);
    out
}

fn v3(parts: &[&[u8]]) -> Vec<u8> {
    [&[V3], parts].concat().concat()
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

/// A version 2 journal.
fn journal(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = [TEXT_HEADER, b"\n"].concat();
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
    assert_eq!(fs::read(&path).unwrap(), [&content[..], V3].concat());
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
    assert_eq!(fs::read(&path).unwrap(), journal(&[&last, V3]));
}

#[test]
fn a_torn_final_record_is_copied_then_cut() {
    let dir = Dir::new();
    let path = dir.0.join("j");
    let content = journal(&[&record("a", "1", 1), b"put b 2"]);
    fs::write(&path, &content).unwrap();
    let (_, recovery) = replay_file(&path).unwrap();
    assert_eq!(recovery.torn, Some((content.len() as u64 - 7, 7)));
    assert_eq!(
        fs::read(&path).unwrap(),
        journal(&[&record("a", "1", 1), V3])
    );
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
    assert_eq!(fs::read(&path).unwrap(), V3);
}

#[test]
fn a_plain_journal_gets_a_header_before_new_records_and_reads_back() {
    let dir = Dir::new();
    let path = dir.0.join("j");
    fs::write(&path, b"put a 1 1\nput b 2 2\n").unwrap();
    let (_, recovery) = replay_file(&path).unwrap();
    assert_eq!(recovery.format, Some(Format::Plain));
    assert_eq!(
        fs::read(&path).unwrap(),
        [&b"put a 1 1\nput b 2 2\n"[..], V3].concat()
    );
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&write_of(0, &[(0, "c", 3, 3.0)])).unwrap();
    let (store, recovery) = replay_file(&path).unwrap();
    assert_eq!(recovery.quarantined, 0);
    assert_eq!(points(&store).len(), 3);
    let again = fs::read(&path).unwrap();
    let (_, _) = replay_file(&path).unwrap();
    assert_eq!(
        fs::read(&path).unwrap(),
        again,
        "one header, not one a start"
    );
}

#[test]
fn every_version_reads_back_the_same_points() {
    let dir = Dir::new();
    let want = [("a".to_string(), 1, 1.5f64), ("b".to_string(), 2, -0.0f64)];
    let files: [(&str, Vec<u8>, Format); 3] = [
        ("1", b"put a 1.50 1\nput  b -0 2\n".to_vec(), Format::Plain),
        (
            "2",
            journal(&[&record("a", "1.5", 1), &record("b", "-0.0", 2)]),
            Format::Checksummed,
        ),
        (
            "3",
            v3(&[&write_of(0, &[(0, "a", 1, 1.5), (1, "b", 2, -0.0)])]),
            Format::Binary,
        ),
    ];
    for (name, content, format) in files {
        let path = dir.0.join(name);
        fs::write(&path, &content).unwrap();
        let (store, recovery) = replay_file(&path).unwrap();
        assert_eq!(recovery.format, Some(format), "{name}");
        let got = points(&store);
        assert_eq!(got.len(), 2, "{name}");
        for (got, want) in got.iter().zip(&want) {
            assert_eq!(
                (&got.0, got.1, got.2.to_bits()),
                (&want.0, want.1, want.2.to_bits())
            );
        }
        assert_eq!(recovery.quarantined, 0, "{name}");
    }
}

#[test]
fn frames_after_garbage_are_found_again_and_the_garbage_quarantined() {
    let dir = Dir::new();
    let path = dir.0.join("j");
    let (first, second) = (
        write_of(0, &[(0, "a", 1, 1.0)]),
        write_of(0, &[(1, "b", 2, 2.0)]),
    );
    // A NUL run, then bytes that start like a frame (its first byte) but are not one.
    let garbage = [&[0u8; 300][..], &[0xB3, 1, 2, 3]].concat();
    let content = v3(&[&first, &garbage, &second]);
    fs::write(&path, &content).unwrap();
    let (store, recovery) = replay_file(&path).unwrap();
    assert_eq!(points(&store), [("a".into(), 1, 1.0), ("b".into(), 2, 2.0)]);
    assert_eq!(
        (recovery.quarantined, recovery.quarantined_bytes),
        (1, garbage.len() as u64)
    );
    assert_eq!(fs::read(&path).unwrap(), content, "kept until a compaction");
    let (_, again) = replay_file(&path).unwrap();
    assert_eq!(again.quarantined_before, 1, "not copied twice");
}

#[test]
fn a_damaged_frame_is_quarantined_whole_and_so_are_frames_using_its_ids() {
    let dir = Dir::new();
    let path = dir.0.join("j");
    let mut damaged = write_of(0, &[(0, "a", 1, 1.0), (1, "b", 1, 1.0)]);
    let at = damaged.len() - 3;
    damaged[at] ^= 0x10;
    // The damaged frame's id used again without its definition (as in a
    // later frame of the same write), then a frame of its own.
    let uses = raw_frame(&[(0, None, 1, 0.0)]);
    let own = write_of(0, &[(2, "c", 5, 5.0)]);
    fs::write(&path, v3(&[&damaged, &uses, &own])).unwrap();
    let (store, recovery) = replay_file(&path).unwrap();
    assert_eq!(points(&store), [("c".into(), 5, 5.0)]);
    assert_eq!(recovery.quarantined, 2);
    let side = String::from_utf8_lossy(&fs::read(quarantine_path(&path)).unwrap()).into_owned();
    assert!(side.contains("definition was not applied"), "{side}");
    // The damaged frame is a run of bytes (its checksum fails: nothing in
    // it is trusted); the other is a whole frame of 1 record.
    let warning = recovery.warnings().join("\n");
    let counts = "2 unreadable piece(s): 1 whole frame(s) of 1 record(s) and 1 other piece(s)";
    assert!(warning.contains(counts), "{warning}");
}

/// A frame of `(id in the file, key if defined, timestamp, value)`
/// records, encoded here (so it can use ids it does not define).
fn raw_frame(records: &[(u64, Option<&str>, i64, f64)]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push(n as u8 | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    let zigzag = |n: i64| ((n << 1) ^ (n >> 63)) as u64;
    let (mut payload, mut id, mut ts) = (Vec::new(), 0u64, 0i64);
    for &(next, key, timestamp, value) in records {
        varint(
            &mut payload,
            zigzag(next as i64 - id as i64) << 1 | u64::from(key.is_some()),
        );
        if let Some(key) = key {
            varint(&mut payload, key.len() as u64);
            payload.extend_from_slice(key.as_bytes());
        }
        varint(&mut payload, zigzag(timestamp - ts));
        payload.extend_from_slice(&value.to_le_bytes());
        (id, ts) = (next, timestamp);
    }
    let mut out = vec![0xB3];
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), &payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

#[test]
fn definitions_of_a_quarantined_frame_are_undone_and_later_ones_keep_their_keys() {
    let dir = Dir::new();
    let path = dir.0.join("j");
    let first = raw_frame(&[(10, Some("a"), 1, 1.0), (11, Some("b"), 1, 2.0)]);
    // Defines c, then uses an id nothing defined: quarantined whole, and
    // c's definition with it.
    let bad = raw_frame(&[(12, Some("c"), 1, 3.0), (40, None, 1, 4.0)]);
    let uses_c = raw_frame(&[(12, None, 2, 3.5)]);
    let later = raw_frame(&[(13, Some("d"), 1, 5.0), (11, None, 2, 6.0)]);
    let reuse = raw_frame(&[(13, None, 2, 7.0), (10, None, 2, 8.0)]);
    fs::write(&path, v3(&[&first, &bad, &uses_c, &later, &reuse])).unwrap();
    let (store, recovery) = replay_file(&path).unwrap();
    let want: Vec<(String, i64, f64)> = [
        ("a", 1, 1.0),
        ("a", 2, 8.0),
        ("b", 1, 2.0),
        ("b", 2, 6.0),
        ("d", 1, 5.0),
        ("d", 2, 7.0),
    ]
    .iter()
    .map(|&(k, t, v)| (k.to_string(), t, v))
    .collect();
    assert_eq!(points(&store), want);
    assert_eq!(recovery.quarantined, 2);
    assert_eq!(recovery.id_base, 14);
}

#[test]
fn a_torn_final_frame_is_copied_then_cut() {
    let dir = Dir::new();
    let path = dir.0.join("j");
    let whole = write_of(0, &[(0, "a", 1, 1.0)]);
    let torn = write_of(0, &[(1, "b", 2, 2.0), (1, "b", 3, 3.0)]);
    let content = v3(&[&whole, &torn[..torn.len() - 5]]);
    fs::write(&path, &content).unwrap();
    let (store, recovery) = replay_file(&path).unwrap();
    assert_eq!(points(&store), [("a".into(), 1, 1.0)]);
    let offset = (V3.len() + whole.len()) as u64;
    assert_eq!(recovery.torn, Some((offset, torn.len() as u64 - 5)));
    assert_eq!(fs::read(&path).unwrap(), v3(&[&whole]));
    let side = fs::read(quarantine_path(&path)).unwrap();
    assert!(memchr::memmem::find(&side, &torn[..torn.len() - 5]).is_some());
}

#[test]
fn the_next_process_takes_ids_above_the_file_s() {
    let dir = Dir::new();
    let path = dir.0.join("j");
    fs::write(
        &path,
        v3(&[&write_of(40, &[(0, "a", 1, 1.0), (9, "b", 1, 1.0)])]),
    )
    .unwrap();
    let (_, recovery) = replay_file(&path).unwrap();
    assert_eq!(recovery.id_base, 50);
    fs::write(&path, journal(&[&record("a", "1", 1)])).unwrap();
    assert_eq!(replay_file(&path).unwrap().1.id_base, 0, "text has no ids");
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
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        binary in any::<bool>(),
    ) {
        let dir = Dir::new();
        let path = dir.0.join("j");
        let content = if binary { v3(&[&bytes]) } else { journal(&[&bytes]) };
        fs::write(&path, &content).unwrap();
        let (_, recovery) = replay_file(&path).unwrap();
        let now = fs::read(&path).unwrap();
        match recovery.torn {
            // Only a torn record is cut, and only after it was copied.
            Some((offset, _)) => prop_assert_eq!(&now[..offset as usize], &content[..offset as usize]),
            None => prop_assert_eq!(&now[..content.len()], &content[..]),
        }
    }

    #[test]
    fn a_frame_cut_anywhere_loses_only_itself(cut in 0usize..200, count in 1usize..20) {
        let dir = Dir::new();
        let path = dir.0.join("j");
        let first = write_of(0, &[(0, "a", 1, 1.0)]);
        let list: Vec<(usize, &str, i64, f64)> = (0..count).map(|i| (1, "b", i as i64, 0.5)).collect();
        let second = write_of(0, &list);
        let cut = cut % second.len();
        fs::write(&path, v3(&[&first, &second[..cut]])).unwrap();
        let (store, recovery) = replay_file(&path).unwrap();
        prop_assert_eq!(points(&store), vec![("a".to_string(), 1, 1.0)]);
        prop_assert_eq!(recovery.quarantined_bytes, cut as u64);
        prop_assert_eq!(fs::read(&path).unwrap(), v3(&[&first]));
    }
}
