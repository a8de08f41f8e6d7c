//! Unit tests of the rooms below the chunk API: varints, bits, packing,
//! sequences, decimals, XOR and value codes.

use proptest::prelude::*;

use super::bits::{BitReader, BitWriter};
use super::decimal::{compose, compose_all, Decimals};
use super::packing::Packing;
use super::{sequence, values, varint, xor, ChunkError};

fn finished(writer: &BitWriter) -> Vec<u8> {
    let mut bytes = Vec::new();
    writer.finish_into(&mut bytes);
    bytes
}

#[test]
fn varints_reject_overlong_and_truncated_encodings() {
    for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
        let mut bytes = Vec::new();
        varint::put(&mut bytes, value);
        let mut at = 0;
        assert_eq!(varint::get(&bytes, &mut at), Ok(value));
        assert_eq!(at, bytes.len());
        let mut at = 0;
        assert_eq!(
            varint::get(&bytes[..bytes.len() - 1], &mut at),
            Err(ChunkError::Truncated)
        );
    }
    let corrupt = |bytes: &[u8]| matches!(varint::get(bytes, &mut 0), Err(ChunkError::Corrupt(_)));
    assert!(corrupt(&[0x80, 0x00]), "a redundant zero byte");
    assert!(corrupt(
        &[0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>()
    ));
    assert!(corrupt(&[0xff; 11]));
}

#[test]
fn zigzag_keeps_small_magnitudes_small() {
    let pairs = [
        (0, 0),
        (-1, 1),
        (1, 2),
        (-2, 3),
        (i64::MAX, u64::MAX - 1),
        (i64::MIN, u64::MAX),
    ];
    for (signed, unsigned) in pairs {
        assert_eq!(varint::zigzag(signed), unsigned);
        assert_eq!(varint::unzigzag(unsigned), signed);
    }
}

#[test]
fn bits_pad_the_last_byte_with_zeros_and_reading_past_the_end_fails() {
    let mut writer = BitWriter::default();
    writer.write(0b101, 3);
    writer.write(u64::MAX, 64);
    assert_eq!(writer.len(), 67);
    let bytes = finished(&writer);
    assert_eq!(bytes.len(), 9);
    assert_eq!(bytes[0], 0b1011_1111);
    assert_eq!(bytes[8], 0b1110_0000);
    let mut reader = BitReader::new(&bytes);
    assert_eq!(reader.read(3), Ok(0b101));
    assert_eq!(reader.read(64), Ok(u64::MAX));
    assert_eq!(reader.finish(), Ok(()));
    assert_eq!(reader.read(6), Err(ChunkError::Truncated));
    // A one bit in the padding, or a whole byte more, is not padding.
    let mut reader = BitReader::new(&[0b1010_0000]);
    assert_eq!(reader.read(2), Ok(0b10));
    assert!(reader.finish().is_err());
    let mut reader = BitReader::new(&[0, 0]);
    assert_eq!(reader.read(2), Ok(0));
    assert!(reader.finish().is_err());
}

proptest! {
    /// Any widths (0 to 64) read back as written, directly or appended.
    #[test]
    fn bits_round_trip(fields in prop::collection::vec((any::<u64>(), 0u32..=64), 0..200), split in 0usize..200) {
        let mask = |value: u64, width: u32| if width == 64 { value } else { value & ((1 << width) - 1) };
        let split = split.min(fields.len());
        let (mut head, mut tail) = (BitWriter::default(), BitWriter::default());
        for (i, &(value, width)) in fields.iter().enumerate() {
            if i < split { head.write(value, width) } else { tail.write(value, width) }
        }
        head.append(&tail);
        let bytes = finished(&head);
        prop_assert_eq!(bytes.len() as u64, head.len().div_ceil(8));
        let mut reader = BitReader::new(&bytes);
        for &(value, width) in &fields {
            prop_assert_eq!(reader.read(width)?, mask(value, width));
        }
        prop_assert_eq!(reader.finish(), Ok(()));
    }

    /// Every packing reads back what it wrote, in exactly the bits it costs.
    #[test]
    fn packings_round_trip_in_their_cost(values in prop::collection::vec(prop_oneof![0u64..40, any::<u64>()], 1..100)) {
        let widest = values.iter().map(|&v| super::packing::width(v)).max().unwrap_or(0);
        let packings = [Packing::Fixed(widest), Packing::Buckets, Packing::Rice(0), Packing::Rice(3), Packing::Rice(63)];
        for packing in packings.into_iter().chain([Packing::choose(&values).0]) {
            let mut writer = BitWriter::default();
            packing.write_header(&mut writer);
            for &value in &values {
                packing.write(value, &mut writer);
            }
            prop_assert_eq!(writer.len(), packing.cost(&values));
            let bytes = finished(&writer);
            let mut reader = BitReader::new(&bytes);
            prop_assert_eq!(Packing::read_header(&mut reader)?, packing);
            for &value in &values {
                prop_assert_eq!(packing.read(&mut reader)?, value);
            }
        }
    }

    /// Any i64 sequence comes back, whatever its differences' overflow.
    #[test]
    fn sequences_round_trip(values in prop::collection::vec(prop_oneof![-5i64..5, any::<i64>()], 1..300)) {
        let mut writer = BitWriter::default();
        sequence::write(&values, &mut writer, &mut sequence::Scratch::default());
        let bytes = finished(&writer);
        let mut reader = BitReader::new(&bytes);
        let mut back = vec![values[0]; values.len()];
        sequence::read(values[0], &mut reader, &mut back[1..])?;
        prop_assert_eq!(back, values);
    }

    /// XOR and the value codes give back every bit pattern.
    #[test]
    fn values_round_trip_bit_exactly(bits in prop::collection::vec(any::<u64>(), 1..300), tenths in prop::collection::vec(-5000i64..5000, 1..300)) {
        let decimal: Vec<f64> = tenths.iter().map(|&t| t as f64 / 10.0).collect();
        let random: Vec<f64> = bits.iter().map(|&b| f64::from_bits(b)).collect();
        for values in [decimal, random] {
            let mut writer = BitWriter::default();
            xor::write(&values, &mut writer);
            let bytes = finished(&writer);
            let mut back = vec![0.0; values.len()];
            xor::read(&mut BitReader::new(&bytes), &mut back)?;
            prop_assert_eq!(back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), values.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            let mut writer = BitWriter::default();
            values::write(&values, &mut writer, &mut values::Scratch::default());
            let bytes = finished(&writer);
            values::read(&mut BitReader::new(&bytes), &mut back, None)?;
            prop_assert_eq!(back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), values.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }

    /// A peek of any width at any offset is the bits there, one by one
    /// (zeros past the end): the one-word and the two-word reads agree.
    #[test]
    fn peeks_are_the_bits_one_by_one(bytes in prop::collection::vec(any::<u8>(), 0..24)) {
        let bit = |i: usize| bytes.get(i / 8).map_or(0, |b| u64::from(b >> (7 - i % 8) & 1));
        for at in 0..=bytes.len() * 8 {
            let mut reader = BitReader::new(&bytes);
            reader.skip(at as u32)?;
            for width in 1..=64u32 {
                let want = (0..width as usize).fold(0, |acc, i| acc << 1 | bit(at + i));
                prop_assert_eq!(reader.peek(width), want, "at {} width {}", at, width);
            }
        }
    }

    /// Reading a whole stream at once gives what reading it number by
    /// number does, and fails where that fails.
    #[test]
    fn a_stream_read_at_once_is_read_number_by_number(values in prop::collection::vec(prop_oneof![0u64..40, any::<u64>()], 1..100), cut in 0usize..64) {
        let widest = values.iter().map(|&v| super::packing::width(v)).max().unwrap_or(0);
        let fixed = [widest, 0, 1, 57, 64].map(Packing::Fixed);
        for packing in fixed.into_iter().chain([Packing::Buckets, Packing::Rice(2)]) {
            let mut writer = BitWriter::default();
            for &value in &values {
                packing.write(value, &mut writer);
            }
            let mut bytes = finished(&writer);
            bytes.truncate(bytes.len().saturating_sub(cut % 3));
            let (mut one, mut all) = (BitReader::new(&bytes), BitReader::new(&bytes));
            let singly: Result<Vec<u64>, ChunkError> = values.iter().map(|_| packing.read(&mut one)).collect();
            let mut at_once = vec![0; values.len()];
            prop_assert_eq!(packing.read_into(&mut all, &mut at_once).map(|()| at_once), singly);
        }
    }

    /// Composing a segment's values at once is composing each: on the
    /// fast path (exact mantissas and powers) and off it.
    #[test]
    fn composing_at_once_is_composing_each(
        mantissas in prop::collection::vec(prop_oneof![
            -100_000i64..100_000,
            Just(1i64 << 53), Just(-(1i64 << 53)), Just((1i64 << 53) + 1), Just(-(1i64 << 53) - 1),
            Just(i64::MIN), Just(i64::MAX), any::<i64>(),
        ], 1..64),
        exponent in prop_oneof![-24i32..24, -400i32..400],
    ) {
        let mut out = vec![0.0; mantissas.len()];
        compose_all(&mantissas, exponent, &mut out);
        for (&m, &v) in mantissas.iter().zip(&out) {
            prop_assert_eq!(v.to_bits(), compose(m, exponent).to_bits(), "{}e{}", m, exponent);
        }
    }

    /// compose is correctly rounded: it agrees with parsing the decimal text.
    #[test]
    fn compose_is_the_parsed_decimal(mantissa in any::<i64>(), exponent in -400i32..400) {
        let parsed: f64 = format!("{mantissa}e{exponent}").parse().unwrap();
        prop_assert_eq!(compose(mantissa, exponent).to_bits(), parsed.to_bits());
    }
}

#[test]
fn a_regular_sequence_costs_no_bits_per_number() {
    let values: Vec<i64> = (0..1024).map(|i| 1_700_000_000_000 + i * 10_000).collect();
    let mut writer = BitWriter::default();
    sequence::write(&values, &mut writer, &mut sequence::Scratch::default());
    // The order bit, the first step explicitly, zig-zag and Fixed(0).
    assert_eq!(writer.len(), 1 + (7 + 15) + 1 + 9);
}

fn decimals(values: &[f64]) -> Option<(i32, Vec<i64>, Vec<usize>)> {
    let mut decimals = Decimals::default();
    decimals.analyse(values).then(|| {
        (
            decimals.exponent,
            decimals.mantissas.clone(),
            decimals.exceptions.clone(),
        )
    })
}

#[test]
fn decimals_share_the_smallest_exponent() {
    assert_eq!(
        decimals(&[50.0, 50.1, 49.95]),
        Some((-2, vec![5000, 5010, 4995], vec![]))
    );
    assert_eq!(decimals(&[1000.0, 3000.0]), Some((3, vec![1, 3], vec![])));
    assert_eq!(decimals(&[0.0, 0.0]), Some((0, vec![0, 0], vec![])));
    assert_eq!(decimals(&[1e300, 2e300]), Some((300, vec![1, 2], vec![])));
    // Values far apart cannot share an exponent in an i64.
    assert_eq!(decimals(&[1e300, 1e-300]), None);
    // Subnormals have short decimals too.
    assert_eq!(
        decimals(&[5e-324, 1e-323]),
        Some((-324, vec![5, 10], vec![]))
    );
}

#[test]
fn values_without_a_mantissa_are_exceptions_with_a_neighbours_mantissa() {
    let mut values: Vec<f64> = (0..100).map(|i| f64::from(i) / 10.0).collect();
    values[0] = -0.0;
    values[50] = f64::from_bits(0x7ff0_0000_0000_0002); // Prometheus' stale marker
    values[60] = 0.1 + 0.2; // 17 digits, too many to share -1
    values[70] = f64::INFINITY;
    let (exponent, mantissas, exceptions) = decimals(&values).unwrap();
    assert_eq!(exponent, -1);
    assert_eq!(exceptions, [0, 50, 60, 70]);
    assert_eq!((mantissas[0], mantissas[50], mantissas[60]), (1, 49, 59));
    // Mostly exceptions: not decimal.
    assert_eq!(decimals(&[f64::NAN, f64::NAN, -0.0, 1.0]), None);
}
