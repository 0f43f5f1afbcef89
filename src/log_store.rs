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

use crate::record::Record;
use crate::timefmt;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How much of the end of the file [`LogStore::open`] reads to repair the tail and find the
/// last sequence number.
const TAIL_BYTES: u64 = 1 << 20;
/// At most one warning about failing writes per this many milliseconds.
const WARN_INTERVAL_MS: i64 = 30_000;
/// How much of a cut-off torn line is quoted in the warning.
const PREVIEW_BYTES: usize = 160;

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

/// The append side of the chat log. See the [module docs](self).
pub struct LogStore {
    path: PathBuf,
    file: File,
    next_seq: u64,
    /// The line being written. `buf[0]` is always `\n`, the line itself starts at `buf[1]`;
    /// the `\n` is written too when a fragment of an earlier failed write could not be cut off,
    /// so that the fragment ends up on a line of its own instead of corrupting this one.
    buf: Vec<u8>,
    /// Reused buffer for the `ts` field.
    ts: String,
    /// A failed write left bytes behind and cutting the file back to this length failed too;
    /// retried before the next write.
    pending_cut: Option<u64>,
    /// The file does not end with `\n` (an uncut fragment): start the next line with one.
    need_newline: bool,
    write_errors: u64,
    failing: bool,
    /// Consecutive failed appends in the current failure episode.
    failed_in_row: u64,
    records: u64,
    last_warn_ms: Option<i64>,
    suppressed_warnings: u64,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("path", &self.path)
            .field("next_seq", &self.next_seq)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

/// Opens `path` for appending (and reading), creating it with mode 0644.
fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o644);
    }
    options.open(path)
}

/// Just enough of a line to continue the sequence.
#[derive(Deserialize)]
struct SeqProbe {
    seq: u64,
}

/// A short, printable excerpt of `bytes` for log messages.
fn preview(bytes: &[u8]) -> String {
    let cut = bytes.len().min(PREVIEW_BYTES);
    let mut s = format!("{:?}", String::from_utf8_lossy(&bytes[..cut]));
    if cut < bytes.len() {
        s.push_str("...");
    }
    s
}

/// True for lines that hold nothing but whitespace; they are ignored, not counted as corrupt.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

impl LogStore {
    /// Opens (creating, mode 0644, append) the log at `path` and prepares to continue it.
    ///
    /// Reads at most the last 1 MiB of the file, never the whole file. If the file does not end
    /// with `\n` (a torn line from a crash), it is truncated after its last `\n` (or to length 0
    /// if the file holds no `\n` at all), with a `log::warn!` that quotes what was cut. Then the
    /// last complete line that parses as JSON with a numeric `seq` gives the sequence: the next
    /// record gets `seq + 1` (1 for a log without records). Lines that do not parse are passed
    /// over with one `log::warn!`.
    ///
    /// # Errors
    ///
    /// I/O errors, and [`io::ErrorKind::InvalidData`] when the file is larger than 1 MiB and its
    /// last 1 MiB holds no line break or no valid record: then the file is left untouched, since
    /// it is not a chat log or is damaged beyond what start-up should repair on its own.
    pub fn open(path: &Path) -> io::Result<LogStore> {
        let mut file = open_append(path)?;
        let next_seq = repair_tail(&mut file, path)?;
        Ok(LogStore {
            path: path.to_path_buf(),
            file,
            next_seq,
            buf: Vec::with_capacity(512),
            ts: String::with_capacity(24),
            pending_cut: None,
            need_newline: false,
            write_errors: 0,
            failing: false,
            failed_in_row: 0,
            records: 0,
            last_warn_ms: None,
            suppressed_warnings: 0,
        })
    }

    /// Appends `record` with the wall time `now_unix_ms` and returns its sequence number.
    ///
    /// The whole line goes to the operating system in one `write_all`-style call (no userspace
    /// buffering): once this returns `Ok`, the line survives a `SIGKILL` of the process.
    ///
    /// # Errors
    ///
    /// On a write error (`ENOSPC`, `EIO`, ...) the sequence number is not consumed, bytes of a
    /// short write are cut off again (the file never keeps half a line), the error is counted
    /// in [`LogStore::health`], and a `log::warn!` is emitted at most once per 30 s of
    /// `now_unix_ms` (mentioning how many were suppressed). The next append simply tries again;
    /// the first success after failures is reported with `log::info!`.
    pub fn append(&mut self, now_unix_ms: i64, record: &Record<'_>) -> io::Result<u64> {
        let seq = self.next_seq;
        self.build_line(now_unix_ms, seq, record)?;

        let mut start = 1;
        if let Some(cut) = self.pending_cut {
            match self.file.set_len(cut) {
                Ok(()) => self.pending_cut = None,
                Err(_) => start = 0,
            }
        }
        if self.need_newline {
            start = 0;
        }

        let (written, result) = write_counting(&mut self.file, &self.buf[start..]);
        match result {
            Ok(()) => {
                self.pending_cut = None;
                self.need_newline = false;
                self.next_seq = seq.saturating_add(1);
                self.records += 1;
                if self.failing {
                    let note = self.take_suppressed_note();
                    log::info!(
                        "chat log {}: writing works again after {} failed append(s){}",
                        self.path.display(),
                        self.failed_in_row,
                        note,
                    );
                    self.failing = false;
                    self.failed_in_row = 0;
                }
                Ok(seq)
            }
            Err(err) => {
                if written > 0 {
                    self.cut_partial_write(written);
                }
                self.write_errors += 1;
                self.failed_in_row += 1;
                self.failing = true;
                self.warn_write_error(now_unix_ms, &err);
                Err(err)
            }
        }
    }

    /// Builds the line for `record` in `self.buf` (after the reserved leading `\n`).
    fn build_line(&mut self, now_unix_ms: i64, seq: u64, record: &Record<'_>) -> io::Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(b"\n{\"ts\":\"");
        self.ts.clear();
        timefmt::write_rfc3339_ms(now_unix_ms, &mut self.ts);
        self.buf.extend_from_slice(self.ts.as_bytes());
        self.buf.extend_from_slice(b"\",\"seq\":");
        write!(self.buf, "{seq}")?;
        self.buf.push(b',');
        let fields_start = self.buf.len();
        let mut ser = serde_json::Serializer::with_formatter(
            SkipOpeningBrace {
                out: &mut self.buf,
                skipped: false,
            },
            LineSafeFormatter,
        );
        record.serialize(&mut ser)?;
        // The record's own fields must follow (`"kind"` first), not an empty object.
        if self.buf.get(fields_start) != Some(&b'"') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record did not serialize as a non-empty JSON object",
            ));
        }
        self.buf.push(b'\n');
        Ok(())
    }

    /// After a failed write that left `written` bytes behind: cut the file back to its length
    /// before the write, or remember to do so (or at least to start a new line) next time.
    fn cut_partial_write(&mut self, written: u64) {
        let len_after = match self.file.metadata() {
            Ok(meta) => meta.len(),
            Err(err) => {
                log::warn!(
                    "chat log {}: cannot cut off {written} bytes of a failed write: {err}",
                    self.path.display()
                );
                self.need_newline = true;
                return;
            }
        };
        let cut = len_after.saturating_sub(written);
        if let Err(err) = self.file.set_len(cut) {
            log::warn!(
                "chat log {}: cannot cut off {written} bytes of a failed write: {err}; will retry",
                self.path.display()
            );
            self.pending_cut = Some(cut);
        }
    }

    /// Emits the rate-limited warning for a failed append.
    fn warn_write_error(&mut self, now_unix_ms: i64, err: &io::Error) {
        let due = match self.last_warn_ms {
            None => true,
            // A clock that went backwards must not silence the warnings for long.
            Some(last) => {
                now_unix_ms < last || now_unix_ms.saturating_sub(last) >= WARN_INTERVAL_MS
            }
        };
        if !due {
            self.suppressed_warnings += 1;
            return;
        }
        self.last_warn_ms = Some(now_unix_ms);
        let note = self.take_suppressed_note();
        log::warn!(
            "chat log {}: cannot append record {}: {err} ({} write error(s) so far){}",
            self.path.display(),
            self.next_seq,
            self.write_errors,
            note,
        );
    }

    /// `"; N similar warning(s) suppressed"` if any were, resetting the count.
    fn take_suppressed_note(&mut self) -> String {
        let n = std::mem::take(&mut self.suppressed_warnings);
        if n == 0 {
            String::new()
        } else {
            format!("; {n} similar warning(s) suppressed")
        }
    }

    /// Reopens the file by path (on `SIGHUP`, after log rotation): new records go to the
    /// (possibly new) file and the sequence continues.
    ///
    /// # Errors
    ///
    /// If the file cannot be opened, the store keeps writing to the old one.
    pub fn reopen(&mut self) -> io::Result<()> {
        let mut file = open_append(&self.path)?;
        let need_newline = !ends_with_newline(&mut file)?;
        if let Some(cut) = self.pending_cut.take() {
            if let Err(err) = self.file.set_len(cut) {
                log::warn!(
                    "chat log {}: the previous file keeps a fragment of a failed write: {err}",
                    self.path.display()
                );
            }
        }
        self.need_newline = need_newline;
        if need_newline {
            log::warn!(
                "chat log {}: the reopened file does not end with a line break; \
                 the next record starts on a new line",
                self.path.display()
            );
        }
        self.file = file;
        Ok(())
    }

    /// Flushes the file to disk (`fsync`), e.g. at shutdown.
    ///
    /// # Errors
    ///
    /// The error of `fsync`.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// Counters for `/status` and `/metrics`.
    pub fn health(&self) -> LogHealth {
        LogHealth {
            write_errors: self.write_errors,
            failing: self.failing,
            records: self.records,
        }
    }

    /// The path the log was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sequence number the next successful append will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Replaces the file handle (e.g. with `/dev/full`), returning the old one.
    #[cfg(test)]
    fn swap_file(&mut self, file: File) -> File {
        std::mem::replace(&mut self.file, file)
    }
}

/// Whether `file` is empty or ends with `\n`.
fn ends_with_newline(file: &mut File) -> io::Result<bool> {
    if file.metadata()?.len() == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Like `write_all`, but also reports how many bytes were written before an error.
fn write_counting(file: &mut File, mut data: &[u8]) -> (u64, io::Result<()>) {
    let mut written = 0u64;
    while !data.is_empty() {
        match file.write(data) {
            Ok(0) => {
                let err =
                    io::Error::new(io::ErrorKind::WriteZero, "failed to write the whole line");
                return (written, Err(err));
            }
            Ok(n) => {
                written += n as u64;
                data = &data[n..];
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return (written, Err(err)),
        }
    }
    (written, Ok(()))
}

/// Repairs a torn tail of the log and returns the next sequence number. Reads at most
/// [`TAIL_BYTES`] from the end of the file.
fn repair_tail(file: &mut File, path: &Path) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(1);
    }
    let tail_start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(tail_start))?;
    let mut tail = Vec::with_capacity(usize::try_from(len - tail_start).unwrap_or(0));
    Read::by_ref(file)
        .take(len - tail_start)
        .read_to_end(&mut tail)?;
    let whole_file = tail_start == 0;

    // 1. Cut a torn last line.
    let mut keep = tail.len();
    if tail.last() != Some(&b'\n') {
        keep = match tail.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if whole_file => 0,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "chat log {}: no line break in the last {TAIL_BYTES} bytes; \
                         not a chat log? (left untouched)",
                        path.display()
                    ),
                ));
            }
        };
        let new_len = tail_start + keep as u64;
        file.set_len(new_len)?;
        log::warn!(
            "chat log {}: cut {} bytes of an incomplete last line at offset {new_len}: {}",
            path.display(),
            tail.len() - keep,
            preview(&tail[keep..]),
        );
    }

    // 2. Find the last complete line with a sequence number. When the tail starts in the middle
    //    of the file, its first bytes up to the first `\n` may be the end of a longer line.
    let kept = &tail[..keep];
    let lines_start = if whole_file {
        0
    } else {
        kept.iter()
            .position(|&b| b == b'\n')
            .map_or(kept.len(), |i| i + 1)
    };
    let lines = kept[lines_start..].strip_suffix(b"\n").unwrap_or(&[]);
    let mut bad = 0u64;
    let mut first_bad: Option<&[u8]> = None;
    let mut found = None;
    for line in lines.rsplit(|&b| b == b'\n') {
        if is_blank(line) {
            continue;
        }
        match serde_json::from_slice::<SeqProbe>(line) {
            Ok(probe) => {
                found = Some(probe.seq);
                break;
            }
            Err(_) => {
                bad += 1;
                first_bad.get_or_insert(line);
            }
        }
    }
    if bad > 0 {
        log::warn!(
            "chat log {}: passed over {bad} corrupt line(s) at the end of the log, the last: {}",
            path.display(),
            preview(first_bad.unwrap_or_default()),
        );
    }
    match found {
        Some(seq) => seq.checked_add(1).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("chat log {}: sequence number exhausted", path.display()),
            )
        }),
        None if whole_file => Ok(1),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "chat log {}: no valid record in the last {TAIL_BYTES} bytes, \
                 cannot continue the sequence (left untouched)",
                path.display()
            ),
        )),
    }
}

/// Writes into a `Vec<u8>`, dropping the first byte written (the record's opening `{`, which
/// the line already has). Fails if that byte is not `{`.
struct SkipOpeningBrace<'a> {
    out: &'a mut Vec<u8>,
    skipped: bool,
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
struct LineSafeFormatter;

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

/// One parsed line of the log.
///
/// Deserialize it with [`LogLine::from_json`]: the record's strings are owned (`'static`), so
/// the derived `Deserialize` only works with a deserializer that never borrows from its input.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(bound(deserialize = "'de: 'static"))]
pub struct LogLine {
    /// Wall time of the record, RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// Sequence number of the record.
    pub seq: u64,
    /// The record itself.
    #[serde(flatten)]
    pub record: Record<'static>,
}

impl LogLine {
    /// Parses one line of the log (without its `\n`).
    ///
    /// # Errors
    ///
    /// When `line` is not one JSON object with `ts`, `seq` and a valid record.
    pub fn from_json(line: &[u8]) -> Result<LogLine, serde_json::Error> {
        // A reader-based deserializer never borrows, so the record's `Cow`s come out owned.
        let mut de = serde_json::Deserializer::from_reader(line);
        let parsed = LogLine::deserialize(&mut de)?;
        de.end()?;
        Ok(parsed)
    }
}

/// Reads the log from a byte offset in bounded slices, for the log query.
///
/// Each [`LogReader::next_slice`] reads at most `max_bytes` and returns the complete lines in
/// it. A line longer than `max_bytes` is skipped (and counted), so `max_bytes` should be well
/// above the longest record (e.g. 256 KiB).
#[derive(Debug)]
pub struct LogReader {
    file: File,
    offset: u64,
    skipped: u64,
    buf: Vec<u8>,
    /// In the middle of a line longer than a slice: drop everything up to the next `\n`.
    skipping_long_line: bool,
}

impl LogReader {
    /// Opens the log at `path` for reading, starting at byte `start_offset` (0, or an offset
    /// returned by [`LogReader::offset`] or [`LogReader::next_slice`]).
    ///
    /// # Errors
    ///
    /// When the file cannot be opened.
    pub fn open(path: &Path, start_offset: u64) -> io::Result<LogReader> {
        Ok(LogReader {
            file: File::open(path)?,
            offset: start_offset,
            skipped: 0,
            buf: Vec::new(),
            skipping_long_line: false,
        })
    }

    /// Reads at most `max_bytes` from the current offset and appends the complete lines in
    /// them to `out` as `(offset of the line, parsed line)`, in file order. Lines that do not
    /// parse are skipped and counted ([`LogReader::skipped`]); blank lines are ignored. The
    /// offset advances to the start of the first incomplete line.
    ///
    /// Returns `true` when the end of the file was reached (an incomplete line at the end is
    /// left for a later call, after it has been completed).
    ///
    /// # Errors
    ///
    /// I/O errors, and [`io::ErrorKind::InvalidInput`] for `max_bytes == 0`.
    pub fn next_slice(
        &mut self,
        max_bytes: usize,
        out: &mut Vec<(u64, LogLine)>,
    ) -> io::Result<bool> {
        if max_bytes == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_bytes must be positive",
            ));
        }
        let limit = u64::try_from(max_bytes).unwrap_or(u64::MAX);
        self.buf.clear();
        self.file.seek(SeekFrom::Start(self.offset))?;
        (&mut self.file).take(limit).read_to_end(&mut self.buf)?;
        let at_eof = self.buf.len() < max_bytes;

        let mut pos = 0;
        if self.skipping_long_line {
            match self.buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    pos = i + 1;
                    self.skipping_long_line = false;
                }
                None => {
                    self.offset += self.buf.len() as u64;
                    return Ok(at_eof);
                }
            }
        }
        while let Some(len) = self.buf[pos..].iter().position(|&b| b == b'\n') {
            let line = &self.buf[pos..pos + len];
            let line_offset = self.offset + pos as u64;
            pos += len + 1;
            if is_blank(line) {
                continue;
            }
            match LogLine::from_json(line) {
                Ok(parsed) => out.push((line_offset, parsed)),
                Err(_) => self.skipped += 1,
            }
        }
        if pos == 0 && !at_eof {
            // A whole slice without a line break: skip this over-long line.
            self.skipped += 1;
            self.skipping_long_line = true;
            pos = self.buf.len();
        }
        self.offset += pos as u64;
        Ok(at_eof)
    }

    /// The byte offset the next slice starts at.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Lines skipped so far because they did not parse (or were longer than a slice).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// 2026-11-27T00:24:40.123Z
    const T0: i64 = 1_795_739_080_123;

    /// Captures log messages per thread (each test runs on its own thread).
    struct CaptureLogger;

    thread_local! {
        static CAPTURED: std::cell::RefCell<Vec<(log::Level, String)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    impl log::Log for CaptureLogger {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let msg = (record.level(), record.args().to_string());
            CAPTURED.with(|c| c.borrow_mut().push(msg));
        }
        fn flush(&self) {}
    }

    /// The messages logged on this thread since the last call; `None` when another logger
    /// was installed first (then the tests cannot check log messages).
    fn take_logs() -> Option<Vec<(log::Level, String)>> {
        static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let installed = *INSTALLED.get_or_init(|| {
            let ok = log::set_logger(&CaptureLogger).is_ok();
            if ok {
                log::set_max_level(log::LevelFilter::Trace);
            }
            ok
        });
        let logs = CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()));
        installed.then_some(logs)
    }

    /// A unique directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "chat-server-log-store-{}-{name}-{n}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn chat(text: &str) -> Record<'_> {
        Record::Chat {
            nick: Cow::Borrowed("alice"),
            channel: Cow::Borrowed("#general"),
            text: Cow::Borrowed(text),
        }
    }

    fn line(seq: u64, text: &str) -> String {
        format!(
            "{{\"ts\":\"2026-11-27T00:24:40.123Z\",\"seq\":{seq},\"kind\":\"chat\",\
             \"nick\":\"alice\",\"channel\":\"#general\",\"text\":\"{text}\"}}\n"
        )
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    fn read_all(path: &Path, max_bytes: usize) -> (Vec<(u64, LogLine)>, LogReader) {
        let mut reader = LogReader::open(path, 0).unwrap();
        let mut out = Vec::new();
        while !reader.next_slice(max_bytes, &mut out).unwrap() {}
        (out, reader)
    }

    #[test]
    fn append_then_read_back() {
        let dir = TempDir::new("append");
        let path = dir.file("chat.log");
        let mut store = LogStore::open(&path).unwrap();
        assert_eq!(store.next_seq(), 1);
        assert_eq!(store.path(), path);
        assert_eq!(store.append(T0, &chat("hi")).unwrap(), 1);
        let close = Record::Close {
            conn: 7,
            peer: Cow::Borrowed("127.0.0.1:5555"),
            nick: None,
            reason: Cow::Borrowed("quit"),
        };
        assert_eq!(store.append(T0 + 1, &close).unwrap(), 2);
        assert_eq!(store.next_seq(), 3);
        store.sync().unwrap();
        assert_eq!(
            read(&path),
            "{\"ts\":\"2026-11-27T00:24:40.123Z\",\"seq\":1,\"kind\":\"chat\",\"nick\":\"alice\",\
             \"channel\":\"#general\",\"text\":\"hi\"}\n\
             {\"ts\":\"2026-11-27T00:24:40.124Z\",\"seq\":2,\"kind\":\"close\",\"conn\":7,\
             \"peer\":\"127.0.0.1:5555\",\"reason\":\"quit\"}\n"
        );
        assert_eq!(
            store.health(),
            LogHealth {
                write_errors: 0,
                failing: false,
                records: 2
            }
        );

        let (lines, reader) = read_all(&path, 1 << 18);
        assert_eq!(reader.skipped(), 0);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].0, 0);
        assert_eq!(lines[0].1.ts, "2026-11-27T00:24:40.123Z");
        assert_eq!(lines[0].1.seq, 1);
        assert_eq!(lines[0].1.record, chat("hi"));
        assert_eq!(lines[1].1.seq, 2);
        assert_eq!(lines[1].1.record, close);
        assert!(matches!(
            &lines[1].1.record,
            Record::Close {
                peer: Cow::Owned(_),
                ..
            }
        ));

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777 & !0o644, 0, "mode {mode:o}");
        }
    }

    #[test]
    fn buffer_is_reused() {
        let dir = TempDir::new("reuse");
        let mut store = LogStore::open(&dir.file("chat.log")).unwrap();
        store
            .append(T0, &chat("a somewhat longer first message"))
            .unwrap();
        let ptr = store.buf.as_ptr();
        let cap = store.buf.capacity();
        for _ in 0..100 {
            store.append(T0, &chat("short")).unwrap();
        }
        assert_eq!((store.buf.as_ptr(), store.buf.capacity()), (ptr, cap));
    }

    #[test]
    fn seq_continues_after_reopening() {
        let dir = TempDir::new("continue");
        let path = dir.file("chat.log");
        {
            let mut store = LogStore::open(&path).unwrap();
            for _ in 0..3 {
                store.append(T0, &chat("hi")).unwrap();
            }
        }
        let mut store = LogStore::open(&path).unwrap();
        assert_eq!(store.next_seq(), 4);
        assert_eq!(store.append(T0, &chat("again")).unwrap(), 4);
        assert_eq!(read(&path).lines().count(), 4);
    }

    #[test]
    fn reopen_after_rotation() {
        let dir = TempDir::new("rotate");
        let path = dir.file("chat.log");
        let mut store = LogStore::open(&path).unwrap();
        store.append(T0, &chat("one")).unwrap();
        std::fs::rename(&path, dir.file("chat.log.1")).unwrap();
        store.append(T0, &chat("two")).unwrap(); // still the old file
        store.reopen().unwrap();
        assert_eq!(store.append(T0, &chat("three")).unwrap(), 3);
        assert_eq!(
            read(&dir.file("chat.log.1")),
            line(1, "one") + &line(2, "two")
        );
        assert_eq!(read(&path), line(3, "three"));

        // A reopened file with a fragment at its end: the next record starts on a new line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"junk").unwrap();
        store.reopen().unwrap();
        assert_eq!(store.append(T0, &chat("four")).unwrap(), 4);
        assert_eq!(
            read(&path),
            line(3, "three") + "{\"junk\n" + &line(4, "four")
        );
        assert_eq!(store.append(T0, &chat("five")).unwrap(), 5);
        assert!(read(&path).ends_with(&(line(4, "four") + &line(5, "five"))));
    }

    #[test]
    fn torn_last_line_is_cut() {
        let dir = TempDir::new("torn");
        let path = dir.file("chat.log");
        let good = line(1, "a") + &line(2, "b") + &line(3, "c");
        std::fs::write(
            &path,
            good.clone() + "{\"ts\":\"2026-11-27T00:24:40.123Z\",\"seq\":4,\"ki",
        )
        .unwrap();
        take_logs();
        let mut store = LogStore::open(&path).unwrap();
        assert_eq!(read(&path), good);
        assert_eq!(store.next_seq(), 4);
        if let Some(logs) = take_logs() {
            assert_eq!(logs.len(), 1, "{logs:?}");
            assert_eq!(logs[0].0, log::Level::Warn);
            assert!(logs[0].1.contains("cut 44 bytes"), "{logs:?}");
            assert!(logs[0].1.contains("seq\\\":4,"), "quotes the cut: {logs:?}");
        }
        assert_eq!(store.append(T0, &chat("d")).unwrap(), 4);
        assert_eq!(read(&path), good + &line(4, "d"));
    }

    #[test]
    fn no_newline_at_all_truncates_to_zero() {
        let dir = TempDir::new("nonl");
        let path = dir.file("chat.log");
        std::fs::write(&path, "{\"ts\":\"2026-11-27T00:24:40.123Z\",\"seq\":9").unwrap();
        let mut store = LogStore::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(store.next_seq(), 1);
        assert_eq!(store.append(T0, &chat("x")).unwrap(), 1);
    }

    #[test]
    fn corrupt_lines_are_passed_over() {
        let dir = TempDir::new("corrupt");
        let path = dir.file("chat.log");
        let content = line(1, "a") + &line(2, "b") + "not json\n\n{\"seq\":\"x\"}\n{\"seq\":-1}\n";
        std::fs::write(&path, &content).unwrap();
        take_logs();
        let store = LogStore::open(&path).unwrap();
        assert_eq!(store.next_seq(), 3);
        assert_eq!(read(&path), content, "complete lines are never cut");
        if let Some(logs) = take_logs() {
            assert_eq!(logs.len(), 1, "{logs:?}");
            assert!(logs[0].1.contains("passed over 3 corrupt"), "{logs:?}");
        }

        // Nothing valid at all in a small file: start over at 1.
        std::fs::write(&path, "garbage\nmore garbage\n").unwrap();
        assert_eq!(LogStore::open(&path).unwrap().next_seq(), 1);
    }

    #[test]
    fn big_file_tail_repair() {
        let dir = TempDir::new("big");
        let path = dir.file("chat.log");
        let mut content = String::new();
        let mut seq = 0;
        while content.len() < 3 << 20 {
            seq += 1;
            content.push_str(&line(seq, "padding padding padding padding padding"));
        }
        let good_len = content.len() as u64;
        content.push_str("{\"ts\":\"2026-11-27T00:24:40.123Z\",\"seq\":");
        std::fs::write(&path, &content).unwrap();
        let store = LogStore::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        assert_eq!(store.next_seq(), seq + 1);
    }

    #[test]
    fn big_file_without_usable_tail_is_refused() {
        let dir = TempDir::new("refuse");
        let path = dir.file("chat.log");
        let mut content = line(1, "a").repeat(10);
        content.push_str(&"x".repeat((TAIL_BYTES + 10) as usize));
        std::fs::write(&path, &content).unwrap();
        let err = LogStore::open(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(read(&path), content, "left untouched");

        content.push('\n');
        std::fs::write(&path, &content).unwrap();
        let err = LogStore::open(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(read(&path), content, "left untouched");
    }

    #[test]
    fn full_disk() {
        let Ok(full) = OpenOptions::new().write(true).open("/dev/full") else {
            eprintln!("no /dev/full here; skipping");
            return;
        };
        let dir = TempDir::new("full");
        let path = dir.file("chat.log");
        let mut store = LogStore::open(&path).unwrap();
        assert_eq!(store.append(T0, &chat("before")).unwrap(), 1);

        let real = store.swap_file(full);
        take_logs();
        for i in 0..3 {
            assert!(store.append(T0 + i * 1000, &chat("lost")).is_err());
            assert_eq!(store.next_seq(), 2, "seq not consumed");
        }
        if let Some(logs) = take_logs() {
            assert_eq!(logs.len(), 1, "one warning per 30 s: {logs:?}");
        }
        let health = store.health();
        assert_eq!(health.write_errors, 3);
        assert!(health.failing);
        assert_eq!(health.records, 1);
        assert_eq!(store.suppressed_warnings, 2, "one warning per 30 s");
        assert!(store.append(T0 + 31_000, &chat("lost")).is_err());
        assert_eq!(store.suppressed_warnings, 0, "warned again, with the count");
        if let Some(logs) = take_logs() {
            assert_eq!(logs.len(), 1, "{logs:?}");
            assert!(
                logs[0].1.contains("2 similar warning(s) suppressed"),
                "{logs:?}"
            );
            assert!(logs[0].1.contains("4 write error(s)"), "{logs:?}");
        }
        assert!(store.append(T0 + 32_000, &chat("lost")).is_err());

        store.swap_file(real);
        assert_eq!(store.append(T0, &chat("after")).unwrap(), 2);
        if let Some(logs) = take_logs() {
            assert_eq!(logs.len(), 1, "{logs:?}");
            assert_eq!(logs[0].0, log::Level::Info);
            assert!(
                logs[0].1.contains("after 5 failed append(s); 1 similar"),
                "{logs:?}"
            );
        }
        assert_eq!(store.append(T0, &chat("more")).unwrap(), 3);
        if let Some(logs) = take_logs() {
            assert!(logs.is_empty(), "{logs:?}");
        }
        let health = store.health();
        assert_eq!(health.write_errors, 5);
        assert!(!health.failing);
        assert_eq!(health.records, 3);
        assert_eq!(
            read(&path),
            line(1, "before") + &line(2, "after") + &line(3, "more")
        );
    }

    #[test]
    fn pending_cut_is_retried() {
        let dir = TempDir::new("pending");
        let path = dir.file("chat.log");
        let mut store = LogStore::open(&path).unwrap();
        store.append(T0, &chat("a")).unwrap();
        // As if a short write had left a fragment and cutting it failed.
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"ts\":\"20")
            .unwrap();
        store.pending_cut = Some(len);
        store.append(T0, &chat("b")).unwrap();
        assert_eq!(read(&path), line(1, "a") + &line(2, "b"));
        assert_eq!(store.pending_cut, None);
    }

    #[test]
    fn hostile_text_stays_on_one_line() {
        let dir = TempDir::new("hostile");
        let path = dir.file("chat.log");
        let mut store = LogStore::open(&path).unwrap();
        let text = "a\"b\\c\nd\re\u{2028}f\u{2029}g\u{85}h\u{0}i\u{1b}j\u{7f}k\"},{\"seq\":99,\"kind\":\"x";
        let nick = "\n\u{2028}";
        let record = Record::Private {
            from: Cow::Borrowed(nick),
            to: Cow::Borrowed("bob"),
            text: Cow::Borrowed(text),
        };
        assert_eq!(store.append(T0, &record).unwrap(), 1);
        let content = read(&path);
        assert_eq!(content.matches('\n').count(), 1);
        assert!(content.ends_with('\n'));
        assert_eq!(content.lines().count(), 1);
        assert!(!content.contains(['\r', '\u{85}', '\u{2028}', '\u{2029}', '\u{0}']));
        assert!(content.contains("\\u2028") && content.contains("\\u0085"));
        let (lines, reader) = read_all(&path, 1 << 18);
        assert_eq!(reader.skipped(), 0);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].1.seq, 1);
        assert_eq!(lines[0].1.record, record);
        // The seq survives hostile text at the end of the log.
        drop(store);
        assert_eq!(LogStore::open(&path).unwrap().next_seq(), 2);
    }

    #[test]
    fn reader_slices() {
        let dir = TempDir::new("reader");
        let path = dir.file("chat.log");
        let mut store = LogStore::open(&path).unwrap();
        for i in 0..1000u64 {
            let text = "x".repeat((i % 37) as usize);
            store.append(T0 + i as i64, &chat(&text)).unwrap();
        }
        let content = read(&path);
        let mut starts = vec![0u64];
        starts.extend(content.match_indices('\n').map(|(i, _)| i as u64 + 1));
        starts.pop(); // the end of the file

        let mut reader = LogReader::open(&path, 0).unwrap();
        let mut out = Vec::new();
        let mut slices = 0;
        loop {
            let before = out.len();
            let done = reader.next_slice(4096, &mut out).unwrap();
            slices += 1;
            if let Some(&(off, _)) = out.last() {
                assert!(reader.offset() > off);
            }
            assert!(done || out.len() > before, "progress in every slice");
            if done {
                break;
            }
        }
        assert!(slices > 10, "{slices}");
        assert_eq!(reader.offset(), content.len() as u64);
        assert_eq!(reader.skipped(), 0);
        assert_eq!(out.len(), 1000);
        for (i, (off, l)) in out.iter().enumerate() {
            assert_eq!(l.seq, i as u64 + 1);
            assert_eq!(*off, starts[i]);
            assert_eq!(l.ts, timefmt::rfc3339_ms(T0 + i as i64));
        }

        // Resume from the middle.
        let mut reader = LogReader::open(&path, starts[500]).unwrap();
        let mut rest = Vec::new();
        while !reader.next_slice(1000, &mut rest).unwrap() {}
        assert_eq!(rest.len(), 500);
        assert_eq!(rest[..], out[500..]);

        // Nothing more at the end, and a later append is picked up.
        assert!(reader.next_slice(1000, &mut rest).unwrap());
        assert_eq!(rest.len(), 500);
        store.append(T0, &chat("late")).unwrap();
        assert!(reader.next_slice(1000, &mut rest).unwrap());
        assert_eq!(rest.len(), 501);
        assert_eq!(rest[500].0, content.len() as u64);
        assert_eq!(rest[500].1.seq, 1001);
    }

    #[test]
    fn reader_skips_bad_lines_and_waits_for_incomplete_ones() {
        let dir = TempDir::new("reader-bad");
        let path = dir.file("chat.log");
        let long = format!("{{\"seq\":0,\"junk\":\"{}\"}}\n", "y".repeat(5000));
        let content = line(1, "a") + "not json\n" + &long + "\n" + &line(2, "b") + "{\"ts\":";
        std::fs::write(&path, &content).unwrap();

        let (lines, reader) = read_all(&path, 1024);
        assert_eq!(lines.iter().map(|(_, l)| l.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(reader.skipped(), 2, "the bad line and the over-long one");
        let incomplete = content.rfind('\n').unwrap() as u64 + 1;
        assert_eq!(reader.offset(), incomplete);
        assert_eq!(lines[1].0, incomplete - line(2, "b").len() as u64);

        let mut out = Vec::new();
        let mut reader = LogReader::open(&path, 0).unwrap();
        assert_eq!(
            reader.next_slice(0, &mut out).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn log_line_parse_errors() {
        assert!(LogLine::from_json(line(1, "a").trim_end().as_bytes()).is_ok());
        for bad in [
            "",
            "{}",
            "{\"ts\":\"x\",\"seq\":1}",
            "{\"ts\":\"x\",\"seq\":1,\"kind\":\"nope\"}",
            "{\"ts\":\"x\",\"seq\":-1,\"kind\":\"server_stop\",\"reason\":\"r\"}",
            "{\"ts\":\"x\",\"seq\":1,\"kind\":\"server_stop\",\"reason\":\"r\"} {}",
        ] {
            assert!(LogLine::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
