//! Overload (README "Overload"): when the server falls behind, it is never the readers'
//! fault. Senders flood one channel far faster than the server can fan their lines out to
//! readers that keep reading; nobody is disconnected and every reader gets every line, in
//! each sender's order. Bounded by generous deadlines; no assertion on timing.

mod common;

use common::probe::metric;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

/// Readers in the channel (the first `SENDERS` of them also send).
const READERS: usize = 24;
const SENDERS: usize = 8;
/// Lines per sender, all written at once.
const LINES: usize = 1000;
/// How long the readers may take to get everything, on a loaded machine.
const DEADLINE_ALL: Duration = Duration::from_secs(120);

/// What one reader got.
struct Got {
    /// Lines received from each sender, in order.
    counts: [usize; SENDERS],
    /// The first out-of-order or unexpected line, if any.
    error: Option<String>,
    /// The server closed the connection.
    closed: bool,
}

/// Reads chat lines until every sender's `LINES` have arrived (or EOF, or the deadline).
fn read_all(mut stream: TcpStream, end: Instant) -> Got {
    let mut got = Got {
        counts: [0; SENDERS],
        error: None,
        closed: false,
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let missing = |got: &Got| got.counts.iter().any(|&n| n < LINES);
    while missing(&got) && Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) if missing(&got) => {
                got.closed = Instant::now() < end;
                break;
            }
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut start = 0;
        while let Some(i) = buf[start..].windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[start..start + i]).into_owned();
            start += i + 2;
            let Some((nick, text)) = parse_chat(&line) else {
                continue; // join notices and the like
            };
            let Some(s) = nick.strip_prefix('s').and_then(|s| s.parse::<usize>().ok()) else {
                continue;
            };
            let expected = format!("{:05} {}", got.counts[s], pad());
            if text != expected && got.error.is_none() {
                got.error = Some(format!("from {nick}: {text:?}, expected {expected:?}"));
            }
            got.counts[s] += 1;
        }
        buf.drain(..start);
    }
    got
}

/// A thread per client reading its connection with `read`.
fn spawn_readers<T: Send + 'static>(
    clients: &[Telnet],
    read: impl Fn(TcpStream) -> T + Clone + Send + 'static,
) -> Vec<thread::JoinHandle<T>> {
    clients
        .iter()
        .map(|c| {
            let stream = c.stream().try_clone().unwrap();
            let read = read.clone();
            thread::spawn(move || read(stream))
        })
        .collect()
}

/// The numbered lines `range` as a sender types them.
fn lines(range: std::ops::Range<usize>) -> Vec<u8> {
    range
        .flat_map(|n| format!("{n:05} {}\r\n", pad()).into_bytes())
        .collect()
}

/// A server without a line rate limit, with small output caps (32 KiB at once, 16 KiB for
/// 10 s) and the backlog watermark `backlog_high`.
fn flood_server(backlog_high: usize) -> Server {
    let config = json!({
        "lines_burst": 1_000_000,
        "lines_per_s": 1_000_000.0,
        "output_hard_limit_bytes": 32_768,
        "output_soft_limit_bytes": 16_384,
        "output_soft_limit_s": 10,
        "backlog_high_bytes": backlog_high,
    });
    Server::start_expecting(config, &["telnet", "rest"])
}

/// Filler that makes each line about 64 bytes.
fn pad() -> String {
    "x".repeat(48)
}

#[test]
fn a_flood_beyond_the_servers_capacity_disconnects_nobody_and_loses_nothing() {
    // The backlog counts what the queued output costs in memory: each line once (about 110
    // bytes) and a pointer per reader, about 300 bytes a line here. A pass may queue twice
    // the 128 KiB watermark, about 850 lines, 60 KiB per reader: more than the caps, which
    // judge only a socket that pushes back, and these readers keep reading. The senders offer
    // about 2,000 lines per pass (16 KiB read from each), so input pauses.
    let mut srv = flood_server(131_072);
    let rest = srv.addr("rest");
    let clients: Vec<Telnet> = (0..READERS)
        .map(|i| {
            let nick = if i < SENDERS {
                format!("s{i}")
            } else {
                format!("r{i}")
            };
            srv.user_in(&nick, "#flood")
        })
        .collect();
    let end = Instant::now() + DEADLINE_ALL;
    let readers = spawn_readers(&clients, move |stream| read_all(stream, end));
    let senders: Vec<_> = clients[..SENDERS]
        .iter()
        .map(|c| {
            let mut stream = c.stream().try_clone().unwrap();
            thread::spawn(move || stream.write_all(&lines(0..LINES)))
        })
        .collect();
    for s in senders {
        s.join()
            .unwrap()
            .expect("a sender could not write its lines");
    }
    let results: Vec<Got> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let overflow = metric(rest, "chat_disconnects_total{reason=\"output_overflow\"}");
    let pauses = metric(rest, "chat_input_pauses_total");
    eprintln!(
        "{SENDERS} senders x {LINES} lines to {READERS} readers ({} deliveries): chat input \
         paused {pauses} times",
        SENDERS * LINES * READERS
    );
    for (i, got) in results.iter().enumerate() {
        assert!(!got.closed, "reader {i} was disconnected: {:?}", got.counts);
        assert_eq!(got.error, None, "reader {i}: a line out of order");
        assert_eq!(
            got.counts, [LINES; SENDERS],
            "reader {i} did not get every line within {DEADLINE_ALL:?}"
        );
    }
    assert_eq!(overflow, 0, "readers disconnected for output");
    assert!(
        srv.log_kind("close").is_empty(),
        "closes: {:?}",
        srv.log_kind("close")
    );
    // The flood queues far more than backlog_high_bytes in one loop pass, so input paused.
    assert!(pauses > 0, "chat input never paused");
    drop(clients);
}

/// Reads chat lines from `s0` until its line `end`: how many came before it, in order, and
/// whether the server closed the connection first.
fn read_until_end(mut stream: TcpStream, end: Instant) -> (usize, Option<String>, bool) {
    let (mut count, mut error) = (0, None);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return (count, error, Instant::now() < end),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut start = 0;
        while let Some(i) = buf[start..].windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[start..start + i]).into_owned();
            start += i + 2;
            match parse_chat(&line) {
                Some(("s0", "end")) => return (count, error, false),
                Some(("s0", text)) => {
                    let expected = format!("{count:05} {}", pad());
                    if text != expected && error.is_none() {
                        error = Some(format!("{text:?}, expected {expected:?}"));
                    }
                    count += 1;
                }
                _ => {}
            }
        }
        buf.drain(..start);
    }
    (count, error, false)
}

/// Readers that never read are cut at the caps even while the server is behind, and they
/// never hold chat input paused: the others still get every line.
#[test]
fn stalled_readers_are_cut_and_never_hold_the_input_paused() {
    const STALLED: usize = 4;
    const ACTIVE: usize = 4;
    /// Lines per batch; batches go on until every stalled reader is cut.
    const BATCH: usize = 2000;
    let mut srv = flood_server(65_536);
    let (telnet, rest) = (srv.addr("telnet"), srv.addr("rest"));
    let mut stalled = Vec::new();
    for i in 0..STALLED {
        let nick = format!("z{i}");
        let mut t = Telnet::from_stream(common::sockets::connect_small_rcvbuf(telnet, 4096));
        t.expect_match("the greeting", |l| l.starts_with("Welcome to chat server."));
        t.send_line(&nick);
        t.expect(&thanks(&nick));
        t.send_line("/join #flood");
        t.expect(&others(i));
        t.expect_match("the joined notice", |l| {
            is_event(l, &nick, "just joined channel #flood")
        });
        stalled.push(t); // never read again
    }
    let clients: Vec<Telnet> = (0..ACTIVE)
        .map(|i| srv.user_in(&format!("s{i}"), "#flood"))
        .collect();
    let end = Instant::now() + DEADLINE_ALL;
    let readers = spawn_readers(&clients, move |stream| read_until_end(stream, end));
    // Input held paused would stop the sender's lines, and with them this writer (the
    // write timeout turns that into a failure).
    let mut writer = clients[0].stream().try_clone().unwrap();
    writer.set_write_timeout(Some(DEADLINE_ALL)).unwrap();
    let mut sent = 0;
    while metric(rest, "chat_disconnects_total{reason=\"output_overflow\"}") < STALLED as u64 {
        assert!(Instant::now() < end, "the stalled readers were not cut");
        let batch = lines(sent..sent + BATCH);
        writer
            .write_all(&batch)
            .expect("the sender could not write");
        sent += BATCH;
    }
    writer.write_all(b"end\r\n").unwrap();
    for (i, r) in readers.into_iter().enumerate() {
        let (count, error, closed) = r.join().unwrap();
        assert!(
            !closed,
            "active reader {i} was disconnected after {count} lines"
        );
        assert_eq!(error, None, "active reader {i}: a line out of order");
        assert_eq!(count, sent, "active reader {i} did not get every line");
    }
    let cut = metric(rest, "chat_disconnects_total{reason=\"output_overflow\"}");
    assert_eq!(cut, STALLED as u64, "only the stalled readers are cut");
    eprintln!("{STALLED} stalled readers cut after {sent} lines");
    drop((stalled, clients));
}
