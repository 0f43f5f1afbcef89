//! The JSON line writer: a record's fields after the line's own `{"ts":..,"seq":..,`, escaped
//! so that no tool splitting on Unicode line breaks sees the line split.

use std::io::{self, Write};

/// Writes into a `Vec<u8>`, dropping the first byte written (the record's opening `{`, which
/// the line already has). Fails if that byte is not `{`.
pub(super) struct SkipOpeningBrace<'a> {
    pub(super) out: &'a mut Vec<u8>,
    pub(super) skipped: bool,
}

impl Write for SkipOpeningBrace<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        if !self.skipped && !data.is_empty() {
            if data[0] != b'{' {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "record did not serialize as a JSON object",
                ));
            }
            self.skipped = true;
            data = &data[1..];
        }
        self.out.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// serde_json's compact format, but also escaping the characters besides `\n` and `\r` that
/// some tools treat as line breaks: U+0085, U+2028, U+2029. (Control characters below U+0020
/// are escaped by serde_json itself.)
pub(super) struct LineSafeFormatter;

impl serde_json::ser::Formatter for LineSafeFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + Write,
    {
        let mut rest = fragment;
        while let Some(i) = rest.find(['\u{85}', '\u{2028}', '\u{2029}']) {
            writer.write_all(&rest.as_bytes()[..i])?;
            let (escape, len) = match rest[i..].chars().next() {
                Some('\u{85}') => ("\\u0085", 2),
                Some('\u{2028}') => ("\\u2028", 3),
                _ => ("\\u2029", 3),
            };
            writer.write_all(escape.as_bytes())?;
            rest = &rest[i + len..];
        }
        writer.write_all(rest.as_bytes())
    }
}
