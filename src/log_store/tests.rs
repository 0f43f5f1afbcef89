use super::repair::TAIL_BYTES;
use super::*;
use crate::record::Record;
use crate::timefmt;
use std::borrow::Cow;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
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
    let text =
        "a\"b\\c\nd\re\u{2028}f\u{2029}g\u{85}h\u{0}i\u{1b}j\u{7f}k\"},{\"seq\":99,\"kind\":\"x";
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

/// Lets through the lines holding `needle`, jumping from one to the next.
struct Holding(&'static [u8]);

impl LineFilter for Holding {
    fn next_candidate(&self, buf: &[u8], from: usize) -> Option<usize> {
        buf[from..]
            .windows(self.0.len())
            .position(|w| w == self.0)
            .map(|i| from + i)
    }

    fn candidate(&self, line: &[u8]) -> bool {
        line.windows(self.0.len()).any(|w| w == self.0)
    }
}

#[test]
fn reader_jumps_to_candidate_lines() {
    let dir = TempDir::new("jump");
    let path = dir.file("chat.log");
    let texts = [
        "needle first",
        "hay",
        "hay",
        "a needle",
        "hay",
        "\n",
        "last needle",
    ];
    let mut content = String::new();
    for (i, text) in texts.iter().enumerate() {
        if *text == "\n" {
            content.push('\n');
        } else {
            content.push_str(&line(i as u64 + 1, text));
        }
    }
    std::fs::write(&path, &content).unwrap();
    let (all, _) = read_all(&path, 1 << 16);
    let want: Vec<_> = all
        .iter()
        .filter(|(_, l)| matches!(&l.record, Record::Chat { text, .. } if text.contains("needle")))
        .cloned()
        .collect();
    assert_eq!(want.len(), 3);
    // In one slice and in slices that cut lines anywhere.
    for max in [1 << 16, 200, 150] {
        let mut reader = LogReader::open(&path, 0).unwrap();
        let mut got = Vec::new();
        while !reader
            .next_slice_where(max, &Holding(b"needle"), &mut got)
            .unwrap()
        {}
        assert_eq!(got, want, "slices of {max}");
        assert_eq!(reader.offset(), content.len() as u64);
    }
}

#[test]
fn records_applied_from_the_cluster_carry_cseq_and_node_and_read_back() {
    let dir = TempDir::new("origin");
    let path = dir.file("chat.log");
    let mut store = LogStore::open(&path).unwrap();
    store.set_origin(Some((42, "n-2")));
    store.append(T0, &chat("shared")).unwrap();
    let error = Record::Error {
        conn: Some(3),
        nick: None,
        error: Cow::Borrowed("local only"),
    };
    store.append(T0, &error).unwrap();
    store.set_origin(None);
    store.append(T0, &chat("local")).unwrap();
    store.sync().unwrap();
    let text = read(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "{\"ts\":\"2026-11-27T00:24:40.123Z\",\"seq\":1,\"cseq\":42,\"node\":\"n-2\",\
         \"kind\":\"chat\",\"nick\":\"alice\",\"channel\":\"#general\",\"text\":\"shared\"}"
    );
    assert!(!lines[1].contains("cseq"), "{}", lines[1]);
    assert!(!lines[2].contains("cseq"), "{}", lines[2]);
    let (read_back, _) = read_all(&path, 1 << 20);
    assert_eq!(read_back[0].1.cseq, Some(42));
    assert_eq!(read_back[0].1.node.as_deref(), Some("n-2"));
    assert_eq!(read_back[2].1.cseq, None);
    assert_eq!(read_back[0].1.record, chat("shared"));
}

#[test]
fn a_node_down_applied_from_the_cluster_has_no_duplicate_key_and_parses_back() {
    let dir = TempDir::new("node-down");
    let path = dir.file("chat.log");
    let mut store = LogStore::open(&path).unwrap();
    store.set_origin(Some((7, "n1")));
    let down = Record::NodeDown {
        failed_node: Cow::Borrowed("n3"),
        incarnation: Cow::Borrowed("abc"),
    };
    store.append(T0, &down).unwrap();
    store.sync().unwrap();
    let text = read(&path);
    let line = text.lines().next().unwrap();
    assert_eq!(line.matches("\"node\":").count(), 1, "{line}");
    // The record's own fields (from `kind` on) parse back as the record.
    let (_, rest) = line.split_once(",\"kind\"").unwrap();
    let body = format!("{{\"kind\"{rest}");
    let parsed: Record<'_> = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed, down);
}
