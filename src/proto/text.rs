//! Text rules for one line of user input, shared by telnet and WebSocket.
//!
//! [`clean_line`] checks UTF-8, removes control characters and terminal escape
//! sequences, and trims spaces and tabs at both ends. The point is that no user
//! can clear, move the cursor of, or retitle another user's terminal.
//!
//! Removed: C0 controls except TAB (U+0000–U+0008, U+000A–U+001F), DEL, C1
//! controls (U+0080–U+009F), and whole escape sequences:
//! - `ESC [` (or U+009B) CSI: parameter/intermediate bytes up to a final byte 0x40–0x7E;
//! - `ESC ]` (or U+009D) OSC: up to BEL, `ESC \` or U+009C;
//! - `ESC P`/`X`/`^`/`_` (or U+0090/U+0098/U+009E/U+009F) DCS/SOS/PM/APC: up to `ESC \` or U+009C;
//! - any other `ESC`, optional intermediate bytes 0x20–0x2F, then one final byte.
//!
//! An unterminated sequence runs to the end of the line. A sequence broken by a
//! character it cannot contain ends there, and that character is processed
//! afresh (so `ESC é` keeps the `é`).

use std::borrow::Cow;

/// Why a line was rejected.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum LineError {
    /// The bytes are not valid UTF-8.
    InvalidUtf8,
}

/// Validate UTF-8, remove control characters and terminal escape sequences, trim
/// ASCII whitespace (space, TAB) at both ends.
///
/// Borrows from `raw` when nothing but trimming was needed (the common case
/// does not allocate).
pub fn clean_line(raw: &[u8]) -> Result<Cow<'_, str>, LineError> {
    let text = std::str::from_utf8(raw).map_err(|_| LineError::InvalidUtf8)?;
    if !text.chars().any(is_removed_control) {
        return Ok(Cow::Borrowed(trim(text)));
    }
    let mut out = String::with_capacity(text.len());
    let mut state = Escape::None;
    for c in text.chars() {
        state = step(state, c, &mut out);
    }
    let trimmed = trim(&out);
    if trimmed.len() == out.len() {
        Ok(Cow::Owned(out))
    } else {
        Ok(Cow::Owned(trimmed.to_owned()))
    }
}

/// Trim spaces and tabs at both ends.
fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// A control character that never survives: every Cc character except TAB.
fn is_removed_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

const ESC: char = '\u{1b}';
const BEL: char = '\u{07}';
/// C1 String Terminator.
const ST: char = '\u{9c}';

/// Where we are inside a terminal escape sequence.
#[derive(Clone, Copy)]
enum Escape {
    /// Plain text.
    None,
    /// Just after ESC.
    Esc,
    /// ESC followed by intermediate bytes 0x20–0x2F, waiting for the final byte.
    Intermediate,
    /// Control Sequence: parameters and intermediates until a final byte.
    Csi,
    /// Operating System Command string: until BEL or ST.
    Osc,
    /// DCS, SOS, PM or APC string: until ST.
    Str,
    /// ESC seen inside an OSC/DCS/SOS/PM/APC string (maybe the start of `ESC \`).
    StrEsc,
}

/// Process one character in `state`, appending it to `out` if it is kept.
fn step(state: Escape, c: char, out: &mut String) -> Escape {
    match state {
        Escape::None => match c {
            ESC => Escape::Esc,
            '\u{9b}' => Escape::Csi,
            '\u{9d}' => Escape::Osc,
            '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => Escape::Str,
            c if is_removed_control(c) => Escape::None,
            c => {
                out.push(c);
                Escape::None
            }
        },
        Escape::Esc => match c {
            '[' => Escape::Csi,
            ']' => Escape::Osc,
            'P' | 'X' | '^' | '_' => Escape::Str,
            '\u{20}'..='\u{2f}' => Escape::Intermediate,
            '\u{30}'..='\u{7e}' => Escape::None,
            // Not a sequence: drop the lone ESC and look at `c` afresh.
            c => step(Escape::None, c, out),
        },
        Escape::Intermediate => match c {
            '\u{20}'..='\u{2f}' => Escape::Intermediate,
            '\u{30}'..='\u{7e}' => Escape::None,
            c => step(Escape::None, c, out),
        },
        Escape::Csi => match c {
            '\u{20}'..='\u{3f}' => Escape::Csi,
            '\u{40}'..='\u{7e}' => Escape::None,
            c => step(Escape::None, c, out),
        },
        Escape::Osc => match c {
            BEL | ST => Escape::None,
            ESC => Escape::StrEsc,
            _ => Escape::Osc,
        },
        Escape::Str => match c {
            ST => Escape::None,
            ESC => Escape::StrEsc,
            _ => Escape::Str,
        },
        Escape::StrEsc => match c {
            '\\' => Escape::None,
            // ESC not followed by '\' aborts the string and starts a new sequence.
            c => step(Escape::Esc, c, out),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clean(raw: &[u8]) -> String {
        match clean_line(raw) {
            Ok(s) => s.into_owned(),
            Err(e) => panic!("unexpected {e:?} for {raw:?}"),
        }
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            clean_line(b"hello world"),
            Ok(Cow::Borrowed("hello world"))
        ));
        assert!(matches!(clean_line(b"  hi\t"), Ok(Cow::Borrowed("hi"))));
        assert!(matches!(clean_line(b""), Ok(Cow::Borrowed(""))));
    }

    #[test]
    fn csi_sequences_removed() {
        assert_eq!(clean(b"\x1b[2J\x1b[Hhi"), "hi");
        assert_eq!(clean(b"a\x1b[1;31mred\x1b[0mb"), "aredb");
        assert_eq!(clean(b"\x1b[?25l"), "");
        assert_eq!(clean("\u{9b}31mred".as_bytes()), "red");
    }

    #[test]
    fn osc_sequences_removed() {
        assert_eq!(clean(b"\x1b]0;pwned\x07ok"), "ok");
        assert_eq!(clean(b"\x1b]2;title\x1b\\ok"), "ok");
        assert_eq!(clean("\u{9d}0;t\u{9c}ok".as_bytes()), "ok");
        assert_eq!(clean(b"ok\x1b]0;never ends"), "ok");
        // ESC inside OSC that is not ST starts a new sequence.
        assert_eq!(clean(b"\x1b]0;t\x1b[2Jok"), "ok");
    }

    #[test]
    fn string_sequences_removed() {
        assert_eq!(clean(b"\x1bPq#0;2;0;0;0\x1b\\ok"), "ok");
        assert_eq!(clean(b"\x1b_apc\x07still\x1b\\ok"), "ok");
        assert_eq!(clean("\u{90}dcs\u{9c}ok".as_bytes()), "ok");
    }

    #[test]
    fn other_escapes_removed() {
        assert_eq!(clean(b"\x1bcreset"), "reset");
        assert_eq!(clean(b"\x1b(Bx"), "x");
        assert_eq!(clean(b"\x1b#8x"), "x");
        assert_eq!(clean(b"x\x1b"), "x");
        assert_eq!(clean("\x1bé".as_bytes()), "é");
        assert_eq!(clean(b"\x1b\x1b[2Jx"), "x");
    }

    #[test]
    fn controls_removed_tab_kept() {
        assert_eq!(clean(b"a\x00b\x7fc\x08d"), "abcd");
        assert_eq!(clean(b"a\tb"), "a\tb");
        assert_eq!(clean(b"a\r\nb"), "ab");
        assert_eq!(clean("a\u{85}b\u{9f}".as_bytes()), "ab");
        assert_eq!(clean(b" \x1b[0m hi \x07"), "hi");
    }

    #[test]
    fn invalid_utf8_rejected() {
        for raw in [
            &b"\xff"[..],
            b"\xc0\xaf",         // overlong '/'
            b"\xe0\x80\xaf",     // overlong '/'
            b"a\x80b",           // lone continuation byte
            b"\xe6\x97",         // truncated 日
            b"\xed\xa0\x80",     // surrogate
            b"\xf4\x90\x80\x80", // above U+10FFFF
        ] {
            assert_eq!(clean_line(raw), Err(LineError::InvalidUtf8), "{raw:?}");
        }
    }

    #[test]
    fn multibyte_kept() {
        let s = "café 日本 🎉";
        assert!(matches!(clean_line(s.as_bytes()), Ok(Cow::Borrowed(t)) if t == s));
        assert_eq!(clean("\x1b[1m日本\x1b[0m🎉".as_bytes()), "日本🎉");
    }

    fn check_output(s: &str) {
        for c in s.chars() {
            assert!(!is_removed_control(c), "control {c:?} in {s:?}");
        }
        assert_eq!(s, trim(s));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(s) = clean_line(&raw) {
                check_output(&s);
            }
        }

        #[test]
        fn escape_heavy_text_is_clean_and_stable(
            s in "([\\x00-\\x20\\x7f\\u{80}-\\u{a0}\\[\\]\\\\;0-9A-Za-z ^_é日🎉]|\\x1b\\[|\\x1b\\]){0,40}"
        ) {
            let cleaned = clean_line(s.as_bytes());
            prop_assert!(cleaned.is_ok());
            let cleaned = cleaned.unwrap_or_default();
            check_output(&cleaned);
            // Cleaning is idempotent, and a clean line is borrowed.
            prop_assert!(matches!(clean_line(cleaned.as_bytes()), Ok(Cow::Borrowed(t)) if t == cleaned));
        }
    }
}
