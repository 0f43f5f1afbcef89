//! Reading the end of the chat log at start-up, to rebuild what the chat remembers (channel
//! topics, history): every complete record in the last `max_bytes` of the file, oldest first.

use crate::log_store::{LogLine, LogReader};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes read per slice.
const SLICE_BYTES: usize = 256 * 1024;

/// What a scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailScan {
    /// Records handed to the callback.
    pub records: u64,
    /// Lines passed over because they did not parse.
    pub skipped: u64,
}

/// Calls `each` with every record in the last `max_bytes` of the log at `path`, oldest first.
/// A line cut by the start of that range is passed over; a missing file holds no records.
///
/// # Errors
///
/// I/O errors reading the file.
pub fn scan_tail(
    path: &Path,
    max_bytes: u64,
    mut each: impl FnMut(&LogLine),
) -> io::Result<TailScan> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TailScan::default()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = first_line_start(&mut file, len.saturating_sub(max_bytes), len)?;
    let mut reader = LogReader::open(path, start)?;
    let mut lines = Vec::new();
    let mut scan = TailScan::default();
    loop {
        let at_end = reader.next_slice(SLICE_BYTES, &mut lines)?;
        for (_, line) in lines.drain(..) {
            each(&line);
            scan.records += 1;
        }
        if at_end || reader.offset() >= len {
            break;
        }
    }
    scan.skipped = reader.skipped();
    Ok(scan)
}

/// The offset of the first line that starts at or after `from` (`end` when there is none).
fn first_line_start(file: &mut File, from: u64, end: u64) -> io::Result<u64> {
    if from == 0 {
        return Ok(0);
    }
    // Is `from` just after a line break? Then a line starts there.
    let mut at = from - 1;
    file.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0u8; 64 * 1024];
    while at < end {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            return Ok(at + i as u64 + 1);
        }
        at += n as u64;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_store::LogStore;
    use crate::record::Record;
    use std::borrow::Cow;

    fn topic(n: usize) -> Record<'static> {
        Record::Topic {
            nick: Cow::Borrowed("alice"),
            channel: Cow::Borrowed("#a"),
            topic: Cow::Owned(format!("topic {n}")),
        }
    }

    fn scan(path: &Path, max: u64) -> (Vec<u64>, TailScan) {
        let mut seqs = Vec::new();
        let stats = scan_tail(path, max, |l| seqs.push(l.seq)).unwrap();
        (seqs, stats)
    }

    #[test]
    fn feeds_the_last_records_oldest_first_and_never_a_cut_line() {
        let dir = std::env::temp_dir().join(format!("log-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.log");
        let _ = std::fs::remove_file(&path);
        assert_eq!(scan(&path, 1 << 20).0, Vec::<u64>::new());
        let mut store = LogStore::open(&path).unwrap();
        for n in 0..2000 {
            store.append(1_795_739_080_123, &topic(n)).unwrap();
        }
        drop(store);
        let bytes = std::fs::read(&path).unwrap();
        let len = bytes.len() as u64;
        let starts: Vec<u64> = std::iter::once(0)
            .chain(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i as u64 + 1),
            )
            .filter(|s| *s < len)
            .collect();
        assert_eq!(starts.len(), 2000);
        let (all, stats) = scan(&path, len);
        assert_eq!(all, (1..=2000).collect::<Vec<_>>());
        assert_eq!(stats.skipped, 0);
        // Cut anywhere: whole lines only, ending with the last record, none skipped.
        let mut cuts = vec![1, len - 1, len + 5, len / 2, len / 3 + 1];
        for s in &starts[1990..] {
            cuts.extend([len - s - 1, len - s, len - s + 1]);
        }
        for max in cuts {
            let (seqs, stats) = scan(&path, max);
            let want = starts
                .iter()
                .filter(|s| **s >= len.saturating_sub(max))
                .count();
            assert_eq!(seqs.len(), want, "max {max}");
            assert_eq!(
                seqs.last().copied(),
                (want > 0).then_some(2000),
                "max {max}"
            );
            assert!(seqs.windows(2).all(|w| w[0] + 1 == w[1]), "max {max}");
            assert_eq!(stats.skipped, 0, "max {max}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
