//! A cheap check on a raw log line before its JSON parse: a necessary condition for a hit.
//!
//! Every check here may let a line through that turns out not to be a hit (the parsed record
//! is checked by [`Filter::matches`] afterwards), but never rejects a hit. The log writer puts
//! `ts` first and `kind` right after `seq`, and writes a string verbatim unless it holds `"`,
//! `\`, a control character, U+0085, U+2028 or U+2029; a value the checks rely on being
//! verbatim is checked for those first, and the check is left out otherwise.

use super::Filter;
use crate::log_store::LineFilter;
use crate::timefmt::parse_rfc3339_ms;
use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::literal::Extractor;

/// The record kinds a search can hit.
const HIT_KINDS: [&[u8]; 4] = [b"chat\"", b"action\"", b"private\"", b"announcement\""];

/// The checks that apply to one search.
#[derive(Debug)]
pub(super) struct Prefilter {
    /// `want"` in any ASCII case, for the channel filter (the value ends with it).
    channel: Option<Regex>,
    /// `want"` in any ASCII case, for the nick filter.
    nick: Option<Regex>,
    since: Option<i64>,
    until: Option<i64>,
    /// One of the literals every match of the pattern starts with must be in the line.
    literals: Option<Regex>,
    /// The pattern itself, run on the raw `text` value when that is written verbatim.
    pattern: Option<regex::Regex>,
}

impl Prefilter {
    pub(super) fn new(filter: &Filter) -> Prefilter {
        let value_end = |v: &Option<String>| {
            let v = v.as_deref().filter(|v| is_verbatim(v.as_bytes()))?;
            // Case-insensitive for ASCII letters only, like the filter itself.
            RegexBuilder::new(&format!("(?i-u:{})\"", regex::escape(v)))
                .unicode(false)
                .build()
                .ok()
        };
        Prefilter {
            channel: value_end(&filter.channel),
            nick: value_end(&filter.nick),
            since: filter.since,
            until: filter.until,
            literals: filter.regex.as_ref().and_then(|re| literals(re.as_str())),
            pattern: filter.regex.clone(),
        }
    }

    /// False only for a line that cannot be a hit.
    pub(super) fn check(&self, line: &[u8]) -> bool {
        if !kind_can_hit(line) {
            return false;
        }
        if (self.since.is_some() || self.until.is_some()) && !self.ts_in_range(line) {
            return false;
        }
        if self.literals.as_ref().is_some_and(|re| !re.is_match(line)) {
            return false;
        }
        if let (Some(re), Some(text)) = (&self.pattern, verbatim_text(line)) {
            if !re.is_match(text) {
                return false;
            }
        }
        let has = |needle: &Option<Regex>| needle.as_ref().is_none_or(|re| re.is_match(line));
        has(&self.channel) && has(&self.nick)
    }

    /// False when the line's leading `ts` is readable and outside `since..until`.
    fn ts_in_range(&self, line: &[u8]) -> bool {
        let Some(rest) = line.strip_prefix(b"{\"ts\":\"") else {
            return true;
        };
        let Some(end) = rest.iter().take(40).position(|&b| b == b'"') else {
            return true;
        };
        let Some(ts) = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|s| parse_rfc3339_ms(s).ok())
        else {
            return true;
        };
        !(self.since.is_some_and(|s| ts < s) || self.until.is_some_and(|u| ts >= u))
    }
}

impl LineFilter for Prefilter {
    /// Jumps to the next occurrence of something every hit holds (one of the pattern's
    /// literals, the nick, the channel): the lines before it cannot be hits.
    fn next_candidate(&self, buf: &[u8], from: usize) -> Option<usize> {
        let jump = self
            .literals
            .as_ref()
            .or(self.nick.as_ref())
            .or(self.channel.as_ref());
        match jump {
            Some(re) => re.find_at(buf, from).map(|m| m.start()),
            None => Some(from),
        }
    }

    fn candidate(&self, line: &[u8]) -> bool {
        self.check(line)
    }
}

/// False when the line's `kind` is readable and is none that a search can hit.
fn kind_can_hit(line: &[u8]) -> bool {
    const KEY: &[u8] = b",\"kind\":\"";
    // `kind` follows `ts` and `seq`, well within the first 80 bytes.
    let head = &line[..line.len().min(80)];
    let Some(at) = head.windows(KEY.len()).position(|w| w == KEY) else {
        return true;
    };
    let value = &line[at + KEY.len()..];
    HIT_KINDS.iter().any(|k| value.starts_with(k))
}

/// The line's `text` value when it holds no escape (then it is the text itself).
fn verbatim_text(line: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"text\":\"";
    // Inside a JSON string every `"` is escaped, so `"text":"` can only be the key.
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = line[at..].iter().position(|&b| b == b'"' || b == b'\\')?;
    if line[at + len] != b'"' {
        return None;
    }
    std::str::from_utf8(&line[at..at + len]).ok()
}

/// Whether the JSON writer writes `s` as it is (see the module docs).
fn is_verbatim(s: &[u8]) -> bool {
    const LINE_BREAKS: [&[u8]; 3] = [b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9"];
    !s.is_empty()
        && s.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
        && !LINE_BREAKS
            .iter()
            .any(|lb| s.windows(lb.len()).any(|w| w == *lb))
}

/// A regex for "one of the literals every match of `pattern` starts with", when there is a
/// finite set of non-empty ones that the JSON writer writes verbatim.
fn literals(pattern: &str) -> Option<Regex> {
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .ok()?;
    let seq = Extractor::new().extract(&hir);
    let lits = seq.literals()?;
    if lits.is_empty() {
        return None;
    }
    let mut alternation = String::new();
    for lit in lits {
        let bytes = lit.as_bytes();
        if !is_verbatim(bytes) {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        if !alternation.is_empty() {
            alternation.push('|');
        }
        alternation.push_str(&regex::escape(text));
    }
    RegexBuilder::new(&alternation)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(kind: &str, fields: &str) -> String {
        format!("{{\"ts\":\"2026-11-27T00:24:40.123Z\",\"seq\":7,\"kind\":\"{kind}\",{fields}}}")
    }

    fn filter(pattern: &str, channel: Option<&str>, nick: Option<&str>) -> Filter {
        Filter {
            regex: (!pattern.is_empty()).then(|| regex::Regex::new(pattern).unwrap()),
            channel: channel.map(str::to_owned),
            nick: nick.map(str::to_owned),
            since: None,
            until: None,
        }
    }

    #[test]
    fn literal_prefixes_reject_lines_without_them() {
        let chat = line(
            "chat",
            r##""nick":"Alice","channel":"#General","text":"hello world""##,
        );
        let yes = [
            "hello",
            "wor",
            "(?i)HELLO",
            "hel+o",
            "hello|nothing",
            "^hello",
        ];
        for p in yes {
            assert!(
                Prefilter::new(&filter(p, None, None)).check(chat.as_bytes()),
                "{p}"
            );
        }
        for p in ["goodbye", "(?i)xyz", "zz+"] {
            assert!(
                !Prefilter::new(&filter(p, None, None)).check(chat.as_bytes()),
                "{p}"
            );
        }
        // No usable literal: everything is a candidate.
        for p in [".*", r"\w+", "a?", "\"quoted\""] {
            assert!(
                Prefilter::new(&filter(p, None, None)).literals.is_none(),
                "{p}"
            );
        }
    }

    #[test]
    fn pattern_on_the_raw_text() {
        let plain = line("chat", r##""nick":"a","channel":"#g","text":"abc 12345""##);
        let escaped = line(
            "chat",
            r##""nick":"a","channel":"#g","text":"say \"12345\"""##,
        );
        assert_eq!(verbatim_text(plain.as_bytes()), Some("abc 12345"));
        assert_eq!(verbatim_text(escaped.as_bytes()), None);
        let digits = Prefilter::new(&filter(r"\d{5}$", None, None));
        assert!(digits.check(plain.as_bytes()));
        let nine = Prefilter::new(&filter(r"\d9", None, None));
        assert!(!nine.check(plain.as_bytes()));
        // With an escape in the text the pattern is left to the parsed record.
        assert!(nine.check(escaped.as_bytes()));
    }

    #[test]
    fn kinds_channels_and_nicks() {
        let chat = line(
            "chat",
            r##""nick":"Alice","channel":"#General","text":"hi""##,
        );
        let join = line("join", r##""nick":"Alice","channel":"#General""##);
        let none = Prefilter::new(&filter("", None, None));
        assert!(none.check(chat.as_bytes()));
        assert!(!none.check(join.as_bytes()));
        assert!(none.check(b"not json at all"));
        assert!(Prefilter::new(&filter("", Some("general"), Some("ALICE"))).check(chat.as_bytes()));
        assert!(!Prefilter::new(&filter("", Some("gen"), None)).check(chat.as_bytes()));
        assert!(!Prefilter::new(&filter("", None, Some("bob"))).check(chat.as_bytes()));
    }

    #[test]
    fn non_ascii_nicks_match_exactly_except_for_ascii_case() {
        let chat = line("chat", r##""nick":"JOSé","channel":"#g","text":"hi""##);
        assert!(Prefilter::new(&filter("", None, Some("josé"))).check(chat.as_bytes()));
        assert!(!Prefilter::new(&filter("", None, Some("josÉ"))).check(chat.as_bytes()));
    }

    #[test]
    fn time_range() {
        let chat = line("chat", r##""nick":"a","channel":"#g","text":"hi""##);
        let at = parse_rfc3339_ms("2026-11-27T00:24:40.123Z").unwrap();
        let mut f = filter("", None, None);
        f.since = Some(at);
        assert!(Prefilter::new(&f).check(chat.as_bytes()));
        f.since = Some(at + 1);
        assert!(!Prefilter::new(&f).check(chat.as_bytes()));
        f.since = None;
        f.until = Some(at);
        assert!(!Prefilter::new(&f).check(chat.as_bytes()));
    }
}
