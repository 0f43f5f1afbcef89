//! WebSocket JSON mode (SPEC §13): every message is one JSON object whose `line` is exactly
//! what a text client gets for the same message.
//!
//! - a property test over the shell's encoder: for any event, the JSON frame's `line`, the
//!   WebSocket text frame and the telnet line all carry the same text;
//! - the real server: a telnet user and a JSON-mode WebSocket user in one channel receive the
//!   same text for every message sent to the channel, and each event has its type's fields,
//!   with `seq` and `ts` from the log record.

mod common;

use chat_server::chat::{Event, EventKind, Member, Members, Presence, Said};
use chat_server::server::{encode_event, Wire};
use common::http::request;
use common::ws::*;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

/// The text of one encoded chunk as its client reads it.
fn decoded(wire: Wire, chunk: &[u8]) -> String {
    match wire {
        Wire::Telnet => {
            let text = String::from_utf8(chunk.to_vec()).unwrap();
            let text = text.strip_suffix("\r\n").unwrap().replace("\r\n", "\n");
            text.replace("\r\0", "\r")
        }
        Wire::WebSocket | Wire::Json => {
            let (frame, used) = parse_frame(chunk).expect("one whole frame");
            assert_eq!(used, chunk.len());
            frame.text().expect("a text frame")
        }
    }
}

fn event_of<'a>(kind: u8, line: &'a str, text: &'a str, members: &'a [Member<'a>]) -> Event<'a> {
    let said = Said {
        seq: 42,
        ts_ms: 1_795_791_845_123,
        channel: "#g",
        nick: "alice",
        text,
    };
    let kind = match kind % 8 {
        0 => EventKind::Chat(said),
        1 => EventKind::Action(said),
        2 => EventKind::Private {
            seq: 1,
            ts_ms: 0,
            from: "a",
            to: "b",
            text,
        },
        3 => EventKind::Join(Presence {
            seq: 1,
            ts_ms: 0,
            channel: "#g",
            nick: "bob",
        }),
        4 => EventKind::Members {
            channel: "#g",
            members: Members::Listed(members),
        },
        5 => EventKind::Nick {
            seq: 7,
            ts_ms: 0,
            old: "alice",
            new: text,
        },
        6 => EventKind::Topic {
            seq: 8,
            ts_ms: 0,
            channel: "#g",
            nick: "alice",
            topic: text,
        },
        _ => EventKind::Notice,
    };
    Event { line, kind }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The property of SPEC §13: `line` is the text a text client receives, for any message
    /// the core can send (lines joined by `\n`, none empty; no CR, as input lines are cleaned).
    #[test]
    fn line_is_what_a_text_client_receives(
        kind in 0u8..8,
        lines in proptest::collection::vec("[^\r\n]{1,40}", 1..4),
        text in any::<String>(),
        nick in "[a-z]{1,8}",
    ) {
        let line = lines.join("\n");
        let members = [Member { nick: &nick, away: true }];
        let event = event_of(kind, &line, &text, &members);
        let mut buf = Vec::new();
        let json = decoded(Wire::Json, &encode_event(Wire::Json, &event, &mut buf));
        let value: Value = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(value["line"].as_str(), Some(line.as_str()));
        prop_assert_eq!(value["type"].as_str(), Some(event.type_name()));
        let ws = decoded(Wire::WebSocket, &encode_event(Wire::WebSocket, &event, &mut buf));
        prop_assert_eq!(&ws, &line);
        let telnet = decoded(Wire::Telnet, &encode_event(Wire::Telnet, &event, &mut buf));
        prop_assert_eq!(&telnet, &line);
    }
}

/// A JSON-mode WebSocket client, greeted.
fn json_client(addr: std::net::SocketAddr) -> Ws {
    let (ws, resp) = Ws::handshake(addr, &[("Sec-WebSocket-Protocol", "chat.v1.json")], b"");
    assert_upgraded(&resp);
    assert_eq!(resp.header("Sec-WebSocket-Protocol"), Some("chat.v1.json"));
    ws
}

fn next_json(ws: &mut Ws) -> Value {
    let text = ws.next_message();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}"))
}

/// `value` without `seq` and `ts`, after checking them against the log.
fn stamped(server: &Server, mut value: Value) -> Value {
    let seq = value["seq"].as_u64().expect("a seq");
    let record = server.wait_log("with that seq", DEADLINE, |r| r["seq"] == seq);
    assert_eq!(value["ts"], record["ts"], "ts is the log record's");
    let map = value.as_object_mut().unwrap();
    map.remove("seq");
    map.remove("ts");
    value
}

#[test]
fn every_event_type_has_its_fields_and_the_text_line() {
    let mut server = Server::start_expecting(json!({}), &["telnet", "websocket", "rest"]);
    let (ws_addr, rest_addr) = (server.addr("websocket"), server.addr("rest"));
    let mut carol = server.user_in("carol", "#g");
    carol.send_line("earlier");
    let (_, earlier) = carol.wait_for("earlier", |l| is_chat(l, "carol", "earlier"));

    // notice: the greeting and the thanks.
    let mut bob = json_client(ws_addr);
    let hello = next_json(&mut bob);
    assert_eq!(
        hello,
        json!({"type": "notice", "line": welcome(1)}),
        "the greeting"
    );
    bob.send_text("bob");
    assert_eq!(
        next_json(&mut bob),
        json!({"type": "notice", "line": thanks("bob")})
    );

    // members, history, join.
    bob.send_text("/join #g");
    assert_eq!(
        next_json(&mut bob),
        json!({"type": "members", "channel": "#g", "line": others(1),
               "members": [{"nick": "carol", "away": false}, {"nick": "bob", "away": false}]})
    );
    let history = next_json(&mut bob);
    assert_eq!(history["type"], "history");
    assert_eq!(history["complete"], true);
    assert_eq!(
        history["line"],
        format!("Recent messages in #g:\n{earlier}\nEnd of recent messages.")
    );
    let entry = stamped(&server, history["entries"][0].clone());
    assert_eq!(
        entry,
        json!({"type": "chat", "channel": "#g", "nick": "carol", "text": "earlier", "line": earlier})
    );
    let joined = next_json(&mut bob);
    let (_, text) = carol.wait_for("bob joining", |l| {
        is_event(l, "bob", "just joined channel #g")
    });
    assert_eq!(
        stamped(&server, joined),
        json!({"type": "join", "channel": "#g", "nick": "bob", "line": text})
    );

    // chat: the same text both ways.
    carol.send_line("hello \"json\" \\ world");
    let (_, text) = carol.wait_for("the chat", |l| {
        is_chat(l, "carol", "hello \"json\" \\ world")
    });
    assert_eq!(
        stamped(&server, next_json(&mut bob)),
        json!({"type": "chat", "channel": "#g", "nick": "carol",
               "text": "hello \"json\" \\ world", "line": text})
    );

    // private, both copies.
    bob.send_text("/msg @carol psst");
    let (_, text) = carol.wait_for("the private message", |l| {
        l.ends_with("*Private from @bob: psst")
    });
    let mine = stamped(&server, next_json(&mut bob));
    assert_eq!(mine["type"], "private");
    assert_eq!(
        (&mine["from"], &mine["to"], &mine["text"]),
        (&json!("bob"), &json!("carol"), &json!("psst"))
    );
    assert_eq!(
        mine["line"],
        text.replace("Private from @bob", "Private to @carol")
    );

    // announcement to the channel.
    let token = server.admin_token().unwrap();
    let auth = format!("Bearer {token}");
    let body = json!({"message": "maintenance", "channel": "#g"}).to_string();
    let resp = request(
        rest_addr,
        "POST",
        "/v1/api/message",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(resp.status, 200);
    let (_, text) = carol.wait_for("the announcement", |l| l.starts_with("Public Server"));
    assert_eq!(
        stamped(&server, next_json(&mut bob)),
        json!({"type": "announcement", "channel": "#g", "text": "maintenance", "line": text})
    );

    // action, topic and nick (SPEC §11's commands).
    carol.send_line("/me waves");
    let (_, text) = carol.wait_for("the action", |l| l.ends_with("-* @carol waves"));
    assert_eq!(
        stamped(&server, next_json(&mut bob)),
        json!({"type": "action", "channel": "#g", "nick": "carol", "text": "waves", "line": text})
    );
    carol.send_line("/topic JSON talk");
    let (_, text) = carol.wait_for("the topic", |l| {
        is_event(l, "carol", "set the topic of #g: JSON talk")
    });
    assert_eq!(
        stamped(&server, next_json(&mut bob)),
        json!({"type": "topic", "channel": "#g", "nick": "carol", "topic": "JSON talk", "line": text})
    );
    carol.send_line("/nick caro");
    let (_, text) = carol.wait_for("the rename", |l| {
        is_event(l, "carol", "is now known as @caro")
    });
    assert_eq!(
        stamped(&server, next_json(&mut bob)),
        json!({"type": "nick", "old": "carol", "new": "caro", "line": text})
    );

    // members for /list (a multi-line line, with away), and a notice with several lines.
    carol.send_line("/away lunch");
    carol.wait_for("the away answer", |l| {
        l == "You are now marked as away: lunch"
    });
    bob.send_text("/list");
    let list = next_json(&mut bob);
    assert_eq!(
        list,
        json!({"type": "members", "channel": "#g",
               "members": [{"nick": "caro", "away": true}, {"nick": "bob", "away": false}],
               "line": "Here is the list of all users in this channel\n@caro (away)\n@bob"})
    );
    bob.send_text("/help");
    let help = next_json(&mut bob);
    assert_eq!(help["type"], "notice");
    assert!(help["line"]
        .as_str()
        .unwrap()
        .starts_with("Here is the list of all available commands\n/help\t"));

    // leave.
    carol.send_line("/quit");
    let left = next_json(&mut bob);
    let value = stamped(&server, left);
    assert_eq!(value["type"], "leave");
    assert_eq!(value["nick"], "caro");
    assert!(is_event(
        value["line"].as_str().unwrap(),
        "caro",
        "left channel #g"
    ));
}
