//! The HTTP REST admin API over real sockets (SPEC §6–§8, issue 4): a `chat-server` process
//! on 127.0.0.1 with kernel-picked ports, driven by the raw HTTP/1.1 client of `common::http`
//! (request bytes written by hand, responses parsed from the status line, headers and
//! `Content-Length` body), telnet users from `common`, and the raw WebSocket client of
//! `common::ws` (masked text frames out, unmasked frames in).
//!
//! Covered: every endpoint with and without the token; the announcement reaching telnet and
//! WebSocket users (all of them, and one channel's members); the log query with each filter,
//! paging with the cursor, and its errors; a table of malformed requests, each with its status
//! and whether the connection stays open; requests trickled one byte at a time; header and body
//! deadlines; `HEAD`; the token never leaking; and a query over a large log not stalling chat.
//!
//! Every wait loops on a condition with a generous deadline; no assertion rests on a sleep, and
//! no timing assertion is tighter than a second.

mod common;

use common::http::*;
use common::ws::Ws;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The admin token every server here is configured with (unless a test says otherwise).
const TOKEN: &str = "rest-test-token-5f0c2a9d81e6";
/// A token of the same shape that is not the right one.
const WRONG_TOKEN: &str = "rest-test-token-5f0c2a9d81e7";
const MESSAGE: &str = "/v1/api/message";
const ANNOUNCEMENT: &str = "Public Server Announcement: ";

/// A server with all three listeners, the test token, and `extra` config on top.
fn rest_server(extra: Value) -> Server {
    let mut config = json!({ "admin_token": TOKEN });
    if let (Some(map), Value::Object(extra)) = (config.as_object_mut(), extra) {
        map.extend(extra);
    }
    Server::start_expecting(config, &["telnet", "rest", "websocket"])
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Percent-encodes a query-string component (everything but RFC 3986 unreserved bytes).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Wall clock in ms since the Unix epoch.
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ================================================================================ requests

/// `POST /v1/api/message` with a JSON body and, when given, the token.
fn announce(addr: SocketAddr, token: Option<&str>, body: &Value) -> Response {
    let auth = token.map(bearer);
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    request(
        addr,
        "POST",
        MESSAGE,
        &headers,
        Some(body.to_string().as_bytes()),
    )
}

/// `GET /v1/api/message?query` with the token.
fn query(addr: SocketAddr, query: &str) -> Response {
    let auth = bearer(TOKEN);
    request(
        addr,
        "GET",
        &format!("{MESSAGE}?{query}"),
        &[("Authorization", &auth)],
        None,
    )
}

/// A 200 query answer's JSON (fails otherwise).
fn query_ok(addr: SocketAddr, q: &str) -> Value {
    let r = query(addr, q);
    assert_eq!(r.status, 200, "GET {MESSAGE}?{q}: {}", r.text());
    let link = if q.is_empty() {
        format!("//{addr}{MESSAGE}")
    } else {
        format!("//{addr}{MESSAGE}?{q}")
    };
    let v = assert_envelope(&r, Some(&link));
    assert_eq!(v["errors"], Value::Null, "{v}");
    v
}

/// The common envelope: `links.self`, `metadata.generated` (Unix ns as a string, near now),
/// `errors` (`null` or a list of error objects).
fn assert_envelope(resp: &Response, self_link: Option<&str>) -> Value {
    assert!(
        resp.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "not JSON: {resp:?}"
    );
    let v = resp.json();
    assert!(v["links"]["self"].is_string(), "links.self: {v}");
    if let Some(link) = self_link {
        assert_eq!(v["links"]["self"], link, "{v}");
    }
    let generated: i128 = v["metadata"]["generated"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("metadata.generated is not a decimal string: {v}"));
    let now_ns = i128::from(unix_ms()) * 1_000_000;
    let day_ns = 86_400 * 1_000_000_000_i128;
    assert!(
        (generated - now_ns).abs() < day_ns,
        "metadata.generated {generated} is far from now {now_ns}"
    );
    match &v["errors"] {
        Value::Null => {}
        Value::Array(errors) => {
            assert!(!errors.is_empty(), "errors is an empty list: {v}");
            for e in errors {
                assert!(
                    ["info", "err", "crit"].contains(&e["severity"].as_str().unwrap_or("")),
                    "bad severity: {e}"
                );
                assert!(e["human_friendly_message"].is_string(), "{e}");
                assert!(e["short_message"].is_string(), "{e}");
            }
        }
        other => panic!("errors is neither null nor a list: {other}"),
    }
    v
}

/// A JSON error answer with this status and `short_message`.
fn assert_error(resp: &Response, status: u16, short: &str) {
    assert_eq!(
        resp.status,
        status,
        "expected {status} {short}: {resp:?} {}",
        resp.text()
    );
    assert_envelope(resp, None);
    assert_eq!(resp.short_message(), short, "{}", resp.text());
}

fn assert_unauthorized(resp: &Response) {
    assert_error(resp, 401, "unauthorized");
    let challenge = resp.header("www-authenticate").unwrap_or("");
    assert!(
        challenge.starts_with("Bearer"),
        "401 without WWW-Authenticate: Bearer: {resp:?}"
    );
    assert!(
        resp.header("access-control-allow-origin").is_none(),
        "CORS header on an admin answer: {resp:?}"
    );
}

// ================================================================================ endpoints

#[test]
fn status_has_the_envelope_and_the_numbers() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let ws_addr = server.addr("websocket");
    let _alice = server.user_in("alice", "#lobby");
    let _bob = server.user("bob");
    let _dave = Ws::user_in(ws_addr, "dave", "#lobby");

    let auth = bearer(TOKEN);
    let wrong = bearer(WRONG_TOKEN);
    for headers in [
        vec![],
        vec![("Authorization", auth.as_str())],
        vec![("Authorization", wrong.as_str())],
    ] {
        let mut c = Http::connect(rest);
        let r = c.request("GET", "/status", &headers, None);
        assert_eq!(r.status, 200, "{r:?}");
        let v = assert_envelope(&r, Some(&format!("//{rest}/status")));
        assert_eq!(v["errors"], Value::Null, "{v}");
        let data = &v["Data"];
        assert_eq!(data["health"], "ok", "{v}");
        assert_eq!(data["users"], 3, "{v}");
        assert_eq!(data["channels"], 1, "{v}");
        assert_eq!(data["channel_names"], json!(["#lobby"]), "{v}");
        assert_eq!(data["connections"]["telnet"], 2, "{v}");
        assert_eq!(data["connections"]["websocket"], 1, "{v}");
        assert!(
            data["connections"]["http"].as_u64().is_some_and(|n| n >= 1),
            "{v}"
        );
        assert_eq!(data["version"], env!("CARGO_PKG_VERSION"), "{v}");
        assert!(data["uptime_s"].is_u64(), "{v}");
        assert_eq!(data["log_write_errors"], 0, "{v}");
        assert_eq!(
            r.header("access-control-allow-origin"),
            None,
            "no CORS: {r:?}"
        );
        // The query string is part of links.self.
        let r = c.get("/status?x=1");
        assert_eq!(r.status, 200);
        assert_envelope(&r, Some(&format!("//{rest}/status?x=1")));
    }
}

#[test]
fn healthz_and_metrics() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let _alice = server.user_in("alice", "#a");

    for headers in [
        vec![],
        vec![("Authorization", "Bearer nope-nope-nope-nope")],
    ] {
        let r = request(rest, "GET", "/healthz", &headers, None);
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
        assert!(r
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")));
    }

    // One query, so its counter moves.
    query_ok(rest, "pattern=nothing-matches-this");
    let r = get(rest, "/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
        "Content-Type {ct:?}"
    );
    let text = r.text();
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    let mut helped = BTreeSet::new();
    let mut typed = BTreeSet::new();
    let mut samples: Vec<(String, f64)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap().to_string();
            let kind = it.next().unwrap_or("");
            assert!(
                ["counter", "gauge"].contains(&kind),
                "bad TYPE line {line:?}"
            );
            typed.insert(name);
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad sample value in {line:?}"));
            let name = series.split('{').next().unwrap();
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "bad metric name in {line:?}"
            );
            assert!(typed.contains(name), "sample before its TYPE: {line:?}");
            samples.push((series.to_string(), value));
        }
    }
    assert_eq!(helped, typed, "every family needs HELP and TYPE");
    let value = |series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
    };
    for transport in ["telnet", "websocket", "http"] {
        value(&format!("chat_connections{{transport=\"{transport}\"}}"));
    }
    assert_eq!(value("chat_connections{transport=\"telnet\"}"), 1.0);
    assert_eq!(value("chat_users"), 1.0);
    assert_eq!(value("chat_channels"), 1.0);
    assert!(
        value("chat_messages_in_total") >= 2.0,
        "nick and /join were read"
    );
    value("chat_messages_out_total");
    assert!(value("chat_bytes_in_total") > 0.0);
    assert!(value("chat_bytes_out_total") > 0.0);
    for reason in ["quit", "eof", "output_overflow", "idle_timeout"] {
        value(&format!("chat_disconnects_total{{reason=\"{reason}\"}}"));
    }
    assert_eq!(value("chat_log_write_errors_total"), 0.0);
    assert!(value("chat_log_queries_total") >= 1.0);
}

#[test]
fn docs_page_and_its_assets_work_offline() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let mut c = Http::connect(rest);
    let page = c.get("/docs");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{page:?}"
    );
    let csp = page
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("no CSP: {page:?}"));
    assert!(csp.contains("default-src 'self'"), "CSP {csp:?}");
    assert!(
        !csp.contains("script-src *") && !csp.contains("unsafe-eval"),
        "CSP {csp:?}"
    );
    let html = page.text();
    // Every asset the page references is served from this origin, none from a CDN.
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            refs.push(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    assert!(
        refs.iter().any(|r| r.ends_with(".js")),
        "no script in {html}"
    );
    assert!(
        refs.iter().any(|r| r.ends_with(".css")),
        "no stylesheet in {html}"
    );
    for r in &refs {
        assert!(
            r.starts_with('/') && !r.starts_with("//"),
            "non-local reference {r:?}"
        );
        // Each on a fresh connection, read in full (the Swagger UI bundle is over a MiB,
        // more than a chat connection may have queued: the limit must not cut it off).
        let mut conn = Http::connect(rest);
        let bytes = conn.request_bytes("GET", r, &[], None);
        conn.send(&bytes);
        let resp = conn.try_response(false, DEADLINE).unwrap_or_else(|why| {
            panic!("GET {r} (referenced by /docs): no complete response: {why}")
        });
        assert_eq!(resp.status, 200, "GET {r}: {:?}", resp.headers);
        assert!(!resp.body.is_empty(), "GET {r}: empty body");
        let ct = resp.header("content-type").unwrap_or("");
        let want = if r.ends_with(".js") {
            "javascript"
        } else if r.ends_with(".json") {
            "application/json"
        } else {
            "text/css"
        };
        assert!(ct.contains(want), "GET {r}: Content-Type {ct:?}");
    }
    let license = get(rest, "/docs/LICENSE");
    assert_eq!(license.status, 200);
    assert!(license.text().contains("Apache") || license.text().contains("License"));
    let slash = c.get("/docs/");
    assert!(matches!(slash.status, 301 | 308), "{slash:?}");
    assert_eq!(slash.header("location"), Some("/docs"));
}

#[test]
fn openapi_documents_describe_the_api() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let mut docs = Vec::new();
    for path in ["/openapi.json", "/docs.json"] {
        let r = get(rest, path);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert!(r
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")));
        let v = r.json();
        assert!(
            v["openapi"].as_str().is_some_and(|s| s.starts_with("3.")),
            "{path}: openapi is {}",
            v["openapi"]
        );
        for p in [
            "/status",
            "/healthz",
            "/metrics",
            MESSAGE,
            "/docs",
            "/openapi.json",
            "/docs.json",
        ] {
            assert!(v["paths"][p].is_object(), "{path} lacks the path {p}");
        }
        assert!(v["paths"][MESSAGE]["get"].is_object() && v["paths"][MESSAGE]["post"].is_object());
        let schemes = v["components"]["securitySchemes"]
            .as_object()
            .expect("securitySchemes");
        assert!(
            schemes
                .values()
                .any(|s| s["type"] == "http" && s["scheme"] == "bearer"),
            "no bearer scheme: {schemes:?}"
        );
        for method in ["get", "post"] {
            let op = &v["paths"][MESSAGE][method];
            assert!(
                op["security"].is_array() || v["security"].is_array(),
                "{method} {MESSAGE} lacks security"
            );
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {MESSAGE} lacks 401"
            );
        }
        docs.push(v);
    }
    assert_eq!(docs[0], docs[1], "/openapi.json and /docs.json differ");
}

// ================================================================================ auth

#[test]
fn admin_endpoints_need_the_token() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let mut alice = server.user_in("alice", "#a");
    let body = json!({ "message": "should not be sent" }).to_string();
    let wrong = bearer(WRONG_TOKEN);
    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}x");
    let basic = "Basic YWRtaW46YWRtaW4=".to_string();
    let empty = "Bearer ".to_string();
    let cases: Vec<Option<&str>> = vec![
        None,
        Some(&wrong),
        Some(&prefix),
        Some(&longer),
        Some(&basic),
        Some(&empty),
        Some(TOKEN), // the token without the scheme
    ];
    for auth in cases {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let r = request(rest, "POST", MESSAGE, &headers, Some(body.as_bytes()));
        assert_unauthorized(&r);
        let r = request(
            rest,
            "GET",
            &format!("{MESSAGE}?pattern=x"),
            &headers[1..],
            None,
        );
        assert_unauthorized(&r);
    }
    // The right token, twice (two Authorization headers) is refused too.
    let auth = bearer(TOKEN);
    let r = request(
        rest,
        "GET",
        MESSAGE,
        &[("Authorization", &auth), ("Authorization", &auth)],
        None,
    );
    assert_unauthorized(&r);

    // Nothing was announced: the next line alice sees is the one announced with the token.
    let r = announce(rest, Some(TOKEN), &json!({ "message": "the real one" }));
    assert_eq!(r.status, 200, "{}", r.text());
    alice.expect(&format!("{ANNOUNCEMENT}the real one"));
    assert_eq!(
        server.log_kind("announcement").len(),
        1,
        "{}",
        render_records(&server.log_records())
    );

    // With the token, the public endpoints answer as before.
    for path in ["/status", "/healthz", "/metrics", "/openapi.json", "/docs"] {
        let r = request(rest, "GET", path, &[("Authorization", &auth)], None);
        assert_eq!(r.status, 200, "{path} with the token: {r:?}");
    }
}

#[test]
fn generated_and_environment_tokens_work() {
    // No admin_token in the config: a generated one, printed on stderr.
    let mut server = Server::start_expecting(json!({}), &["telnet", "rest"]);
    let rest = server.addr("rest");
    let token = server
        .admin_token()
        .unwrap_or_else(|| panic!("no generated token on stderr:\n{}", server.stderr_text()));
    assert!(token.len() >= 16, "generated token {token:?} is short");
    let mut alice = server.user("alice");
    let r = announce(rest, Some(&token), &json!({ "message": "generated" }));
    assert_eq!(r.status, 200, "{}", r.text());
    alice.expect(&format!("{ANNOUNCEMENT}generated"));
    assert_unauthorized(&announce(
        rest,
        Some(WRONG_TOKEN),
        &json!({ "message": "x" }),
    ));
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(!log.contains(&token), "the generated token is in the log");

    // CHAT_ADMIN_TOKEN.
    let env_token = "env-token-0123456789abcdef";
    let mut server = Server::start_with(
        json!({}),
        StartOptions {
            kinds: vec!["telnet".into(), "rest".into()],
            env: vec![("CHAT_ADMIN_TOKEN".into(), env_token.into())],
            ..StartOptions::default()
        },
    );
    let rest = server.addr("rest");
    let mut bob = server.user("bob");
    let r = announce(rest, Some(env_token), &json!({ "message": "from env" }));
    assert_eq!(r.status, 200, "{}", r.text());
    bob.expect(&format!("{ANNOUNCEMENT}from env"));
    assert!(
        !server.stderr_text().contains(env_token),
        "the env token was printed"
    );
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(!log.contains(env_token), "the env token is in the log");
}

// ================================================================================ broadcast

#[test]
fn broadcast_reaches_telnet_and_websocket_users() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let ws_addr = server.addr("websocket");
    let mut alice = server.user_in("alice", "#x");
    let mut bob = server.user_in("bob", "#y");
    let mut carol = server.user("carol"); // in no channel
    let mut dave = Ws::user_in(ws_addr, "dave", "#x");
    let mut erin = Ws::user_in(ws_addr, "erin", "#y");
    // dave's and erin's joins reach alice and bob.
    alice.wait_for("dave's join", |l| {
        is_event(l, "dave", "just joined channel #x")
    });
    bob.wait_for("erin's join", |l| {
        is_event(l, "erin", "just joined channel #y")
    });

    // Everyone.
    let r = announce(
        rest,
        Some(TOKEN),
        &json!({ "message": "maintenance at noon" }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = assert_envelope(&r, Some(&format!("//{rest}{MESSAGE}")));
    assert_eq!(v["errors"], Value::Null, "{v}");
    let got: BTreeSet<&str> = v["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = ["@alice", "@bob", "@carol", "@dave", "@erin"].into();
    assert_eq!(got, want, "{v}");
    let line = format!("{ANNOUNCEMENT}maintenance at noon");
    for t in [&mut alice, &mut bob, &mut carol] {
        t.expect(&line);
    }
    for w in [&mut dave, &mut erin] {
        assert_eq!(w.message_within(DEADLINE), Ok(line.clone()));
    }

    // One channel: alice and dave only. Channel names are case-insensitive.
    let r = announce(
        rest,
        Some(TOKEN),
        &json!({ "message": "x only", "channel": "#X" }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let got: BTreeSet<&str> = v["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(got, BTreeSet::from(["@alice", "@dave"]), "{v}");
    alice.expect(&format!("{ANNOUNCEMENT}x only"));
    assert_eq!(
        dave.message_within(DEADLINE),
        Ok(format!("{ANNOUNCEMENT}x only"))
    );

    // A third announcement to everyone: it is the next thing bob, carol and erin see, so the
    // channel one never reached them.
    let r = announce(rest, Some(TOKEN), &json!({ "message": "third" }));
    assert_eq!(r.status, 200, "{}", r.text());
    let third = format!("{ANNOUNCEMENT}third");
    for t in [&mut alice, &mut bob, &mut carol] {
        t.expect(&third);
    }
    for w in [&mut dave, &mut erin] {
        assert_eq!(w.message_within(DEADLINE), Ok(third.clone()));
    }

    // The log has the three announcements, in order, each written once.
    let records = server.log_kind("announcement");
    let summary: Vec<(Value, Value, Value)> = records
        .iter()
        .map(|r| {
            (
                r["text"].clone(),
                r["channel"].clone(),
                r["recipients"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!("maintenance at noon"), Value::Null, json!(5)),
            (json!("x only"), json!("#x"), json!(2)),
            (json!("third"), Value::Null, json!(5)),
        ],
        "{}",
        render_records(&records)
    );
    for r in &records {
        assert!(r["ts"].is_string() && r["seq"].is_u64(), "{r}");
    }
}

#[test]
fn broadcast_errors() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let auth = bearer(TOKEN);

    // No users: 200 with an info error, as the original.
    let r = announce(rest, Some(TOKEN), &json!({ "message": "anyone?" }));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = assert_envelope(&r, None);
    assert_eq!(v["errors"][0]["short_message"], "no-connected-users", "{v}");
    assert_eq!(v["recipients"], json!([]), "{v}");
    // A connection that has not chosen a nickname is no user either.
    let mut anon = server.telnet();
    anon.expect_match("the greeting", |l| l.starts_with("Welcome to chat server."));
    let r = announce(rest, Some(TOKEN), &json!({ "message": "anyone?" }));
    assert_eq!(r.json()["errors"][0]["short_message"], "no-connected-users");

    let mut alice = server.user_in("alice", "#a");
    let bad_bodies: Vec<(&str, Vec<u8>, u16)> = vec![
        ("empty message", br#"{"message":""}"#.to_vec(), 400),
        ("blank message", br#"{"message":"   "}"#.to_vec(), 400),
        (
            "control characters only",
            br#"{"message":"\u0007\u001b"}"#.to_vec(),
            400,
        ),
        ("missing message", br##"{"channel":"#a"}"##.to_vec(), 400),
        ("message not a string", br#"{"message":5}"#.to_vec(), 400),
        ("not JSON", b"message=hi".to_vec(), 400),
        ("JSON but not an object", br#"["hi"]"#.to_vec(), 400),
        ("empty body", Vec::new(), 400),
        (
            "message over max_line_bytes",
            json!({ "message": "m".repeat(600) })
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            "invalid channel name",
            br#"{"message":"hi","channel":"no hash"}"#.to_vec(),
            400,
        ),
        (
            "channel not a string",
            br#"{"message":"hi","channel":7}"#.to_vec(),
            400,
        ),
        (
            "unknown channel",
            br##"{"message":"hi","channel":"#nowhere"}"##.to_vec(),
            404,
        ),
    ];
    for (what, body, status) in &bad_bodies {
        let r = request(
            rest,
            "POST",
            MESSAGE,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            Some(body),
        );
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        let v = assert_envelope(&r, None);
        assert!(v["errors"][0]["severity"] == "err", "{what}: {v}");
    }
    let r = announce(
        rest,
        Some(TOKEN),
        &json!({ "message": "hi", "channel": "#nowhere" }),
    );
    assert_error(&r, 404, "unknown-channel");

    // Not JSON by Content-Type: 415.
    let body = br#"{"message":"hi"}"#;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(ct) = ct {
            headers.push(("Content-Type", ct));
        }
        let r = request(rest, "POST", MESSAGE, &headers, Some(body));
        assert_eq!(r.status, 415, "Content-Type {ct:?}: {}", r.text());
        assert_envelope(&r, None);
    }
    // Parameters and case do not matter.
    let r = request(
        rest,
        "POST",
        MESSAGE,
        &[
            ("Content-Type", "Application/JSON; charset=utf-8"),
            ("Authorization", &auth),
        ],
        Some(body),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // None of the refused ones reached alice or the log.
    alice.expect(&format!("{ANNOUNCEMENT}hi"));
    let texts: Vec<Value> = server
        .log_kind("announcement")
        .iter()
        .map(|r| r["text"].clone())
        .collect();
    assert_eq!(texts, vec![json!("hi")]);
}

// ================================================================================ log query

/// The message records (chat, private, announcement) of the log, in order.
fn message_records(server: &Server) -> Vec<Value> {
    server
        .log_records()
        .into_iter()
        .filter(|r| ["chat", "private", "announcement"].contains(&r["kind"].as_str().unwrap_or("")))
        .collect()
}

/// The occurrence line the query renders for a log record.
fn occurrence(r: &Value) -> String {
    let ts = r["ts"].as_str().unwrap();
    let text = r["text"].as_str().unwrap();
    match r["kind"].as_str().unwrap() {
        "chat" => format!(
            "{ts} {} @{}: {text}",
            r["channel"].as_str().unwrap(),
            r["nick"].as_str().unwrap()
        ),
        "private" => format!(
            "{ts} @{} -> @{} (private): {text}",
            r["from"].as_str().unwrap(),
            r["to"].as_str().unwrap()
        ),
        "announcement" => match r["channel"].as_str() {
            Some(c) => format!("{ts} {c} announcement: {text}"),
            None => format!("{ts} announcement: {text}"),
        },
        other => panic!("not a message record: {other}"),
    }
}

/// Asserts that a query answer holds exactly `want` (log records), in order.
fn assert_hits(v: &Value, want: &[Value], what: &str) {
    let records = v["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no records: {v}"));
    let occurrences = v["occurrences"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no occurrences: {v}"));
    assert_eq!(records, want, "{what}: records");
    let want_lines: Vec<Value> = want.iter().map(|r| Value::from(occurrence(r))).collect();
    assert_eq!(occurrences, &want_lines, "{what}: occurrences");
}

/// Seeds chat, private and announcement records; returns the server (rest, users kept alive).
struct Seeded {
    server: Server,
    rest: SocketAddr,
    _users: Vec<Telnet>,
}

fn seeded() -> Seeded {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let mut alice = server.user_in("alice", "#fruit");
    let mut bob = server.user_in("bob", "#fruit");
    let mut carol = server.user_in("carol", "#veg");
    alice.wait_for("bob's join", |l| {
        is_event(l, "bob", "just joined channel #fruit")
    });

    let say = |from: &mut Telnet, to: &mut [&mut Telnet], nick: &str, text: &str| {
        from.send_line(text);
        from.wait_for("the echo", |l| is_chat(l, nick, text));
        for t in to.iter_mut() {
            t.wait_for("the message", |l| is_chat(l, nick, text));
        }
    };
    say(&mut alice, &mut [&mut bob], "alice", "apple pie");
    say(&mut bob, &mut [&mut alice], "bob", "banana split");
    say(&mut carol, &mut [], "carol", "carrot cake");
    carol.send_line("/msg @alice psst apple for you");
    alice.wait_for("the private message", |l| l.ends_with("psst apple for you"));
    let r = announce(
        rest,
        Some(TOKEN),
        &json!({ "message": "apple harvest today" }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = announce(
        rest,
        Some(TOKEN),
        &json!({ "message": "veg news", "channel": "#veg" }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    say(&mut alice, &mut [&mut bob], "alice", "Apple? (yes) 100%");
    say(&mut bob, &mut [&mut alice], "bob", "bye now");
    // Everything is in the log (written before it was sent).
    assert_eq!(
        message_records(&server).len(),
        8,
        "{}",
        render_records(&server.log_records())
    );
    Seeded {
        server,
        rest,
        _users: vec![alice, bob, carol],
    }
}

#[test]
fn log_query_filters() {
    let s = seeded();
    let all = message_records(&s.server);
    let text_of = |r: &Value| r["text"].as_str().unwrap().to_string();
    let pick = |texts: &[&str]| -> Vec<Value> {
        all.iter()
            .filter(|r| texts.contains(&text_of(r).as_str()))
            .cloned()
            .collect()
    };

    // No filter: every message record, in log order, none of the others.
    assert_hits(&query_ok(s.rest, ""), &all, "no filter");
    assert_hits(&query_ok(s.rest, "pattern="), &all, "empty pattern");

    let cases: Vec<(String, Vec<Value>)> = vec![
        (
            format!("pattern={}", enc("apple")),
            pick(&["apple pie", "psst apple for you", "apple harvest today"]),
        ),
        (
            format!("pattern={}", enc("(?i)^apple")),
            pick(&["apple pie", "apple harvest today", "Apple? (yes) 100%"]),
        ),
        (
            format!("pattern={}", enc(r"\(yes\) 100%$")),
            pick(&["Apple? (yes) 100%"]),
        ),
        (format!("pattern={}", enc("no such text")), vec![]),
        (
            "channel=%23fruit".to_string(),
            pick(&["apple pie", "banana split", "Apple? (yes) 100%", "bye now"]),
        ),
        (
            "channel=veg".to_string(),
            pick(&["carrot cake", "veg news"]),
        ),
        (
            "channel=%23VEG".to_string(),
            pick(&["carrot cake", "veg news"]),
        ),
        ("nick=bob".to_string(), pick(&["banana split", "bye now"])),
        (
            "nick=%40alice".to_string(),
            pick(&["apple pie", "psst apple for you", "Apple? (yes) 100%"]),
        ),
        (
            "nick=carol".to_string(),
            pick(&["carrot cake", "psst apple for you"]),
        ),
        (
            format!("nick=alice&channel=fruit&pattern={}", enc("pie|yes")),
            pick(&["apple pie", "Apple? (yes) 100%"]),
        ),
        ("limit=3".to_string(), all[..3].to_vec()),
        ("limit=1&nick=bob".to_string(), pick(&["banana split"])),
    ];
    for (q, want) in &cases {
        let v = query_ok(s.rest, q);
        assert_hits(&v, want, q);
        if !q.starts_with("limit") {
            assert_eq!(v["next_cursor"], Value::Null, "{q}: {v}");
        }
    }

    // since (inclusive) and until (exclusive), from the log's own time stamps; records in the
    // same millisecond go together.
    let ts = |r: &Value| r["ts"].as_str().unwrap().to_string();
    for pivot in [&all[0], &all[3], &all[7]] {
        let t = ts(pivot);
        let after: Vec<Value> = all.iter().filter(|r| ts(r) >= t).cloned().collect();
        let before: Vec<Value> = all.iter().filter(|r| ts(r) < t).cloned().collect();
        assert_hits(
            &query_ok(s.rest, &format!("since={}", enc(&t))),
            &after,
            "since",
        );
        assert_hits(
            &query_ok(s.rest, &format!("until={}", enc(&t))),
            &before,
            "until",
        );
        assert_hits(
            &query_ok(s.rest, &format!("since={}&until={}", enc(&t), enc(&t))),
            &[],
            "since = until",
        );
    }
    // A window around everything, with an offset form of the time zone.
    assert_hits(
        &query_ok(
            s.rest,
            &format!(
                "since={}&until={}",
                enc("2000-01-01T01:00:00+01:00"),
                enc("2999-01-01T00:00:00Z")
            ),
        ),
        &all,
        "wide window",
    );
    assert_hits(
        &query_ok(s.rest, &format!("since={}", enc("2999-01-01T00:00:00Z"))),
        &[],
        "future",
    );
}

#[test]
fn log_query_pages_with_the_cursor() {
    let s = seeded();
    let all = message_records(&s.server);
    for limit in [1, 2, 3, 7, 8, 100] {
        let mut got: Vec<Value> = Vec::new();
        let mut cursor: Option<u64> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages <= 50, "limit {limit}: the cursor never ends");
            let mut q = format!("limit={limit}");
            if let Some(c) = cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let v = query_ok(s.rest, &q);
            let records = v["records"].as_array().unwrap();
            assert!(
                records.len() <= limit,
                "limit {limit}: page of {}",
                records.len()
            );
            assert_eq!(records.len(), v["occurrences"].as_array().unwrap().len());
            got.extend(records.iter().cloned());
            match &v["next_cursor"] {
                Value::Null => break,
                c => {
                    let c = c
                        .as_u64()
                        .unwrap_or_else(|| panic!("next_cursor {c} is not an integer"));
                    if let Some(prev) = cursor {
                        assert!(c > prev, "the cursor went back: {prev} -> {c}");
                    }
                    cursor = Some(c);
                }
            }
        }
        assert_eq!(
            got, all,
            "limit {limit}: every record exactly once, in log order"
        );
    }
    // Paging with a filter.
    let apples: Vec<Value> = all
        .iter()
        .filter(|r| r["text"].as_str().unwrap().to_lowercase().contains("apple"))
        .cloned()
        .collect();
    let mut got = Vec::new();
    let mut q = format!("pattern={}&limit=1", enc("(?i)apple"));
    for _ in 0..20 {
        let v = query_ok(s.rest, &q);
        got.extend(v["records"].as_array().unwrap().iter().cloned());
        match v["next_cursor"].as_u64() {
            Some(c) => q = format!("pattern={}&limit=1&cursor={c}", enc("(?i)apple")),
            None => break,
        }
    }
    assert_eq!(got, apples);
    // A cursor far past the end: an empty last page.
    let v = query_ok(s.rest, "cursor=999999999");
    assert_hits(&v, &[], "cursor past the end");
    assert_eq!(v["next_cursor"], Value::Null);
}

#[test]
fn log_query_errors() {
    let s = seeded();
    let cases: Vec<(String, &str)> = vec![
        (format!("pattern={}", enc("(")), "invalid-regex-pattern"),
        (format!("pattern={}", enc("[z-a]")), "invalid-regex-pattern"),
        (
            format!("pattern={}", enc("a{1000}{1000}")),
            "invalid-regex-pattern",
        ),
        (
            format!("pattern={}", "a".repeat(600)),
            "invalid-regex-pattern",
        ),
        ("limit=0".into(), "invalid-limit"),
        ("limit=101".into(), "invalid-limit"),
        ("limit=ten".into(), "invalid-limit"),
        ("limit=-1".into(), "invalid-limit"),
        ("since=yesterday".into(), "invalid-since"),
        ("until=2026-13-01T00:00:00Z".into(), "invalid-until"),
        ("cursor=abc".into(), "invalid-cursor"),
        ("colour=blue".into(), "unknown-parameter"),
        ("limit=1&limit=2".into(), "duplicate-parameter"),
        ("pattern=%ZZ".into(), "invalid-query"),
    ];
    for (q, short) in &cases {
        let r = query(s.rest, q);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_error(&r, 400, short);
    }
    // Still fine afterwards.
    query_ok(s.rest, "pattern=apple");
}

#[test]
fn head_requests_get_the_get_headers_without_a_body() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let mut c = Http::connect(rest);
    let before = c.get("/status");
    let head = c.request("HEAD", "/status", &[], None);
    let after = c.get("/status");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), before.header("content-type"));
    let len = head
        .header("content-length")
        .expect("HEAD has Content-Length")
        .to_string();
    // uptime may gain a digit between the two GETs: the HEAD's length is one of theirs.
    assert!(
        [before.body.len(), after.body.len()].contains(&len.parse().unwrap()),
        "HEAD Content-Length {len}, GET bodies {} and {}",
        before.body.len(),
        after.body.len()
    );
    assert_eq!(head.header("connection"), Some("keep-alive"));
    for path in ["/healthz", "/metrics", "/openapi.json", "/docs"] {
        let get_len = c.get(path).body.len();
        let head = c.request("HEAD", path, &[], None);
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(
            head.header("content-length"),
            Some(get_len.to_string().as_str()),
            "HEAD {path}"
        );
    }
    // No body bytes followed any HEAD answer: the connection still frames correctly.
    c.assert_open();
}

// ================================================================================ framing

/// What a malformed request must get.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    status: u16,
    /// Other acceptable statuses (e.g. 414 for an over-long request line).
    also: &'static [u16],
    /// The server must close the connection after the answer.
    closes: bool,
}

fn case(name: &'static str, bytes: impl Into<Vec<u8>>, status: u16, closes: bool) -> Case {
    Case {
        name,
        bytes: bytes.into(),
        status,
        also: &[],
        closes,
    }
}

#[test]
fn malformed_requests_get_the_right_status_and_connection_state() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let _alice = server.user("alice");
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    // A POST to the message endpoint with the token, JSON, `headers` and `body`.
    let post = |headers: &str, body: &str| {
        let mut s = format!("POST {MESSAGE} HTTP/1.1\r\nHost: x\r\n{auth}");
        s.push_str("Content-Type: application/json\r\n");
        s.push_str(headers);
        s.push_str("\r\n");
        s.push_str(body);
        s
    };
    let body = r#"{"message":"hi"}"#;
    let cl = format!("Content-Length: {}\r\n", body.len());
    let n = body.len();
    let te = "Transfer-Encoding: chunked\r\n";
    let big_header = format!(
        "GET /status HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let many_headers = {
        let mut s = "GET /status HTTP/1.1\r\nHost: x\r\n".to_string();
        for i in 0..100 {
            s.push_str(&format!("X-H{i}: v\r\n"));
        }
        s + "\r\n"
    };
    let long_target = format!(
        "GET /status?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(9000)
    );
    let put = format!("PUT {MESSAGE} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n");
    let text_plain = format!(
        "POST {MESSAGE} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: text/plain\r\n\
         Content-Length: 2\r\n\r\nhi"
    );
    let mut cases = vec![
        // Ambiguous framing: 400 and close.
        case(
            "Content-Length, Transfer-Encoding",
            post(&format!("{cl}{te}"), body),
            400,
            true,
        ),
        case(
            "Transfer-Encoding, Content-Length",
            post(&format!("{te}{cl}"), body),
            400,
            true,
        ),
        case(
            "duplicate Content-Length",
            post(&format!("{cl}{cl}"), body),
            400,
            true,
        ),
        case(
            "conflicting Content-Length",
            post(&format!("{cl}Content-Length: 3\r\n"), body),
            400,
            true,
        ),
        case(
            "Content-Length list",
            post(&format!("Content-Length: {n}, {n}\r\n"), body),
            400,
            true,
        ),
        case(
            "malformed Content-Length",
            post("Content-Length: abc\r\n", body),
            400,
            true,
        ),
        case(
            "negative Content-Length",
            post("Content-Length: -1\r\n", body),
            400,
            true,
        ),
        case(
            "signed Content-Length",
            post(&format!("Content-Length: +{n}\r\n"), body),
            400,
            true,
        ),
        case(
            "huge Content-Length",
            post("Content-Length: 99999999999999999999999\r\n", ""),
            400,
            true,
        ),
        // Limits.
        case("POST without a length", post("", ""), 411, true),
        case(
            "body over 16 KiB (declared)",
            post("Content-Length: 16385\r\n", ""),
            413,
            true,
        ),
        case("headers over 8 KiB", big_header, 431, true),
        case("too many headers", many_headers, 431, true),
        case("garbage request line", "HELLO\r\n\r\n", 400, true),
        case(
            "header without a colon",
            "GET /status HTTP/1.1\r\nNoColon\r\n\r\n",
            400,
            true,
        ),
        // Answered in the envelope, connection kept.
        case(
            "unknown path",
            "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
            404,
            false,
        ),
        case(
            "unknown path, body",
            "POST /nope HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            404,
            false,
        ),
        case(
            "DELETE /status",
            "DELETE /status HTTP/1.1\r\nHost: x\r\n\r\n",
            405,
            false,
        ),
        case(
            "POST /status",
            "POST /status HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            405,
            false,
        ),
        case("PUT the message endpoint", put, 405, false),
        case(
            "OPTIONS /healthz",
            "OPTIONS /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            405,
            false,
        ),
        case(
            "empty JSON message",
            post("Content-Length: 14\r\n", r#"{"message":""}"#),
            400,
            false,
        ),
        case("text/plain body", text_plain, 415, false),
        case(
            "GET with a body",
            "GET /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            200,
            false,
        ),
    ];
    cases.push(Case {
        name: "request target over 8 KiB",
        bytes: long_target.into_bytes(),
        status: 431,
        also: &[414],
        closes: true,
    });
    cases.push(Case {
        name: "chunked body",
        bytes: post(te, "2\r\nhi\r\n0\r\n\r\n").into_bytes(),
        status: 411,
        also: &[400, 501],
        closes: true,
    });
    cases.push(Case {
        name: "HTTP/2.0 request line",
        bytes: b"GET /status HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
        status: 505,
        also: &[400],
        closes: true,
    });

    let mut failures = Vec::new();
    for c in &cases {
        let mut conn = Http::connect(rest);
        conn.send(&c.bytes);
        let r = match conn.try_response(false, DEADLINE) {
            Ok(r) => r,
            Err(why) => {
                failures.push(format!("{}: no response: {why}", c.name));
                continue;
            }
        };
        if r.status != c.status && !c.also.contains(&r.status) {
            failures.push(format!(
                "{}: status {} (want {}): {}",
                c.name,
                r.status,
                c.status,
                r.text()
            ));
            continue;
        }
        if r.status != 200 {
            // Errors use the envelope on the REST port.
            let v: Result<Value, _> = serde_json::from_slice(&r.body);
            match v {
                Ok(v) if v["errors"][0]["short_message"].is_string() => {}
                _ => failures.push(format!(
                    "{}: error body is not the envelope: {:?}",
                    c.name,
                    r.text()
                )),
            }
        }
        if r.status == 405 {
            let allow = r.header("allow").unwrap_or("");
            if !allow.contains("GET") {
                failures.push(format!("{}: 405 with Allow {allow:?}", c.name));
            }
            if c.name.contains("message") && !allow.contains("POST") {
                failures.push(format!("{}: 405 with Allow {allow:?}", c.name));
            }
        }
        if c.closes {
            if !r.connection_close() {
                failures.push(format!(
                    "{}: no Connection: close on an answer that closes",
                    c.name
                ));
            }
            if !conn.closes_within(DEADLINE) {
                failures.push(format!("{}: the connection stayed open", c.name));
            }
        } else {
            if r.connection_close() {
                failures.push(format!(
                    "{}: Connection: close on a keep-alive answer",
                    c.name
                ));
                continue;
            }
            // Keep-alive: a second request on the same connection works.
            let bytes = conn.request_bytes("GET", "/healthz", &[], None);
            let second = conn
                .try_send(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|()| conn.try_response(false, DEADLINE));
            match second {
                Ok(r) if r.status == 200 && r.body == b"ok" => {}
                other => failures.push(format!(
                    "{}: second request on the kept connection: {other:?}",
                    c.name
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "malformed requests:\n{}",
        failures.join("\n")
    );
    // None of them was announced, and the server is fine.
    assert!(
        server.log_kind("announcement").is_empty(),
        "{}",
        render_records(&server.log_records())
    );
    assert_eq!(get(rest, "/healthz").status, 200);
}

#[test]
fn body_over_the_limit_is_refused_while_arriving() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let mut conn = Http::connect(rest);
    // A declared 64 KiB body over the 16 KiB limit: refused as soon as the head is in.
    let head = format!(
        "POST {MESSAGE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n"
    );
    conn.send(head.as_bytes());
    let r = conn.response(false);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.connection_close());
    conn.assert_closed();
    // Exactly at the limit is fine (and is a 400 for its content, not a 413).
    let body = format!("{{\"message\":\"{}\"}}", "m".repeat(16384 - 14));
    assert_eq!(body.len(), 16384);
    let r = request(
        rest,
        "POST",
        MESSAGE,
        &[
            ("Authorization", &bearer(TOKEN)),
            ("Content-Type", "application/json"),
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.short_message(), "message-too-long");
}

#[test]
fn keep_alive_pipelining_and_connection_close() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let mut alice = server.user("alice");
    // Three requests in one write: three answers, in order.
    let mut c = Http::connect(rest);
    let body = json!({ "message": "pipelined" }).to_string();
    let mut bytes = c.request_bytes("GET", "/healthz", &[], None);
    bytes.extend(c.request_bytes(
        "POST",
        MESSAGE,
        &[
            ("Authorization", &bearer(TOKEN)),
            ("Content-Type", "application/json"),
        ],
        Some(body.as_bytes()),
    ));
    bytes.extend(c.request_bytes(
        "GET",
        &format!("{MESSAGE}?pattern=pipelined"),
        &[("Authorization", &bearer(TOKEN))],
        None,
    ));
    bytes.extend(c.request_bytes("GET", "/nope", &[], None));
    c.send(&bytes);
    let r1 = c.response(false);
    assert_eq!((r1.status, r1.text().as_str()), (200, "ok"));
    let r2 = c.response(false);
    assert_eq!(r2.status, 200, "{}", r2.text());
    assert_eq!(r2.json()["recipients"], json!(["@alice"]));
    let r3 = c.response(false);
    assert_eq!(r3.status, 200, "{}", r3.text());
    assert_eq!(
        r3.json()["occurrences"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r3.text()
    );
    let r4 = c.response(false);
    assert_eq!(r4.status, 404);
    c.assert_open();
    alice.expect(&format!("{ANNOUNCEMENT}pipelined"));

    // Connection: close is honoured.
    let mut c = Http::connect(rest);
    let r = c.request("GET", "/status", &[("Connection", "close")], None);
    assert_eq!(r.status, 200);
    assert!(r.connection_close(), "{r:?}");
    c.assert_closed();

    // HTTP/1.0 without keep-alive closes; with keep-alive stays.
    let mut c = Http::connect(rest);
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 200);
    c.assert_closed();
    let mut c = Http::connect(rest);
    c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert!(!r.connection_close(), "{r:?}");
    c.assert_open();
}

#[test]
fn a_request_sent_one_byte_at_a_time_works() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let mut alice = server.user("alice");
    let mut c = Http::connect(rest);
    let body = json!({ "message": "byte by byte" }).to_string();
    let bytes = c.request_bytes(
        "POST",
        MESSAGE,
        &[
            ("Authorization", &bearer(TOKEN)),
            ("Content-Type", "application/json"),
        ],
        Some(body.as_bytes()),
    );
    for (i, b) in bytes.iter().enumerate() {
        c.send(&[*b]);
        if i % 8 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let r = c.response(false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["recipients"], json!(["@alice"]));
    alice.expect(&format!("{ANNOUNCEMENT}byte by byte"));
    // A GET too, split at every byte, on the same connection.
    let bytes = c.request_bytes("GET", "/status", &[], None);
    for b in &bytes {
        c.send(&[*b]);
    }
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Data"]["health"], "ok");
}

#[test]
fn slow_headers_get_408_or_a_close() {
    let mut server = rest_server(json!({ "http_header_timeout_s": 1, "http_body_timeout_s": 1 }));
    let rest = server.addr("rest");

    // Half a head, then silence.
    let mut c = Http::connect(rest);
    c.send(b"GET /status HTTP/1.1\r\nHost: x\r\n");
    match c.try_response(false, DEADLINE) {
        Ok(r) => {
            assert_eq!(r.status, 408, "{r:?}");
            c.assert_closed();
        }
        Err(_) => assert!(c.eof, "neither 408 nor a close within {DEADLINE:?}"),
    }

    // Slowloris: one byte every 200 ms does not extend the deadline.
    let mut c = Http::connect(rest);
    let head = format!(
        "GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
        "s".repeat(200)
    );
    let started = Instant::now();
    let mut cut = false;
    for b in head.as_bytes() {
        if c.try_send(&[*b]).is_err() {
            cut = true;
            break;
        }
        thread::sleep(Duration::from_millis(200));
        // Stop trickling once the server answered or closed.
        c.stream.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 1024];
        let got = c.stream.read(&mut probe);
        c.stream.set_nonblocking(false).unwrap();
        match got {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(n) if n > 0 => {
                c.buf.extend_from_slice(&probe[..n]);
                cut = true;
                break;
            }
            _ => {
                c.eof = true;
                cut = true;
                break;
            }
        }
    }
    assert!(
        cut,
        "a head trickled over {:?} was never cut off (header deadline 1 s)",
        started.elapsed()
    );
    if !c.buf.is_empty() {
        let r = c.response(false);
        assert_eq!(r.status, 408, "{r:?}");
    }

    // A connection that never sends anything is closed too.
    // (A 408 first is fine too.)
    let mut idle = Http::connect(rest);
    let end = Instant::now() + DEADLINE;
    while !idle.eof && idle.fill(end) {}
    assert!(idle.eof, "an idle connection stayed open for {DEADLINE:?}");

    // A kept-alive connection idle after a request is closed after the deadline.
    let mut c = Http::connect(rest);
    assert_eq!(c.get("/healthz").status, 200);
    c.assert_closed();

    // The server still answers.
    assert_eq!(get(rest, "/healthz").status, 200);
}

#[test]
fn slow_body_gets_408_and_a_close() {
    let mut server = rest_server(json!({ "http_body_timeout_s": 1, "http_header_timeout_s": 30 }));
    let rest = server.addr("rest");
    let _alice = server.user("alice");
    let mut c = Http::connect(rest);
    c.send(
        format!(
            "POST {MESSAGE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"message\":"
        )
        .as_bytes(),
    );
    let r = c.response(false);
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(r.connection_close(), "{r:?}");
    assert_envelope(&r, None);
    c.assert_closed();
    assert!(server.log_kind("announcement").is_empty());
}

// ================================================================================ the token

#[test]
fn the_token_never_appears_in_the_log_or_a_response() {
    let mut server = rest_server(json!({}));
    let rest = server.addr("rest");
    let ws_addr = server.addr("websocket");
    let mut alice = server.user_in("alice", "#a");
    let _dave = Ws::user_in(ws_addr, "dave", "#a");
    alice.wait_for("dave's join", |l| {
        is_event(l, "dave", "just joined channel #a")
    });
    let mut responses = Vec::new();
    // A user typing the token in chat is their business; not done here on purpose.
    responses.push(announce(
        rest,
        Some(TOKEN),
        &json!({ "message": "with token" }),
    ));
    responses.push(announce(
        rest,
        Some(TOKEN),
        &json!({ "message": "chan", "channel": "#a" }),
    ));
    responses.push(announce(
        rest,
        Some(WRONG_TOKEN),
        &json!({ "message": "wrong" }),
    ));
    responses.push(announce(rest, None, &json!({ "message": "none" })));
    responses.push(query(rest, "pattern=with"));
    responses.push(query(rest, "pattern=("));
    let auth = bearer(TOKEN);
    for path in [
        "/status",
        "/metrics",
        "/healthz",
        "/openapi.json",
        "/nope",
        "/docs",
    ] {
        responses.push(request(
            rest,
            "GET",
            path,
            &[("Authorization", &auth)],
            None,
        ));
    }
    responses.push(request(
        rest,
        "DELETE",
        MESSAGE,
        &[("Authorization", &auth)],
        None,
    ));
    responses.push(request(
        rest,
        "POST",
        MESSAGE,
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(b"x"),
    ));
    responses.push(request(
        rest,
        "POST",
        MESSAGE,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(b"{"),
    ));
    // Framing errors after an Authorization header.
    let mut c = Http::connect(rest);
    let framing = format!(
        "POST {MESSAGE} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 1\r\nContent-Length: 2\r\n\r\n"
    );
    c.send(framing.as_bytes());
    responses.push(c.response(false));
    alice.expect(&format!("{ANNOUNCEMENT}with token"));
    alice.expect(&format!("{ANNOUNCEMENT}chan"));

    for r in &responses {
        let mut all = format!("{:?}", r.headers);
        all.push_str(&r.text());
        assert!(!all.contains(TOKEN), "the token is in a response: {all}");
        assert!(
            !all.contains(WRONG_TOKEN),
            "a presented token is echoed: {all}"
        );
    }
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");
    assert!(
        !log.contains(WRONG_TOKEN),
        "a presented token is in the log:\n{log}"
    );
    assert!(
        !server.stderr_text().contains(TOKEN),
        "the configured token was printed"
    );
}

// ================================================================================ large log

/// About `bytes` of valid chat records (JSON Lines), each with its own `seq` and `ts`.
fn big_log(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 512);
    let filler = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor";
    let mut seq = 1u64;
    while out.len() < bytes {
        let s = (seq / 1000) % 60;
        let ms = seq % 1000;
        let m = (seq / 60_000) % 60;
        let line = json!({
            "ts": format!("2025-01-01T00:{m:02}:{s:02}.{ms:03}Z"),
            "seq": seq,
            "kind": "chat",
            "nick": format!("old{}", seq % 7),
            "channel": "#history",
            "text": format!("{filler} {seq}"),
        });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
        seq += 1;
    }
    out
}

#[test]
fn a_query_over_a_large_log_does_not_stall_chat() {
    // A debug server scans this in several seconds; a release one parses about ten times
    // faster, so it gets a bigger log to keep the scan long enough to measure chat during it.
    const LOG_BYTES: usize = if cfg!(debug_assertions) {
        24 << 20
    } else {
        96 << 20
    };
    let prefill = big_log(LOG_BYTES);
    let mut server = Server::start_with(
        json!({
            "admin_token": TOKEN,
            // No rate limit in the way of the measurement.
            "lines_burst": 10_000,
            "lines_per_s": 10_000,
        }),
        StartOptions {
            kinds: vec!["telnet".into(), "rest".into()],
            log_prefill: Some(prefill),
            ..StartOptions::default()
        },
    );
    let rest = server.addr("rest");
    let mut alice = server.user_in("alice", "#live");
    let mut bob = server.user_in("bob", "#live");
    alice.wait_for("bob's join", |l| {
        is_event(l, "bob", "just joined channel #live")
    });

    // The query scans everything (nothing matches), on its own thread.
    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    {
        let done = done.clone();
        thread::spawn(move || {
            let mut c = Http::connect(rest);
            let bytes = c.request_bytes(
                "GET",
                &format!("{MESSAGE}?pattern=zz-no-such-text-zz"),
                &[("Authorization", &bearer(TOKEN))],
                None,
            );
            c.send(&bytes);
            let r = c.try_response(false, Duration::from_secs(300));
            done.store(true, Ordering::SeqCst);
            let _ = tx.send((r, started.elapsed()));
        });
    }

    // Meanwhile alice and bob talk; every message must arrive within a second.
    let limit = Duration::from_secs(1);
    let mut during = 0;
    let mut worst = Duration::ZERO;
    let mut n = 0;
    while !done.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(300) {
        n += 1;
        let (from, to, nick) = if n % 2 == 0 {
            (&mut alice, &mut bob, "alice")
        } else {
            (&mut bob, &mut alice, "bob")
        };
        let text = format!("ping {n}");
        let sent = Instant::now();
        from.send_line(&text);
        let line = to
            .line_within(Duration::from_secs(30))
            .unwrap_or_else(|why| panic!("message {n} never arrived: {why}"));
        let took = sent.elapsed();
        assert!(is_chat(&line, nick, &text), "unexpected line {line:?}");
        from.wait_for("the echo", |l| is_chat(l, nick, &text));
        let still_running = !done.load(Ordering::SeqCst);
        if still_running {
            during += 1;
            worst = worst.max(took);
            assert!(
                took < limit,
                "message {n} took {took:?} while the query was scanning ({:?} into it)",
                started.elapsed()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    let (resp, query_time) = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the query thread");
    let resp = resp.unwrap_or_else(|why| panic!("the query never answered: {why}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    assert_eq!(v["occurrences"], json!([]), "{v}");
    assert_eq!(v["next_cursor"], Value::Null, "{v}");
    eprintln!(
        "large log: {} MiB scanned in {query_time:?}; {during} messages exchanged meanwhile, worst {worst:?}",
        LOG_BYTES >> 20
    );
    assert!(
        during >= 3,
        "the query finished after {query_time:?}, before chat could be measured ({during} messages); make the log bigger"
    );

    // A query whose client goes away mid-scan leaves the server fine.
    let mut c = Http::connect(rest);
    let bytes = c.request_bytes(
        "GET",
        &format!("{MESSAGE}?pattern=zz"),
        &[("Authorization", &bearer(TOKEN))],
        None,
    );
    c.send(&bytes);
    drop(c);
    alice.send_line("after");
    bob.wait_for("the message after", |l| is_chat(l, "alice", "after"));
    assert_eq!(get(rest, "/healthz").status, 200);
}
