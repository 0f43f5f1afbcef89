//! The chat log: a JSON Lines file, one [`Record`] per line.
//!
//! Each line is one JSON object: the wall time `ts` (RFC 3339 UTC, milliseconds), a sequence
//! number `seq`, then the record's own fields, starting with its `kind`:
//!
//! ```text
//! {"ts":"2026-11-27T00:24:40.123Z","seq":42,"kind":"chat","nick":"alice","channel":"#general","text":"hi"}
//! ```
//!
//! [`LogStore`] appends lines: each line is handed to the operating system with one write of
//! the whole line (no userspace buffering), so a record that was appended survives a crash of
//! the process, and a failed write never leaves half a line behind. On start-up it repairs a
//! torn last line and continues the sequence, reading only the end of the file.
//!
//! [`LogReader`] reads the log back in bounded slices so that a huge log never blocks the event
//! loop for long.
//!
//! Besides the JSON escaping of `"`, `\` and control characters, the writer escapes U+0085,
//! U+2028 and U+2029, so that no tool that splits text on Unicode line breaks can see a
//! record split in two.
//!
//! The jobs are in their own files: appending ([`LogStore`], `append.rs`), repairing a torn tail
//! on start-up (`repair.rs`), writing one record as one line (`json_line.rs`) and reading the
//! log back ([`LogReader`], [`LogLine`], `reader.rs`).

mod append;
mod json_line;
mod reader;
mod repair;

pub use self::append::LogStore;
pub use self::reader::{LineFilter, LogLine, LogReader};

/// Health of the chat log, for `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogHealth {
    /// Appends that failed since the store was opened.
    pub write_errors: u64,
    /// Whether the most recent append failed (cleared by the next successful one).
    pub failing: bool,
    /// Records appended successfully since the store was opened.
    pub records: u64,
}

/// True for lines that hold nothing but whitespace; they are ignored, not counted as corrupt.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests;
