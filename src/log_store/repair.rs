//! Start-up repair: cut a torn last line and find the sequence number to continue from,
//! reading only the end of the file.

use super::is_blank;
use serde::Deserialize;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// How much of the end of the file [`LogStore::open`] reads to repair the tail and find the
/// last sequence number.
pub(super) const TAIL_BYTES: u64 = 1 << 20;
/// How much of a cut-off torn line is quoted in the warning.
const PREVIEW_BYTES: usize = 160;

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

/// Repairs a torn tail of the log and returns the next sequence number. Reads at most
/// [`TAIL_BYTES`] from the end of the file.
pub(super) fn repair_tail(file: &mut File, path: &Path) -> io::Result<u64> {
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
