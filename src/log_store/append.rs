//! Appending records: one write per line, failed writes cut off again, rate-limited warnings.

use super::json_line::{LineSafeFormatter, SkipOpeningBrace};
use super::repair::repair_tail;
use super::LogHealth;
use crate::record::Record;
use crate::timefmt;
use serde::Serialize;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// At most one warning about failing writes per this many milliseconds.
const WARN_INTERVAL_MS: i64 = 30_000;

/// The append side of the chat log. See the [module docs](self).
pub struct LogStore {
    path: PathBuf,
    file: File,
    next_seq: u64,
    /// The line being written. `buf[0]` is always `\n`, the line itself starts at `buf[1]`;
    /// the `\n` is written too when a fragment of an earlier failed write could not be cut off,
    /// so that the fragment ends up on a line of its own instead of corrupting this one.
    pub(super) buf: Vec<u8>,
    /// Reused buffer for the `ts` field.
    ts: String,
    /// A failed write left bytes behind and cutting the file back to this length failed too;
    /// retried before the next write.
    pub(super) pending_cut: Option<u64>,
    /// The file does not end with `\n` (an uncut fragment): start the next line with one.
    need_newline: bool,
    write_errors: u64,
    failing: bool,
    /// Consecutive failed appends in the current failure episode.
    failed_in_row: u64,
    records: u64,
    last_warn_ms: Option<i64>,
    /// In a cluster, while an entry from the shared stream is applied: its dense position
    /// and origin node, written into every record as `"cseq"` and `"node"`.
    origin: Option<(u64, Box<str>)>,
    pub(super) suppressed_warnings: u64,
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
            origin: None,
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

    /// Records appended until the next call carry `"cseq"` and `"node"` (cluster mode,
    /// while an entry of the shared stream is applied); `None` stops that. Records of this
    /// node's own connections (connect, close, command, error, oper) never do: they are not
    /// in every node's log.
    pub fn set_origin(&mut self, origin: Option<(u64, &str)>) {
        self.origin = origin.map(|(cseq, node)| (cseq, node.into()));
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
        if let Some((cseq, node)) = &self.origin {
            if record.is_shared() {
                // A node id is letters, digits, '_' and '-' (validated): no escaping needed.
                write!(self.buf, "\"cseq\":{cseq},\"node\":\"{node}\",")?;
            }
        }
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
    pub(super) fn swap_file(&mut self, file: File) -> File {
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
