//! History over real sockets (SPEC §12): what was said before a restart comes back on
//! joining, in order and once; a torn log tail is repaired before the rebuild; `since` past
//! what a ring holds says so; the REST history endpoint.

mod common;

use common::http::request;
use common::ws::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Reads the lines of one multi-line telnet message that starts with `first`.
fn block(t: &mut Telnet, first: &str, last: &str) -> Vec<String> {
    let (_, header) = t.wait_for(first, |l| l == first);
    let mut lines = vec![header];
    loop {
        let line = t.next_line();
        let end = line == last;
        lines.push(line);
        if end {
            return lines;
        }
    }
}

fn announce(server: &mut Server, channel: &str, text: &str) {
    let token = server.admin_token().expect("an admin token");
    let auth = format!("Bearer {token}");
    let body = json!({"message": text, "channel": channel}).to_string();
    let resp = request(
        server.addr("rest"),
        "POST",
        "/v1/api/message",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn messages_come_back_after_a_restart_in_order_and_once() {
    let mut first = Server::start_expecting(json!({}), &["telnet", "rest"]);
    let mut alice = first.user_in("alice", "#g");
    for text in ["one", "two", "three"] {
        alice.send_line(text);
        alice.wait_for(text, |l| is_chat(l, "alice", text));
    }
    alice.send_line("/me waves");
    alice.wait_for("the action", |l| l.ends_with("-* @alice waves"));
    announce(&mut first, "#g", "back at noon");
    alice.wait_for("the announcement", |l| l.ends_with("back at noon"));
    first.sigterm();
    assert!(first.wait_exit(Duration::from_secs(20)).is_some());
    let log = std::fs::read(first.log_path()).unwrap();

    let second = Server::start_with(
        json!({}),
        StartOptions {
            log_prefill: Some(log),
            ..StartOptions::default()
        },
    );
    let mut bob = second.user("bob");
    bob.send_line("/join #G");
    bob.expect(&others(0));
    let lines = block(
        &mut bob,
        "Recent messages in #g:",
        "End of recent messages.",
    );
    assert_eq!(lines.len(), 7, "{lines:?}");
    for (line, text) in lines[1..4].iter().zip(["one", "two", "three"]) {
        assert!(is_chat(line, "alice", text), "{line:?} in {lines:?}");
    }
    assert!(lines[4].ends_with("-* @alice waves"), "{lines:?}");
    assert_eq!(lines[5], "Public Server Announcement: back at noon");
    bob.expect_match("the join notice", |l| {
        is_event(l, "bob", "just joined channel #g")
    });
    // The sequence went on from the old log.
    bob.send_line("four");
    let record = second.wait_log("of four", DEADLINE, |r| r["text"] == "four");
    let old_max = second
        .log_kind("chat")
        .iter()
        .filter(|r| r["text"] == "three")
        .map(|r| r["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(record["seq"].as_u64().unwrap() > old_max);
    // `/history` holds the same entries, then the new one.
    bob.send_line("/history 2");
    let lines = block(&mut bob, "Last 2 messages in #g:", "End of history.");
    assert_eq!(lines[1], "Public Server Announcement: back at noon");
    assert!(is_chat(&lines[2], "bob", "four"), "{lines:?}");
}

#[test]
fn a_torn_log_tail_is_cut_before_the_rebuild() {
    let chat = |seq: u64, text: &str| {
        json!({"ts": "2026-11-27T15:04:05.000Z", "seq": seq, "kind": "chat",
               "nick": "alice", "channel": "#g", "text": text})
        .to_string()
    };
    let mut log = format!("{}\n{}\n", chat(1, "kept one"), chat(2, "kept two"));
    log.push_str(r##"{"ts":"2026-11-27T15:04:06.000Z","seq":3,"kind":"chat","nick":"alice","channel":"#g","text":"torn"##);
    let server = Server::start_with(
        json!({}),
        StartOptions {
            log_prefill: Some(log.into_bytes()),
            ..StartOptions::default()
        },
    );
    let mut bob = server.user("bob");
    bob.send_line("/join #g");
    bob.expect(&others(0));
    let lines = block(
        &mut bob,
        "Recent messages in #g:",
        "End of recent messages.",
    );
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[1].ends_with("-@alice: kept one"), "{lines:?}");
    assert!(lines[2].ends_with("-@alice: kept two"), "{lines:?}");
    assert!(
        lines[1].starts_with("Nov 27 "),
        "an old entry has its date: {lines:?}"
    );
    // The torn record's seq is reused by the next record: it was never written.
    bob.send_line("fresh");
    let record = server.wait_log("of fresh", DEADLINE, |r| r["text"] == "fresh");
    assert!(record["seq"].as_u64().unwrap() >= 3);
    assert!(server.log_records().iter().all(|r| r["text"] != "torn"));
}

/// A JSON-mode WebSocket client past its nickname.
fn json_user(addr: std::net::SocketAddr, nick: &str) -> Ws {
    let (mut ws, resp) = Ws::handshake(addr, &[("Sec-WebSocket-Protocol", "chat.v1.json")], b"");
    assert_upgraded(&resp);
    assert_eq!(resp.header("Sec-WebSocket-Protocol"), Some("chat.v1.json"));
    let hello: Value = serde_json::from_str(&ws.next_message()).unwrap();
    assert_eq!(hello["type"], "notice");
    ws.send_text(nick);
    ws.next_message();
    ws
}

fn next_json(ws: &mut Ws) -> Value {
    let text = ws.next_message();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn since_past_the_ring_says_the_replay_is_not_complete() {
    let mut server =
        Server::start_expecting(json!({"history_size": 3}), &["telnet", "websocket", "rest"]);
    let (ws_addr, rest_addr) = (server.addr("websocket"), server.addr("rest"));
    let mut alice = server.user_in("alice", "#g");
    for text in ["a", "b", "c", "d", "e"] {
        alice.send_line(text);
        alice.wait_for(text, |l| is_chat(l, "alice", text));
    }
    let seq_of = |text: &str| {
        server
            .log_kind("chat")
            .iter()
            .find(|r| r["text"] == text)
            .map(|r| r["seq"].as_u64().unwrap())
            .unwrap()
    };
    let (seq_a, seq_c) = (seq_of("a"), seq_of("c"));
    let mut ws = json_user(ws_addr, "bob");
    ws.send_text(&format!("/join #g since {seq_a}"));
    assert_eq!(next_json(&mut ws)["type"], "members");
    let history = next_json(&mut ws);
    assert_eq!(history["type"], "history");
    assert_eq!(history["complete"], false, "b left the ring: {history}");
    let texts: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["c", "d", "e"]);
    assert_eq!(next_json(&mut ws)["type"], "join");

    ws.send_text("/join #elsewhere");
    assert_eq!(next_json(&mut ws)["type"], "members");
    assert_eq!(next_json(&mut ws)["type"], "join");
    ws.send_text(&format!("/join #g since {seq_c}"));
    next_json(&mut ws);
    let history = next_json(&mut ws);
    assert_eq!(history["complete"], true, "{history}");
    assert_eq!(history["entries"].as_array().unwrap().len(), 2);

    // The same entries over REST, newest last.
    let token = server.admin_token().unwrap();
    let auth = format!("Bearer {token}");
    let resp = request(
        rest_addr,
        "GET",
        "/v1/api/channels/g/history?limit=2",
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let entries = resp.json()["Data"]["entries"].clone();
    assert_eq!(entries[0]["text"], "d");
    assert_eq!(entries[1]["text"], "e");
    assert_eq!(entries[1]["seq"], seq_of("e"));
    assert_eq!(entries[1]["kind"], "chat");
}
