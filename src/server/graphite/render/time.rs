//! Graphite's time syntax (sans-IO), as graphite-web's `attime` reads it,
//! in UTC: `now`, epoch seconds, `-1h` and other offsets (`s`, `min`, `h`,
//! `d`, `w`, `mon` = 30 days, `y` = 365 days), `HH:MM_YYYYMMDD`,
//! `YYYYMMDD`, `MM/DD/YY[YY]`, `today`/`yesterday`/`tomorrow`, `noon`,
//! `midnight`, `teatime`, `3pm`, month and weekday names, each optionally
//! followed by an offset (`midnight-1d`). Grafana sends `now`, `-5min`
//! style offsets and epoch seconds.

/// Why a time or interval cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("unknown time reference {0:?}")]
    Reference(String),
    #[error("bad time offset {0:?}: use a signed number and unit, such as -1h or +30min")]
    Offset(String),
    #[error("time {0:?} is out of range")]
    Range(String),
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const DAY: i64 = 86_400;

/// Reads a `from`/`until`/`now` value into epoch seconds.
pub fn parse_time(text: &str, now: i64) -> Result<i64, TimeError> {
    let s: String = text
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let date_like = s.len() == 8
            && s[..4].parse::<u32>().is_ok_and(|y| y > 1900)
            && s[4..6].parse::<u32>().is_ok_and(|m| m < 13)
            && s[6..].parse::<u32>().is_ok_and(|d| d < 32);
        if !date_like {
            return s.parse().map_err(|_| TimeError::Range(text.to_owned()));
        }
    }
    let (reference, offset) = match s.find('+').or_else(|| s.find('-')) {
        Some(at) => s.split_at(at),
        None => (s.as_str(), ""),
    };
    let base = parse_reference(reference, now, text)?;
    base.checked_add(parse_offset(offset)?)
        .ok_or_else(|| TimeError::Range(text.to_owned()))
}

/// Reads an offset or interval (`-1h`, `5min`, `+2d3h`) into seconds.
pub fn parse_offset(text: &str) -> Result<i64, TimeError> {
    let bad = || TimeError::Offset(text.to_owned());
    let mut rest = text;
    if rest.is_empty() {
        return Ok(0);
    }
    let sign = match rest.as_bytes()[0] {
        b'+' => {
            rest = &rest[1..];
            1
        }
        b'-' => {
            rest = &rest[1..];
            -1
        }
        b if b.is_ascii_digit() => 1,
        _ => return Err(bad()),
    };
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let seconds = unit_seconds(unit).ok_or_else(bad)?;
        total = number
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
    }
    Ok(sign * total)
}

/// graphite's `getUnitString`: units by prefix, tried in this order.
fn unit_seconds(unit: &str) -> Option<i64> {
    Some(if unit.starts_with('s') {
        1
    } else if unit.starts_with("min") {
        60
    } else if unit.starts_with('h') {
        3600
    } else if unit.starts_with('d') {
        DAY
    } else if unit.starts_with('w') {
        7 * DAY
    } else if unit.starts_with("mon") {
        30 * DAY
    } else if unit.starts_with('y') {
        365 * DAY
    } else {
        return None;
    })
}

fn parse_reference(reference: &str, now: i64, text: &str) -> Result<i64, TimeError> {
    if reference.is_empty() || reference == "now" {
        return Ok(now);
    }
    let bad = || TimeError::Reference(text.to_owned());
    let number = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let mut rest = reference;
    let (mut hour, mut minute) = (0, 0);
    if let Some(i) = rest.find(':').filter(|&i| 0 < i && i < 3) {
        hour = number(&rest[..i])?;
        minute = number(rest.get(i + 1..i + 3).ok_or_else(bad)?)?;
        rest = &rest[i + 3..];
        if let Some(r) = rest.strip_prefix("am") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("pm") {
            hour = (hour + 12) % 24;
            rest = r;
        }
    }
    if let Some(i) = rest.find("am").filter(|&i| 0 < i && i < 3) {
        hour = number(&rest[..i])?;
        rest = &rest[i + 2..];
    }
    if let Some(i) = rest.find("pm").filter(|&i| 0 < i && i < 3) {
        hour = (number(&rest[..i])? + 12) % 24;
        rest = &rest[i + 2..];
    }
    for (word, h) in [("noon", 12), ("midnight", 0), ("teatime", 16)] {
        if let Some(r) = rest.strip_prefix(word) {
            (hour, minute) = (h, 0);
            rest = r;
            break;
        }
    }
    if !(0..24).contains(&hour) || !(0..60).contains(&minute) {
        return Err(bad());
    }
    let today = now.div_euclid(DAY);
    let clock = hour * 3600 + minute * 60;
    let (year, _, _) = civil_from_days(today);
    // The first three bytes name a month or weekday; `get` because the
    // text may be any UTF-8 (slicing at a byte inside a character panics).
    let prefix = rest.get(..3).unwrap_or("");
    let days = match rest {
        "" | "today" => today,
        "yesterday" => today - 1,
        "tomorrow" => today + 1,
        _ if rest.matches('/').count() == 2 => {
            let mut parts = rest.split('/');
            let (m, d, y) = (
                number(parts.next().unwrap_or(""))?,
                number(parts.next().unwrap_or(""))?,
                number(parts.next().unwrap_or(""))?,
            );
            let y = if y < 1900 { y + 1900 } else { y };
            let y = if y < 1970 { y + 100 } else { y };
            date(y, m, d).ok_or_else(bad)?
        }
        _ if rest.len() == 8 && rest.bytes().all(|b| b.is_ascii_digit()) => date(
            number(&rest[..4])?,
            number(&rest[4..6])?,
            number(&rest[6..])?,
        )
        .ok_or_else(bad)?,
        _ if MONTHS.contains(&prefix) => {
            let month = MONTHS.iter().position(|m| *m == prefix).unwrap_or(0) as i64 + 1;
            let tail = rest.as_bytes();
            let day = if tail.len() >= 2 && tail[tail.len() - 2..].iter().all(u8::is_ascii_digit) {
                number(&rest[rest.len() - 2..])?
            } else if tail.last().is_some_and(u8::is_ascii_digit) {
                number(&rest[rest.len() - 1..])?
            } else {
                return Err(bad());
            };
            date(year, month, day).ok_or_else(bad)?
        }
        _ if WEEKDAYS.contains(&prefix) => {
            // 1970-01-01 was a Thursday (index 4 from Sunday).
            let weekday = (today + 4).rem_euclid(7);
            let wanted = WEEKDAYS.iter().position(|d| *d == prefix).unwrap_or(0) as i64;
            today - (weekday - wanted).rem_euclid(7)
        }
        _ => return Err(bad()),
    };
    days.checked_mul(DAY)
        .and_then(|s| s.checked_add(clock))
        .ok_or_else(|| TimeError::Range(text.to_owned()))
}

/// Days since 1970-01-01 of a valid date.
fn date(year: i64, month: i64, day: i64) -> Option<i64> {
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if !(1..=9999).contains(&year) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `days_from_civil`.
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's `civil_from_days`: (year, month, day).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (the CSV format's timestamps).
pub(crate) fn format_utc(seconds: i64) -> String {
    let (y, mo, d) = civil_from_days(seconds.div_euclid(DAY));
    let s = seconds.rem_euclid(DAY);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-06 14:30:15 UTC, a Sunday.
    const NOW: i64 = 1_796_567_415;

    #[test]
    fn what_grafana_sends() {
        assert_eq!(civil_from_days(NOW / DAY), (2026, 12, 6));
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("-1h", NOW), Ok(NOW - 3600));
        assert_eq!(parse_time("-5min", NOW), Ok(NOW - 300));
        assert_eq!(parse_time("now-7d", NOW), Ok(NOW - 7 * DAY));
        assert_eq!(parse_time("1700000000", NOW), Ok(1_700_000_000));
        assert_eq!(parse_time("-1mon", NOW), Ok(NOW - 30 * DAY));
        assert_eq!(parse_time("-1y2d", NOW), Ok(NOW - 367 * DAY));
    }

    #[test]
    fn absolute_references() {
        let midnight = NOW - NOW % DAY;
        assert_eq!(
            parse_time("14:30_20261206", NOW),
            Ok(midnight + 14 * 3600 + 1800)
        );
        assert_eq!(parse_time("20261206", NOW), Ok(midnight));
        assert_eq!(parse_time("12/06/2026", NOW), Ok(midnight));
        assert_eq!(parse_time("12/06/26", NOW), Ok(midnight));
        assert_eq!(parse_time("midnight", NOW), Ok(midnight));
        assert_eq!(
            parse_time("noon yesterday", NOW),
            Ok(midnight - DAY + 12 * 3600)
        );
        assert_eq!(parse_time("3pm", NOW), Ok(midnight + 15 * 3600));
        assert_eq!(
            parse_time("teatime-1d", NOW),
            Ok(midnight - DAY + 16 * 3600)
        );
        assert_eq!(parse_time("dec1", NOW), Ok(midnight - 5 * DAY));
        assert_eq!(parse_time("friday", NOW), Ok(midnight - 2 * DAY));
        assert_eq!(parse_time("sunday", NOW), Ok(midnight));
        assert_eq!(format_utc(NOW), "2026-12-06 14:30:15");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59");
    }

    #[test]
    fn bad_times_say_why() {
        assert!(matches!(
            parse_time("soon", NOW),
            Err(TimeError::Reference(_))
        ));
        assert!(matches!(parse_time("-1m", NOW), Err(TimeError::Offset(_))));
        assert!(matches!(parse_time("-h", NOW), Err(TimeError::Offset(_))));
        assert!(matches!(
            parse_time("20261332", NOW),
            Err(TimeError::Range(_)) | Ok(_)
        ));
        assert!(matches!(
            parse_time("02/30/2026", NOW),
            Err(TimeError::Reference(_))
        ));
        assert!(parse_time("99999999999999999999999", NOW).is_err());
        // Non-ASCII text where a month or weekday name may start.
        assert!(matches!(
            parse_time("ééé", NOW),
            Err(TimeError::Reference(_))
        ));
        assert!(parse_time("-99999999999999y", NOW).is_err());
        assert_eq!(parse_offset("1h"), Ok(3600));
        assert_eq!(parse_offset("5min"), Ok(300));
    }
}
