//! Moderation durations (`30m`, `12h`, `7d`) and the time stamps shown for them.

/// The longest accepted duration: 10 years, in milliseconds.
pub const MAX_DURATION_MS: u64 = 3650 * 86_400_000;

/// Parses a duration: a whole number of at least 1 followed by one unit, `s` (seconds), `m`
/// (minutes), `h` (hours), `d` (days) or `w` (weeks), lower or upper case. Returns
/// milliseconds; `None` for anything else, zero, or more than [`MAX_DURATION_MS`].
pub fn parse_duration(text: &str) -> Option<u64> {
    let unit = text.chars().last()?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let unit_ms: u64 = match unit.to_ascii_lowercase() {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    let ms = n.checked_mul(unit_ms)?;
    (1..=MAX_DURATION_MS).contains(&ms).then_some(ms)
}

/// True when a word is meant as a duration (it starts with a digit), valid or not: `/ban X
/// 5x reason` is an invalid duration, not a reason that starts with `5x`.
pub fn looks_like_duration(word: &str) -> bool {
    word.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// A moment shown to users: RFC 3339 in UTC to the second, `2026-12-06T15:04:05Z`.
pub fn format_until(unix_ms: i64) -> String {
    let mut s = crate::timefmt::rfc3339_ms(unix_ms.div_euclid(1000) * 1000);
    // `...T15:04:05.000Z` → `...T15:04:05Z`
    if let Some(dot) = s.rfind('.') {
        s.truncate(dot);
        s.push('Z');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("30m"), Some(30 * 60_000));
        assert_eq!(parse_duration("12h"), Some(12 * 3_600_000));
        assert_eq!(parse_duration("7d"), Some(7 * 86_400_000));
        assert_eq!(parse_duration("1s"), Some(1000));
        assert_eq!(parse_duration("2W"), Some(14 * 86_400_000));
        assert_eq!(parse_duration("3650d"), Some(MAX_DURATION_MS));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "m",
            "0m",
            "30",
            "30x",
            "-5m",
            "+5m",
            "5 m",
            "1.5h",
            "3651d",
            "99999999999999d",
            "5mm",
            "é",
            "5é",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn until_is_utc_seconds() {
        // 2026-12-06T15:04:05.678Z
        assert_eq!(format_until(1_796_569_445_678), "2026-12-06T15:04:05Z");
    }
}
