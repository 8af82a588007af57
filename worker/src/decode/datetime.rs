//! Dates, times and intervals.
//!
//! PostgreSQL counts dates in days and timestamps in microseconds from
//! 2000-01-01 (proleptic Gregorian calendar, no leap seconds). Years are
//! written as ISO 8601 astronomical years: 1 BC is "0000", 44 BC is "-0043";
//! years after 9999 take a "+" and as many digits as they need ("+10000-01-01",
//! ISO 8601's expanded form). ±infinity is written "infinity"/"-infinity".

use super::wire::{Reader, exact, push_i64, push_micros, push_padded, push_u64};

const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;
/// Days from 1970-01-01 to 2000-01-01.
const DAYS_1970_TO_2000: i64 = 10_957;
/// PostgreSQL accepts UTC offsets strictly inside ±16 hours.
const MAX_TZ_SECONDS: i32 = 16 * 3600;

/// Year, month (1–12), day (1–31) of a day count from 1970-01-01
/// (Howard Hinnant's `civil_from_days`, valid for the whole i64 range we use).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month.unsigned_abs(), day.unsigned_abs())
}

/// Appends an ISO 8601 year: "-0043", "0000", "2024", "+10000".
fn push_year(out: &mut Vec<u8>, year: i64) {
    if year < 0 {
        out.push(b'-');
        push_padded(out, year.unsigned_abs(), 4);
    } else if year > 9999 {
        out.push(b'+');
        push_u64(out, year.unsigned_abs());
    } else {
        push_padded(out, year.unsigned_abs(), 4);
    }
}

/// Appends `YYYY-MM-DD` for a day count from 2000-01-01.
fn push_date(out: &mut Vec<u8>, days_since_2000: i64) {
    let (y, m, d) = civil_from_days(days_since_2000 + DAYS_1970_TO_2000);
    push_year(out, y);
    out.push(b'-');
    push_padded(out, m, 2);
    out.push(b'-');
    push_padded(out, d, 2);
}

/// Appends `HH:MM:SS[.ffffff]` for microseconds since midnight (≥ 0).
fn push_time(out: &mut Vec<u8>, us: u64) {
    let us_per_sec = USECS_PER_SEC.unsigned_abs();
    let secs = us / us_per_sec;
    push_padded(out, secs / 3600, 2);
    out.push(b':');
    push_padded(out, secs / 60 % 60, 2);
    out.push(b':');
    push_padded(out, secs % 60, 2);
    push_micros(out, us % us_per_sec);
}

pub(super) fn date(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let days = i32::from_be_bytes(exact(raw)?);
    out.extend_from_slice(match days {
        i32::MAX => b"\"infinity\"",
        i32::MIN => b"\"-infinity\"",
        _ => {
            out.push(b'"');
            push_date(out, days.into());
            out.push(b'"');
            return Some(());
        }
    });
    Some(())
}

fn timestamp_with(out: &mut Vec<u8>, raw: &[u8], suffix: &[u8]) -> Option<()> {
    let us = i64::from_be_bytes(exact(raw)?);
    match us {
        i64::MAX => out.extend_from_slice(b"\"infinity\""),
        i64::MIN => out.extend_from_slice(b"\"-infinity\""),
        _ => {
            out.push(b'"');
            push_date(out, us.div_euclid(USECS_PER_DAY));
            out.push(b'T');
            push_time(out, us.rem_euclid(USECS_PER_DAY).unsigned_abs());
            out.extend_from_slice(suffix);
            out.push(b'"');
        }
    }
    Some(())
}

/// `timestamp`: "YYYY-MM-DDTHH:MM:SS[.ffffff]".
pub(super) fn timestamp(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    timestamp_with(out, raw, b"")
}

/// `timestamptz`: the UTC instant, "YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00".
pub(super) fn timestamptz(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    timestamp_with(out, raw, b"+00:00")
}

/// Microseconds since midnight, 0 to 24:00:00 inclusive.
fn time_of_day(us: i64) -> Option<u64> {
    if (0..=USECS_PER_DAY).contains(&us) {
        Some(us.unsigned_abs())
    } else {
        None
    }
}

/// `time`: "HH:MM:SS[.ffffff]".
pub(super) fn time(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let us = time_of_day(i64::from_be_bytes(exact(raw)?))?;
    out.push(b'"');
    push_time(out, us);
    out.push(b'"');
    Some(())
}

/// `timetz`: `HH:MM:SS[.ffffff]+HH:MM[:SS]`. The binary zone is in seconds
/// west of UTC; the offset printed is east of UTC, as in ISO 8601.
pub(super) fn timetz(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let mut r = Reader::new(raw);
    let us = time_of_day(r.i64()?)?;
    let west = r.i32()?;
    if !r.is_empty() || west.unsigned_abs() >= MAX_TZ_SECONDS.unsigned_abs() {
        return None;
    }
    out.push(b'"');
    push_time(out, us);
    let east = -west;
    out.push(if east < 0 { b'-' } else { b'+' });
    let abs = u64::from(east.unsigned_abs());
    push_padded(out, abs / 3600, 2);
    out.push(b':');
    push_padded(out, abs / 60 % 60, 2);
    if abs % 60 != 0 {
        out.push(b':');
        push_padded(out, abs % 60, 2);
    }
    out.push(b'"');
    Some(())
}

/// `interval`: ISO 8601 duration exactly as PostgreSQL prints it with
/// `intervalstyle = iso_8601` (`EncodeInterval`): each field carries its own
/// sign ("P-1Y-2M3DT-4H-5M-6S"), zero fields are left out, zero is "PT0S".
pub(super) fn interval(out: &mut Vec<u8>, raw: &[u8]) -> Option<()> {
    let mut r = Reader::new(raw);
    let time = r.i64()?;
    let days = r.i32()?;
    let months = r.i32()?;
    if !r.is_empty() {
        return None;
    }
    // PostgreSQL 17 has infinite intervals; print them as it does.
    if (time, days, months) == (i64::MAX, i32::MAX, i32::MAX) {
        out.extend_from_slice(b"\"infinity\"");
        return Some(());
    }
    if (time, days, months) == (i64::MIN, i32::MIN, i32::MIN) {
        out.extend_from_slice(b"\"-infinity\"");
        return Some(());
    }
    // Rust's `/` and `%` truncate toward zero like C's, as interval2itm does.
    let year = months / 12;
    let month = months % 12;
    let hour = time / USECS_PER_HOUR;
    let minute = time % USECS_PER_HOUR / USECS_PER_MINUTE;
    let sec = time % USECS_PER_MINUTE / USECS_PER_SEC;
    let fsec = time % USECS_PER_SEC;

    out.push(b'"');
    if year == 0 && month == 0 && days == 0 && time == 0 {
        out.extend_from_slice(b"PT0S\"");
        return Some(());
    }
    out.push(b'P');
    let part = |out: &mut Vec<u8>, v: i64, unit: u8| {
        if v != 0 {
            push_i64(out, v);
            out.push(unit);
        }
    };
    part(out, year.into(), b'Y');
    part(out, month.into(), b'M');
    part(out, days.into(), b'D');
    if time != 0 {
        out.push(b'T');
    }
    part(out, hour, b'H');
    part(out, minute, b'M');
    if sec != 0 || fsec != 0 {
        if sec < 0 || fsec < 0 {
            out.push(b'-');
        }
        push_u64(out, sec.unsigned_abs());
        push_micros(out, fsec.unsigned_abs());
        out.push(b'S');
    }
    out.push(b'"');
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: fn(&mut Vec<u8>, &[u8]) -> Option<()>, raw: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        f(&mut out, raw)?;
        Some(String::from_utf8(out).unwrap_or_else(|e| panic!("{e}")))
    }

    fn q(s: &str) -> Option<String> {
        Some(format!("\"{s}\""))
    }

    fn ts(us: i64) -> Option<String> {
        run(timestamp, &us.to_be_bytes())
    }

    fn d(days: i32) -> Option<String> {
        run(date, &days.to_be_bytes())
    }

    /// Days from 2000-01-01 to y-m-d, via chrono (an independent calendar).
    fn days_to(y: i32, m: u32, dd: u32) -> i32 {
        let base = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
        let day = chrono::NaiveDate::from_ymd_opt(y, m, dd)
            .unwrap_or_else(|| panic!("bad date {y}-{m}-{dd}"));
        i32::try_from(day.signed_duration_since(base).num_days()).unwrap_or_default()
    }

    #[test]
    fn dates() {
        assert_eq!(d(0), q("2000-01-01"));
        assert_eq!(d(-1), q("1999-12-31"));
        assert_eq!(d(days_to(2024, 2, 29)), q("2024-02-29"));
        // 44 BC is astronomical year -43.
        assert_eq!(d(days_to(-43, 3, 15)), q("-0043-03-15"));
        // 1 BC is year 0.
        assert_eq!(d(days_to(0, 12, 31)), q("0000-12-31"));
        // 4713-01-01 BC, PostgreSQL's earliest date.
        assert_eq!(d(-2_451_507), q("-4712-01-01"));
        assert_eq!(d(days_to(9999, 12, 31)), q("9999-12-31"));
        assert_eq!(d(days_to(10000, 1, 1)), q("+10000-01-01"));
        // 5874897-12-31, PostgreSQL's latest date.
        assert_eq!(d(2_145_031_948), q("+5874897-12-31"));
        assert_eq!(d(i32::MAX), q("infinity"));
        assert_eq!(d(i32::MIN), q("-infinity"));
        assert_eq!(run(date, &[0, 0, 0]), None);
        // Cross-check a span of days against chrono, one by one.
        let base = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
        // chrono prints years as ISO 8601 does: "-0043", "+10000".
        for days in (-4_000_000..4_000_000).step_by(997) {
            let want = (base + chrono::Duration::days(days.into()))
                .format("%Y-%m-%d")
                .to_string();
            assert_eq!(d(days), q(&want), "{days}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts(0), q("2000-01-01T00:00:00"));
        assert_eq!(ts(1), q("2000-01-01T00:00:00.000001"));
        assert_eq!(ts(-1), q("1999-12-31T23:59:59.999999"));
        assert_eq!(ts(USECS_PER_DAY - 500_000), q("2000-01-01T23:59:59.5"));
        let bc = i64::from(days_to(-43, 3, 15)) * USECS_PER_DAY
            + 12 * USECS_PER_HOUR
            + 30 * USECS_PER_MINUTE;
        assert_eq!(ts(bc), q("-0043-03-15T12:30:00"));
        // 4713-01-01 00:00:00 BC, PostgreSQL's earliest timestamp (from timestamp_send).
        assert_eq!(ts(-211_810_204_800_000_000), q("-4712-01-01T00:00:00"));
        // 294276-12-31 23:59:59.999999, PostgreSQL's latest timestamp.
        assert_eq!(
            ts(9_223_371_331_199_999_999),
            q("+294276-12-31T23:59:59.999999")
        );
        assert_eq!(ts(i64::MAX), q("infinity"));
        assert_eq!(ts(i64::MIN), q("-infinity"));
        assert_eq!(ts(i64::MIN + 1).map(|s| s.starts_with("\"-")), Some(true));
        assert_eq!(
            run(timestamptz, &0i64.to_be_bytes()),
            q("2000-01-01T00:00:00+00:00")
        );
        assert_eq!(run(timestamptz, &i64::MAX.to_be_bytes()), q("infinity"));
        assert_eq!(run(timestamp, &[0; 4]), None);
    }

    #[test]
    fn times() {
        let t = |us: i64| run(time, &us.to_be_bytes());
        assert_eq!(t(0), q("00:00:00"));
        assert_eq!(
            t(13 * USECS_PER_HOUR + 14 * USECS_PER_MINUTE + 15 * USECS_PER_SEC + 120_000),
            q("13:14:15.12")
        );
        assert_eq!(t(USECS_PER_DAY), q("24:00:00"));
        assert_eq!(t(USECS_PER_DAY + 1), None);
        assert_eq!(t(-1), None);

        let tz = |us: i64, west: i32| {
            let mut raw = us.to_be_bytes().to_vec();
            raw.extend_from_slice(&west.to_be_bytes());
            run(timetz, &raw)
        };
        let noon = 12 * USECS_PER_HOUR;
        assert_eq!(tz(noon, 0), q("12:00:00+00:00"));
        // UTC+05:30 is stored as 19800 seconds *west* negated.
        assert_eq!(tz(noon, -19_800), q("12:00:00+05:30"));
        assert_eq!(tz(noon + 1, 8 * 3600), q("12:00:00.000001-08:00"));
        assert_eq!(tz(noon, -(3600 + 2 * 60 + 3)), q("12:00:00+01:02:03"));
        assert_eq!(tz(noon, 16 * 3600), None);
        assert_eq!(run(timetz, &[0; 8]), None);
    }

    fn iv(time: i64, days: i32, months: i32) -> Option<String> {
        let mut raw = time.to_be_bytes().to_vec();
        raw.extend_from_slice(&days.to_be_bytes());
        raw.extend_from_slice(&months.to_be_bytes());
        run(interval, &raw)
    }

    #[test]
    fn intervals_match_postgres_iso_8601() {
        // (text with intervalstyle = iso_8601, interval_send output) from PostgreSQL 15.
        let cases = [
            ("P1Y2M3DT4H5M6.5S", "000000036c9361a0000000030000000e"),
            ("PT0S", "00000000000000000000000000000000"),
            ("P-1Y-2M3DT-4H-5M-6S", "fffffffc93743f8000000003fffffff2"),
            ("PT-0.5S", "fffffffffff85ee00000000000000000"),
            ("PT-1.000001S", "fffffffffff0bdbf0000000000000000"),
            ("PT100000H", "0001476b081e80000000000000000000"),
            ("P1M-1D", "0000000000000000ffffffff00000001"),
            ("PT0.000001S", "00000000000000010000000000000000"),
            ("P-178956970Y-8M", "00000000000000000000000080000000"),
            ("PT59S", "00000000038444c00000000000000000"),
        ];
        for (text, bin) in cases {
            let raw: Vec<u8> = (0..bin.len())
                .step_by(2)
                .map(|i| {
                    u8::from_str_radix(bin.get(i..i + 2).unwrap_or("zz"), 16)
                        .unwrap_or_else(|e| panic!("{e}"))
                })
                .collect();
            assert_eq!(run(interval, &raw), q(text), "{bin}");
        }
        assert_eq!(iv(i64::MIN, 0, 0), q("PT-2562047788H-54.775808S"));
        assert_eq!(iv(0, 0, 12), q("P1Y"));
        assert_eq!(iv(USECS_PER_MINUTE, 0, 0), q("PT1M"));
        assert_eq!(iv(i64::MAX, i32::MAX, i32::MAX), q("infinity"));
        assert_eq!(iv(i64::MIN, i32::MIN, i32::MIN), q("-infinity"));
        assert_eq!(run(interval, &[0; 15]), None);
        assert_eq!(run(interval, &[0; 17]), None);
    }
}
