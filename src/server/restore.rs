//! Start-up rebuild (SPEC §12): read the last `history_scan_bytes` of the chat log and feed
//! each record, in order, to the core's `restore` handler. Only the tail is read, so start-up
//! time does not grow with the log.
//!
//! The tail is read with one read and parsed in place (borrowing the strings), and only the
//! records the core keeps are parsed at all: the log store's reader, which parses every line
//! into owned records for the log query, takes about 55 ms for 4 MiB, more than half the
//! start-up budget.

use crate::chat::ChatCore;
use crate::record::Record;
use crate::timefmt::parse_rfc3339_ms;
use serde::Deserialize;
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// What the rebuild read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Records fed to the core.
    pub records: u64,
    /// Lines passed over: corrupt, or of a kind the core does not keep.
    pub skipped: u64,
    /// Bytes of the log read.
    pub bytes: u64,
}

/// The record kinds the core keeps in its history, as they appear in a log line.
const KEPT: [&[u8]; 2] = [br#""kind":"chat""#, br#""kind":"announcement""#];

/// A line's time and sequence number (the record itself is parsed separately).
#[derive(Deserialize)]
struct Stamp<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    seq: u64,
}

/// Feeds the records in the last `scan_bytes` of the log at `path` to `core`. A missing log
/// is an empty one. An incomplete last line (a torn write not yet repaired) is left alone, as
/// is the partial first line of the window.
///
/// # Errors
///
/// When the log exists but cannot be read.
pub fn restore(core: &mut ChatCore, path: &Path, scan_bytes: u64) -> io::Result<Restored> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Restored::default()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if scan_bytes == 0 || len == 0 {
        return Ok(Restored::default());
    }
    // One byte early: the window then starts right after a line break, or inside a line that
    // is passed over.
    let start = len.saturating_sub(scan_bytes).saturating_sub(1);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    file.take(len - start).read_to_end(&mut tail)?;
    let mut restored = Restored {
        bytes: tail.len() as u64,
        ..Restored::default()
    };
    let mut lines = tail.split(|&b| b == b'\n');
    if start > 0 {
        lines.next(); // the end of a line that began before the window
    }
    let mut lines: Vec<&[u8]> = lines.collect();
    lines.pop(); // after the last line break: nothing, or a torn line
    let mut first = start > 0;
    for line in lines {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(stamp) = serde_json::from_slice::<Stamp<'_>>(line) else {
            restored.skipped += 1;
            continue;
        };
        if first {
            core.restore_started_at(stamp.seq);
            first = false;
        }
        if !KEPT.iter().any(|k| contains(line, k)) {
            continue;
        }
        let (Ok(ts_ms), Ok(record)) = (
            parse_rfc3339_ms(&stamp.ts),
            serde_json::from_slice::<Record<'_>>(line),
        ) else {
            restored.skipped += 1;
            continue;
        };
        core.restore(stamp.seq, ts_ms, &record);
        restored.records += 1;
    }
    Ok(restored)
}

/// True when `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// [`restore`] at start-up, reporting what it did (or why it could not) in the server log.
pub(super) fn rebuild(core: &mut ChatCore, path: &Path, scan_bytes: u64) {
    let started = std::time::Instant::now();
    match restore(core, path, scan_bytes) {
        Ok(r) if r.records > 0 => log::info!(
            "history: read {} records ({} bytes) of {} in {} ms",
            r.records,
            r.bytes,
            path.display(),
            started.elapsed().as_millis()
        ),
        Ok(_) => {}
        Err(e) => log::warn!(
            "history: cannot read {} to rebuild the history: {e}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::CoreConfig;

    fn line(seq: u64, kind: &str, text: &str) -> String {
        format!(
            "{{\"ts\":\"2026-11-27T15:04:05.123Z\",\"seq\":{seq},\"kind\":\"{kind}\",\"nick\":\"alice\",\"channel\":\"#g\",\"text\":\"{text}\"}}\n"
        )
    }

    #[test]
    fn the_tail_is_read_in_order_and_a_torn_or_cut_line_is_passed_over() {
        let dir = std::env::temp_dir().join(format!("chat-restore-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.log");
        let mut log = line(1, "chat", "one") + &line(2, "join", "") + &line(3, "chat", "two");
        log.push_str(r#"{"ts":"2026-11-27T15:04:06.000Z","seq":4,"kind":"chat","nick":"al"#);
        std::fs::write(&path, &log).unwrap();

        let mut core = ChatCore::new(CoreConfig::default());
        let r = restore(&mut core, &path, 1 << 20).unwrap();
        assert_eq!(r.records, 2);
        let ring = core.history_of("#G").unwrap();
        let texts: Vec<&str> = ring.last(10).map(|e| e.text()).collect();
        assert_eq!(texts, ["one", "two"]);
        assert!(ring.since(0).1, "the whole log was read");

        // A window that starts inside the first line: that line is passed over, and a
        // replay since before the window is not complete.
        let window = (log.len() - line(1, "chat", "one").len() + 5) as u64;
        let mut core = ChatCore::new(CoreConfig::default());
        let r = restore(&mut core, &path, window).unwrap();
        assert_eq!(r.records, 1);
        let ring = core.history_of("#g").unwrap();
        assert_eq!(ring.last(10).map(|e| e.seq).collect::<Vec<_>>(), [3]);
        assert!(!ring.since(0).1 && ring.since(1).1);

        assert_eq!(
            restore(&mut core, &dir.join("missing.log"), 100).unwrap(),
            Restored::default()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
