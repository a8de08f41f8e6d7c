//! When an X.509 certificate is valid: its `notBefore` and `notAfter`,
//! read from the DER with the few steps the fixed start of a certificate
//! needs (rustls checks the peer's certificates, never our own, and a
//! server must not start with an expired one).

/// A certificate's validity period, in seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Validity {
    pub(super) not_before: i64,
    pub(super) not_after: i64,
}

/// Reads the validity period; `None` when `der` is not a certificate.
pub(super) fn validity(der: &[u8]) -> Option<Validity> {
    let (certificate, _) = element(der, SEQUENCE)?;
    let (tbs, _) = element(certificate, SEQUENCE)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, absent in v1 certificates.
    if rest.first() == Some(&0xA0) {
        rest = element(rest, 0xA0)?.1;
    }
    rest = element(rest, INTEGER)?.1; // serialNumber
    rest = element(rest, SEQUENCE)?.1; // signature algorithm
    rest = element(rest, SEQUENCE)?.1; // issuer
    let (validity, _) = element(rest, SEQUENCE)?;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    Some(Validity {
        not_before,
        not_after,
    })
}

/// `seconds` since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn format_time(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The content of the element of type `tag` at the start of `input`, and
/// what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (content, rest) = content(rest)?;
    Some((content, rest))
}

fn content(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let len = rest[..octets]
            .iter()
            .fold(0usize, |len, &b| len << 8 | usize::from(b));
        (len, &rest[octets..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A UTCTime or GeneralizedTime (`Z` form, as RFC 5280 requires).
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (&tag, _) = input.split_first()?;
    let (text, rest) = element(input, tag)?;
    let (year, text) = match tag {
        UTC_TIME => {
            let yy = digits(text.get(..2)?)?;
            // RFC 5280: two-digit years 50-99 are 19xx, 00-49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        GENERALIZED_TIME => (digits(text.get(..4)?)?, &text[4..]),
        _ => return None,
    };
    if text.len() != 11 || text[10] != b'Z' {
        return None;
    }
    let field = |at: usize| digits(&text[at..at + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + minute * 60 + second, rest))
}

fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of a minimal TBS prefix around the given validity times.
    fn certificate(not_before: &[u8], not_after: &[u8]) -> Vec<u8> {
        fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            if content.len() < 0x80 {
                out.push(content.len() as u8);
            } else {
                out.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
            }
            out.extend_from_slice(content);
            out
        }
        let mut tbs = wrap(0xA0, &wrap(INTEGER, &[2]));
        tbs.extend(wrap(INTEGER, &[1, 2, 3]));
        tbs.extend(wrap(SEQUENCE, &[]));
        tbs.extend(wrap(SEQUENCE, &[0; 200]));
        let mut times = wrap(UTC_TIME, not_before);
        times.extend(wrap(GENERALIZED_TIME, not_after));
        tbs.extend(wrap(SEQUENCE, &times));
        wrap(SEQUENCE, &wrap(SEQUENCE, &tbs))
    }

    #[test]
    fn reads_both_time_forms() {
        let der = certificate(b"700101000000Z", b"20380119031407Z");
        let first = validity(&der).unwrap();
        assert_eq!(first.not_before, 0);
        assert_eq!(first.not_after, i32::MAX as i64);
        assert_eq!(format_time(first.not_after), "2038-01-19 03:14:07 UTC");
        let der = certificate(b"491231235959Z", b"20000229120000Z");
        let second = validity(&der).unwrap();
        assert_eq!(format_time(second.not_before), "2049-12-31 23:59:59 UTC");
        assert_eq!(format_time(second.not_after), "2000-02-29 12:00:00 UTC");
    }

    #[test]
    fn refuses_what_is_not_a_certificate() {
        assert_eq!(validity(b""), None);
        assert_eq!(validity(b"-----BEGIN"), None);
        let der = certificate(b"700101000000Z", b"2038011903140Z");
        assert_eq!(validity(&der), None);
        let der = certificate(b"701301000000Z", b"20380119031407Z");
        assert_eq!(validity(&der), None);
        let mut der = certificate(b"700101000000Z", b"20380119031407Z");
        der.truncate(der.len() - 3);
        assert_eq!(validity(&der), None);
    }
}
