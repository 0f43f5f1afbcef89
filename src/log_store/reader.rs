//! Reading the log back in bounded slices, for the log query.

use super::is_blank;
use crate::record::Record;
use serde::Deserialize;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

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
    /// Cluster mode: the record's position in the shared stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cseq: Option<u64>,
    /// Cluster mode: the node the record's entry came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
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

/// Which lines of a slice [`LogReader::next_slice_where`] parses.
pub trait LineFilter {
    /// The index in `buf` (at or after `from`, which starts a line) of a byte in the first line
    /// at or after `from` that may pass [`LineFilter::candidate`]; `None` when no line in
    /// `buf[from..]` can. The default looks at every line.
    fn next_candidate(&self, _buf: &[u8], from: usize) -> Option<usize> {
        Some(from)
    }

    /// Whether `line` (without its `\n`) is to be parsed.
    fn candidate(&self, line: &[u8]) -> bool;
}

/// Parses every line.
struct EveryLine;

impl LineFilter for EveryLine {
    fn candidate(&self, _: &[u8]) -> bool {
        true
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
    /// Length of the file when it was opened.
    len_at_open: u64,
}

impl LogReader {
    /// Opens the log at `path` for reading, starting at byte `start_offset` (0, or an offset
    /// returned by [`LogReader::offset`] or [`LogReader::next_slice`]).
    ///
    /// # Errors
    ///
    /// When the file cannot be opened.
    pub fn open(path: &Path, start_offset: u64) -> io::Result<LogReader> {
        let file = File::open(path)?;
        let len_at_open = file.metadata()?.len();
        Ok(LogReader {
            file,
            offset: start_offset,
            skipped: 0,
            buf: Vec::new(),
            skipping_long_line: false,
            len_at_open,
        })
    }

    /// Opens the log at `path` for a search from its start: `Ok(None)` when the file does not
    /// exist (an empty log). [`LogReader::len_at_open`] tells where the log ended then.
    ///
    /// # Errors
    ///
    /// When the file exists but cannot be opened or its length cannot be read.
    pub fn open_for_search(path: &Path) -> io::Result<Option<LogReader>> {
        match LogReader::open(path, 0) {
            Ok(reader) => Ok(Some(reader)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Moves to byte `offset` (0, or an offset returned by [`LogReader::offset`]).
    pub fn seek_to(&mut self, offset: u64) {
        self.offset = offset;
        self.skipping_long_line = false;
    }

    /// The length of the file when it was opened.
    pub fn len_at_open(&self) -> u64 {
        self.len_at_open
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
        self.next_slice_where(max_bytes, &EveryLine, out)
    }

    /// [`LogReader::next_slice`], parsing only the lines `filter` lets through; the others are
    /// passed over unparsed (and not counted as skipped). A cheap necessary condition there
    /// saves the JSON parse of most lines in a search, and [`LineFilter::next_candidate`]
    /// lets it skip runs of lines without looking at each.
    ///
    /// # Errors
    ///
    /// As [`LogReader::next_slice`].
    pub fn next_slice_where(
        &mut self,
        max_bytes: usize,
        filter: &impl LineFilter,
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
        // The complete lines are `buf[pos..complete]`.
        let complete = self.buf[pos..]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(pos, |i| pos + i + 1);
        let mut at = pos;
        while at < complete {
            let Some(hit) = filter
                .next_candidate(&self.buf[..complete], at)
                .filter(|&h| h >= at && h < complete)
            else {
                break;
            };
            let start = self.buf[at..hit]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(at, |i| at + i + 1);
            let end = self.buf[hit..complete]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(complete - 1, |i| hit + i);
            let line = &self.buf[start..end];
            let line_offset = self.offset + start as u64;
            at = end + 1;
            if !filter.candidate(line) || is_blank(line) {
                continue;
            }
            match LogLine::from_json(line) {
                Ok(parsed) => out.push((line_offset, parsed)),
                Err(_) => self.skipped += 1,
            }
        }
        pos = complete;
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
