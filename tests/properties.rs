//! Property tests for hostile input (SPEC §3, §5, §8): the framers and the chat core never
//! panic, keep their buffers bounded, give the same result however the input is split into
//! reads, and never put a control character (other than `'\n'` between lines and TAB) on
//! another user's screen.
//!
//! The checks are the ones the cargo-fuzz targets run (`fuzz/src/checks.rs`, included here),
//! so that `make test` holds the code to the same rules as `make fuzz`; this file supplies
//! the inputs: proptest strategies that mix well-formed traffic (telnet sessions, HTTP
//! requests, masked WebSocket frames, chat scripts) with arbitrary bytes. 256 cases per
//! property; the whole file runs in a few seconds in a debug build.

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use chat_server::chat::{ClientId, Outbox};
use chat_server::proto::http::HttpLimits;
use chat_server::proto::telnet::TelnetLimits;
use chat_server::proto::websocket::WsDecoder;
use checks::{
    check_clean_line, check_http, check_parse_command, check_telnet, check_ws, client_frame,
    heap_counting, live_bytes, run_script, write_fixture_log, HttpOut, Recorder, Routes, TelnetOut,
    WsOut,
};
use proptest::collection::vec;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;

#[global_allocator]
static ALLOC: checks::CountingAlloc = checks::CountingAlloc;

/// 256 cases (`PROPTEST_CASES` overrides), no regression files written into the source tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Cut points for splitting an input into reads.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    vec(any::<usize>(), 0..8)
}

// ---------------------------------------------------------------------------------------
// Telnet

fn telnet_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => b'a'..=b'e',
        2 => prop::sample::select(vec![b'\r', b'\n', 0u8]),
        2 => prop::sample::select(vec![255u8, 254, 253, 252, 251, 250, 244, 240, 6, 1]),
        1 => any::<u8>(),
    ]
}

fn telnet_limits() -> impl Strategy<Value = TelnetLimits> {
    (
        prop_oneof![0usize..24, Just(512)],
        prop_oneof![0usize..200, Just(4096)],
    )
        .prop_map(|(max_line, max_input)| TelnetLimits {
            max_line,
            max_input,
        })
}

/// A line of text as a user types it (no CR, LF or IAC; escapes and UTF-8 included).
fn typed_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 #@/]{0,30}",
        "[a-z ]{0,8}(\u{1b}\\[[0-9;]{0,4}[A-Za-z]|\u{1b}\\][0-9];[a-z]{0,5}\u{7}|\t|\u{7f}|é|✓|🎉|\u{9b}2J)[a-z ]{0,8}",
        "\\PC{0,20}",
    ]
}

/// A telnet negotiation a client might send: DO/DONT/WILL/WONT x, a subnegotiation, IP, NOP.
fn negotiation() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (251u8..=254, any::<u8>()).prop_map(|(verb, opt)| vec![255, verb, opt]),
        vec(0u8..=254, 0..6).prop_map(|body| {
            let mut v = vec![255, 250, 24];
            v.extend(body);
            v.extend([255, 240]);
            v
        }),
        Just(vec![255, 241]),
        Just(vec![255, 253, 6]),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes: no panic, same events for any chunking, lines within max_line, bounded
    /// decoder heap (see `check_telnet`).
    #[test]
    fn telnet_any_bytes_any_chunking(
        data in vec(telnet_byte(), 0..300),
        cuts in cuts(),
        limits in telnet_limits(),
    ) {
        check_telnet(&data, &limits, &cuts);
    }

    /// A session of typed lines, with every telnet line ending and negotiation mixed in,
    /// gives exactly the typed lines (cleaned of control characters), and the refusals.
    #[test]
    fn telnet_session_gives_the_typed_lines(
        lines in vec((typed_line(), 0usize..4, vec(negotiation(), 0..3)), 0..8),
        cuts in cuts(),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        let mut after_bare_cr = false;
        for (text, ending, negotiations) in &lines {
            for n in negotiations {
                wire.extend_from_slice(n);
                match n.as_slice() {
                    [255, 253, 6] => expected.push(TelnetOut::Reply([255, 251, 6])),
                    [255, 253, opt] => expected.push(TelnetOut::Reply([255, 252, *opt])),
                    [255, 251, opt] => expected.push(TelnetOut::Reply([255, 254, *opt])),
                    _ => {}
                }
            }
            wire.extend_from_slice(text.as_bytes());
            // After a bare CR a lone LF would be swallowed as its CR LF: send CR LF then.
            let lone_lf = after_bare_cr && text.is_empty() && negotiations.is_empty();
            let ending = if lone_lf && *ending == 1 { 0 } else { *ending };
            wire.extend_from_slice([&b"\r\n"[..], b"\n", b"\r\0", b"\r"][ending]);
            after_bare_cr = ending == 3;
            expected.push(TelnetOut::Line(text.as_bytes().to_vec()));
        }
        let events = check_telnet(&wire, &TelnetLimits::default(), &cuts);
        prop_assert_eq!(events, expected);
        for (text, _, _) in &lines {
            let cleaned = check_clean_line(text.as_bytes()).unwrap_or_default();
            prop_assert!(cleaned.chars().all(|c| !c.is_control() || c == '\t'));
        }
    }

    /// `clean_line` on arbitrary bytes: accepts exactly UTF-8, leaves no control character but
    /// TAB, trims, is idempotent, and its output survives the telnet encoding.
    #[test]
    fn clean_line_any_bytes(raw in vec(any::<u8>(), 0..200)) {
        check_clean_line(&raw);
    }

    /// `clean_line` on text full of escape sequences and controls.
    #[test]
    fn clean_line_hostile_text(
        parts in vec(prop_oneof![typed_line(), "[\u{0}-\u{1f}\u{7f}-\u{9f}\u{1b}\\[\\];?0-9a-z]{0,12}"], 0..6),
    ) {
        check_clean_line(parts.concat().as_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

/// The chat log the log-search requests read: written once per test run under a private
/// name, then renamed into place (so that concurrent runs always read a complete file).
fn fixture_log() -> &'static PathBuf {
    static LOG: OnceLock<PathBuf> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join("properties-fixture.log");
        let fresh = dir.join(format!("properties-fixture.{}.tmp", std::process::id()));
        write_fixture_log(&fresh);
        std::fs::rename(&fresh, &path).expect("move the fixture chat log into place");
        path
    })
}

/// One HTTP request as clients send it (mostly well-formed, sometimes not).
fn http_request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec![
        "GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE", "get", "BREW",
    ]);
    let target = prop::sample::select(vec![
        "/",
        "/ws",
        "/client",
        "/client/app.js",
        "/status",
        "/healthz",
        "/metrics",
        "/docs",
        "/docs/",
        "/docs.json",
        "/v1/api/message",
        "/v1/api/message?pattern=h.llo&limit=2",
        "/v1/api/message?pattern=(&nick=alice",
        "/v1/api/message?channel=%23a&since=2020-01-01T00:00:00Z&cursor=3",
        "/v1/api/message?limit=0&x=1",
        "/nope?%ff",
        "*",
    ]);
    let header = prop_oneof![
        Just("Host: localhost:4001".to_string()),
        Just("Host: evil\u{b}.example".to_string()),
        Just("Authorization: Bearer fuzz-token".to_string()),
        Just("Authorization: Bearer wrong".to_string()),
        Just("Content-Type: application/json".to_string()),
        Just("Upgrade: websocket".to_string()),
        Just("Connection: Upgrade".to_string()),
        Just("Connection: close".to_string()),
        Just("Sec-WebSocket-Version: 13".to_string()),
        Just("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".to_string()),
        Just("Origin: http://localhost:4001".to_string()),
        Just("Origin: https://chat.example".to_string()),
        Just("Origin: http://evil.example".to_string()),
        Just("Transfer-Encoding: chunked".to_string()),
        Just("Content-Length: 3".to_string()),
        "[A-Za-z-]{1,12}: [ -~]{0,20}",
    ];
    let body = prop_oneof![
        Just(String::new()),
        Just(r#"{"message":"hello all"}"#.to_string()),
        Just(r##"{"message":"\u001b[2Jcleared\u0007","channel":"#a"}"##.to_string()),
        Just(r##"{"message":"x","channel":"#nope"}"##.to_string()),
        Just(r#"{"message":" \t "}"#.to_string()),
        Just(r#"{"message":1}"#.to_string()),
        "\\PC{0,30}",
    ];
    (
        method,
        target,
        prop_oneof![Just("HTTP/1.1"), Just("HTTP/1.0"), Just("HTTP/2.0")],
        vec(header, 0..6),
        body,
        any::<bool>(),
    )
        .prop_map(|(method, target, version, headers, body, with_length)| {
            let mut req = format!("{method} {target} {version}\r\n");
            for h in headers {
                req.push_str(&h);
                req.push_str("\r\n");
            }
            if with_length && !body.is_empty() {
                req.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            req.push_str("\r\n");
            if with_length {
                req.push_str(&body);
            }
            req.into_bytes()
        })
}

fn http_limits() -> impl Strategy<Value = HttpLimits> {
    prop_oneof![
        Just(HttpLimits {
            max_header: 8192,
            max_body: 16384,
        }),
        (16usize..400, 0usize..64).prop_map(|(max_header, max_body)| HttpLimits {
            max_header,
            max_body,
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Pipelined requests (and garbage): no panic, the same requests for any chunking,
    /// documented error statuses only, requests within the limits, bounded buffer; every
    /// request routed by both routers to a well-formed response (see `check_http`,
    /// `Routes::route`).
    #[test]
    fn http_any_chunking_and_routing(
        parts in vec(prop_oneof![4 => http_request(), 1 => vec(any::<u8>(), 0..24)], 1..4),
        cuts in cuts(),
        limits in http_limits(),
    ) {
        let data = parts.concat();
        let outs = check_http(&data, &limits, &cuts);
        let mut routes = Routes::new(fixture_log());
        for out in &outs {
            if let HttpOut::Request(req) = out {
                routes.route(req, &data[data.len() / 2..]);
            }
        }
    }

    /// Arbitrary bytes into the HTTP decoder.
    #[test]
    fn http_any_bytes(data in vec(any::<u8>(), 0..200), cuts in cuts(), limits in http_limits()) {
        check_http(&data, &limits, &cuts);
    }
}

// ---------------------------------------------------------------------------------------
// WebSocket

/// A client frame: mostly masked, every opcode, text and binary payloads.
fn ws_frame() -> impl Strategy<Value = Vec<u8>> {
    let payload = prop_oneof![
        typed_line().prop_map(String::into_bytes),
        vec(any::<u8>(), 0..40),
        vec(Just(b'x'), 100..300),
    ];
    let first = prop_oneof![
        6 => prop::sample::select(vec![0x81u8, 0x01, 0x80, 0x00, 0x89, 0x8a]),
        1 => prop::sample::select(vec![0x82u8, 0x88, 0x83, 0x8b, 0xc1, 0x09]),
        1 => any::<u8>(),
    ];
    (first, payload, any::<[u8; 4]>(), 0u8..20).prop_map(|(first, payload, mask, kind)| {
        match kind {
            // A close frame with a code (and maybe a reason).
            0 => {
                let mut p = vec![0x03, 0xe8];
                p.extend(payload.iter().take(10));
                client_frame(0x88, &p, mask)
            }
            // Unmasked, as a server would send it.
            1 => {
                let mut f = client_frame(first, &payload, mask);
                f[1] &= 0x7f;
                f.drain(f.len() - payload.len() - 4..f.len() - payload.len());
                f
            }
            _ => client_frame(first, &payload, mask),
        }
    })
}

proptest! {
    #![proptest_config(config())]

    /// Frames (and garbage): no panic, the same events for any chunking, texts within the
    /// limit, nothing after a close or failure, bounded decoder heap (see `check_ws`).
    #[test]
    fn websocket_any_chunking(
        frames in vec(prop_oneof![8 => ws_frame(), 1 => vec(any::<u8>(), 0..16)], 0..8),
        cuts in cuts(),
        max in prop_oneof![Just(16usize), Just(125), Just(4096), 0usize..300],
    ) {
        let data = frames.concat();
        for event in check_ws(&data, max, &cuts) {
            if let WsOut::Text(text) = event {
                check_clean_line(text.as_bytes());
            }
        }
    }

    /// Valid masked text messages, fragmented or not, with pings between fragments, give
    /// back exactly the messages.
    #[test]
    fn websocket_messages_round_trip(
        messages in vec((typed_line(), 1usize..4, any::<[u8; 4]>()), 0..6),
        cuts in cuts(),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (text, pieces, mask) in &messages {
            let bytes = text.as_bytes();
            let step = bytes.len().div_ceil(*pieces).max(1);
            let chunks: Vec<&[u8]> = if bytes.is_empty() { vec![bytes] } else { bytes.chunks(step).collect() };
            for (i, chunk) in chunks.iter().enumerate() {
                let fin = if i + 1 == chunks.len() { 0x80 } else { 0 };
                let op = if i == 0 { 0x1 } else { 0x0 };
                wire.extend(client_frame(fin | op, chunk, *mask));
                if fin == 0 {
                    wire.extend(client_frame(0x89, b"p", *mask));
                    expected.push(WsOut::Ping(b"p".to_vec()));
                }
            }
            expected.push(WsOut::Text(text.clone()));
        }
        prop_assert_eq!(check_ws(&wire, 4096, &cuts), expected);
    }
}

// ---------------------------------------------------------------------------------------
// Commands and the chat core

/// One line of a session script (see `checks::run_script`).
fn script_line() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        typed_line(),
        prop::sample::select(vec![
            "/help",
            "/list",
            "/quit",
            "/join #a",
            "/join #B",
            "/join #a extra",
            "/join a",
            "/join",
            "/msg @alice hi",
            "/msg @bob  hello there",
            "/msg @nobody x",
            "/msg @alice",
            "/msg",
            "/ignore @alice",
            "/ignore @Bob",
            "/ignore @carol",
            "/ignore",
            "/unignore @alice",
            "/unignore @carol",
            "/nick carol",
            "/nick Alice",
            "/nick bob",
            "/nick 9x",
            "/me waves",
            "/me",
            "/topic",
            "/topic the topic",
            "/away",
            "/away lunch",
            "/back",
            "/whois @carol",
            "/whois @Bob",
            "/channels",
            "/motd",
            "/history",
            "/history 2",
            "/history 0",
            "/join #a since 3",
            "/join #b since 0",
            "/helpme",
            "/",
            "@carol",
            "carol",
            "Carol",
            "dave-2",
            "9lives",
            "x\u{1b}[2Jy",
        ])
        .prop_map(str::to_string),
    ];
    prop_oneof![
        1 => (0u8..6).prop_map(|k| format!("c{k}")),
        1 => (0u8..6).prop_map(|k| format!("d{k}")),
        1 => (0u8..6).prop_map(|k| format!("b{k}")),
        6 => (0u8..6, text).prop_map(|(k, t)| format!("{k}>{t}")),
        1 => (0u16..90).prop_map(|n| format!("t{n}")),
        1 => (0u16..200).prop_map(|n| format!("o{n}")),
        1 => typed_line().prop_map(|t| format!("a{t}")),
        1 => Just("a#a to the channel".to_string()),
        1 => Just("f".to_string()),
        1 => Just("s".to_string()),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any session: every message sent is clean (no control characters but `'\n'` and TAB),
    /// at most 4 KiB, to connected clients only, chat only after its log record; the core's
    /// state stays consistent and shutdown leaves nothing (see `checks::run_script`).
    #[test]
    fn chat_core_sessions(lines in vec(script_line(), 0..40)) {
        run_script(lines.join("\n").as_bytes());
    }

    /// Arbitrary bytes as a script (mostly lines from client 0).
    #[test]
    fn chat_core_any_bytes(data in vec(any::<u8>(), 0..300)) {
        run_script(&data);
    }

    /// `parse_command` on any text, commands in particular.
    #[test]
    fn parse_command_any_text(
        line in prop_oneof![
            "/(help|list|quit|join|msg|ignore|[a-z]{0,6})( {0,2}[@#]?[a-zA-Z0-9_-]{0,6}){0,3}\\s{0,2}",
            "\\PC{0,40}",
            ".{0,40}",
        ],
    ) {
        check_parse_command(&line);
    }
}

// ---------------------------------------------------------------------------------------
// The memory checks above are real

/// The counting allocator is installed, so the decoders' heap bounds are checked, not
/// skipped.
#[test]
fn heap_is_counted() {
    assert!(heap_counting());
    let base = live_bytes();
    let v = vec![0u8; 1000];
    assert_eq!(live_bytes() - base, 1000);
    drop(v);
    assert_eq!(live_bytes(), base);
}

/// The output checks are not vacuous: a control character, a message to a client that is
/// not connected, and a chat line delivered without its log record are all caught.
#[test]
#[should_panic(expected = "control character")]
fn checks_reject_control_characters() {
    checks::check_message("hi \u{1b}[2J");
}

#[test]
#[should_panic(expected = "not connected")]
fn checks_reject_unknown_recipients() {
    let mut rec = Recorder::new();
    rec.send(ClientId { key: 7, gen: 7 }, "hello");
}

#[test]
#[should_panic(expected = "without a log record")]
fn checks_reject_unlogged_chat() {
    let mut rec = Recorder::new();
    let id = ClientId { key: 0, gen: 1 };
    rec.connected(id);
    rec.send(id, "3:04PM-@alice: hello");
}

// ---------------------------------------------------------------------------------------
// Known limitation

/// SPEC §5/§8 cap a WebSocket connection's read buffer at 4 KiB. `WsDecoder::feed` appends
/// each whole read to its buffer while a partial frame is pending and keeps that capacity
/// after draining, so a client that always leaves a frame unfinished makes its connection
/// hold about twice the largest read (16 KiB per readiness event: ~40 KiB) instead of at
/// most one frame (found by the websocket_input fuzz target).
#[test]
fn ws_decoder_keeps_at_most_one_frame_of_capacity() {
    assert!(heap_counting());
    let max = 4096;
    // One byte of a frame header, then a 16 KiB read of complete pings ending in one byte
    // of the next frame.
    let mut read = vec![0x80];
    read.extend([1, 2, 3, 4]);
    while read.len() < 16 * 1024 - 7 {
        read.extend(client_frame(0x89, b"", [1, 2, 3, 4]));
    }
    read.push(0x89);
    let base = live_bytes();
    let mut dec = WsDecoder::new();
    dec.feed(&[0x89], max, |_| {});
    dec.feed(&read, max, |_| {});
    assert!(!dec.is_idle());
    let held = live_bytes() - base;
    let one_frame = 2 * (14 + max) as isize;
    assert!(
        held <= one_frame,
        "decoder holds {held} bytes for one pending header byte (one frame: {one_frame})"
    );
}
