use super::*;
use proptest::prelude::*;

/// Every record of every frame in `bytes`, with keys resolved through the
/// definitions seen so far; panics on anything that is not a whole frame.
fn decode_all(bytes: &[u8]) -> Vec<(u64, String, i64, u64)> {
    let mut keys = std::collections::HashMap::new();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Frame::Whole {
            len,
            records,
            payload,
        } = frame(&bytes[at..])
        else {
            panic!("no frame at {at}: {:?}", frame(&bytes[at..]));
        };
        assert!(entries(payload, records, |e| {
            if let Some(key) = e.key {
                keys.insert(e.id, key.to_string());
            }
            out.push((e.id, keys[&e.id].clone(), e.timestamp, e.value.to_bits()));
        }));
        at += len;
    }
    out
}

fn taken(frames: &mut Frames) -> Vec<u8> {
    let mut out = Vec::new();
    frames.take(&mut out);
    out
}

#[test]
fn a_record_is_about_eleven_bytes_and_keys_are_written_once_a_write() {
    let mut frames = Frames::new(0);
    for ts in 0..1000 {
        frames.push(7, "huginn.cpu", 1_700_000_000 + 10 * ts, 0.5 + ts as f64);
    }
    let bytes = taken(&mut frames);
    assert!(bytes.len() < 1000 * 11 + 100, "{} bytes", bytes.len());
    let decoded = decode_all(&bytes);
    assert_eq!(decoded.len(), 1000);
    assert_eq!(
        decoded[999],
        (7, "huginn.cpu".into(), 1_700_009_990, 999.5f64.to_bits())
    );
    assert_eq!(memchr::memmem::find_iter(&bytes, b"huginn").count(), 1);

    // The next write defines the key again: it decodes alone.
    frames.push(7, "huginn.cpu", 5, 1.0);
    let next = taken(&mut frames);
    assert_eq!(
        decode_all(&next),
        [(7, "huginn.cpu".into(), 5, 1f64.to_bits())]
    );
}

#[test]
fn frames_close_at_their_size_and_each_decodes_alone() {
    let mut frames = Frames::new(0);
    for i in 0..10_000 {
        frames.push(i % 3, ["a", "b", "c"][i % 3], i as i64, -1.5);
    }
    let bytes = taken(&mut frames);
    let mut at = 0;
    let mut count = 0;
    while let Frame::Whole { len, records, .. } = frame(&bytes[at..]) {
        assert!(len <= FRAME_HEADER + FRAME_BYTES + 64);
        count += records;
        at += len;
        if at == bytes.len() {
            break;
        }
    }
    assert_eq!((at, count), (bytes.len(), 10_000));
    assert!(decode_all(&bytes).len() == 10_000);
}

#[test]
fn ids_carry_the_base() {
    let mut frames = Frames::new(1000);
    frames.push(3, "k", 1, 2.0);
    assert_eq!(decode_all(&taken(&mut frames))[0].0, 1003);
}

#[test]
fn take_reports_the_records_and_discard_drops_them() {
    let mut frames = Frames::new(0);
    frames.push(0, "a", 1, 1.0);
    frames.push(0, "a", 2, 1.0);
    let mut out = Vec::new();
    frames.take(&mut out);
    assert_eq!(count_records(&out), 2);
    assert!(frames.is_empty());
    frames.push(1, "b", 1, 1.0);
    frames.discard();
    assert!(frames.is_empty());
    frames.push(1, "b", 3, 1.0);
    let bytes = taken(&mut frames);
    assert_eq!(
        decode_all(&bytes),
        [(1, "b".into(), 3, 1f64.to_bits())],
        "b defined again"
    );
}

#[test]
fn a_cut_frame_is_short_and_garbage_is_bad() {
    let mut frames = Frames::new(0);
    frames.push(0, "k", 1, 1.0);
    let bytes = taken(&mut frames);
    for cut in 1..bytes.len() {
        assert_eq!(frame(&bytes[..cut]), Frame::Short, "cut at {cut}");
    }
    assert!(matches!(frame(&bytes), Frame::Whole { .. }));
    assert_eq!(frame(&[0; 64]), Frame::Bad);
    assert_eq!(frame(b"put k 1 1\n"), Frame::Bad);
    let mut huge = bytes.clone();
    huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(frame(&huge), Frame::Bad, "implausible length");
}

#[test]
fn scope_generations_survive_wrapping() {
    let mut scope = Scope::default();
    assert!(scope.define(5));
    assert!(!scope.define(5));
    scope.generation = u32::MAX;
    scope.defined[5] = 1;
    scope.restart();
    assert_eq!(scope.generation, 1);
    assert!(
        scope.define(5),
        "a mark from before the wrap does not count"
    );
}

#[test]
fn records_with_bad_fields_fail_the_frame() {
    // A valid frame around a record whose value is NaN or whose key is `*`.
    let frame_of = |payload: &[u8]| {
        let mut out = vec![KIND];
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out), payload);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(payload);
        out
    };
    let record = |key: &[u8], value: f64| {
        let mut p = vec![1, key.len() as u8];
        p.extend_from_slice(key);
        p.push(2);
        p.extend_from_slice(&value.to_bits().to_le_bytes());
        p
    };
    for (payload, ok) in [
        (record(b"k", 1.0), true),
        (record(b"k", f64::NAN), false),
        (record(b"k", f64::INFINITY), false),
        (record(b"*", 1.0), false),
        (record(b"a b", 1.0), false),
        (record(b"\xff", 1.0), false),
        ([record(b"k", 1.0), vec![0]].concat(), false),
    ] {
        let bytes = frame_of(&payload);
        let Frame::Whole {
            payload, records, ..
        } = frame(&bytes)
        else {
            panic!("{bytes:?}");
        };
        assert_eq!(entries(payload, records, |_| {}), ok, "{payload:?}");
    }
}

fn key_strategy() -> impl Strategy<Value = String> {
    "[!-~&&[^*]]{1,12}|[a-zа-я.]{1,8}"
}

proptest! {
    #[test]
    fn any_records_round_trip(
        records in proptest::collection::vec(
            (0usize..50, key_strategy(), any::<i64>(), any::<f64>()), 1..200),
        base in 0u64..1 << 40,
    ) {
        let mut frames = Frames::new(base);
        let mut keys = std::collections::HashMap::new();
        let mut want = Vec::new();
        for (id, key, ts, value) in &records {
            let value = if value.is_finite() { *value } else { 0.25 };
            // One key per id, as the store keeps it.
            let key = keys.entry(*id).or_insert_with(|| key.clone()).clone();
            frames.push(*id, &key, *ts, value);
            want.push((base + *id as u64, key, *ts, value.to_bits()));
        }
        prop_assert_eq!(decode_all(&taken(&mut frames)), want);
    }

    #[test]
    fn any_single_flipped_bit_is_detected(
        ts in any::<i64>(), value in -1e300f64..1e300, bit in any::<usize>()
    ) {
        let mut frames = Frames::new(0);
        frames.push(1, "key", ts, value);
        frames.push(2, "other", ts.wrapping_add(10), value);
        let mut bytes = taken(&mut frames);
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        let whole = matches!(frame(&bytes), Frame::Whole { .. });
        prop_assert!(!whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = frame(&bytes);
        let _ = entries(&bytes, 3, |_| {});
        let mut with_kind = bytes.clone();
        with_kind.insert(0, KIND);
        let _ = frame(&with_kind);
    }
}
