use super::*;
use crate::log_store::LogStore;
use crate::rest::test_support::*;
use serde_json::Value;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

fn req(query: &str) -> Request {
    request("GET", &format!("/v1/api/message?{query}"), &[], b"")
}

/// Runs a query to the end with `max_bytes` per step; the answer and the number of steps.
fn run(path: &Path, query: &str, max_bytes: usize) -> (Response, usize) {
    let mut job = QueryJob::start(&req(query), LogReader::open_for_search(path), T0)
        .unwrap_or_else(|r| {
            panic!(
                "start failed: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
        });
    for steps in 1..100_000 {
        if let Some(resp) = job.step(max_bytes) {
            assert!(job.is_finished());
            assert!(job.step(max_bytes).is_none());
            return (resp, steps);
        }
        assert!(!job.is_finished());
    }
    panic!("the query never finished");
}

fn run_json(path: &Path, query: &str) -> Value {
    let (resp, _) = run(path, query, SUGGESTED_SLICE_BYTES);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    body_json(&resp)
}

fn occurrences(v: &Value) -> Vec<String> {
    v["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect()
}

fn start_err(path: &Path, query: &str) -> Response {
    match QueryJob::start(&req(query), LogReader::open_for_search(path), T0) {
        Err(resp) => resp,
        Ok(_) => panic!("{query} was accepted"),
    }
}

/// A small log with every searchable kind and some records that are never returned.
fn sample_log(dir: &TempDir) -> PathBuf {
    let path = dir.file("chat.log");
    write_log(
        &path,
        &[
            join(1, T0, "alice", "#general"),
            chat(2, T0 + 1000, "alice", "#general", "hi all"),
            chat(3, T0 + 2000, "Bob", "#Rust", "hello rustaceans"),
            private(4, T0 + 3000, "alice", "bob", "hello bob, secretly"),
            announcement(5, T0 + 4000, None, "maintenance at noon"),
            announcement(6, T0 + 5000, Some("#general"), "general maintenance"),
            "{\"ts\":\"2026-11-27T00:24:46.123Z\",\"seq\":7,\"kind\":\"command\",\"nick\":\"alice\",\"command\":\"/list\"}".to_string(),
            "not json at all".to_string(),
            chat(8, T0 + 7000, "carol", "#general", "HELLO everyone"),
        ],
    );
    path
}

#[test]
fn everything_in_log_order_with_the_occurrence_format() {
    let dir = TempDir::new("all");
    let path = sample_log(&dir);
    let v = run_json(&path, "");
    assert_eq!(v["errors"], Value::Null);
    assert_eq!(v["next_cursor"], Value::Null);
    assert_eq!(v["links"]["self"], "//localhost:4001/v1/api/message");
    assert_eq!(
        occurrences(&v),
        [
            "2026-11-27T00:24:41.123Z #general @alice: hi all",
            "2026-11-27T00:24:42.123Z #Rust @Bob: hello rustaceans",
            "2026-11-27T00:24:43.123Z @alice -> @bob (private): hello bob, secretly",
            "2026-11-27T00:24:44.123Z announcement: maintenance at noon",
            "2026-11-27T00:24:45.123Z #general announcement: general maintenance",
            "2026-11-27T00:24:47.123Z #general @carol: HELLO everyone",
        ]
    );
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), 6);
    assert_eq!(
        records[0],
        serde_json::json!({"ts": "2026-11-27T00:24:41.123Z", "seq": 2, "kind": "chat",
                           "nick": "alice", "channel": "#general", "text": "hi all"})
    );
    assert_eq!(
        records[2],
        serde_json::json!({"ts": "2026-11-27T00:24:43.123Z", "seq": 4, "kind": "private",
                           "from": "alice", "to": "bob", "text": "hello bob, secretly"})
    );
    assert_eq!(records[3]["kind"], "announcement");
    assert_eq!(records[3]["recipients"], 2);
    assert!(records[3].get("channel").is_none());
    assert_eq!(records[4]["channel"], "#general");
}

#[test]
fn pattern_matches_the_message_text_only() {
    let dir = TempDir::new("pattern");
    let path = sample_log(&dir);
    let v = run_json(&path, "pattern=hello");
    assert_eq!(occurrences(&v).len(), 2);
    assert!(occurrences(&v)[0].ends_with("hello rustaceans"));
    assert!(occurrences(&v)[1].ends_with("hello bob, secretly"));
    // Case-insensitive via the regex syntax; percent-encoding and `+` decode.
    let v = run_json(&path, "pattern=%28%3Fi%29hello");
    assert_eq!(occurrences(&v).len(), 3);
    let v = run_json(&path, "pattern=at+noon");
    assert_eq!(
        occurrences(&v),
        ["2026-11-27T00:24:44.123Z announcement: maintenance at noon"]
    );
    // The nick, channel and timestamp are not part of the text.
    assert!(occurrences(&run_json(&path, "pattern=alice")).is_empty());
    assert!(occurrences(&run_json(&path, "pattern=general")).len() == 1);
    assert!(occurrences(&run_json(&path, "pattern=2026")).is_empty());
    // Anchors apply to the text.
    assert_eq!(occurrences(&run_json(&path, "pattern=%5Ehi")).len(), 1);
    // Empty pattern: everything.
    assert_eq!(occurrences(&run_json(&path, "pattern=")).len(), 6);
}

#[test]
fn channel_filter() {
    let dir = TempDir::new("channel");
    let path = sample_log(&dir);
    for q in [
        "channel=%23general",
        "channel=general",
        "channel=%23GENERAL",
    ] {
        let v = run_json(&path, q);
        assert_eq!(
            occurrences(&v),
            [
                "2026-11-27T00:24:41.123Z #general @alice: hi all",
                "2026-11-27T00:24:45.123Z #general announcement: general maintenance",
                "2026-11-27T00:24:47.123Z #general @carol: HELLO everyone",
            ],
            "{q}"
        );
    }
    assert_eq!(occurrences(&run_json(&path, "channel=rust")).len(), 1);
    assert!(occurrences(&run_json(&path, "channel=nowhere")).is_empty());
    // Empty: no filter.
    assert_eq!(occurrences(&run_json(&path, "channel=")).len(), 6);
    // Combined with a pattern.
    assert_eq!(
        occurrences(&run_json(&path, "channel=general&pattern=maint")),
        ["2026-11-27T00:24:45.123Z #general announcement: general maintenance"]
    );
}

#[test]
fn nick_filter() {
    let dir = TempDir::new("nick");
    let path = sample_log(&dir);
    let v = run_json(&path, "nick=alice");
    assert_eq!(
        occurrences(&v),
        [
            "2026-11-27T00:24:41.123Z #general @alice: hi all",
            "2026-11-27T00:24:43.123Z @alice -> @bob (private): hello bob, secretly",
        ]
    );
    // Private messages match by recipient too; case-insensitive; `@` optional.
    for q in ["nick=bob", "nick=%40BOB", "nick=Bob"] {
        let v = run_json(&path, q);
        assert_eq!(
            occurrences(&v),
            [
                "2026-11-27T00:24:42.123Z #Rust @Bob: hello rustaceans",
                "2026-11-27T00:24:43.123Z @alice -> @bob (private): hello bob, secretly",
            ],
            "{q}"
        );
    }
    assert!(occurrences(&run_json(&path, "nick=nobody")).is_empty());
    assert_eq!(
        occurrences(&run_json(&path, "nick=alice&channel=general")),
        ["2026-11-27T00:24:41.123Z #general @alice: hi all"]
    );
}

#[test]
fn time_filters() {
    let dir = TempDir::new("time");
    let path = sample_log(&dir);
    // since is inclusive, until exclusive.
    let v = run_json(
        &path,
        "since=2026-11-27T00:24:43.123Z&until=2026-11-27T00:24:45.123Z",
    );
    assert_eq!(
        occurrences(&v),
        [
            "2026-11-27T00:24:43.123Z @alice -> @bob (private): hello bob, secretly",
            "2026-11-27T00:24:44.123Z announcement: maintenance at noon",
        ]
    );
    // Any offset; `+` must be percent-encoded in a query string.
    let v = run_json(&path, "since=2026-11-27T01:24:47%2B01:00");
    assert_eq!(
        occurrences(&v),
        ["2026-11-27T00:24:47.123Z #general @carol: HELLO everyone"]
    );
    let v = run_json(&path, "until=2026-11-27T00:24:42Z");
    assert_eq!(occurrences(&v).len(), 1);
    assert!(occurrences(&run_json(&path, "since=2030-01-01T00:00:00Z")).is_empty());
    // since after until: nothing.
    assert!(occurrences(&run_json(
        &path,
        "since=2026-11-28T00:00:00Z&until=2026-11-27T00:00:00Z"
    ))
    .is_empty());
}

#[test]
fn limit_and_paging_across_steps() {
    let dir = TempDir::new("paging");
    let path = dir.file("chat.log");
    // 300 records, ~140 bytes each: ~42 KiB, several slices of MIN_SLICE_BYTES.
    let mut lines = Vec::new();
    for i in 0..300u64 {
        let text = format!(
            "message number {i:03} {}",
            if i % 3 == 0 { "fizz" } else { "buzz" }
        );
        lines.push(chat(i + 1, T0 + i as i64, "alice", "#general", &text));
        if i % 10 == 0 {
            lines.push(join(10_000 + i, T0, "bob", "#general"));
        }
    }
    write_log(&path, &lines);
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(size > 4 * MIN_SLICE_BYTES);

    // Page through the fizz messages (100 of them) 7 at a time with tiny slices.
    let mut cursor: Option<u64> = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut total_steps = 0;
    loop {
        let mut q = "pattern=fizz&limit=7".to_string();
        if let Some(c) = cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let (resp, steps) = run(&path, &q, 1);
        total_steps += steps;
        assert_eq!(resp.status, 200);
        let v = body_json(&resp);
        let page = occurrences(&v);
        assert!(page.len() <= 7);
        seen.extend(page);
        pages += 1;
        match v["next_cursor"].as_u64() {
            Some(c) => {
                assert!(cursor.is_none_or(|old| c > old), "cursor must advance");
                cursor = Some(c);
            }
            None => {
                assert!(v["next_cursor"].is_null());
                break;
            }
        }
        assert!(pages < 100);
    }
    assert_eq!(seen.len(), 100);
    assert_eq!(pages, 15); // 14 full pages and one of 2
    for (n, occurrence) in seen.iter().enumerate() {
        assert!(
            occurrence.ends_with(&format!("message number {:03} fizz", n * 3)),
            "{n}: {occurrence}"
        );
    }
    // Several slices were needed in total (each step reads at most MIN_SLICE_BYTES here).
    assert!(total_steps >= size / MIN_SLICE_BYTES, "{total_steps}");

    // The default limit is 100 and the page then has a cursor.
    let v = run_json(&path, "");
    assert_eq!(occurrences(&v).len(), 100);
    let c = v["next_cursor"].as_u64().unwrap();
    let v2 = run_json(&path, &format!("cursor={c}"));
    assert_eq!(occurrences(&v2).len(), 100);
    assert!(occurrences(&v2)[0].ends_with("message number 100 buzz"));
    let c2 = v2["next_cursor"].as_u64().unwrap();
    let v3 = run_json(&path, &format!("cursor={c2}"));
    assert_eq!(occurrences(&v3).len(), 100);
    assert_eq!(v3["next_cursor"], Value::Null);

    // limit=1 gives the first hit and a cursor pointing at the next one.
    let v = run_json(&path, "limit=1&pattern=buzz");
    assert_eq!(occurrences(&v).len(), 1);
    assert!(occurrences(&v)[0].ends_with("number 001 buzz"));
    let c = v["next_cursor"].as_u64().unwrap();
    let v = run_json(&path, &format!("limit=1&pattern=buzz&cursor={c}"));
    assert!(occurrences(&v)[0].ends_with("number 002 buzz"));
}

#[test]
fn a_full_last_page_at_the_end_has_no_cursor() {
    let dir = TempDir::new("exact");
    let path = dir.file("chat.log");
    write_log(
        &path,
        &[chat(1, T0, "a", "#x", "one"), chat(2, T0, "a", "#x", "two")],
    );
    let v = run_json(&path, "limit=2");
    assert_eq!(occurrences(&v).len(), 2);
    assert_eq!(v["next_cursor"], Value::Null);
    let v = run_json(&path, "limit=1");
    let c = v["next_cursor"].as_u64().unwrap();
    let v = run_json(&path, &format!("limit=1&cursor={c}"));
    assert_eq!(occurrences(&v), ["2026-11-27T00:24:40.123Z #x @a: two"]);
    assert_eq!(v["next_cursor"], Value::Null);
}

#[test]
fn cursor_past_the_end_or_mid_line() {
    let dir = TempDir::new("cursor");
    let path = sample_log(&dir);
    let size = std::fs::metadata(&path).unwrap().len();
    let v = run_json(&path, &format!("cursor={size}"));
    assert!(occurrences(&v).is_empty());
    assert_eq!(v["next_cursor"], Value::Null);
    let v = run_json(&path, &format!("cursor={}", MAX_CURSOR));
    assert!(occurrences(&v).is_empty());
    // Mid-line: the partial line is passed over, the scan resumes at the next line.
    let first_line_len = join(1, T0, "alice", "#general").len() as u64;
    let v = run_json(&path, "cursor=5");
    assert_eq!(occurrences(&v).len(), 6);
    let v = run_json(&path, &format!("cursor={}", first_line_len + 5));
    assert_eq!(occurrences(&v).len(), 5);
}

#[test]
fn records_appended_during_the_scan_are_left_out() {
    let dir = TempDir::new("growing");
    let path = dir.file("chat.log");
    let lines: Vec<String> = (0..200)
        .map(|i| chat(i + 1, T0, "alice", "#general", &format!("old {i}")))
        .collect();
    write_log(&path, &lines);
    let mut job = QueryJob::start(&req(""), LogReader::open_for_search(&path), T0).unwrap();
    assert!(job.step(1).is_none());
    // Append while the job runs.
    let mut store = LogStore::open(&path).unwrap();
    for i in 0..50 {
        store
            .append(
                T0,
                &Record::Chat {
                    nick: Cow::Borrowed("bob"),
                    channel: Cow::Borrowed("#general"),
                    text: Cow::Owned(format!("new {i}")),
                },
            )
            .unwrap();
    }
    let resp = loop {
        if let Some(resp) = job.step(1) {
            break resp;
        }
    };
    let v = body_json(&resp);
    let occ = occurrences(&v);
    assert_eq!(occ.len(), 100);
    assert!(occ.iter().all(|o| o.contains("@alice: old ")));
    // A new query sees them.
    let v = run_json(&path, "nick=bob");
    assert_eq!(occurrences(&v).len(), 50);
}

#[test]
fn a_log_written_by_the_log_store_is_searchable() {
    let dir = TempDir::new("store");
    let path = dir.file("chat.log");
    let mut store = LogStore::open(&path).unwrap();
    let records = [
        Record::Chat {
            nick: Cow::Borrowed("alice"),
            channel: Cow::Borrowed("#general"),
            text: Cow::Borrowed("quote \" backslash \\ and \u{2028} separator"),
        },
        Record::Private {
            from: Cow::Borrowed("alice"),
            to: Cow::Borrowed("bob"),
            text: Cow::Borrowed("psst"),
        },
        Record::Announcement {
            text: Cow::Borrowed("maintenance"),
            channel: None,
            recipients: 2,
        },
        Record::Nick {
            conn: 1,
            nick: Cow::Borrowed("alice"),
        },
    ];
    for (i, r) in records.iter().enumerate() {
        store.append(T0 + i as i64, r).unwrap();
    }
    let v = run_json(&path, "");
    assert_eq!(
        occurrences(&v),
        [
            "2026-11-27T00:24:40.123Z #general @alice: quote \" backslash \\ and \u{2028} separator",
            "2026-11-27T00:24:40.124Z @alice -> @bob (private): psst",
            "2026-11-27T00:24:40.125Z announcement: maintenance",
        ]
    );
    assert_eq!(v["records"][0]["seq"], 1);
    assert_eq!(v["records"][2]["seq"], 3);
    let v = run_json(&path, "pattern=%5Cu2028|%E2%80%A8");
    assert_eq!(occurrences(&v).len(), 1);
}

#[test]
fn missing_log_is_empty_unreadable_log_is_500() {
    let dir = TempDir::new("missing");
    let v = run_json(&dir.file("absent.log"), "pattern=x");
    assert_eq!(occurrences(&v), Vec::<String>::new());
    assert_eq!(v["records"], serde_json::json!([]));
    assert_eq!(v["next_cursor"], Value::Null);

    // A directory opens but cannot be read.
    let (resp, _) = run(&dir.0, "", SUGGESTED_SLICE_BYTES);
    assert_eq!(resp.status, 500);
    let v = body_json(&resp);
    assert_eq!(v["errors"][0]["short_message"], "could-not-read-log");
    assert_eq!(v["errors"][0]["severity"], "crit");
}

#[test]
fn invalid_parameters_are_400() {
    let dir = TempDir::new("invalid");
    let path = sample_log(&dir);
    let long = "a".repeat(MAX_PATTERN_BYTES + 1);
    let cases: Vec<(String, &str)> = vec![
        ("pattern=(".into(), "invalid-regex-pattern"),
        ("pattern=%5B".into(), "invalid-regex-pattern"),
        ("pattern=a%7B2%2C1%7D".into(), "invalid-regex-pattern"),
        ("pattern=(%3F%3Dlookahead)".into(), "invalid-regex-pattern"),
        (format!("pattern={long}"), "invalid-regex-pattern"),
        // Valid syntax, too big once compiled.
        (
            "pattern=%5Cw%7B1000%7D%7B1000%7D".into(),
            "invalid-regex-pattern",
        ),
        ("limit=0".into(), "invalid-limit"),
        ("limit=101".into(), "invalid-limit"),
        ("limit=-1".into(), "invalid-limit"),
        ("limit=".into(), "invalid-limit"),
        ("limit=abc".into(), "invalid-limit"),
        ("limit=1.5".into(), "invalid-limit"),
        ("limit=%2B5".into(), "invalid-limit"),
        ("limit=99999999999999999999".into(), "invalid-limit"),
        ("since=yesterday".into(), "invalid-since"),
        ("since=".into(), "invalid-since"),
        ("since=2026-11-27".into(), "invalid-since"),
        ("since=2026-11-27T00:00:00".into(), "invalid-since"),
        ("until=2026-13-01T00:00:00Z".into(), "invalid-until"),
        ("cursor=".into(), "invalid-cursor"),
        ("cursor=abc".into(), "invalid-cursor"),
        ("cursor=-1".into(), "invalid-cursor"),
        ("cursor=1e3".into(), "invalid-cursor"),
        (format!("cursor={}", MAX_CURSOR + 1), "invalid-cursor"),
        ("cursor=18446744073709551616".into(), "invalid-cursor"),
        ("foo=bar".into(), "unknown-parameter"),
        (
            "pattern=a&x-schemathesis-unknown-property=42".into(),
            "unknown-parameter",
        ),
        ("Pattern=a".into(), "unknown-parameter"),
        ("limit=5&limit=6".into(), "duplicate-parameter"),
        ("nick=a&nick=a".into(), "duplicate-parameter"),
        ("pattern=%zz".into(), "invalid-query"),
        ("pattern=%4".into(), "invalid-query"),
        ("pattern=%FF".into(), "invalid-query"),
    ];
    for (query, short) in cases {
        let resp = start_err(&path, &query);
        assert_eq!(resp.status, 400, "{query}");
        let v = body_json(&resp);
        assert!(v["links"]["self"].is_string());
        assert_eq!(v["errors"][0]["short_message"], short, "{query}");
        assert_eq!(v["errors"][0]["severity"], "err", "{query}");
    }
    // The message of an invalid regex says so, like the original.
    let v = body_json(&start_err(&path, "pattern=("));
    assert!(v["errors"][0]["human_friendly_message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid REGEX pattern"));
}

#[test]
fn valid_edge_parameters_are_accepted() {
    let dir = TempDir::new("edges");
    let path = sample_log(&dir);
    for query in [
        "limit=1",
        "limit=100",
        "limit=007",
        "cursor=0",
        "since=0000-01-01T00:00:00Z",
        "until=9999-12-31T23:59:59.999999999Z",
        "since=2026-11-27T00:24:40.123456%2B23:59",
        // An unencoded `+` (decoded as a space) in the offset is taken as `+`.
        "since=2026-11-27T01:24:40+01:00",
        "pattern=&channel=&nick=",
        "&&pattern=hi&",
        "pattern",
        // Simple patterns as schemathesis generates them for `format: regex`.
        "pattern=.",
        "pattern=%5B%5EA-Za-z0-9%5D",
        "pattern=..%2B",
        "pattern=a%2B%3F",
        "pattern=.*%3F",
        "pattern=%5Cp%7BL%7D",
        "pattern=%5Ba-z%5D%2B",
    ] {
        let (resp, _) = run(&path, query, SUGGESTED_SLICE_BYTES);
        assert_eq!(
            resp.status,
            200,
            "{query}: {}",
            String::from_utf8_lossy(&resp.body)
        );
    }
}

#[test]
fn decode_component_cases() {
    assert_eq!(decode_component("a+b%20c").as_deref(), Some("a b c"));
    assert_eq!(decode_component("%2B%25%26").as_deref(), Some("+%&"));
    assert_eq!(decode_component("%C3%A9").as_deref(), Some("é"));
    assert_eq!(decode_component("é").as_deref(), Some("é"));
    assert_eq!(decode_component("%"), None);
    assert_eq!(decode_component("%g0"), None);
    assert_eq!(decode_component("%C3"), None);
}

#[test]
fn occurrence_format_for_every_kind() {
    let line = |json: String| LogLine::from_json(json.as_bytes()).unwrap();
    assert_eq!(
        render_occurrence(&line(chat(1, T0, "alice", "#general", "hi"))).unwrap(),
        "2026-11-27T00:24:40.123Z #general @alice: hi"
    );
    assert_eq!(
        render_occurrence(&line(private(1, T0, "alice", "bob", "hi"))).unwrap(),
        "2026-11-27T00:24:40.123Z @alice -> @bob (private): hi"
    );
    assert_eq!(
        render_occurrence(&line(announcement(1, T0, None, "text"))).unwrap(),
        "2026-11-27T00:24:40.123Z announcement: text"
    );
    assert_eq!(
        render_occurrence(&line(announcement(1, T0, Some("#general"), "text"))).unwrap(),
        "2026-11-27T00:24:40.123Z #general announcement: text"
    );
    assert_eq!(
        render_occurrence(&line(join(1, T0, "alice", "#general"))),
        None
    );
}

#[test]
fn step_reads_at_least_the_minimum_slice() {
    let dir = TempDir::new("minslice");
    let path = dir.file("chat.log");
    // One record longer than a tiny slice is still found.
    let text = "y".repeat(1500);
    write_log(&path, &[chat(1, T0, "alice", "#general", &text)]);
    let (resp, steps) = run(&path, "", 16);
    assert_eq!(steps, 1);
    assert_eq!(occurrences(&body_json(&resp)).len(), 1);
}

#[test]
fn actions_are_searched_and_filtered_like_chat() {
    let dir = TempDir::new("actions");
    let path = dir.file("chat.log");
    let action = |seq: u64, nick: &str, channel: &str, text: &str| {
        chat(seq, T0, nick, channel, text).replace("\"kind\":\"chat\"", "\"kind\":\"action\"")
    };
    write_log(
        &path,
        &[
            action(1, "alice", "#general", "waves hello"),
            action(2, "bob", "#rust", "waves back"),
            chat(3, T0, "alice", "#general", "no waving here"),
        ],
    );
    let v = run_json(&path, "pattern=waves&nick=alice&channel=general");
    assert_eq!(
        occurrences(&v),
        ["2026-11-27T00:24:40.123Z #general * @alice waves hello"]
    );
    assert_eq!(v["records"][0]["kind"], "action");
    let v = run_json(&path, "pattern=waves");
    assert_eq!(occurrences(&v).len(), 2);
}

#[test]
fn query_values_are_shared_by_every_endpoint_that_takes_a_query() {
    let [a, b] = query_values("b=x%20y&a=1", ["a", "b"]).ok().unwrap();
    assert_eq!((a.as_deref(), b.as_deref()), (Some("1"), Some("x y")));
    let short = |q: &str| query_values(q, ["nick"]).err().map(|e| e.short);
    assert_eq!(short("nick=bob"), None);
    assert_eq!(short("nick=%FF"), Some("invalid-query"));
    assert_eq!(short("nick=a&nick=b"), Some("duplicate-parameter"));
    assert_eq!(short("target=a"), Some("unknown-parameter"));
}
