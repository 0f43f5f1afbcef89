//! The WebSocket port over real sockets (SPEC §4, §5, §8): a `chat-server` process on
//! 127.0.0.1 with kernel-picked ports, driven two ways:
//!
//! - by a real WebSocket client library, Python's `websockets` (`tests/py/ws_session.py`, one
//!   JSON command per line on its stdin, one JSON answer per line on its stdout, so this file
//!   stays in control of the order of events), next to telnet users from `common`;
//! - by raw TCP sockets with hand-written HTTP and hand-masked frames (`common::http` and
//!   `common::ws`), for everything a library would refuse to send: bad handshakes, unmasked
//!   or reserved-bit frames, oversized and split frames, silent clients.
//!
//! The Python interpreter is `$CHAT_TEST_VENV/bin/python`, else `<repo>/.venv/bin/python`
//! (`make test` / `make venv` prepare it). Without one that imports `websockets`, the tests that
//! need it print a loud `SKIPPED:` and pass, except under `CI`, where they fail.
//!
//! Every wait loops on a condition with a generous deadline; no assertion rests on a sleep.

mod common;

use common::http::Http;
use common::ws::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const HELP_WORDS: [&str; 23] = [
    "/help",
    "/list",
    "/join",
    "/msg",
    "/ignore",
    "/quit",
    "/nick",
    "/me",
    "/topic",
    "/away",
    "/back",
    "/whois",
    "/channels",
    "/unignore",
    "/motd",
    "/history",
    "/oper",
    "/kick",
    "/ban",
    "/unban",
    "/bans",
    "/mute",
    "/unmute",
];

fn ws_server(extra: Value) -> Server {
    Server::start_expecting(extra, &["telnet", "websocket"])
}

// ================================================================================ python client

/// The venv interpreter that imports `websockets`, or why there is none.
fn python() -> &'static Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut candidates = Vec::new();
        if let Some(venv) = std::env::var_os("CHAT_TEST_VENV").filter(|v| !v.is_empty()) {
            candidates.push(PathBuf::from(venv).join("bin").join("python"));
        }
        candidates.push(repo.join(".venv").join("bin").join("python"));
        let mut why = Vec::new();
        for py in candidates {
            if !py.is_file() {
                why.push(format!("{} does not exist", py.display()));
                continue;
            }
            match Command::new(&py)
                .args(["-c", "import websockets.sync.client"])
                .stdin(Stdio::null())
                .output()
            {
                Ok(o) if o.status.success() => return Ok(py),
                Ok(o) => why.push(format!(
                    "{} cannot import websockets: {}",
                    py.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => why.push(format!("cannot run {}: {e}", py.display())),
            }
        }
        Err(format!(
            "{} (run `make venv`, or set CHAT_TEST_VENV)",
            why.join("; ")
        ))
    })
}

/// The interpreter, or `None` after a loud skip notice (a failure under `CI`).
fn python_or_skip(test: &str) -> Option<PathBuf> {
    match python() {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            if std::env::var_os("CI").is_some() {
                panic!("{test} needs Python websockets under CI, but: {why}");
            }
            eprintln!();
            eprintln!("************************************************************************");
            eprintln!("*** SKIPPED: {test} (Python websockets client) did NOT run:");
            eprintln!("***   {why}");
            eprintln!("************************************************************************");
            None
        }
    }
}

/// One `tests/py/ws_session.py` process: a real WebSocket client driven command by command.
struct PyWs {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Commands and answers so far, for failure messages.
    seen: Vec<String>,
}

impl PyWs {
    /// Connects to `url` (optionally with an `Origin`); fails unless the client opened.
    fn open(python: &Path, url: &str, origin: Option<&str>) -> PyWs {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("py")
            .join("ws_session.py");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(url)
            .arg(origin.unwrap_or(""))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut ws = PyWs {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
        };
        let first = ws.answer();
        assert_eq!(first["type"], "open", "the client did not connect: {first}");
        ws
    }

    /// The next JSON line from the script (its own waits are at most 10 s).
    fn answer(&mut self) -> Value {
        match self.lines.recv_timeout(DEADLINE * 2) {
            Ok(line) => {
                self.seen.push(format!("<- {line}"));
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bad line from the script ({e}): {line:?}"))
            }
            Err(e) => panic!("no answer from the Python client ({e}); {:#?}", self.seen),
        }
    }

    fn call(&mut self, cmd: Value) -> Value {
        self.seen.push(format!("-> {cmd}"));
        writeln!(self.stdin, "{cmd}").expect("write to the Python client");
        self.stdin.flush().unwrap();
        self.answer()
    }

    fn send(&mut self, text: &str) {
        let a = self.call(json!({"op": "send", "text": text}));
        assert_eq!(
            a["type"], "sent",
            "send {text:?} failed: {a}; {:#?}",
            self.seen
        );
    }

    /// The next message (or close, or timeout after `timeout_s`).
    fn recv_within(&mut self, timeout_s: f64) -> Value {
        self.call(json!({"op": "recv", "timeout": timeout_s}))
    }

    fn recv_text(&mut self) -> String {
        let a = self.recv_within(DEADLINE.as_secs_f64());
        match a["text"].as_str() {
            Some(t) if a["type"] == "text" => t.to_string(),
            _ => panic!("expected a text message, got {a}; {:#?}", self.seen),
        }
    }

    fn expect_text(&mut self, want: &str) {
        let got = self.recv_text();
        assert_eq!(got, want, "unexpected message; {:#?}", self.seen);
    }

    fn expect_match(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let got = self.recv_text();
        assert!(pred(&got), "expected {what}, got {got:?}; {:#?}", self.seen);
        got
    }

    /// The next thing must be the server closing with `code`.
    fn expect_closed(&mut self, code: u16) {
        let a = self.recv_within(DEADLINE.as_secs_f64());
        assert!(
            a["type"] == "closed" && a["code"] == code,
            "expected a close with code {code}, got {a}; {:#?}",
            self.seen
        );
    }

    fn ping(&mut self, data: &str) {
        let a = self.call(json!({"op": "ping", "data": data, "timeout": 10}));
        assert_eq!(
            a["type"], "pong",
            "no pong for {data:?}: {a}; {:#?}",
            self.seen
        );
    }

    /// Ends the process without a close frame (the kernel closes the socket).
    fn abort(mut self) {
        let a = self.call(json!({"op": "abort"}));
        assert_eq!(a["type"], "aborting", "{a}");
        let _ = self.child.wait();
    }
}

impl Drop for PyWs {
    fn drop(&mut self) {
        // Our own child only, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ================================================================================ §4 over a library

/// A browser-like client and a telnet user chat in one channel: greeting, nickname, join,
/// public messages and private messages both ways, `/help` as one frame, a client ping,
/// `/quit` with its goodbye and close 1000.
#[test]
fn library_client_chats_with_a_telnet_user() {
    let Some(py) = python_or_skip("library_client_chats_with_a_telnet_user") else {
        return;
    };
    let mut srv = ws_server(json!({}));
    let url = format!("ws://{}/ws", srv.addr("websocket"));
    let mut bob = srv.user_in("bob", "#lobby");

    let mut alice = PyWs::open(&py, &url, None);
    alice.expect_text(&welcome(1));
    alice.send("alice");
    alice.expect_text(&thanks("alice"));
    alice.send("/join #lobby");
    alice.expect_text(&others(1));
    alice.expect_match("alice's joined notice", |t| {
        is_event(t, "alice", "just joined channel #lobby")
    });
    bob.expect_match("alice's joined notice", |l| {
        is_event(l, "alice", "just joined channel #lobby")
    });

    // Public messages both ways; the sender gets its own copy.
    alice.send("hello from the browser");
    alice.expect_match("alice's chat", |t| {
        is_chat(t, "alice", "hello from the browser")
    });
    bob.expect_match("alice's chat", |l| {
        is_chat(l, "alice", "hello from the browser")
    });
    bob.send_line("hello from telnet");
    bob.expect_match("bob's chat", |l| is_chat(l, "bob", "hello from telnet"));
    alice.expect_match("bob's chat", |t| is_chat(t, "bob", "hello from telnet"));

    // Private messages across transports, both directions.
    alice.send("/msg @bob psst over websocket");
    alice.expect_match("alice's private copy", |t| {
        is_private_to(t, "bob", "psst over websocket")
    });
    bob.expect_match("the private message from alice", |l| {
        is_private_from(l, "alice", "psst over websocket")
    });
    bob.send_line("/msg @alice psst over telnet");
    bob.expect_match("bob's private copy", |l| {
        is_private_to(l, "alice", "psst over telnet")
    });
    alice.expect_match("the private message from bob", |t| {
        is_private_from(t, "bob", "psst over telnet")
    });

    // /help: one frame, lines separated by \n, no trailing newline; the same lines telnet gets.
    alice.send("/help");
    let help = alice.recv_text();
    assert!(
        help.starts_with(&format!("{HELP_HEADER}\n")),
        "help frame: {help:?}"
    );
    assert!(
        !help.ends_with('\n') && !help.contains('\r'),
        "help frame: {help:?}"
    );
    let lines: Vec<&str> = help.split('\n').collect();
    assert_eq!(
        lines.len(),
        1 + HELP_WORDS.len(),
        "header + every command: {help:?}"
    );
    for l in &lines[1..] {
        assert!(l.starts_with('/') && l.contains('\t'), "help line {l:?}");
    }
    let words: BTreeSet<&str> = lines[1..]
        .iter()
        .map(|l| l.split([' ', '\t']).next().unwrap())
        .collect();
    assert_eq!(words, HELP_WORDS.into_iter().collect::<BTreeSet<_>>());
    bob.send_line("/help");
    for want in &lines {
        bob.expect(want);
    }

    // A client ping is answered.
    alice.ping("are you there");

    // /quit: the goodbye, then close 1000; the channel is told.
    alice.send("/quit");
    alice.expect_text(&good_bye("alice"));
    alice.expect_closed(1000);
    bob.expect_match("alice left", |l| {
        is_event(l, "alice", "left channel #lobby")
    });
}

/// A client that vanishes without a close frame (the process is killed, or a raw socket is
/// dropped) frees its nickname at once and its channel is told.
#[test]
fn abrupt_disconnect_frees_the_nickname() {
    let mut srv = ws_server(json!({}));
    let addr = srv.addr("websocket");
    let mut bob = srv.user_in("bob", "#room");

    // A raw socket closed without a close frame.
    let mut carol = Ws::user_in(addr, "carol", "#room");
    bob.expect_match("carol's joined notice", |l| {
        is_event(l, "carol", "just joined channel #room")
    });
    carol.send(&text_frame("half a frame")[..5]);
    drop(carol);
    bob.expect_match("carol left", |l| is_event(l, "carol", "left channel #room"));
    let mut carol2 = Ws::open(addr);
    carol2.expect_text(&welcome(1));
    carol2.send_text("carol");
    carol2.expect_text(&thanks("carol"));

    // A library client whose process is killed.
    let Some(py) = python_or_skip("abrupt_disconnect_frees_the_nickname (library part)") else {
        return;
    };
    let url = format!("ws://{addr}/ws");
    let mut alice = PyWs::open(&py, &url, None);
    alice.expect_text(&welcome(2));
    alice.send("alice");
    alice.expect_text(&thanks("alice"));
    alice.send("/join #room");
    alice.expect_text(&others(1));
    alice.expect_match("alice's joined notice", |t| {
        is_event(t, "alice", "just joined channel #room")
    });
    bob.expect_match("alice's joined notice", |l| {
        is_event(l, "alice", "just joined channel #room")
    });
    alice.abort();
    bob.expect_match("alice left", |l| is_event(l, "alice", "left channel #room"));
    let mut again = PyWs::open(&py, &url, None);
    again.expect_text(&welcome(2));
    again.send("ALICE");
    again.expect_text(&thanks("ALICE"));
}

// ================================================================================ handshake

/// Every bad handshake gets a real HTTP answer, then the connection is closed.
#[test]
fn bad_handshakes_get_http_errors() {
    let mut srv = ws_server(json!({}));
    let addr = srv.addr("websocket");
    let host = addr.to_string();

    // A plain GET /ws, no upgrade headers.
    let mut raw = Ws::connect(addr);
    raw.send(format!("GET /ws HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    let r = raw.response(false);
    assert_eq!(r.status, 400, "{r:?}");
    raw.expect_eof();

    // POST: 405 with Allow.
    let mut raw = Ws::connect(addr);
    raw.send(upgrade_request("POST", &host, &[("Content-Length", "0")]).as_bytes());
    let r = raw.response(false);
    assert_eq!(r.status, 405, "{r:?}");
    assert!(
        r.header("Allow").is_some_and(|a| a.contains("GET")),
        "405 without Allow: GET: {r:?}"
    );
    raw.expect_eof();

    // Version 8: 426 naming version 13.
    let (mut raw, r) = Ws::handshake(addr, &[("Sec-WebSocket-Version", "8")], b"");
    assert_eq!(r.status, 426, "{r:?}");
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"), "{r:?}");
    raw.expect_eof();

    // No key: 400.
    let (mut raw, r) = Ws::handshake(addr, &[("Sec-WebSocket-Key", "")], b"");
    assert_eq!(r.status, 400, "{r:?}");
    raw.expect_eof();

    // Headers over the 8 KiB cap: 431.
    let filler = "a".repeat(9 * 1024);
    let (mut raw, r) = Ws::handshake(addr, &[("X-Filler", &filler)], b"");
    assert_eq!(r.status, 431, "{r:?}");
    raw.expect_eof();

    // The server is fine afterwards.
    let mut ok = Ws::open(addr);
    ok.expect_text(&welcome(0));
}

/// A foreign `Origin` is refused with 403; the page's own host, a configured origin and no
/// Origin at all are accepted.
#[test]
fn origin_is_checked() {
    let mut srv = ws_server(json!({"allowed_origins": ["https://chat.example.com"]}));
    let addr = srv.addr("websocket");

    let (mut raw, r) = Ws::handshake(addr, &[("Origin", "http://evil.example")], b"");
    assert_eq!(r.status, 403, "{r:?}");
    raw.expect_eof();

    let same_host = format!("http://{addr}");
    for origin in [same_host.as_str(), "https://chat.example.com", ""] {
        let (mut raw, r) = Ws::handshake(addr, &[("Origin", origin)], b"");
        assert_upgraded(&r);
        raw.expect_match(&format!("the greeting (Origin {origin:?})"), |t| {
            t.starts_with("Welcome to chat server.")
        });
    }

    // The library client, with the page's own origin.
    if let Some(py) = python_or_skip("origin_is_checked (library part)") {
        let mut ws = PyWs::open(&py, &format!("ws://{addr}/ws"), Some(&same_host));
        ws.expect_match("the greeting", |t| t.starts_with("Welcome to chat server."));
    }
}

/// A connection that never finishes its request is closed after `ws_handshake_timeout_s`;
/// an upgraded connection is not.
#[test]
fn handshake_deadline_closes_stalled_connections() {
    let mut srv = ws_server(json!({"ws_handshake_timeout_s": 1}));
    let addr = srv.addr("websocket");

    let mut upgraded = Ws::open(addr);
    upgraded.expect_text(&welcome(0));
    let mut partial = Http::connect(addr);
    partial.send(format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\n").as_bytes());
    let mut silent = Http::connect(addr);

    for (what, raw) in [("partial request", &mut partial), ("silent", &mut silent)] {
        // A 408 before the close is fine; the close is what matters.
        let end = Instant::now() + DEADLINE;
        while !raw.eof && raw.fill(end) {}
        assert!(
            raw.eof,
            "the {what} connection was not closed within {DEADLINE:?}; {}",
            raw.context()
        );
        let got = String::from_utf8_lossy(&raw.buf).into_owned();
        assert!(
            got.is_empty() || got.starts_with("HTTP/1.1 408"),
            "the {what} connection got {got:?}"
        );
    }

    // The upgraded connection outlived the deadline.
    upgraded.send_text("dave");
    upgraded.expect_text(&thanks("dave"));
}

// ================================================================================ frames

/// Every rule-breaking frame gets the right close code, then the connection is closed.
#[test]
fn bad_frames_get_the_right_close_codes() {
    let mut srv = ws_server(json!({}));
    let addr = srv.addr("websocket");

    let mut fragments = frame(OP_TEXT, &[b'a'; 3000], Some(MASK));
    fragments.extend(frame(0x80 | OP_CONT, &[b'a'; 3000], Some(MASK)));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a binary frame",
            frame(0x80 | OP_BINARY, b"bin", Some(MASK)),
            1003,
        ),
        (
            "a 5000-byte text frame",
            frame(0x80 | OP_TEXT, &[b'a'; 5000], Some(MASK)),
            1009,
        ),
        ("fragments adding up to 6000 bytes", fragments, 1009),
        (
            "invalid UTF-8 text",
            frame(0x80 | OP_TEXT, &[b'a', 0xff, 0xfe], Some(MASK)),
            1007,
        ),
        (
            "an unmasked text frame",
            frame(0x80 | OP_TEXT, b"hello", None),
            1002,
        ),
        (
            "RSV1 set",
            frame(0x80 | 0x40 | OP_TEXT, b"hello", Some(MASK)),
            1002,
        ),
        (
            "a continuation without a start",
            frame(0x80 | OP_CONT, b"hello", Some(MASK)),
            1002,
        ),
        (
            "a reserved opcode",
            frame(0x80 | 0x3, b"hello", Some(MASK)),
            1002,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut raw = Ws::open(addr);
        raw.expect_text(&welcome(0));
        raw.send(&bytes);
        let texts = raw.expect_close(code);
        assert!(
            texts.is_empty() || code == 1003,
            "{what}: unexpected messages before the close: {texts:?}"
        );
    }

    // A message at the frame cap (but over max_line_bytes) is refused, not fatal.
    let mut raw = Ws::user(addr, "erin");
    raw.send_text(&"x".repeat(4096));
    raw.expect_text("Your message is longer than 512 bytes and was not sent.");
    raw.send_text("/join #still-here");
    raw.expect_text(&others(0));

    // A client close is answered with a close frame, then the connection ends.
    let mut raw = Ws::open(addr);
    raw.expect_text(&welcome(1));
    raw.send(&frame(0x80 | OP_CLOSE, &1000u16.to_be_bytes(), Some(MASK)));
    let f = raw.next_frame();
    assert!(
        f.close_code().is_some(),
        "expected a close frame in answer, got {f:?}"
    );
    raw.expect_eof();
}

/// RFC 6455 §7.4: close codes that must never be sent (1005, 1006), and codes outside the
/// defined ranges, are protocol errors: the server fails the connection with 1002.
#[test]
fn invalid_client_close_codes_are_protocol_errors() {
    let mut srv = ws_server(json!({}));
    let addr = srv.addr("websocket");
    for code in [999u16, 1005, 1006, 5000] {
        let mut raw = Ws::open(addr);
        raw.expect_text(&welcome(0));
        raw.send(&frame(0x80 | OP_CLOSE, &code.to_be_bytes(), Some(MASK)));
        let f = raw.next_frame();
        assert_eq!(
            f.close_code(),
            Some(1002),
            "a client close with the invalid code {code} must be answered with 1002, got {f:?}"
        );
        raw.expect_eof();
    }
}

/// RFC 6455 §4.2.1: an opening handshake without `Host` gets 400.
#[test]
fn handshake_without_host_is_400() {
    let mut srv = ws_server(json!({}));
    let addr = srv.addr("websocket");
    let mut raw = Ws::connect(addr);
    raw.send(upgrade_request("GET", "", &[("Host", "")]).as_bytes());
    let r = raw.response(false);
    assert_eq!(r.status, 400, "an upgrade request without Host: {r:?}");
    raw.expect_eof();
}

/// A WebSocket connection that never picks a nickname is told so and closed with 1008.
#[test]
fn nickname_deadline_closes_with_1008() {
    let mut srv = ws_server(json!({"nick_timeout_s": 1}));
    let addr = srv.addr("websocket");
    let mut raw = Ws::open(addr);
    raw.expect_text(&welcome(0));
    let texts = raw.expect_close(1008);
    assert_eq!(
        texts,
        vec!["You did not enter a nickname in time, good bye.".to_string()]
    );
}

/// Framing is independent of TCP segments: bytes behind the upgrade request are kept, a frame
/// written one byte at a time is one line, several frames in one write are several lines.
#[test]
fn frames_are_independent_of_tcp_writes() {
    let mut srv = ws_server(json!({}));
    let addr = srv.addr("websocket");

    // The nickname rides in the same write as the upgrade request.
    let (mut raw, r) = Ws::handshake(addr, &[], &text_frame("alice"));
    assert_upgraded(&r);
    raw.expect_text(&welcome(0));
    raw.expect_text(&thanks("alice"));

    // One byte per write.
    for b in text_frame("/join #frames") {
        raw.send(&[b]);
        thread::sleep(Duration::from_millis(2)); // pacing only: separate segments
    }
    raw.expect_text(&others(0));
    raw.expect_match("the joined notice", |t| {
        is_event(t, "alice", "just joined channel #frames")
    });

    // Three frames in one write: three lines, in order.
    let mut three = Vec::new();
    for t in ["one", "two", "three"] {
        three.extend(text_frame(t));
    }
    raw.send(&three);
    for t in ["one", "two", "three"] {
        raw.expect_match(&format!("the chat line {t:?}"), |l| is_chat(l, "alice", t));
    }

    // A fragmented message with a ping between the fragments, split mid-header across writes.
    let mut bytes = frame(OP_TEXT, b"frag", Some(MASK));
    bytes.extend(frame(0x80 | OP_PING, b"mid", Some(MASK)));
    bytes.extend(frame(0x80 | OP_CONT, b"mented", Some(MASK)));
    let (a, b) = bytes.split_at(bytes.len() - 9);
    raw.send(a);
    let pong = raw.next_frame();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"mid"[..]),
        "{pong:?}"
    );
    raw.send(b);
    raw.expect_match("the reassembled chat line", |l| {
        is_chat(l, "alice", "fragmented")
    });
}

/// A client ping is answered with a pong carrying the same payload.
#[test]
fn client_ping_gets_a_pong() {
    let mut srv = ws_server(json!({}));
    let addr = srv.addr("websocket");
    let mut raw = Ws::open(addr);
    raw.expect_text(&welcome(0));
    for payload in [&b"ping-payload"[..], b"", &[0u8, 255, 1, 2][..]] {
        raw.send(&frame(0x80 | OP_PING, payload, Some(MASK)));
        let f = raw.next_frame();
        assert!(
            f.fin && f.opcode == OP_PONG && f.payload == payload,
            "expected a pong with {payload:?}, got {f:?}"
        );
    }
    // Still a working session afterwards.
    raw.send_text("pinger");
    raw.expect_text(&thanks("pinger"));
}

/// The server pings silent clients and closes (1008) those that never answer; clients that
/// answer (by hand, or the library by itself) stay connected past the idle timeout.
#[test]
fn keepalive_pings_and_closes_silent_clients() {
    let mut srv = ws_server(json!({"ws_ping_interval_s": 1, "ws_idle_timeout_s": 3}));
    let addr = srv.addr("websocket");
    let start = Instant::now();

    let py = python_or_skip("keepalive_pings_and_closes_silent_clients (library part)");
    let mut lib = py.map(|py| {
        let mut ws = PyWs::open(&py, &format!("ws://{addr}/ws"), None);
        ws.expect_text(&welcome(0));
        ws
    });
    let mut silent = Ws::open(addr);
    let mut answering = Ws::open(addr);

    // The silent client: the greeting, a ping, then close 1008 and EOF; it sends nothing.
    silent.expect_match("the greeting", |t| t.starts_with("Welcome"));
    let mut silent_pinged = false;
    let mut silent_closed = false;
    let mut answered = 0;
    let end = Instant::now() + DEADLINE + DEADLINE;
    // Until the silent one is gone and the answering one has outlived the idle timeout by a
    // margin (it was opened together with the silent one).
    while !(silent_closed && answered >= 3 && start.elapsed() > Duration::from_secs(5)) {
        assert!(
            Instant::now() < end,
            "keepalive did not play out in time: silent pinged {silent_pinged}, closed \
             {silent_closed}, answered {answered}; silent: {}; answering: {}",
            silent.context(),
            answering.context()
        );
        if !silent_closed {
            match silent.next_within(Duration::from_millis(50)) {
                Next::Frame(f) if f.opcode == OP_PING => silent_pinged = true,
                Next::Frame(f) if f.opcode == OP_CLOSE => {
                    assert!(silent_pinged, "closed before any ping: {f:?}");
                    assert_eq!(f.close_code(), Some(1008), "{f:?}");
                    silent.expect_eof();
                    silent_closed = true;
                }
                Next::Frame(f) => panic!("unexpected frame to the silent client: {f:?}"),
                Next::Closed => panic!(
                    "the silent client was closed without a close frame; {}",
                    silent.context()
                ),
                Next::Timeout => {}
            }
        }
        match answering.next_within(Duration::from_millis(50)) {
            Next::Frame(f) if f.opcode == OP_PING => {
                answering.send(&frame(0x80 | OP_PONG, &f.payload, Some(MASK)));
                answered += 1;
            }
            Next::Frame(f) if f.opcode == OP_TEXT => {}
            Next::Frame(f) => panic!(
                "unexpected frame to the answering client: {f:?}; {}",
                answering.context()
            ),
            Next::Closed => panic!("the answering client was closed; {}", answering.context()),
            Next::Timeout => {}
        }
    }

    // Both answering clients are still in working order.
    answering.send_text("answerer");
    loop {
        let f = answering.next_frame();
        match f.opcode {
            OP_PING => answering.send(&frame(0x80 | OP_PONG, &f.payload, Some(MASK))),
            _ => {
                assert_eq!(f.text(), Some(thanks("answerer")), "{f:?}");
                break;
            }
        }
    }
    if let Some(lib) = lib.as_mut() {
        lib.send("library");
        lib.expect_text(&thanks("library"));
    }
    srv.wait_log("close of the silent client, idle", DEADLINE, |r| {
        r["kind"] == "close" && r["reason"].as_str().is_some_and(|s| s.contains("idle"))
    });
}

// ================================================================================ shutdown

/// SIGTERM: every WebSocket user gets the shutdown notice, then close 1001; the server exits 0.
#[test]
fn shutdown_sends_notice_then_close_1001() {
    let mut srv = ws_server(json!({}));
    let addr = srv.addr("websocket");
    let mut named = Ws::user_in(addr, "frank", "#bye");
    let mut anonymous = Ws::open(addr);
    anonymous.expect_text(&welcome(1));

    srv.sigterm();
    named.expect_text(SHUTDOWN);
    assert_eq!(named.expect_close(1001), Vec::<String>::new());
    assert_eq!(anonymous.expect_close(1001), vec![SHUTDOWN.to_string()]);
    let status = srv.wait_exit(DEADLINE).expect("the server did not exit");
    assert!(status.success(), "exit status {status}");
}

// ================================================================================ web pages

/// The chat page, its assets, the redirect, 404, HEAD and keep-alive on the WebSocket port.
#[test]
fn client_page_and_assets_are_served() {
    let mut srv = ws_server(json!({}));
    let addr = srv.addr("websocket");

    let mut raw = Http::connect(addr);
    let page = raw.request("GET", "/client", &[], None);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{page:?}"
    );
    assert!(
        page.header("Content-Security-Policy").is_some(),
        "no CSP: {:?}",
        page.headers
    );
    assert_eq!(page.header("X-Content-Type-Options"), Some("nosniff"));
    let html = page.text();
    assert!(
        html.to_lowercase().contains("<html"),
        "not a page: {html:?}"
    );

    // Keep-alive: more requests on the same connection.
    for (path, kind) in [
        ("/client/app.js", "javascript"),
        ("/client/style.css", "text/css"),
    ] {
        let r = raw.request("GET", path, &[], None);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert!(
            r.header("Content-Type").is_some_and(|t| t.contains(kind)),
            "{path}: {:?}",
            r.headers
        );
        assert!(!r.body.is_empty(), "{path}: empty body");
    }

    // HEAD: the headers of GET, no body (the next response follows directly).
    let head = raw.request("HEAD", "/client", &[], None);
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(
        head.header("Content-Length"),
        Some(page.body.len().to_string().as_str()),
        "{head:?}"
    );
    let root = raw.request("GET", "/", &[], None);
    assert_eq!(root.status, 302, "{root:?}");
    assert_eq!(root.header("Location"), Some("/client"), "{root:?}");
    let missing = raw.request("GET", "/no-such-page", &[], None);
    assert_eq!(missing.status, 404, "{missing:?}");

    // Connection: close ends it.
    let last = raw.request("GET", "/client", &[("Connection", "close")], None);
    assert_eq!(last.status, 200);
    assert_eq!(last.body, page.body);
    raw.assert_closed();
}

// ================================================================================ the log

/// A WebSocket user's connection and chat are in the log.
#[test]
fn websocket_chat_is_logged() {
    let mut srv = ws_server(json!({}));
    let addr = srv.addr("websocket");
    let mut gina = Ws::user_in(addr, "gina", "#logs");
    gina.send_text("a line for the log");
    gina.expect_match("gina's chat", |t| is_chat(t, "gina", "a line for the log"));

    let chat = srv.wait_log("gina's chat", DEADLINE, |r| {
        r["kind"] == "chat" && r["nick"] == "gina"
    });
    assert_eq!(chat["text"], "a line for the log", "{chat}");
    assert_eq!(chat["channel"], "#logs", "{chat}");
    let conn = srv.wait_log("gina's nick", DEADLINE, |r| {
        r["kind"] == "nick" && r["nick"] == "gina"
    })["conn"]
        .clone();
    let connect = srv.wait_log("gina's connect", DEADLINE, |r| {
        r["kind"] == "connect" && r["conn"] == conn
    });
    assert_eq!(connect["transport"], "websocket", "{connect}");
}

/// Lines held by the rate limit are delivered before a close frame read in the same write
/// is acted on: nothing the client sent before closing is lost.
#[test]
fn close_frame_after_rate_limited_lines_loses_none_of_them() {
    let mut srv = ws_server(json!({"lines_per_s": 50.0}));
    let addr = srv.addr("websocket");
    let mut bob = Ws::user_in(addr, "bob", "#burst");
    let mut alice = Ws::user_in(addr, "alice", "#burst");
    bob.expect_message("alice's join", |t| {
        is_event(t, "alice", "just joined channel #burst")
    });
    let mut bytes = Vec::new();
    for i in 0..60 {
        bytes.extend(text_frame(&format!("line {i}")));
    }
    bytes.extend(client_frame(OP_CLOSE, &1000u16.to_be_bytes()));
    alice.send(&bytes);
    for i in 0..60 {
        let want = format!("line {i}");
        bob.expect_message(&format!("alice's {want:?}"), |t| is_chat(t, "alice", &want));
    }
    bob.expect_message("alice's leave notice", |t| {
        is_event(t, "alice", "left channel #burst")
    });
    let echoed = alice.expect_close(1000);
    assert_eq!(echoed.len(), 60, "{echoed:?}");
}
