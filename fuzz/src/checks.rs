//! Invariant checks shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the
//! property tests (`tests/properties.rs`, which includes this file with `#[path]`), so that
//! both hold the code to exactly the same rules.
//!
//! Every `check_*` / `run_*` function feeds one input through the public API of the
//! `chat_server` library and panics (with a message saying which rule broke) when an
//! invariant does not hold:
//!
//! - framers: no panic on any input; the same events however the input is split into
//!   chunks; every line/message/request within its limit; decoder memory bounded;
//! - the chat core: every text sent is non-empty, free of control characters other than
//!   `'\n'` (between lines) and TAB, at most [`MAX_MESSAGE`] bytes, sent only to connected
//!   clients that the core has not closed, and a chat/private/announcement text only after
//!   its log record was written (never when the write failed);
//! - the routers: every response encodes to well-formed HTTP/1.1 with a known status, header
//!   values without control characters (no header injection) and a correct
//!   `Content-Length`; JSON bodies parse, and REST ones carry the envelope.
//!
//! Memory is measured with [`CountingAlloc`], a global allocator that counts live heap bytes
//! per thread; the crate that includes this file installs it with `#[global_allocator]`.
//! Where it is not installed the memory checks are skipped.

use chat_server::chat::{
    parse_command, AnnounceError, BadInput, ChatCore, ClientId, CloseReason, Command, CommandError,
    CoreConfig, LogFailed, Now, Outbox, Transport,
};
use chat_server::log_store::LogStore;
use chat_server::proto::http::{reason, HttpDecoder, HttpLimits, HttpParse, Request, Response};
use chat_server::proto::telnet::{
    encode_message, looks_like_http_request, TelnetDecoder, TelnetEvent, TelnetLimits, DONT, IAC,
    TIMING_MARK, WILL, WONT,
};
use chat_server::proto::text::clean_line;
use chat_server::proto::websocket::{encode_text, WsDecoder, WsEvent};
use chat_server::record::Record;
use chat_server::rest::{self, Outcome, QueryJob, RestConfig, ServerView, Snapshot};
use chat_server::timefmt::kitchen;
use chat_server::web::{self, WebOutcome};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

/// The peer address of every simulated connection.
const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000));

// ---------------------------------------------------------------------------------------
// Heap accounting

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// A global allocator over [`System`] that counts the live heap bytes of each thread.
pub struct CountingAlloc;

fn account(delta: isize) {
    // `try_with`: allocations during thread teardown are simply not counted.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

// SAFETY: every call is forwarded unchanged to `System`; only a thread-local counter is added.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Live heap bytes allocated (and not freed) by this thread.
pub fn live_bytes() -> isize {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

/// True when [`CountingAlloc`] is the global allocator (so heap checks mean something).
pub fn heap_counting() -> bool {
    let before = live_bytes();
    let probe = std::hint::black_box(Vec::<u8>::with_capacity(64));
    let during = live_bytes();
    drop(probe);
    during - before >= 64
}

// ---------------------------------------------------------------------------------------
// Chunking

/// Splits `data` at `cuts` (each taken modulo `data.len() + 1`, then sorted).
pub fn split_at_cuts<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(&data[start..cut]);
        start = cut;
    }
    chunks.push(&data[start..]);
    chunks
}

/// Up to 8 cut points derived from one fuzzer byte (xorshift), for inputs of length `len`.
pub fn cuts_from_seed(seed: u8, len: usize) -> Vec<usize> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ (u64::from(seed) << 17) ^ len as u64;
    let n = usize::from(seed % 8) + 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (len as u64 + 1)) as usize
        })
        .collect()
}

/// Every chunking a check compares: whole, byte by byte, and at `cuts`.
fn chunkings<'a>(data: &'a [u8], cuts: &[usize]) -> [(&'static str, Vec<&'a [u8]>); 3] {
    [
        ("whole", vec![data]),
        ("byte by byte", data.chunks(1).collect()),
        ("at cuts", split_at_cuts(data, cuts)),
    ]
}

// ---------------------------------------------------------------------------------------
// Telnet

/// An owned [`TelnetEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelnetOut {
    Line(Vec<u8>),
    Reply([u8; 3]),
    TooLong,
    InputOverflow,
}

/// Most heap a telnet decoder may hold: its partial line of at most `max_line + 1` bytes,
/// allowing for `Vec`'s minimum capacity (8) and doubling growth.
pub fn telnet_heap_bound(limits: &TelnetLimits) -> usize {
    8usize.max(limits.max_line.saturating_add(1).saturating_mul(2))
}

/// Decodes `data` whole, byte by byte and split at `cuts`; checks that every chunking gives
/// the same events, that lines respect `limits`, that replies are refusals (or the
/// TIMING-MARK answer), that nothing follows an overflow, and that the decoder's heap stays
/// within [`telnet_heap_bound`] (none at all when idle). Every line also goes through
/// [`check_clean_line`]. Returns the events.
pub fn check_telnet(data: &[u8], limits: &TelnetLimits, cuts: &[usize]) -> Vec<TelnetOut> {
    let counting = heap_counting();
    let mut reference: Option<Vec<TelnetOut>> = None;
    for (name, chunks) in chunkings(data, cuts) {
        let mut events = Vec::new();
        let mut dec = TelnetDecoder::new();
        for chunk in &chunks {
            dec.feed(chunk, limits, |e| events.push(owned_telnet(e)));
        }
        match &reference {
            None => reference = Some(events),
            Some(whole) => assert_eq!(
                &events, whole,
                "telnet: chunking {name} gave other events than the whole input"
            ),
        }
        if counting {
            // The same again with a callback that does not allocate, measuring the decoder.
            let mut dec = TelnetDecoder::new();
            let base = live_bytes();
            let bound = telnet_heap_bound(limits) as isize;
            let mut too_long_line = None;
            for chunk in &chunks {
                dec.feed(chunk, limits, |e| {
                    if let TelnetEvent::Line(l) = e {
                        if l.len() > limits.max_line {
                            too_long_line = Some(l.len());
                        }
                    }
                });
                let held = live_bytes() - base;
                assert!(
                    held <= bound,
                    "telnet: decoder holds {held} heap bytes, bound {bound} ({limits:?})"
                );
                if dec.is_idle() {
                    assert_eq!(held, 0, "telnet: an idle decoder holds heap");
                }
            }
            assert_eq!(too_long_line, None, "telnet: line over max_line");
        }
    }
    let events = reference.unwrap_or_default();
    for (i, ev) in events.iter().enumerate() {
        match ev {
            TelnetOut::Line(line) => {
                assert!(
                    line.len() <= limits.max_line,
                    "telnet: line of {} bytes, max_line {}",
                    line.len(),
                    limits.max_line
                );
                assert!(
                    !line.contains(&b'\n') && !line.contains(&b'\r'),
                    "telnet: line holds CR or LF: {line:?}"
                );
                check_clean_line(line);
            }
            TelnetOut::Reply(reply) => assert!(
                matches!(reply, [IAC, WONT | DONT, _]) || *reply == [IAC, WILL, TIMING_MARK],
                "telnet: reply {reply:?} is neither a refusal nor WILL TIMING-MARK"
            ),
            TelnetOut::TooLong => {}
            TelnetOut::InputOverflow => {
                assert_eq!(i + 1, events.len(), "telnet: events after InputOverflow")
            }
        }
    }
    events
}

fn owned_telnet(e: TelnetEvent<'_>) -> TelnetOut {
    match e {
        TelnetEvent::Line(l) => TelnetOut::Line(l.to_vec()),
        TelnetEvent::Reply(r) => TelnetOut::Reply(r),
        TelnetEvent::TooLong => TelnetOut::TooLong,
        TelnetEvent::InputOverflow => TelnetOut::InputOverflow,
    }
}

/// True for the characters that may reach another user's screen: anything but a control
/// character, TAB and `'\n'` excepted.
pub fn allowed_char(c: char) -> bool {
    !c.is_control() || c == '\t' || c == '\n'
}

/// Checks [`clean_line`] on raw bytes: it accepts exactly the valid UTF-8; its output has no
/// control character but TAB, no space or TAB at either end, is not longer than the input,
/// and is a fixed point (cleaning it again changes nothing). A cleaned line also survives
/// the telnet encoding: decoding `encode_message(line)` gives the line back. Returns the
/// cleaned line.
pub fn check_clean_line(raw: &[u8]) -> Option<String> {
    let cleaned = clean_line(raw);
    assert_eq!(
        cleaned.is_ok(),
        std::str::from_utf8(raw).is_ok(),
        "clean_line: accepts invalid or refuses valid UTF-8: {raw:?}"
    );
    let line = cleaned.ok()?.into_owned();
    assert!(
        line.chars().all(|c| !c.is_control() || c == '\t'),
        "clean_line: control character left in {line:?}"
    );
    assert_eq!(
        line,
        line.trim_matches([' ', '\t']),
        "clean_line: not trimmed"
    );
    assert!(line.len() <= raw.len(), "clean_line: output grew");
    let again = clean_line(line.as_bytes()).map(|c| c.into_owned());
    assert_eq!(
        again.as_deref(),
        Ok(line.as_str()),
        "clean_line: not idempotent"
    );
    let _ = looks_like_http_request(&line);
    let mut wire = Vec::new();
    encode_message(&line, &mut wire);
    let limits = TelnetLimits {
        max_line: line.len(),
        max_input: line.len() + 2,
    };
    let mut back = Vec::new();
    TelnetDecoder::new().feed(&wire, &limits, |e| back.push(owned_telnet(e)));
    assert_eq!(
        back,
        [TelnetOut::Line(line.as_bytes().to_vec())],
        "telnet: encode_message then decode does not give the line back"
    );
    Some(line)
}

// ---------------------------------------------------------------------------------------
// HTTP

/// What the HTTP decoder gave: a request, or an error status (after which nothing is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpOut {
    Request(Request),
    Error(u16),
}

/// The statuses [`HttpDecoder::parse`] may answer with.
pub const HTTP_FRAMING_STATUSES: [u16; 6] = [400, 408, 411, 413, 431, 505];

/// Frames `data` whole, byte by byte and split at `cuts` (parsing after every push, as the
/// server does, until `Partial` or an error); checks that every chunking gives the same
/// requests and ends the same way (an error status may differ only in that an incremental
/// parse can give 431 for a head that grows past `max_header` before the whole input shows
/// it malformed), that errors are from [`HTTP_FRAMING_STATUSES`], that every request is
/// within `limits` (see [`check_request`]), and that the buffer is bounded while waiting.
pub fn check_http(data: &[u8], limits: &HttpLimits, cuts: &[usize]) -> Vec<HttpOut> {
    let mut reference: Option<Vec<HttpOut>> = None;
    for (name, chunks) in chunkings(data, cuts) {
        let outs = frame_http(&chunks, limits);
        match &reference {
            None => reference = Some(outs),
            Some(whole) => {
                let requests = |v: &[HttpOut]| -> Vec<Request> {
                    v.iter()
                        .filter_map(|o| match o {
                            HttpOut::Request(r) => Some(r.clone()),
                            HttpOut::Error(_) => None,
                        })
                        .collect()
                };
                assert_eq!(
                    requests(&outs),
                    requests(whole),
                    "http: chunking {name} gave other requests than the whole input"
                );
                let error = |v: &[HttpOut]| match v.last() {
                    Some(HttpOut::Error(s)) => Some(*s),
                    _ => None,
                };
                match (error(&outs), error(whole)) {
                    (a, b) if a == b => {}
                    (Some(431), Some(_)) => {}
                    (a, b) => panic!("http: chunking {name} ended in {a:?}, whole input in {b:?}"),
                }
            }
        }
    }
    reference.unwrap_or_default()
}

fn frame_http(chunks: &[&[u8]], limits: &HttpLimits) -> Vec<HttpOut> {
    let mut outs = Vec::new();
    let mut dec = HttpDecoder::new();
    for chunk in chunks {
        dec.push(chunk);
        loop {
            match dec.parse(limits) {
                HttpParse::Partial => {
                    let buffered = dec.buffered();
                    if dec.in_body() {
                        assert!(
                            buffered < limits.max_body,
                            "http: {buffered} bytes buffered waiting for a body (max {})",
                            limits.max_body
                        );
                    } else {
                        assert!(
                            buffered <= limits.max_header,
                            "http: {buffered} bytes buffered waiting for a head (max {})",
                            limits.max_header
                        );
                    }
                    break;
                }
                HttpParse::Request(req) => {
                    check_request(&req, limits);
                    outs.push(HttpOut::Request(req));
                }
                HttpParse::Error(status, why) => {
                    assert!(
                        HTTP_FRAMING_STATUSES.contains(&status),
                        "http: framing error {status} ({why}) is not documented"
                    );
                    assert!(!why.is_empty());
                    outs.push(HttpOut::Error(status));
                    return outs;
                }
            }
        }
    }
    outs
}

/// A request that came out of the decoder: head within `max_header`, body within
/// `max_body` and equal to `Content-Length`, no `Transfer-Encoding`, lower-case header names,
/// at most 48 headers, a POST/PUT/PATCH with a length.
pub fn check_request(req: &Request, limits: &HttpLimits) {
    let head: usize = req.method.len()
        + req.path.len()
        + req.query.len()
        + req
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>();
    assert!(
        head <= limits.max_header,
        "http: request head of {head} bytes, max {}",
        limits.max_header
    );
    assert!(
        req.body.len() <= limits.max_body,
        "http: body of {} bytes, max {}",
        req.body.len(),
        limits.max_body
    );
    assert!(!req.method.is_empty() && req.version <= 1);
    assert!(req.headers.len() <= 48, "http: more than 48 headers");
    for (name, _) in &req.headers {
        assert_eq!(*name, name.to_ascii_lowercase(), "http: header name case");
    }
    assert!(req.header("transfer-encoding").is_none());
    let lengths: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    match lengths.as_slice() {
        [] => {
            assert!(req.body.is_empty());
            assert!(!matches!(req.method.as_str(), "POST" | "PUT" | "PATCH"));
        }
        [one] => assert_eq!(one.parse::<usize>().ok(), Some(req.body.len())),
        _ => panic!("http: request with several Content-Length headers"),
    }
}

// ---------------------------------------------------------------------------------------
// Routing (web page / WebSocket upgrade, REST)

/// The admin token of [`Routes`].
pub const ADMIN_TOKEN: &str = "fuzz-token";
/// Statuses the web port's router may answer with.
pub const WEB_STATUSES: [u16; 8] = [101, 200, 302, 400, 403, 404, 405, 426];
/// Statuses the REST router may answer with.
pub const REST_STATUSES: [u16; 9] = [200, 301, 400, 401, 404, 405, 415, 500, 503];

/// Everything the routers need: a chat core with two users in `#a` (so announcements reach
/// someone), the REST settings and a small chat log to search.
pub struct Routes {
    core: ChatCore,
    rec: Recorder,
    now: Now,
    cfg: RestConfig,
    log_path: PathBuf,
    origins: Vec<String>,
}

impl Routes {
    /// Routes over the chat log `log_path` (see [`write_fixture_log`]).
    pub fn new(log_path: &Path) -> Routes {
        let mut core = ChatCore::new(CoreConfig {
            nick_timeout_ms: 60_000,
            ..CoreConfig::default()
        });
        let mut rec = Recorder::new();
        let now = now_at(0);
        for (key, line) in [(0, "alice"), (1, "Bob"), (0, "/join #a"), (1, "/join #a")] {
            let id = ClientId { key, gen: key + 1 };
            if line == "alice" || line == "Bob" {
                rec.connected(id);
                core.handle_connect(now, id, Transport::Telnet, PEER, &mut rec);
            }
            core.handle_line(now, id, line, &mut rec);
        }
        Routes {
            core,
            rec,
            now,
            cfg: RestConfig {
                admin_token: ADMIN_TOKEN.to_string(),
                max_announcement_bytes: 512,
            },
            log_path: log_path.to_path_buf(),
            origins: vec!["https://chat.example".to_string()],
        }
    }

    /// Routes `req` through the web port's router and the REST router (a log search is
    /// driven to its end), and checks every response with [`check_response`]. After an
    /// accepted WebSocket upgrade, `after_upgrade` (the bytes behind the request) goes
    /// through [`check_ws`].
    pub fn route(&mut self, req: &Request, after_upgrade: &[u8]) {
        self.rec.begin_step(self.now);
        let head = req.method == "HEAD";
        match web::route(req, &self.origins) {
            WebOutcome::Upgrade(resp) => {
                assert_eq!(resp.status, 101, "web: upgrade without 101");
                assert!(req.path == "/ws" && req.method == "GET");
                assert!(resp
                    .headers
                    .iter()
                    .any(|(n, v)| { *n == "Sec-WebSocket-Accept" && v.len() == 28 }));
                check_response(&resp, req, false, Site::Web);
                check_ws(after_upgrade, 4096, &[after_upgrade.len() / 2]);
            }
            WebOutcome::Respond(resp) => {
                assert_ne!(resp.status, 101, "web: 101 without an upgrade");
                check_response(&resp, req, head, Site::Web);
            }
        }
        // The shell routes HEAD like GET on the REST port and leaves the body out.
        let mut rest_req = req.clone();
        if head {
            rest_req.method = "GET".to_string();
        }
        let mut view = View {
            core: &mut self.core,
            rec: &mut self.rec,
            now: self.now,
        };
        match rest::route(&rest_req, &mut view, &self.cfg, &self.log_path) {
            Outcome::Respond(resp) => check_response(&resp, req, head, Site::Rest),
            Outcome::Query(mut job) => {
                let resp = drive_query(&mut job);
                check_response(&resp, req, head, Site::Rest);
            }
        }
        self.rec.check_core(&self.core);
    }
}

fn drive_query(job: &mut QueryJob) -> Response {
    for _ in 0..100_000 {
        if let Some(resp) = job.step(rest::MIN_SLICE_BYTES) {
            assert!(job.is_finished());
            assert!(job.step(rest::MIN_SLICE_BYTES).is_none());
            return resp;
        }
    }
    panic!("rest: a log query over a tiny log did not finish");
}

struct View<'a> {
    core: &'a mut ChatCore,
    rec: &'a mut Recorder,
    now: Now,
}

impl ServerView for View<'_> {
    fn announce(
        &mut self,
        text: &str,
        channel: Option<&str>,
    ) -> Result<Vec<String>, AnnounceError> {
        assert!(text.len() <= 512, "rest: announcement over the limit");
        self.core.announce(self.now, text, channel, self.rec)
    }

    fn history(&self, channel: &str) -> Option<&chat_server::chat::Ring> {
        self.core.history_of(channel)
    }

    fn snapshot(&self) -> Snapshot {
        let stats = self.core.stats();
        Snapshot {
            version: "0.0.0-fuzz",
            uptime_s: 1,
            now_unix_ms: self.now.unix_ms,
            users: stats.users as u64,
            channels: self.core.channel_names(),
            telnet_connections: stats.sessions as u64,
            disconnects: CloseReason::ALL.iter().map(|r| (r.as_str(), 1)).collect(),
            ..Snapshot::default()
        }
    }
}

/// Writes a small chat log (a few records, hostile text included) at `path` for the log
/// search, replacing any file there.
pub fn write_fixture_log(path: &Path) {
    let _ = std::fs::remove_file(path);
    let mut store = LogStore::open(path).expect("create the fixture chat log");
    let records = [
        Record::Chat {
            nick: "alice".into(),
            channel: "#a".into(),
            text: "hello world".into(),
        },
        Record::Private {
            from: "alice".into(),
            to: "Bob".into(),
            text: "psst \u{1b}[2J\r\n{\"kind\":\"chat\"}".into(),
        },
        Record::Announcement {
            text: "maintenance at 5".into(),
            channel: None,
            recipients: 2,
        },
        Record::Chat {
            nick: "Bob".into(),
            channel: "#b".into(),
            text: "ünïcödé ✓ 🎉".into(),
        },
    ];
    for (i, record) in records.iter().enumerate() {
        store
            .append(1_790_000_000_000 + i as i64 * 61_000, record)
            .expect("write the fixture chat log");
    }
}

/// Which router answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The WebSocket port's pages ([`WEB_STATUSES`]).
    Web,
    /// The REST API ([`REST_STATUSES`]).
    Rest,
}

/// Checks one response of a router to `req`: a status from the router's set with a known reason;
/// header names that are tokens and values without control characters; `WWW-Authenticate`
/// on 401 and `Allow` on 405; JSON bodies that parse (with the envelope on REST answers);
/// and an encoding that `httparse` reads back with the same status, a `Connection` header
/// and a `Content-Length` equal to the body (left out for HEAD).
pub fn check_response(resp: &Response, req: &Request, head_only: bool, site: Site) {
    let statuses: &[u16] = match site {
        Site::Web => &WEB_STATUSES,
        Site::Rest => &REST_STATUSES,
    };
    assert!(
        statuses.contains(&resp.status),
        "http: status {} not expected for {} {}",
        resp.status,
        req.method,
        req.path
    );
    assert_ne!(
        reason(resp.status),
        "Unknown",
        "http: status {}",
        resp.status
    );
    for (name, value) in &resp.headers {
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "http: header name {name:?}"
        );
        assert!(
            value.chars().all(|c| c == '\t' || !c.is_control()),
            "http: control character in header {name}: {value:?} (header injection)"
        );
    }
    let has = |name: &str| {
        resp.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if resp.status == 401 {
        assert!(
            has("WWW-Authenticate"),
            "http: 401 without WWW-Authenticate"
        );
    }
    if resp.status == 405 {
        assert!(has("Allow"), "http: 405 without Allow");
    }
    let json = resp
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.starts_with("application/json"));
    if json && !resp.body.is_empty() {
        let value: serde_json::Value =
            serde_json::from_slice(&resp.body).expect("http: JSON body does not parse");
        if site == Site::Rest && req.path != "/openapi.json" && req.path != "/docs.json" {
            for key in ["links", "metadata", "errors"] {
                assert!(value.get(key).is_some(), "rest: envelope without {key}");
            }
            if let Some(errors) = value["errors"].as_array() {
                for e in errors {
                    for key in ["severity", "human_friendly_message", "short_message"] {
                        assert!(e[key].is_string(), "rest: error object without {key}");
                    }
                }
            }
        }
    }
    for keep_alive in [false, true] {
        let wire = resp.encode(head_only, keep_alive);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(&wire) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("http: encoded response does not parse: {other:?}"),
        };
        assert_eq!(parsed.code, Some(resp.status));
        let get = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let body = &wire[head_len..];
        if matches!(resp.status, 101 | 204 | 304) {
            assert!(body.is_empty());
        } else {
            let length = get("content-length").and_then(|v| std::str::from_utf8(v).ok());
            assert_eq!(
                length.and_then(|v| v.parse::<usize>().ok()),
                Some(resp.body.len()),
                "http: Content-Length does not match the body"
            );
            if head_only {
                assert!(body.is_empty(), "http: HEAD answer with a body");
            } else {
                assert_eq!(body, &resp.body[..]);
            }
        }
        if resp.status != 101 {
            let conn = get("connection");
            let expect: &[u8] = if keep_alive && !resp.close {
                b"keep-alive"
            } else {
                b"close"
            };
            assert_eq!(conn, Some(expect), "http: Connection header");
        }
    }
}

// ---------------------------------------------------------------------------------------
// WebSocket

/// An owned [`WsEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsOut {
    Text(String),
    Ping(Vec<u8>),
    Pong,
    Close(u16),
    Fail(u16),
}

/// Close codes the decoder may fail with: protocol error, unsupported (binary), invalid
/// payload (bad UTF-8), too big.
pub const WS_FAIL_CODES: [u16; 4] = [1002, 1003, 1007, 1009];

/// Longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const WS_MAX_HEADER: usize = 14;

/// Most heap a WebSocket decoder may hold after a `feed`, when the largest chunk fed so far
/// was `chunk` bytes: its buffer of an incomplete frame (header plus at most `max` payload
/// bytes) — which, once not empty, takes each whole chunk in and keeps that capacity after
/// draining it — plus a fragmented message of at most `max` bytes, with `Vec` doubling.
///
/// This is what the decoder achieves; it is looser than "at most one frame": see
/// `ws_decoder_keeps_at_most_one_frame_of_capacity` in `tests/properties.rs`.
pub fn ws_heap_bound(max: usize, chunk: usize) -> usize {
    2 * (WS_MAX_HEADER + max + chunk) + 2 * max + 64
}

/// Decodes `data` (client frames) with message limit `max`, whole, byte by byte and split at
/// `cuts`; checks that every chunking gives the same events, texts are at most `max` bytes,
/// pings at most 125, a close or failure is the last event (nothing comes out of a dead
/// decoder, even for a valid frame), failure codes are from [`WS_FAIL_CODES`], and the
/// decoder's heap stays within [`ws_heap_bound`] (none at all when idle). Returns the events.
pub fn check_ws(data: &[u8], max: usize, cuts: &[usize]) -> Vec<WsOut> {
    let counting = heap_counting();
    let mut reference: Option<Vec<WsOut>> = None;
    for (name, chunks) in chunkings(data, cuts) {
        let mut events = Vec::new();
        let mut dec = WsDecoder::new();
        for chunk in &chunks {
            dec.feed(chunk, max, |e| events.push(owned_ws(e)));
        }
        if matches!(events.last(), Some(WsOut::Close(_) | WsOut::Fail(_))) {
            let mut more = 0;
            dec.feed(&client_frame(0x81, b"hi", [1, 2, 3, 4]), max, |_| more += 1);
            assert_eq!(more, 0, "websocket: events from a closed decoder");
        }
        match &reference {
            None => reference = Some(events),
            Some(whole) => assert_eq!(
                &events, whole,
                "websocket: chunking {name} gave other events than the whole input"
            ),
        }
        if counting {
            let mut dec = WsDecoder::new();
            let base = live_bytes();
            let mut over = None;
            let mut largest = 0;
            for chunk in &chunks {
                largest = largest.max(chunk.len());
                dec.feed(chunk, max, |e| {
                    if let WsEvent::Text(t) = e {
                        if t.len() > max {
                            over = Some(t.len());
                        }
                    }
                });
                let held = live_bytes() - base;
                let bound = ws_heap_bound(max, largest) as isize;
                assert!(
                    held <= bound,
                    "websocket: decoder holds {held} heap bytes, bound {bound} (max {max}, largest chunk {largest})"
                );
                if dec.is_idle() {
                    assert_eq!(held, 0, "websocket: an idle decoder holds heap");
                }
            }
            assert_eq!(over, None, "websocket: text over max");
        }
    }
    let events = reference.unwrap_or_default();
    for (i, ev) in events.iter().enumerate() {
        match ev {
            WsOut::Text(t) => {
                assert!(
                    t.len() <= max,
                    "websocket: text of {} bytes, max {max}",
                    t.len()
                );
            }
            WsOut::Ping(p) => assert!(p.len() <= 125 && p.len() <= max),
            WsOut::Pong => {}
            WsOut::Close(_) => assert_eq!(i + 1, events.len(), "websocket: events after Close"),
            WsOut::Fail(code) => {
                assert!(WS_FAIL_CODES.contains(code), "websocket: fail code {code}");
                assert_eq!(i + 1, events.len(), "websocket: events after Fail");
            }
        }
    }
    events
}

fn owned_ws(e: WsEvent<'_>) -> WsOut {
    match e {
        WsEvent::Text(t) => WsOut::Text(t.to_string()),
        WsEvent::Ping(p) => WsOut::Ping(p.to_vec()),
        WsEvent::Pong => WsOut::Pong,
        WsEvent::Close(c) => WsOut::Close(c),
        WsEvent::Fail(c) => WsOut::Fail(c),
    }
}

/// A masked client frame: `first` is the FIN/RSV/opcode byte.
pub fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![first];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    out
}

// ---------------------------------------------------------------------------------------
// Chat core

/// Largest message the core may send with lines of at most [`MAX_LINE`] bytes and at most
/// 8 clients.
pub const MAX_MESSAGE: usize = 4096;
/// The line limit the scripts apply before the core (the server's default `max_line_bytes`).
pub const MAX_LINE: usize = 512;

/// A recording [`Outbox`] that checks every action of the core (see the module docs).
pub struct Recorder {
    /// Connected (the shell told the core) and not yet reported gone.
    live: BTreeSet<ClientId>,
    /// Closed by the core, not yet reported gone by the shell.
    closed: BTreeSet<ClientId>,
    /// Fail every log write while set.
    pub fail_log: bool,
    /// Renderings of message records logged in this step: may be delivered.
    logged: HashSet<String>,
    /// Renderings of message records whose log write failed in this step: must not be.
    refused: HashSet<String>,
    /// Texts already checked for their wire encodings.
    encoded: HashSet<String>,
    /// Messages sent, for the callers' bookkeeping.
    pub sends: usize,
    now: Now,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder {
            live: BTreeSet::new(),
            closed: BTreeSet::new(),
            fail_log: false,
            logged: HashSet::new(),
            refused: HashSet::new(),
            encoded: HashSet::new(),
            sends: 0,
            now: now_at(0),
        }
    }

    /// The shell accepted `id` (call before `handle_connect`).
    pub fn connected(&mut self, id: ClientId) {
        self.live.insert(id);
        self.closed.remove(&id);
    }

    /// The shell reports `id` gone (call before `handle_disconnect`).
    pub fn gone(&mut self, id: ClientId) {
        self.live.remove(&id);
        self.closed.remove(&id);
    }

    /// Connections the core closed that the shell has not reported gone.
    pub fn closed(&self) -> Vec<ClientId> {
        self.closed.iter().copied().collect()
    }

    /// Connected clients the core has not closed.
    pub fn open(&self) -> Vec<ClientId> {
        self.live.difference(&self.closed).copied().collect()
    }

    /// A new call into the core begins at `now`.
    pub fn begin_step(&mut self, now: Now) {
        self.now = now;
        self.logged.clear();
        self.refused.clear();
    }

    fn check_text(&mut self, to: ClientId, text: &str) {
        assert!(
            self.live.contains(&to),
            "core: message to a client that is not connected: {to:?} {text:?}"
        );
        assert!(
            !self.closed.contains(&to),
            "core: message to a client it closed: {to:?} {text:?}"
        );
        self.sends += 1;
        if !self.encoded.contains(text) {
            check_message(text);
            if self.encoded.len() < 256 {
                self.encoded.insert(text.to_string());
            }
        }
        if let Some(kind) = message_kind(text) {
            assert!(
                !self.refused.contains(text) || self.logged.contains(text),
                "core: {kind} message sent although its log write failed: {text:?}"
            );
            assert!(
                self.logged.contains(text),
                "core: {kind} message sent without a log record before it: {text:?}"
            );
        }
    }

    /// Consistency of the core with what the recorder saw: the counts match the open
    /// clients, nicknames are valid and unique (case-insensitively), channel names are valid
    /// and unique.
    pub fn check_core(&self, core: &ChatCore) {
        let stats = core.stats();
        let open = self.open();
        assert_eq!(stats.sessions, open.len(), "core: session count");
        let mut nicks = BTreeSet::new();
        for id in &open {
            if let Some(nick) = core.nick_of(*id) {
                assert!(valid_nick(nick), "core: invalid nickname {nick:?}");
                assert!(
                    nicks.insert(nick.to_ascii_lowercase()),
                    "core: nickname {nick} twice"
                );
            }
        }
        assert_eq!(stats.users, nicks.len(), "core: user count");
        let channels = core.channel_names();
        assert_eq!(stats.channels, channels.len(), "core: channel count");
        let mut seen = BTreeSet::new();
        for c in &channels {
            assert!(valid_channel(c), "core: invalid channel {c:?}");
            assert!(
                seen.insert(c.to_ascii_lowercase()),
                "core: channel {c} twice"
            );
        }
        assert!(channels.len() <= nicks.len(), "core: empty channel kept");
    }
}

/// What a user may receive: non-empty, at most [`MAX_MESSAGE`] bytes, lines separated by
/// single `'\n'` (none empty, none at either end), no control character but TAB and `'\n'`;
/// and its telnet and WebSocket encodings are right.
pub fn check_message(text: &str) {
    assert!(!text.is_empty(), "core: empty message");
    assert!(
        text.len() <= MAX_MESSAGE,
        "core: message of {} bytes (max {MAX_MESSAGE})",
        text.len()
    );
    assert!(
        text.chars().all(allowed_char),
        "core: control character in message {text:?}"
    );
    assert!(
        text.split('\n').all(|l| !l.is_empty()),
        "core: empty line in message {text:?}"
    );
    // Telnet: one CR LF terminated line per line, given back by the decoder.
    let mut wire = Vec::new();
    encode_message(text, &mut wire);
    let limits = TelnetLimits {
        max_line: text.len(),
        max_input: text.len() + 2,
    };
    let mut lines = Vec::new();
    TelnetDecoder::new().feed(&wire, &limits, |e| lines.push(owned_telnet(e)));
    let expected: Vec<TelnetOut> = text
        .split('\n')
        .map(|l| TelnetOut::Line(l.as_bytes().to_vec()))
        .collect();
    assert_eq!(lines, expected, "telnet encoding of {text:?}");
    // WebSocket: one unmasked final text frame holding the text.
    let mut frame = Vec::new();
    encode_text(text, &mut frame);
    assert_eq!(frame[0], 0x81);
    let (len, start) = match frame[1] {
        126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&frame[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (usize::from(n), 2),
    };
    assert_eq!(len, text.len());
    assert_eq!(&frame[start..], text.as_bytes());
}

/// Which kind of logged message `text` is a rendering of, from its shape: chat
/// `3:04PM-@nick: text`, private `3:04PM - *Private from/to @nick: text`, announcement.
fn message_kind(text: &str) -> Option<&'static str> {
    if text.starts_with("Public Server Announcement: ") {
        return Some("announcement");
    }
    let b = text.as_bytes();
    let hour = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&hour)
        || b.get(hour) != Some(&b':')
        || !b.get(hour + 1..hour + 3)?.iter().all(u8::is_ascii_digit)
        || !matches!(b.get(hour + 3..hour + 5)?, b"AM" | b"PM")
    {
        return None;
    }
    let rest = &text[hour + 5..];
    if rest.starts_with(" - *Private from @") || rest.starts_with(" - *Private to @") {
        return Some("private");
    }
    let after = rest.strip_prefix("-@")?;
    let nick_end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(after.len());
    after[nick_end..].starts_with(": ").then_some("chat")
}

fn valid_nick(nick: &str) -> bool {
    (1..=24).contains(&nick.len())
        && nick.as_bytes()[0].is_ascii_alphabetic()
        && nick
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_channel(name: &str) -> bool {
    name.strip_prefix('#').is_some_and(|body| {
        (1..=32).contains(&body.len())
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

impl Outbox for Recorder {
    fn log(&mut self, now: Now, record: &Record<'_>) -> Result<u64, LogFailed> {
        // JSON escaping: one line, and it reads back as the same record.
        let json = serde_json::to_string(record).expect("record serializes");
        assert!(!json.contains('\n'), "log: record spans lines: {json}");
        let back: Record<'_> = serde_json::from_str(&json).expect("record reads back");
        assert_eq!(&back, record, "log: record does not read back the same");
        let k = kitchen(now.unix_ms, now.utc_offset_s);
        let renderings = match record {
            Record::Chat { nick, text, .. } => vec![format!("{k}-@{nick}: {text}")],
            Record::Private { from, to, text } => vec![
                format!("{k} - *Private from @{from}: {text}"),
                format!("{k} - *Private to @{to}: {text}"),
            ],
            Record::Announcement { text, .. } => {
                vec![format!("Public Server Announcement: {text}")]
            }
            _ => Vec::new(),
        };
        if self.fail_log {
            self.refused.extend(renderings);
            Err(LogFailed)
        } else {
            self.logged.extend(renderings);
            Ok(0)
        }
    }

    fn send(&mut self, to: ClientId, text: &str) {
        self.check_text(to, text);
    }

    fn send_many(&mut self, to: &[ClientId], text: &str) {
        let distinct: BTreeSet<&ClientId> = to.iter().collect();
        assert_eq!(
            distinct.len(),
            to.len(),
            "core: a recipient twice in send_many"
        );
        for id in to {
            self.check_text(*id, text);
        }
    }

    fn close(&mut self, id: ClientId, _reason: CloseReason) {
        assert!(
            self.live.contains(&id),
            "core: closes an unknown client {id:?}"
        );
        assert!(self.closed.insert(id), "core: closes {id:?} twice");
    }
}

/// A time `ms` milliseconds after a fixed start (in 2026, UTC).
pub fn now_at(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        unix_ms: 1_790_000_000_000 + ms as i64,
        utc_offset_s: 0,
    }
}

/// Checks [`parse_command`] on any string: `None` exactly for lines not starting with `/`;
/// the command word matched exactly; arguments are non-empty words (or the text tail) of
/// the line; channel names valid.
pub fn check_parse_command(line: &str) {
    let parsed = parse_command(line);
    assert_eq!(parsed.is_none(), !line.starts_with('/'));
    let Some(parsed) = parsed else { return };
    let mut words = line.split_whitespace();
    let word = words.next().unwrap_or_default();
    let second = words.next();
    let is_word = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
    match parsed {
        Ok(Command::Help) => assert_eq!(word, "/help"),
        Ok(Command::List) => assert_eq!(word, "/list"),
        Ok(Command::Quit) => assert_eq!(word, "/quit"),
        Ok(Command::Join(name)) => {
            assert_eq!(word, "/join");
            assert!(valid_channel(name), "command: /join with {name:?}");
            assert_eq!(second, Some(name));
            assert_eq!(words.next(), None);
        }
        Ok(Command::JoinSince(name, seq)) => {
            assert_eq!(word, "/join");
            assert!(valid_channel(name), "command: /join with {name:?}");
            assert_eq!(second, Some(name));
            assert_eq!(words.next(), Some("since"));
            assert_eq!(words.next().and_then(|n| n.parse().ok()), Some(seq));
            assert_eq!(words.next(), None);
        }
        Ok(Command::History(n)) => {
            assert_eq!(word, "/history");
            assert_eq!(n.is_some(), second.is_some());
            assert_ne!(n, Some(0));
        }
        Ok(Command::Msg { to, text }) => {
            assert_eq!(word, "/msg");
            assert!(is_word(to));
            assert_eq!(second.and_then(|s| s.strip_prefix('@')), Some(to));
            assert!(!text.is_empty() && line.ends_with(text));
            assert_eq!(text, text.trim_start());
        }
        Ok(Command::Ignore(nick)) => {
            assert_eq!(word, "/ignore");
            assert!(is_word(nick));
            assert_eq!(second.and_then(|s| s.strip_prefix('@')), Some(nick));
        }
        Err(CommandError::Unknown(w)) => {
            assert_eq!(w, word);
            assert!(
                !["/help", "/list", "/quit", "/join", "/msg", "/ignore", "/history"].contains(&w)
            );
        }
        Err(CommandError::JoinNeedsChannel) => {
            assert_eq!(word, "/join");
            assert_eq!(second, None);
        }
        Err(CommandError::InvalidChannel(_)) => assert_eq!(word, "/join"),
        Err(CommandError::MsgNeedsNick | CommandError::MsgNeedsText) => assert_eq!(word, "/msg"),
        Err(CommandError::IgnoreNeedsNick) => assert_eq!(word, "/ignore"),
        Err(CommandError::JoinSinceNeedsSeq) => {
            assert_eq!(word, "/join");
            assert_eq!(words.next(), Some("since"));
        }
        Err(CommandError::HistoryNeedsNumber) => assert_eq!(word, "/history"),
    }
}

/// The script that every [`run_script`] starts with: three clients (keys 0–2), two of them
/// named and in `#a`.
pub const SCRIPT_PRELUDE: &[u8] = b"c0\nc1\nc2\n0>alice\n1>Bob\n0>/join #a\n1>/join #a\n";

/// Runs a session script through a [`ChatCore`] with a checking [`Recorder`], after
/// [`SCRIPT_PRELUDE`]. One action per line:
///
/// | line | action |
/// |---|---|
/// | `cK` | client K (a digit 0–7) connects (a new generation on slot K) |
/// | `dK` | the shell reports client K gone |
/// | `K>text` | client K sends the line `text` (cleaned as the framers do; invalid UTF-8 and lines over [`MAX_LINE`] are reported as bad input) |
/// | `bK` | client K sends a binary WebSocket message |
/// | `tN` | N seconds pass (a timer tick) |
/// | `oN` | the UTC offset becomes N quarter hours |
/// | `a text` / `a#chan text` | an administrator's announcement (to everyone / one channel) |
/// | `f` | log writes start/stop failing |
/// | `s` | the server shuts down |
/// | anything else | client 0 sends the whole line |
///
/// After every action, the connections the core closed are reported gone (as the shell's
/// reap step does) and [`Recorder::check_core`] runs; at the end the server shuts down and
/// nothing may be left.
pub fn run_script(script: &[u8]) {
    let mut core = ChatCore::new(CoreConfig {
        nick_timeout_ms: 60_000,
        ..CoreConfig::default()
    });
    let mut rec = Recorder::new();
    let mut ids: BTreeMap<u32, ClientId> = BTreeMap::new();
    let mut gen = 0u32;
    let mut ms = 0u64;
    let mut offset = 0i32;
    for line in SCRIPT_PRELUDE
        .split(|&b| b == b'\n')
        .chain(script.split(|&b| b == b'\n'))
    {
        let now = Now {
            utc_offset_s: offset,
            ..now_at(ms)
        };
        rec.begin_step(now);
        let digit = |b: Option<&u8>| match b {
            Some(d @ b'0'..=b'7') => Some(u32::from(d - b'0')),
            _ => None,
        };
        let key = digit(line.get(1));
        match (line.first(), key) {
            (Some(b'c'), Some(k)) if line.len() == 2 => {
                gen += 1;
                let id = ClientId { key: k, gen };
                if let Some(old) = ids.insert(k, id) {
                    // The slot is reused without the old connection reported gone.
                    rec.gone(old);
                }
                rec.connected(id);
                core.handle_connect(now, id, Transport::Telnet, PEER, &mut rec);
            }
            (Some(b'd'), Some(k)) if line.len() == 2 => {
                if let Some(id) = ids.remove(&k) {
                    rec.gone(id);
                    core.handle_disconnect(now, id, CloseReason::Eof, &mut rec);
                }
            }
            (Some(b'b'), Some(k)) if line.len() == 2 => {
                if let Some(id) = ids.get(&k) {
                    core.handle_bad_input(now, *id, BadInput::Binary, &mut rec);
                }
            }
            (Some(b't'), _) => {
                let n = number(&line[1..]);
                ms = ms.saturating_add(n.saturating_mul(1000));
                let later = Now {
                    utc_offset_s: offset,
                    ..now_at(ms)
                };
                rec.begin_step(later);
                core.handle_tick(later, &mut rec);
            }
            (Some(b'o'), _) => {
                offset = ((number(&line[1..]) % 105) as i32 - 52) * 900;
            }
            (Some(b'f'), None) if line.len() == 1 => rec.fail_log = !rec.fail_log,
            (Some(b's'), None) if line.len() == 1 => core.handle_shutdown(now, &mut rec),
            (Some(b'a'), _) => {
                if let Some(text) = check_clean_line(&line[1..]) {
                    let (channel, text) = match text.strip_prefix('#') {
                        Some(_) => match text.split_once(' ') {
                            Some((c, t)) => (Some(c.to_string()), t.trim().to_string()),
                            None => (Some(text.clone()), String::new()),
                        },
                        None => (None, text.clone()),
                    };
                    if !text.is_empty() && text.len() <= MAX_LINE {
                        let result = core.announce(now, &text, channel.as_deref(), &mut rec);
                        if let Ok(recipients) = result {
                            assert!(!recipients.is_empty());
                        }
                    }
                }
            }
            (Some(d @ b'0'..=b'7'), _) if line.get(1) == Some(&b'>') => {
                let k = u32::from(d - b'0');
                if let Some(id) = ids.get(&k) {
                    user_line(&mut core, &mut rec, now, *id, &line[2..]);
                }
            }
            _ => {
                if let Some(id) = ids.get(&0) {
                    user_line(&mut core, &mut rec, now, *id, line);
                }
            }
        }
        // The shell's reap step: what the core closed is gone.
        for id in rec.closed() {
            rec.gone(id);
            if ids.get(&id.key) == Some(&id) {
                ids.remove(&id.key);
            }
            core.handle_disconnect(now, id, CloseReason::Eof, &mut rec);
        }
        rec.check_core(&core);
        if let Some(deadline) = core.next_deadline() {
            assert!(
                deadline <= ms.saturating_add(60_000),
                "core: deadline too far"
            );
        }
    }
    let now = now_at(ms);
    rec.begin_step(now);
    let open = rec.open();
    core.handle_shutdown(now, &mut rec);
    assert_eq!(
        rec.closed(),
        open,
        "core: shutdown did not close every client"
    );
    for id in rec.closed() {
        rec.gone(id);
        core.handle_disconnect(now, id, CloseReason::Eof, &mut rec);
    }
    let stats = core.stats();
    assert_eq!(
        (stats.sessions, stats.users, stats.channels),
        (0, 0, 0),
        "core: state left after shutdown"
    );
    assert!(core.channel_names().is_empty());
}

/// One line from a user, through the same steps as the server's framers.
fn user_line(core: &mut ChatCore, rec: &mut Recorder, now: Now, id: ClientId, raw: &[u8]) {
    if raw.len() > MAX_LINE {
        core.handle_bad_input(now, id, BadInput::TooLong { max: MAX_LINE }, rec);
        return;
    }
    match check_clean_line(raw) {
        None => core.handle_bad_input(now, id, BadInput::InvalidUtf8, rec),
        Some(line) => {
            check_parse_command(&line);
            if !line.is_empty() {
                core.handle_line(now, id, &line, rec);
            }
        }
    }
}

/// The leading decimal digits of `s` (at most 6), 0 when none.
fn number(s: &[u8]) -> u64 {
    s.iter()
        .take_while(|b| b.is_ascii_digit())
        .take(6)
        .fold(0, |n, b| n * 10 + u64::from(b - b'0'))
}
