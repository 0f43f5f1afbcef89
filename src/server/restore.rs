//! Start-up rebuild (SPEC §11, §12): read the last `history_scan_bytes` of the chat log and
//! feed each record the core keeps, in order, to its `restore` handler, which rebuilds both
//! the history rings and the channel topics. Only the tail is read, so start-up
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
    /// Lines passed over because they do not parse (a record of a kind the core does not
    /// keep is not counted).
    pub skipped: u64,
    /// Bytes of the log read.
    pub bytes: u64,
}

/// The record kinds the core rebuilds from (history entries, topics), as they appear in a
/// log line.
const KEPT: [&[u8]; 4] = [
    br#""kind":"chat""#,
    br#""kind":"action""#,
    br#""kind":"announcement""#,
    br#""kind":"topic""#,
];

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
    // The window is the last `scan_bytes`; a line that starts before it is passed over. Read
    // from one byte early: the window then starts right after a line break (the piece before
    // it is empty), or inside a line, whose rest is passed over.
    let from = len.saturating_sub(scan_bytes);
    let start = from.saturating_sub(1);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    file.take(len - start).read_to_end(&mut tail)?;
    let mut restored = Restored {
        bytes: tail.len() as u64,
        ..Restored::default()
    };
    let mut lines = tail.split(|&b| b == b'\n');
    if from > 0 {
        lines.next(); // the end of a line that began before the window
    }
    let mut lines: Vec<&[u8]> = lines.collect();
    lines.pop(); // after the last line break: nothing, or a torn line
    let mut first = from > 0;
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

/// Cluster mode: where this node's log says it was in the shared stream — the epoch of its
/// last `cluster_epoch` record in the last `scan_bytes`, and the highest `cseq` logged after
/// it. `None` without such a record.
pub fn cluster_resume(path: &Path, scan_bytes: u64) -> Option<(String, u64)> {
    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        kind: Cow<'a, str>,
        #[serde(default)]
        cseq: Option<u64>,
        #[serde(borrow, default)]
        epoch: Option<Cow<'a, str>>,
    }
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(scan_bytes.max(1 << 20));
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::new();
    file.take(len - start).read_to_end(&mut tail).ok()?;
    let mut found: Option<(String, u64)> = None;
    for line in tail.split(|&b| b == b'\n') {
        let interesting = contains(line, b"\"cseq\":") || contains(line, b"cluster_epoch");
        if !interesting {
            continue;
        }
        let Ok(l) = serde_json::from_slice::<Line<'_>>(line) else {
            continue;
        };
        match (&*l.kind, l.epoch, l.cseq, found.as_mut()) {
            ("cluster_epoch", Some(epoch), _, _) => found = Some((epoch.into_owned(), 0)),
            (_, _, Some(cseq), Some(f)) => f.1 = f.1.max(cseq),
            _ => {}
        }
    }
    found
}

/// [`restore`] at start-up, reporting what it did (or why it could not) in the server log.
pub(super) fn rebuild(core: &mut ChatCore, path: &Path, scan_bytes: u64) {
    let started = std::time::Instant::now();
    match restore(core, path, scan_bytes) {
        Ok(r) => {
            if r.records > 0 {
                log::info!(
                    "history: read {} records ({} bytes) of {} in {} ms",
                    r.records,
                    r.bytes,
                    path.display(),
                    started.elapsed().as_millis()
                );
            }
            if r.skipped > 0 {
                log::warn!(
                    "history: {} unreadable lines of {} passed over at start-up",
                    r.skipped,
                    path.display()
                );
            }
        }
        Err(e) => log::warn!(
            "history: cannot read {} to rebuild the history and topics: {e}",
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

    fn topic(n: usize) -> Record<'static> {
        Record::Topic {
            nick: Cow::Borrowed("alice"),
            channel: Cow::Borrowed("#a"),
            topic: Cow::Owned(format!("topic {n}")),
        }
    }

    /// The seqs of the entries rebuilt from the last `max` bytes of the log, and the counts.
    fn scan(path: &Path, max: u64) -> (Vec<u64>, Restored) {
        let mut core = ChatCore::new(CoreConfig {
            history_size: 10_000,
            ..CoreConfig::default()
        });
        let r = restore(&mut core, path, max).unwrap();
        let seqs = core
            .history_of("#a")
            .map(|ring| ring.last(usize::MAX).map(|e| e.seq).collect())
            .unwrap_or_default();
        (seqs, r)
    }

    #[test]
    fn every_window_feeds_the_last_whole_records_oldest_first() {
        let dir = std::env::temp_dir().join(format!("chat-restore-cut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.log");
        let _ = std::fs::remove_file(&path);
        assert_eq!(scan(&path, 1 << 20).0, Vec::<u64>::new());
        let mut store = crate::log_store::LogStore::open(&path).unwrap();
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
        let (all, r) = scan(&path, len);
        assert_eq!(all, (1..=2000).collect::<Vec<_>>());
        assert_eq!((r.records, r.skipped), (2000, 0));
        // Cut anywhere: whole lines only, ending with the last record, none skipped.
        let mut cuts = vec![1, len - 1, len + 5, len / 2, len / 3 + 1];
        for s in &starts[1990..] {
            cuts.extend([len - s - 1, len - s, len - s + 1]);
        }
        for max in cuts {
            let (seqs, r) = scan(&path, max);
            let want = starts
                .iter()
                .filter(|s| **s >= len.saturating_sub(max))
                .count();
            assert_eq!(seqs.len(), want, "max {max}");
            assert_eq!(r.records, want as u64, "max {max}");
            assert_eq!(
                seqs.last().copied(),
                (want > 0).then_some(2000),
                "max {max}"
            );
            assert!(seqs.windows(2).all(|w| w[0] + 1 == w[1]), "max {max}");
            assert_eq!(r.skipped, 0, "max {max}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn actions_and_topics_are_rebuilt_with_the_history() {
        let dir = std::env::temp_dir().join(format!("chat-restore-kinds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.log");
        let _ = std::fs::remove_file(&path);
        let mut store = crate::log_store::LogStore::open(&path).unwrap();
        let records = [
            Record::Action {
                nick: Cow::Borrowed("bob"),
                channel: Cow::Borrowed("#a"),
                text: Cow::Borrowed("waves"),
            },
            topic(1),
            Record::NickChange {
                conn: 1,
                old: Cow::Borrowed("bob"),
                new: Cow::Borrowed("rob"),
            },
            Record::Chat {
                nick: Cow::Borrowed("rob"),
                channel: Cow::Borrowed("#a"),
                text: Cow::Borrowed("hi"),
            },
        ];
        for r in &records {
            store.append(1_795_739_080_123, r).unwrap();
        }
        drop(store);
        let mut core = ChatCore::new(CoreConfig::default());
        let r = restore(&mut core, &path, 1 << 20).unwrap();
        assert_eq!((r.records, r.skipped), (3, 0));
        let ring = core.history_of("#a").unwrap();
        let kinds: Vec<_> = ring.last(10).map(|e| (e.seq, e.kind(), e.text())).collect();
        use crate::chat::EntryKind;
        assert_eq!(
            kinds,
            [
                (1, EntryKind::Action, "waves"),
                (2, EntryKind::Topic, "topic 1"),
                (4, EntryKind::Chat, "hi"),
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cluster_node_resumes_after_the_last_cseq_of_its_last_epoch() {
        let dir = std::env::temp_dir().join(format!("chat-resume-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.log");
        assert_eq!(cluster_resume(&path, 1 << 20), None, "no log");
        let shared = |seq: u64, cseq: u64| {
            format!(
                "{{\"ts\":\"2026-11-27T15:04:05.123Z\",\"seq\":{seq},\"cseq\":{cseq},\"node\":\"n1\",\"kind\":\"chat\",\"nick\":\"a\",\"channel\":\"#g\",\"text\":\"x\"}}\n"
            )
        };
        let epoch = |seq: u64, e: &str| {
            format!(
                "{{\"ts\":\"2026-11-27T15:04:05.123Z\",\"seq\":{seq},\"kind\":\"cluster_epoch\",\"epoch\":\"{e}\"}}\n"
            )
        };
        let log = shared(1, 3)
            + &epoch(2, "old")
            + &shared(3, 9)
            + &epoch(4, "new")
            + &shared(5, 2)
            + &shared(6, 4)
            + &line(7, "chat", "local");
        std::fs::write(&path, &log).unwrap();
        assert_eq!(cluster_resume(&path, 1 << 20), Some(("new".to_string(), 4)));
        std::fs::write(&path, line(1, "chat", "one")).unwrap();
        assert_eq!(cluster_resume(&path, 1 << 20), None, "never in a cluster");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
