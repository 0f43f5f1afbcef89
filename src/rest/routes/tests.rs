use super::*;
use crate::rest::docs::{DOCS_CSP, OPENAPI_JSON};
use crate::rest::test_support::*;
use serde_json::Value;
use std::path::PathBuf;

const TOKEN: &str = "s3cret-token";

fn cfg() -> RestConfig {
    RestConfig {
        admin_token: TOKEN.into(),
        max_announcement_bytes: 512,
    }
}

fn no_log() -> PathBuf {
    PathBuf::from("/nonexistent-chat-server-dir/chat.log")
}

fn respond(req: &Request, view: &mut FakeView) -> Response {
    match route(req, view, &cfg(), &no_log()) {
        Outcome::Respond(resp) => resp,
        Outcome::Query(_) => panic!("unexpected query for {} {}", req.method, req.path),
    }
}

fn get(target: &str) -> Request {
    request("GET", target, &[], b"")
}

fn bearer() -> (&'static str, String) {
    ("authorization", format!("Bearer {TOKEN}"))
}

fn post_json(body: &str, token: Option<&str>) -> Request {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    request("POST", MESSAGE_PATH, &headers, body.as_bytes())
}

fn short_message(resp: &Response) -> Value {
    body_json(resp)["errors"][0]["short_message"].clone()
}

fn assert_envelope(v: &Value) {
    assert!(v["links"]["self"].is_string(), "{v}");
    assert!(v["metadata"]["generated"].is_string(), "{v}");
    assert!(v["errors"].is_null() || v["errors"].is_array(), "{v}");
}

#[test]
fn status_is_open_and_has_the_original_shape() {
    let mut view = FakeView::with_users(&[("alice", Some("#general")), ("bob", None)]);
    let resp = respond(&get("/status"), &mut view);
    assert_eq!(resp.status, 200);
    let v = body_json(&resp);
    assert_envelope(&v);
    assert_eq!(v["links"]["self"], "//localhost:4001/status");
    assert_eq!(v["metadata"]["generated"], format!("{T0}000000"));
    assert_eq!(v["errors"], Value::Null);
    let data = &v["Data"];
    assert_eq!(data["health"], "ok");
    assert_eq!(data["uptime_s"], 12);
    assert_eq!(data["users"], 2);
    assert_eq!(data["channels"], 1);
    assert_eq!(data["channel_names"], serde_json::json!(["#general"]));
    assert_eq!(data["connections"]["telnet"], 2);
    assert_eq!(data["connections"]["websocket"], 1);
    assert_eq!(data["connections"]["http"], 1);
    assert_eq!(data["version"], "0.1.0");

    // With a token it is the same.
    let (n, v) = bearer();
    let resp = respond(&request("GET", "/status", &[(n, &v)], b""), &mut view);
    assert_eq!(resp.status, 200);
}

#[test]
fn status_degraded_while_the_log_fails() {
    let mut view = FakeView::with_users(&[]);
    view.log_failing = true;
    let resp = respond(&get("/status"), &mut view);
    assert_eq!(resp.status, 200);
    assert_eq!(body_json(&resp)["Data"]["health"], "degraded");
}

#[test]
fn healthz_and_metrics() {
    let mut view = FakeView::with_users(&[("alice", Some("#general"))]);
    let resp = respond(&get("/healthz"), &mut view);
    assert_eq!(resp.status, 200);
    assert_eq!(&*resp.body, b"ok");
    assert!(header(&resp, "Content-Type")
        .unwrap()
        .starts_with("text/plain"));

    let resp = respond(&get("/metrics"), &mut view);
    assert_eq!(resp.status, 200);
    assert!(header(&resp, "Content-Type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(resp.body.to_vec()).unwrap();
    assert!(text.contains("\nchat_users 1\n"), "{text}");
    assert!(text.contains("chat_disconnects_total{reason=\"eof\"} 2\n"));
    assert!(text.contains("chat_log_queries_total 3\n"));
}

#[test]
fn head_is_routed_like_get() {
    let mut view = FakeView::default();
    for path in ["/status", "/healthz", "/metrics", "/docs", "/openapi.json"] {
        let get_resp = respond(&get(path), &mut view);
        let head_resp = respond(&request("HEAD", path, &[], b""), &mut view);
        assert_eq!(head_resp.status, 200, "{path}");
        assert_eq!(
            header(&head_resp, "Content-Type"),
            header(&get_resp, "Content-Type")
        );
    }
    // HEAD of the search needs the token and becomes a query like GET.
    let resp = respond(&request("HEAD", MESSAGE_PATH, &[], b""), &mut view);
    assert_eq!(resp.status, 401);
    let (n, v) = bearer();
    let req = request("HEAD", MESSAGE_PATH, &[(n, &v)], b"");
    assert!(matches!(
        route(&req, &mut view, &cfg(), &no_log()),
        Outcome::Query(_)
    ));
}

#[test]
fn unknown_path_is_404_with_the_envelope() {
    let mut view = FakeView::default();
    for path in [
        "/",
        "/nope",
        "/status/",
        "/v1/api/message/",
        "/docs/x.js",
        "/STATUS",
    ] {
        let resp = respond(&get(path), &mut view);
        assert_eq!(resp.status, 404, "{path}");
        let v = body_json(&resp);
        assert_envelope(&v);
        assert_eq!(v["errors"][0]["short_message"], "not-found");
        assert_eq!(v["errors"][0]["severity"], "err");
    }
    // Even for POST.
    assert_eq!(
        respond(&post_json("{}", Some(TOKEN)), &mut view).status,
        400
    );
    let mut req = post_json("{}", Some(TOKEN));
    req.path = "/v1/api/messages".into();
    assert_eq!(respond(&req, &mut view).status, 404);
}

#[test]
fn wrong_method_is_405_with_allow() {
    let mut view = FakeView::default();
    let cases = [
        ("POST", "/status", "GET, HEAD"),
        ("PUT", "/healthz", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
        ("OPTIONS", "/status", "GET, HEAD"),
        ("TRACE", "/docs", "GET, HEAD"),
        ("PATCH", "/openapi.json", "GET, HEAD"),
        ("POST", "/docs/swagger-ui.css", "GET, HEAD"),
        ("PUT", MESSAGE_PATH, "GET, HEAD, POST"),
        ("DELETE", MESSAGE_PATH, "GET, HEAD, POST"),
        ("OPTIONS", MESSAGE_PATH, "GET, HEAD, POST"),
        ("PATCH", MESSAGE_PATH, "GET, HEAD, POST"),
        ("get", "/status", "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        // With or without a token: method first.
        let (n, v) = bearer();
        for headers in [vec![], vec![(n, v.as_str())]] {
            let resp = respond(&request(method, path, &headers, b""), &mut view);
            assert_eq!(resp.status, 405, "{method} {path}");
            assert_eq!(header(&resp, "Allow"), Some(allow), "{method} {path}");
            let v = body_json(&resp);
            assert_envelope(&v);
            assert_eq!(v["errors"][0]["short_message"], "method-not-allowed");
        }
    }
}

#[test]
fn no_cors_headers_anywhere() {
    let mut view = FakeView::with_users(&[("alice", None)]);
    let (n, v) = bearer();
    let reqs = [
        get("/status"),
        get("/docs"),
        request("OPTIONS", MESSAGE_PATH, &[("origin", "http://evil")], b""),
        post_json(r#"{"message":"hi"}"#, Some(TOKEN)),
        request("GET", "/nope", &[(n, &v)], b""),
    ];
    for req in reqs {
        let resp = respond(&req, &mut view);
        assert!(
            resp.headers
                .iter()
                .all(|(name, _)| !name.to_ascii_lowercase().starts_with("access-control")),
            "{:?}",
            resp.headers
        );
    }
}

#[test]
fn announce_needs_the_token() {
    let mut view = FakeView::with_users(&[("alice", Some("#general"))]);
    for token in [
        None,
        Some("wrong"),
        Some(""),
        Some("s3cret-token2"),
        Some("s3cret-toke"),
    ] {
        let resp = respond(&post_json(r#"{"message":"hi"}"#, token), &mut view);
        assert_eq!(resp.status, 401, "{token:?}");
        let challenge = header(&resp, "WWW-Authenticate").unwrap();
        assert!(challenge.starts_with("Bearer realm=\"chat-server\""));
        let v = body_json(&resp);
        assert_envelope(&v);
        assert_eq!(v["errors"][0]["short_message"], "unauthorized");
        // The token is never echoed.
        let all = format!("{:?} {}", resp.headers, String::from_utf8_lossy(&resp.body));
        assert!(!all.contains(TOKEN));
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            assert!(!all.contains(t), "{t} echoed");
        }
    }
    assert!(view.announced.is_empty());
    // The auth check comes before the body checks.
    let mut req = post_json("not json", None);
    req.headers.retain(|(n, _)| n != "content-type");
    assert_eq!(respond(&req, &mut view).status, 401);
}

#[test]
fn announce_to_everyone() {
    let mut view = FakeView::with_users(&[("alice", Some("#general")), ("bob", None)]);
    let resp = respond(
        &post_json(r#"{"message":"  maintenance at noon  "}"#, Some(TOKEN)),
        &mut view,
    );
    assert_eq!(resp.status, 200);
    let v = body_json(&resp);
    assert_envelope(&v);
    assert_eq!(v["errors"], Value::Null);
    assert_eq!(v["recipients"], serde_json::json!(["@alice", "@bob"]));
    assert_eq!(
        view.announced,
        vec![("maintenance at noon".to_string(), None)]
    );
}

#[test]
fn announce_to_one_channel() {
    let mut view = FakeView::with_users(&[
        ("alice", Some("#general")),
        ("bob", Some("#rust")),
        ("carol", Some("#general")),
    ]);
    let resp = respond(
        &post_json(
            r##"{"message":"hi","channel":"#general","extra":1}"##,
            Some(TOKEN),
        ),
        &mut view,
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        body_json(&resp)["recipients"],
        serde_json::json!(["@alice", "@carol"])
    );
    assert_eq!(view.announced[0].1.as_deref(), Some("#general"));

    // A trailing line feed after the name is ignored (JSON Schema's `$` allows it).
    let resp = respond(
        &post_json(r##"{"message":"hi","channel":"#rust\n"}"##, Some(TOKEN)),
        &mut view,
    );
    assert_eq!(resp.status, 200);
    assert_eq!(body_json(&resp)["recipients"], serde_json::json!(["@bob"]));

    let resp = respond(
        &post_json(r##"{"message":"hi","channel":"#nowhere"}"##, Some(TOKEN)),
        &mut view,
    );
    assert_eq!(resp.status, 404);
    assert_eq!(short_message(&resp), "unknown-channel");

    for bad in [
        r#""general""#,
        r##""#""##,
        r#""""#,
        "null",
        "5",
        r##"["#general"]"##,
    ] {
        let body = format!(r#"{{"message":"hi","channel":{bad}}}"#);
        let resp = respond(&post_json(&body, Some(TOKEN)), &mut view);
        assert_eq!(resp.status, 400, "{body}");
        assert_eq!(short_message(&resp), "invalid-channel", "{body}");
    }
}

#[test]
fn announce_with_nobody_online_is_200_with_an_error_entry() {
    let mut view = FakeView::default();
    let resp = respond(
        &post_json(r#"{"message":"hello?"}"#, Some(TOKEN)),
        &mut view,
    );
    assert_eq!(resp.status, 200);
    let v = body_json(&resp);
    assert_eq!(v["recipients"], serde_json::json!([]));
    assert_eq!(v["errors"][0]["short_message"], "no-connected-users");
    assert_eq!(v["errors"][0]["severity"], "info");
    assert_eq!(
        v["errors"][0]["human_friendly_message"],
        "No users are connected to this server"
    );
}

#[test]
fn announce_when_the_log_fails_is_503() {
    let mut view = FakeView::with_users(&[("alice", None)]);
    view.log_failing = true;
    let resp = respond(&post_json(r#"{"message":"hi"}"#, Some(TOKEN)), &mut view);
    assert_eq!(resp.status, 503);
    assert_eq!(short_message(&resp), "log-write-failed");
    assert_eq!(body_json(&resp)["errors"][0]["severity"], "crit");
    assert_eq!(header(&resp, "Retry-After"), Some("30"));
}

#[test]
fn announce_while_the_server_is_behind_is_503_and_sends_nothing() {
    let mut view = FakeView::with_users(&[("alice", None)]);
    view.overloaded = true;
    let resp = respond(&post_json(r#"{"message":"hi"}"#, Some(TOKEN)), &mut view);
    assert_eq!(resp.status, 503);
    assert_eq!(short_message(&resp), "server-busy");
    assert_eq!(header(&resp, "Retry-After"), Some("1"));
    assert!(view.announced.is_empty());
    // Without the token it is still 401, and a bad body still 400.
    assert_eq!(
        respond(&post_json(r#"{"message":"hi"}"#, None), &mut view).status,
        401
    );
    assert_eq!(
        respond(&post_json(r#"{"nope":1}"#, Some(TOKEN)), &mut view).status,
        400
    );
    view.overloaded = false;
    let resp = respond(&post_json(r#"{"message":"hi"}"#, Some(TOKEN)), &mut view);
    assert_eq!(resp.status, 200);
    assert_eq!(view.announced.len(), 1);
}

#[test]
fn announce_content_type() {
    let mut view = FakeView::with_users(&[("alice", None)]);
    let (n, v) = bearer();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/jsonx"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut headers = vec![(n, v.as_str())];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        let resp = respond(
            &request("POST", MESSAGE_PATH, &headers, br#"{"message":"hi"}"#),
            &mut view,
        );
        assert_eq!(resp.status, 415, "{ct:?}");
        assert_eq!(short_message(&resp), "unsupported-media-type");
    }
    for ct in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/json ;charset=UTF-8",
    ] {
        let resp = respond(
            &request(
                "POST",
                MESSAGE_PATH,
                &[(n, v.as_str()), ("content-type", ct)],
                br#"{"message":"hi"}"#,
            ),
            &mut view,
        );
        assert_eq!(resp.status, 200, "{ct}");
    }
}

#[test]
fn announce_body_validation() {
    let mut view = FakeView::with_users(&[("alice", None)]);
    let long = "x".repeat(513);
    let long_utf8 = "é".repeat(257); // 514 bytes
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "invalid-json"),
        ("not json".into(), "invalid-json"),
        ("{\"message\":\"hi\"".into(), "invalid-json"),
        ("[\"hi\"]".into(), "invalid-body"),
        ("\"hi\"".into(), "invalid-body"),
        ("null".into(), "invalid-body"),
        ("{}".into(), "missing-message"),
        ("{\"msg\":\"hi\"}".into(), "missing-message"),
        ("{\"message\":null}".into(), "invalid-message"),
        ("{\"message\":5}".into(), "invalid-message"),
        ("{\"message\":[\"hi\"]}".into(), "invalid-message"),
        ("{\"message\":\"\"}".into(), "empty-message"),
        ("{\"message\":\"   \"}".into(), "empty-message"),
        (
            "{\"message\":\"\\t\\u0000\\u001b\\u009f \"}".into(),
            "empty-message",
        ),
        (format!("{{\"message\":\"{long}\"}}"), "message-too-long"),
        (
            format!("{{\"message\":\"{long_utf8}\"}}"),
            "message-too-long",
        ),
        ("{\"message\":\"\\ud800\"}".into(), "invalid-json"),
    ];
    for (body, short) in cases {
        let resp = respond(&post_json(&body, Some(TOKEN)), &mut view);
        assert_eq!(resp.status, 400, "{body}");
        let v = body_json(&resp);
        assert_envelope(&v);
        assert_eq!(v["errors"][0]["short_message"], short, "{body}");
        assert_eq!(v["errors"][0]["severity"], "err");
    }
    assert!(view.announced.is_empty());

    // Exactly at the limit is fine.
    let ok = format!("{{\"message\":\"{}\"}}", "x".repeat(512));
    assert_eq!(respond(&post_json(&ok, Some(TOKEN)), &mut view).status, 200);
}

#[test]
fn announce_text_is_cleaned() {
    let mut view = FakeView::with_users(&[("alice", None)]);
    let cases = [
        (
            r#"{"message":"\u001b[31mred\u001b[0m alert\u0007"}"#,
            "red alert",
        ),
        (r#"{"message":"tab\there"}"#, "tab\there"),
        (r#"{"message":"line\nbreak"}"#, "linebreak"),
        // Only an escape sequence that swallows the text: control characters removed.
        (r#"{"message":"\u001b]title"}"#, "]title"),
        (r#"{"message":"\u009dhello"}"#, "hello"),
        (r#"{"message":"\u00a0"}"#, "\u{a0}"),
    ];
    for (body, expected) in cases {
        let resp = respond(&post_json(body, Some(TOKEN)), &mut view);
        assert_eq!(resp.status, 200, "{body}");
        assert_eq!(view.announced.last().unwrap().0, expected, "{body}");
    }
}

#[test]
fn visible_char_rule_matches_the_openapi_pattern() {
    // The OpenAPI pattern is `[^\u0000-\u0020\u007f-\u009f]`.
    for c in [
        '\u{0}', '\t', '\n', ' ', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}',
    ] {
        assert!(!has_visible_char(&c.to_string()), "{c:?}");
    }
    for c in ['!', 'a', '\u{a0}', '\u{2028}', 'é', '\u{1F600}', '\u{ad}'] {
        assert!(has_visible_char(&c.to_string()), "{c:?}");
    }
    let pattern = crate::rest::docs::openapi_value(&cfg())
        .unwrap()
        .pointer("/components/schemas/Announcement/properties/message/pattern")
        .cloned()
        .unwrap();
    assert_eq!(pattern, "[^\\u0000-\\u0020\\u007f-\\u009f]");
}

#[test]
fn search_needs_the_token_then_becomes_a_query() {
    let mut view = FakeView::default();
    for token in [None, Some("wrong"), Some("")] {
        let mut headers = vec![];
        let auth = token.map(|t| format!("Bearer {t}"));
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let req = request("GET", "/v1/api/message?pattern=x", &headers, b"");
        let resp = respond(&req, &mut view);
        assert_eq!(resp.status, 401);
        assert!(header(&resp, "WWW-Authenticate").is_some());
        assert_eq!(short_message(&resp), "unauthorized");
    }
    let (n, tok) = bearer();
    let req = request("GET", "/v1/api/message?pattern=x", &[(n, &tok)], b"");
    let Outcome::Query(mut job) = route(&req, &mut view, &cfg(), &no_log()) else {
        panic!("expected a query");
    };
    // No log file yet: an empty result.
    let resp = job.step(1 << 16).unwrap();
    assert_eq!(resp.status, 200);
    let v = body_json(&resp);
    assert_eq!(v["occurrences"], serde_json::json!([]));
    assert_eq!(v["next_cursor"], Value::Null);

    // Bad parameters are answered at once.
    let req = request("GET", "/v1/api/message?pattern=(", &[(n, &tok)], b"");
    let resp = respond(&req, &mut view);
    assert_eq!(resp.status, 400);
    assert_eq!(short_message(&resp), "invalid-regex-pattern");
}

#[test]
fn docs_are_open_and_carry_a_csp() {
    let mut view = FakeView::default();
    for path in [
        "/docs",
        "/docs/init.js",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
        "/docs/LICENSE",
    ] {
        let resp = respond(&get(path), &mut view);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(header(&resp, "Content-Security-Policy"), Some(DOCS_CSP));
    }
    let resp = respond(&get("/docs/"), &mut view);
    assert_eq!(resp.status, 301);
    assert_eq!(header(&resp, "Location"), Some("/docs"));
    for path in ["/openapi.json", "/docs.json"] {
        let resp = respond(&get(path), &mut view);
        assert_eq!(resp.status, 200);
        assert_eq!(header(&resp, "Content-Type"), Some("application/json"));
        let doc = body_json(&resp);
        assert_eq!(doc["openapi"], "3.0.3");
    }
}

/// The OpenAPI document parses, lists exactly the paths and methods `route` serves, marks
/// exactly the admin operations as needing the token, and every `$ref` resolves.
#[test]
fn openapi_matches_the_router() {
    let doc: Value = serde_json::from_str(OPENAPI_JSON).expect("openapi.json parses");
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();

    let mut served: Vec<&str> = served_paths()
        .into_iter()
        .filter(|p| *p != "/docs/") // a redirect, not an endpoint
        .collect();
    served.sort_unstable();
    // A templated path is served for any valid value of its parameter.
    let mut documented: Vec<String> = paths
        .keys()
        .map(|p| p.replace("{name}", "general"))
        .collect();
    documented.sort_unstable();
    assert_eq!(documented, served);

    let mut view = FakeView::with_users(&[("alice", None)]);
    for (path, item) in paths {
        let item = item.as_object().unwrap();
        let mut methods: Vec<String> = item.keys().map(|m| m.to_ascii_uppercase()).collect();
        methods.sort();
        // The Allow header lists the documented methods plus HEAD.
        let resp = respond(&request("PUT", path, &[], b""), &mut view);
        assert_eq!(resp.status, 405, "{path}");
        let mut allow: Vec<String> = header(&resp, "Allow")
            .unwrap()
            .split(", ")
            .filter(|m| *m != "HEAD")
            .map(str::to_string)
            .collect();
        allow.sort();
        assert_eq!(allow, methods, "{path}");

        for (method, op) in item {
            let secured = op.get("security").is_some();
            assert_eq!(secured, path.starts_with("/v1/api/"), "{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            if secured {
                assert!(responses.contains_key("401"), "{method} {path}");
            }
            // Without a token, every operation answers one of its documented statuses.
            let req = request(&method.to_ascii_uppercase(), path, &[], b"");
            let status = match route(&req, &mut view, &cfg(), &no_log()) {
                Outcome::Respond(r) => r.status,
                Outcome::Query(_) => 200,
            };
            assert!(
                responses.contains_key(&status.to_string()),
                "{method} {path}: {status} not documented"
            );
        }
    }

    // Every $ref points at something.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "$ref" {
                        out.push(v.as_str().unwrap());
                    } else {
                        refs(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').unwrap();
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
    assert_eq!(
        doc.pointer("/components/securitySchemes/bearerAuth/scheme"),
        Some(&Value::from("bearer"))
    );
}

/// The search parameters documented are exactly the ones the parser knows, and the
/// documented limits are the parser's.
#[test]
fn openapi_search_parameters_match_the_parser() {
    let doc: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
    let params = doc
        .pointer("/paths/~1v1~1api~1message/get/parameters")
        .and_then(Value::as_array)
        .unwrap();
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["pattern", "channel", "nick", "since", "until", "limit", "cursor"]
    );
    let find = |name: &str| params.iter().find(|p| p["name"] == name).unwrap();
    assert_eq!(
        find("pattern")["schema"]["maxLength"],
        crate::rest::query::MAX_PATTERN_BYTES
    );
    assert_eq!(
        find("limit")["schema"]["maximum"],
        crate::rest::query::MAX_LIMIT
    );
    assert_eq!(
        find("cursor")["schema"]["maximum"],
        crate::rest::query::MAX_CURSOR
    );
}

#[test]
fn channel_history_needs_the_token_and_pages_back() {
    use crate::chat::{Entry, EntryKind};
    let mut view = FakeView::default();
    for seq in 1..=5 {
        let entry = Entry::new(EntryKind::Chat, seq, T0, "alice", &format!("m{seq}"));
        view.history.push("#General", entry);
    }
    let entry = Entry::new(EntryKind::Announcement, 6, T0, "", "noon");
    view.history.push("#General", entry);
    let path = "/v1/api/channels/general/history";
    let resp = respond(&get(path), &mut view);
    assert_eq!(resp.status, 401);
    assert!(header(&resp, "WWW-Authenticate").is_some_and(|h| h.starts_with("Bearer")));

    let (name, value) = bearer();
    let authed = |target: &str| request("GET", target, &[(name, value.as_str())], b"");
    let resp = respond(&authed(&format!("{path}?limit=2&before=6")), &mut view);
    assert_eq!(resp.status, 200);
    let v = body_json(&resp);
    assert_envelope(&v);
    assert_eq!(v["Data"]["channel"], "#General");
    assert_eq!(
        v["Data"]["entries"],
        serde_json::json!([
            {"ts": "2026-11-27T00:24:40.123Z", "seq": 4, "kind": "chat", "nick": "alice", "channel": "#General", "text": "m4"},
            {"ts": "2026-11-27T00:24:40.123Z", "seq": 5, "kind": "chat", "nick": "alice", "channel": "#General", "text": "m5"},
        ])
    );
    let v = body_json(&respond(&authed(path), &mut view));
    let entries = v["Data"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[5]["kind"], "announcement");
    assert!(entries[5].get("nick").is_none());
    // A valid channel with nothing remembered; then bad input.
    let v = body_json(&respond(
        &authed("/v1/api/channels/quiet/history"),
        &mut view,
    ));
    assert_eq!(
        v["Data"],
        serde_json::json!({"channel": "#quiet", "entries": []})
    );
    for (target, short) in [
        ("/v1/api/channels/no%20pe/history", "invalid-channel"),
        ("/v1/api/channels/general/history?limit=0", "invalid-limit"),
        (
            "/v1/api/channels/general/history?before=x",
            "invalid-before",
        ),
        (
            "/v1/api/channels/general/history?after=1",
            "unknown-parameter",
        ),
    ] {
        let resp = respond(&authed(target), &mut view);
        assert_eq!(resp.status, 400, "{target}");
        assert_eq!(short_message(&resp), short, "{target}");
    }
}
