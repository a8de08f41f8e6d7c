//! The chunk API: round trips of any points, ranges, headers, and bytes
//! that are not a chunk.

use proptest::prelude::*;

use super::*;

fn chunk(points: &[(i64, f64)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let summary = encode(points, &mut bytes).unwrap();
    assert_eq!(summary, super::summary(&bytes).unwrap());
    bytes
}

/// Points with their values as bits, so NaNs and -0.0 compare exactly.
fn exact(points: &[(i64, f64)]) -> Vec<(i64, u64)> {
    points.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

fn decoded(bytes: &[u8]) -> Result<Vec<(i64, f64)>, ChunkError> {
    let mut points = Vec::new();
    decode(bytes, &mut points).map(|()| points)
}

/// Strictly increasing timestamps from any i64s.
fn timestamps(max: usize) -> impl Strategy<Value = Vec<i64>> {
    let scattered = prop::collection::vec(any::<i64>(), 0..max);
    let near =
        (any::<i64>(), prop::collection::vec(1i64..20_000, 0..max)).prop_map(|(start, steps)| {
            steps
                .iter()
                .scan(start, |t, &step| {
                    *t = t.checked_add(step)?;
                    Some(*t)
                })
                .collect()
        });
    // A few points far apart: steps beyond i64.
    let few = prop::collection::vec(any::<i64>(), 0..5);
    prop_oneof![scattered, near, few].prop_map(|mut ts: Vec<i64>| {
        ts.sort_unstable();
        ts.dedup();
        ts
    })
}

/// Points of any bits, or of decimals with a few places.
fn points(max: usize) -> impl Strategy<Value = Vec<(i64, f64)>> {
    let value = prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-100_000i64..100_000, 0u32..4)
            .prop_map(|(m, places)| m as f64 / 10f64.powi(places as i32)),
        Just(-0.0),
        Just(f64::NAN),
    ];
    (timestamps(max), prop::collection::vec(value, max))
        .prop_map(|(ts, values)| ts.into_iter().zip(values).collect())
}

/// `value` as a `get` reply writes it.
fn float_text(value: f64) -> Vec<u8> {
    let mut out = Vec::new();
    crate::protocol::push_py_float(&mut out, value);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Texts of any points, and of decimals with a few exceptions.
    #[test]
    fn texts_are_the_values_text(
        points in points(2500),
        tenths in prop::collection::vec(prop_oneof![40 => -100_000i64..100_000, 1 => Just(i64::MIN)], 1..2500),
        a in any::<i64>(),
        b in any::<i64>(),
    ) {
        // Also decimals with a few exceptions (NaN where i64::MIN).
        let decimals: Vec<(i64, f64)> = tenths.iter().enumerate().map(|(i, &t)| {
            (i as i64 * 10, if t == i64::MIN { f64::NAN } else { t as f64 / 10.0 })
        }).collect();
        for points in [points, decimals] {
            texts_of(&points, a, b)?;
        }
    }
}

/// Decoding `points` with texts, whole and in `[min(a, b), max(a, b))`,
/// gives the points decoding without does, one text for each, and every
/// text known writes what its value writes.
fn texts_of(points: &[(i64, f64)], a: i64, b: i64) -> Result<(), TestCaseError> {
    let bytes = chunk(points);
    for (from, until) in [(i64::MIN, i64::MAX), (a.min(b), a.max(b))] {
        let (mut plain, mut with, mut texts) = (Vec::new(), Vec::new(), Vec::new());
        decode_range(&bytes, from, until, &mut plain)?;
        decode_range_texts(&bytes, from, until, &mut with, &mut texts)?;
        prop_assert_eq!(exact(&with), exact(&plain));
        prop_assert_eq!(texts.len(), with.len());
        for (&(_, value), text) in with.iter().zip(&texts) {
            if let Some(text) = text {
                let mut ours = Vec::new();
                text.push(&mut ours);
                prop_assert_eq!(ours, float_text(value), "{:?}", value);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_points_round_trip_bit_exactly(points in points(3000)) {
        let bytes = chunk(&points);
        prop_assert_eq!(exact(&decoded(&bytes)?), exact(&points));
    }

    #[test]
    fn a_range_is_the_points_in_it(points in points(2500), a in any::<i64>(), b in any::<i64>(), pick in any::<(prop::sample::Index, prop::sample::Index)>()) {
        let bytes = chunk(&points);
        // Bounds anywhere, or on the points themselves.
        let (from, until) = match points.is_empty() {
            true => (a.min(b), a.max(b)),
            false => (points[pick.0.index(points.len())].0, points[pick.1.index(points.len())].0.saturating_add(1)),
        };
        for (from, until) in [(from, until), (a.min(b), a.max(b)), (from, i64::MAX)] {
            let mut got = vec![(0, 1.5)];
            decode_range(&bytes, from, until, &mut got)?;
            let want: Vec<_> = [(0, 1.5)].into_iter().chain(points.iter().copied().filter(|p| (from..until).contains(&p.0))).collect();
            prop_assert_eq!(exact(&got), exact(&want));
        }
    }

    /// Flipped bits give an error, or points in order that agree with the
    /// header, never a panic.
    #[test]
    fn garbled_chunks_fail_or_stay_well_formed(points in points(2100), flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4)) {
        let mut bytes = chunk(&points);
        for (at, bit) in flips {
            let at = at.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        if let Ok(back) = decoded(&bytes) {
            let header = summary(&bytes)?;
            prop_assert_eq!(back.len(), header.count as usize);
            prop_assert!(back.windows(2).all(|w| w[0].0 < w[1].0));
            if let (Some(first), Some(last)) = (back.first(), back.last()) {
                prop_assert_eq!((first.0, last.0), (header.first, header.last));
            }
        }
        let mut ranged = Vec::new();
        let _ = decode_range(&bytes, i64::MIN, 0, &mut ranged);
    }
}

#[test]
fn every_truncation_fails_and_leaves_the_output_alone() {
    let points: Vec<(i64, f64)> = (0..2100)
        .map(|i| (i * 1000 + (i % 3), (i % 17) as f64 * 0.25))
        .collect();
    let bytes = chunk(&points);
    for end in 0..bytes.len() {
        let mut out = vec![(7, 7.0)];
        assert!(
            decode(&bytes[..end], &mut out).is_err(),
            "{end} of {} bytes",
            bytes.len()
        );
        assert_eq!(out, [(7, 7.0)]);
    }
    assert_eq!(exact(&decoded(&bytes).unwrap()), exact(&points));
}

#[test]
fn extreme_timestamps_and_special_values_round_trip() {
    let values = [
        -0.0,
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff4_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        5e-324,
        -f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        0.0,
        1.0,
    ];
    let sets: [&[i64]; 4] = [
        &[i64::MIN, i64::MAX],
        &[i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX],
        &[i64::MIN, 0, i64::MAX],
        &[-10, -5, 0, 5, 10, 15, 20, 25, 30, 35, 40, 45],
    ];
    for timestamps in sets {
        let points: Vec<_> = timestamps
            .iter()
            .copied()
            .zip(values.iter().copied().cycle())
            .collect();
        assert_eq!(exact(&decoded(&chunk(&points)).unwrap()), exact(&points));
    }
}

#[test]
fn an_empty_chunk_has_no_points() {
    let bytes = chunk(&[]);
    assert_eq!(
        summary(&bytes),
        Ok(ChunkSummary {
            count: 0,
            first: 0,
            last: 0
        })
    );
    assert_eq!(decoded(&bytes), Ok(vec![]));
}

#[test]
fn points_out_of_order_are_refused_and_nothing_is_appended() {
    let mut out = vec![9];
    for (points, index) in [
        (&[(1, 0.0), (1, 0.0)][..], 1),
        (&[(1, 0.0), (3, 0.0), (2, 0.0)][..], 2),
    ] {
        assert_eq!(
            encode(points, &mut out),
            Err(ChunkError::Unsorted { index })
        );
        assert_eq!(out, [9]);
    }
}

#[test]
fn headers_are_read_alone_and_checked() {
    let points: Vec<(i64, f64)> = (0..3000).map(|i| (-1_000_000 + i * 7, 1.0)).collect();
    let bytes = chunk(&points);
    let header = ChunkSummary {
        count: 3000,
        first: -1_000_000,
        last: -1_000_000 + 2999 * 7,
    };
    // The header alone suffices: format, count (2 bytes), first and span (3 each).
    assert_eq!(summary(&bytes[..9]), Ok(header));
    assert_eq!(summary(&bytes[..8]), Err(ChunkError::Truncated));
    assert_eq!(summary(&[]), Err(ChunkError::Truncated));
    assert_eq!(summary(&[2, 0]), Err(ChunkError::UnknownFormat(2)));
    // Two points cannot span nothing.
    assert!(matches!(
        summary(&[1, 2, 0, 0]),
        Err(ChunkError::Corrupt(_))
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        decoded(&longer),
        Err(ChunkError::Corrupt("bytes after the last segment"))
    );
}

#[test]
fn ranges_step_over_segments_without_decoding_them() {
    let points: Vec<(i64, f64)> = (0..3 * SEGMENT_POINTS as i64)
        .map(|i| (i, i as f64))
        .collect();
    let mut bytes = chunk(&points);
    // Garble the middle segment's body: its length varint, distance and
    // first body bytes follow the first segment.
    let mut at = super::header(&bytes).unwrap().1;
    let first_length = super::varint::get(&bytes, &mut at).unwrap() as usize;
    at += first_length;
    let _length = super::varint::get(&bytes, &mut at).unwrap();
    let _distance = super::varint::get(&bytes, &mut at).unwrap();
    bytes[at] ^= 0xff;
    assert!(decoded(&bytes).is_err());
    let mut out = Vec::new();
    decode_range(&bytes, 2048, 2050, &mut out).unwrap();
    assert_eq!(out, [(2048, 2048.0), (2049, 2049.0)]);
    out.clear();
    decode_range(&bytes, 10, 20, &mut out).unwrap();
    assert_eq!(out.len(), 10);
    assert!(decode_range(&bytes, 1000, 1030, &mut out).is_err());
    assert_eq!(out.len(), 10, "a failed range appends nothing");
}

#[test]
fn timestamps_out_of_order_inside_a_segment_are_corrupt() {
    // A chunk written as `encode` would, but for points it refuses, with
    // the first and last timestamps right.
    let points = [(0, 1.0), (10, 2.0), (5, 3.0), (20, 4.0)];
    let mut bytes = vec![FORMAT];
    for field in [4, varint::zigzag(0), 20] {
        varint::put(&mut bytes, field);
    }
    segment::Encoder::default().write(&points, None, &mut bytes);
    assert_eq!(
        decoded(&bytes),
        Err(ChunkError::Corrupt("timestamps out of order"))
    );
}
