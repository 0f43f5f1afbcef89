//! Start-up rebuild (SPEC §12): read the last `history_scan_bytes` of the chat log through the
//! log store's reader and feed each record, in order, to the core's `restore` handler. Only
//! the tail is read, so start-up time does not grow with the log.

use crate::chat::ChatCore;
use crate::log_store::{LogLine, LogReader};
use crate::timefmt::parse_rfc3339_ms;
use std::io;
use std::path::Path;

/// Bytes parsed per reader slice.
const SLICE_BYTES: usize = 256 * 1024;

/// What the rebuild read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Records fed to the core.
    pub records: u64,
    /// Lines passed over (corrupt, or the partial first line of the window).
    pub skipped: u64,
    /// Bytes of the log read.
    pub bytes: u64,
}

/// Feeds the records in the last `scan_bytes` of the log at `path` to `core`. A missing log
/// is an empty one. A torn last line (not yet repaired) is left alone: the reader only
/// returns complete lines.
///
/// # Errors
///
/// When the log exists but cannot be read.
pub fn restore(core: &mut ChatCore, path: &Path, scan_bytes: u64) -> io::Result<Restored> {
    let len = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Restored::default()),
        Err(e) => return Err(e),
    };
    if scan_bytes == 0 || len == 0 {
        return Ok(Restored::default());
    }
    let start = len.saturating_sub(scan_bytes);
    // Starting one byte early, the first "line" is either empty (the window starts at a line)
    // or the end of a line cut by the window, which does not parse and is passed over.
    let mut reader = LogReader::open(path, start.saturating_sub(1))?;
    let mut lines: Vec<(u64, LogLine)> = Vec::new();
    let mut restored = Restored {
        bytes: len - start.saturating_sub(1),
        ..Restored::default()
    };
    let mut first = true;
    loop {
        lines.clear();
        let at_end = reader.next_slice(SLICE_BYTES, &mut lines)?;
        for (_, line) in &lines {
            if first && start > 0 {
                core.restore_started_at(line.seq);
            }
            first = false;
            let Ok(ts_ms) = parse_rfc3339_ms(&line.ts) else {
                restored.skipped += 1;
                continue;
            };
            core.restore(line.seq, ts_ms, &line.record);
            restored.records += 1;
        }
        if at_end {
            break;
        }
    }
    restored.skipped += reader.skipped();
    Ok(restored)
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
