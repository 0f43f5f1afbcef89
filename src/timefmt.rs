//! Time formatting for the chat log and the chat UI.
//!
//! Everything here is pure: times come in as numbers (Unix milliseconds, UTC offsets in
//! seconds) and never from the clock. The one exception, clearly marked, is
//! [`local_utc_offset_s`], which asks the operating system for the local time zone and is
//! meant to be called by the shell (`server`/`main`) only.
//!
//! RFC 3339 cannot express years outside `0000..=9999`; [`rfc3339_ms`] clamps times outside
//! that range to its ends.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The earliest instant [`rfc3339_ms`] can print: `0000-01-01T00:00:00.000Z`.
const MIN_UNIX_MS: i64 = -62_167_219_200_000;
/// The latest instant [`rfc3339_ms`] can print: `9999-12-31T23:59:59.999Z`.
const MAX_UNIX_MS: i64 = 253_402_300_799_999;

/// Formats `unix_ms` (milliseconds since the Unix epoch) as RFC 3339 in UTC with exactly three
/// fractional digits and a `Z`: `2026-11-27T00:24:40.123Z`.
///
/// Times before year 0 or after year 9999 are clamped to those years' ends.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339_ms(unix_ms, &mut out);
    out
}

/// Like [`rfc3339_ms`], but appends the 24 bytes to `out` (no allocation when `out` has room).
pub fn write_rfc3339_ms(unix_ms: i64, out: &mut String) {
    let unix_ms = unix_ms.clamp(MIN_UNIX_MS, MAX_UNIX_MS);
    let secs = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    // Cannot fail after the clamp; the fallback only keeps this function total.
    let dt = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    push_digits(out, i64::from(dt.year()), 4);
    out.push('-');
    push_digits(out, i64::from(u8::from(dt.month())), 2);
    out.push('-');
    push_digits(out, i64::from(dt.day()), 2);
    out.push('T');
    push_digits(out, i64::from(dt.hour()), 2);
    out.push(':');
    push_digits(out, i64::from(dt.minute()), 2);
    out.push(':');
    push_digits(out, i64::from(dt.second()), 2);
    out.push('.');
    push_digits(out, millis, 3);
    out.push('Z');
}

/// Appends the `width` lowest decimal digits of `value` (which must be non-negative), zero-padded.
fn push_digits(out: &mut String, value: i64, width: u32) {
    let mut div = 10_i64.pow(width.saturating_sub(1));
    while div > 0 {
        let digit = (value / div).rem_euclid(10) as u8;
        out.push(char::from(b'0' + digit));
        div /= 10;
    }
}

/// Formats the wall-clock time of `unix_ms` at the UTC offset `utc_offset_s` like Go's
/// `time.Kitchen`: `"3:04PM"`, `"12:00AM"`, `"11:59PM"` (hour 1–12 without a leading zero,
/// two-digit minutes, `AM`/`PM`).
pub fn kitchen(unix_ms: i64, utc_offset_s: i32) -> String {
    let local_s = unix_ms
        .div_euclid(1000)
        .saturating_add(i64::from(utc_offset_s));
    let second_of_day = local_s.rem_euclid(86_400);
    let hour24 = second_of_day / 3600;
    let minute = second_of_day % 3600 / 60;
    let hour12 = match hour24 % 12 {
        0 => 12,
        h => h,
    };
    let mut out = String::with_capacity(7);
    if hour12 >= 10 {
        push_digits(&mut out, hour12, 2);
    } else {
        push_digits(&mut out, hour12, 1);
    }
    out.push(':');
    push_digits(&mut out, minute, 2);
    out.push_str(if hour24 < 12 { "AM" } else { "PM" });
    out
}

/// The local calendar day of `unix_ms` at `utc_offset_s`, as days since the Unix epoch; two
/// instants are on the same local day when these are equal.
pub fn local_day(unix_ms: i64, utc_offset_s: i32) -> i64 {
    unix_ms
        .div_euclid(1000)
        .saturating_add(i64::from(utc_offset_s))
        .div_euclid(86_400)
}

/// The local date of `unix_ms` at `utc_offset_s` like Go's `Jan 2`: `"Nov 27"`, `"Dec 6"`
/// (English month abbreviation, day without a leading zero).
pub fn month_day(unix_ms: i64, utc_offset_s: i32) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = local_day(unix_ms.clamp(MIN_UNIX_MS, MAX_UNIX_MS), utc_offset_s) * 86_400;
    let dt = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let month = MONTHS[usize::from(u8::from(dt.month())).saturating_sub(1) % 12];
    format!("{month} {}", dt.day())
}

/// Parses an RFC 3339 timestamp with any UTC offset and an optional fraction of a second
/// (e.g. `2026-11-27T01:24:40.5+01:00`) into Unix milliseconds, rounding towards the past.
///
/// Returns a human-readable message when `s` is not a valid RFC 3339 timestamp. The message
/// does not repeat `s` (it may be long or hostile); callers add it where useful.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    let dt = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("invalid RFC 3339 timestamp: {e}"))?;
    let ms = dt.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).map_err(|_| "RFC 3339 timestamp out of range".to_string())
}

/// The local UTC offset in seconds at the instant `unix_ms` (0 if it cannot be determined,
/// e.g. when the process has several threads).
///
/// **Impure:** this is the one function in this module that consults the environment (the
/// system's time-zone data). Only the shell (`server`/`main`) calls it; everything else takes
/// the offset as a number.
pub fn local_utc_offset_s(unix_ms: i64) -> i32 {
    let secs = unix_ms.clamp(MIN_UNIX_MS, MAX_UNIX_MS).div_euclid(1000);
    let Ok(at) = OffsetDateTime::from_unix_timestamp(secs) else {
        return 0;
    };
    UtcOffset::local_offset_at(at).map_or(0, UtcOffset::whole_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-27T00:24:40.123Z
    const KNOWN_MS: i64 = 1_795_739_080_123;

    #[test]
    fn month_day_and_local_day() {
        assert_eq!(month_day(KNOWN_MS, 0), "Nov 27");
        assert_eq!(month_day(KNOWN_MS, -3600), "Nov 26");
        assert_eq!(month_day(0, 0), "Jan 1");
        assert_eq!(local_day(KNOWN_MS, 0), local_day(KNOWN_MS + 3_600_000, 0));
        assert_ne!(local_day(KNOWN_MS, 0), local_day(KNOWN_MS, -3600));
    }

    #[test]
    fn epoch() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1), "1970-01-01T00:00:00.001Z");
    }

    #[test]
    fn known_date() {
        assert_eq!(rfc3339_ms(KNOWN_MS), "2026-11-27T00:24:40.123Z");
        assert_eq!(
            rfc3339_ms(951_782_400_000 - 1),
            "2000-02-28T23:59:59.999Z",
            "day before the leap day"
        );
        assert_eq!(
            rfc3339_ms(951_782_400_000 + 86_400_000),
            "2000-03-01T00:00:00.000Z"
        );
    }

    #[test]
    fn before_epoch() {
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(-1000), "1969-12-31T23:59:59.000Z");
        assert_eq!(rfc3339_ms(-1001), "1969-12-31T23:59:58.999Z");
    }

    #[test]
    fn out_of_range_is_clamped() {
        assert_eq!(rfc3339_ms(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn write_variant_appends() {
        let mut s = String::from("ts=");
        write_rfc3339_ms(KNOWN_MS, &mut s);
        assert_eq!(s, "ts=2026-11-27T00:24:40.123Z");
        let cap = s.capacity();
        s.clear();
        write_rfc3339_ms(0, &mut s);
        assert_eq!(s.capacity(), cap, "no reallocation when there is room");
    }

    #[test]
    fn kitchen_midnight_noon_pm() {
        assert_eq!(kitchen(0, 0), "12:00AM");
        assert_eq!(kitchen(12 * 3_600_000, 0), "12:00PM");
        assert_eq!(kitchen(15 * 3_600_000 + 4 * 60_000, 0), "3:04PM");
        assert_eq!(kitchen(86_400_000 - 1, 0), "11:59PM");
        assert_eq!(kitchen(11 * 3_600_000 + 59 * 60_000 + 59_999, 0), "11:59AM");
        assert_eq!(kitchen(10 * 3_600_000 + 5 * 60_000, 0), "10:05AM");
        assert_eq!(kitchen(KNOWN_MS, 0), "12:24AM");
    }

    #[test]
    fn kitchen_offsets() {
        // 00:24 UTC is 7:24 PM the day before in New York (UTC-5) ...
        assert_eq!(kitchen(KNOWN_MS, -5 * 3600), "7:24PM");
        // ... and 1:24 AM in Paris (UTC+1), 5:54 AM in India (UTC+5:30).
        assert_eq!(kitchen(KNOWN_MS, 3600), "1:24AM");
        assert_eq!(kitchen(KNOWN_MS, 5 * 3600 + 1800), "5:54AM");
        // Before the epoch, with a negative offset.
        assert_eq!(kitchen(-1, -3600), "10:59PM");
        // Extreme inputs do not panic.
        let _ = kitchen(i64::MIN, i32::MIN);
        let _ = kitchen(i64::MAX, i32::MAX);
    }

    #[test]
    fn parse_utc_and_offsets() {
        assert_eq!(parse_rfc3339_ms("2026-11-27T00:24:40.123Z"), Ok(KNOWN_MS));
        assert_eq!(
            parse_rfc3339_ms("2026-11-27T01:24:40.123+01:00"),
            Ok(KNOWN_MS)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-26T19:24:40.123-05:00"),
            Ok(KNOWN_MS)
        );
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00-00:30"), Ok(1_800_000));
    }

    #[test]
    fn parse_fractions() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Ok(1500));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.123456789Z"), Ok(1123));
        // Rounds towards the past, also before the epoch.
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59.9999Z"), Ok(-1));
    }

    #[test]
    fn parse_round_trips() {
        for ms in [
            0,
            1,
            -1,
            KNOWN_MS,
            MIN_UNIX_MS,
            MAX_UNIX_MS,
            4_102_444_800_000,
        ] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Ok(ms), "{ms}");
        }
    }

    #[test]
    fn parse_invalid() {
        for s in [
            "",
            "yesterday",
            "2026-11-27",
            "2026-11-27T00:24:40",
            "2026-11-27T00:24:40.Z",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T00:24:40+25:00",
            "2026-11-27T00:24:40.123Z trailing",
            " 2026-11-27T00:24:40Z",
            "1795739080123",
        ] {
            let err = parse_rfc3339_ms(s);
            assert!(err.is_err(), "{s:?} parsed as {err:?}");
            assert!(err.unwrap_err().starts_with("invalid RFC 3339"), "{s:?}");
        }
    }

    #[test]
    fn local_offset_is_sane() {
        // Tests run on several threads, so this usually reports 0; either way it must be
        // a real offset and must not panic.
        let off = local_utc_offset_s(KNOWN_MS);
        assert!(off.abs() < 26 * 3600, "{off}");
        let _ = local_utc_offset_s(i64::MIN);
    }
}
