//! History in the core: replay on join (with original times), `since`, `/history`, rings
//! rebuilt from records, and the JSON events that carry them.

use super::*;
use crate::chat::{EntryKind, Event, EventKind};
use std::borrow::Cow;

/// An outbox that keeps every message as the JSON object a JSON-mode client would get.
#[derive(Default)]
struct JsonRecorder {
    seq: u64,
    sent: Vec<(u32, serde_json::Value)>,
}

impl Outbox for JsonRecorder {
    fn log(&mut self, _now: Now, _record: &Record<'_>) -> Result<u64, LogFailed> {
        self.seq += 1;
        Ok(self.seq)
    }
    fn send(&mut self, to: ClientId, text: &str) {
        self.publish(&[to], &Event::notice(text));
    }
    fn send_many(&mut self, to: &[ClientId], text: &str) {
        self.publish(to, &Event::notice(text));
    }
    fn publish(&mut self, to: &[ClientId], event: &Event<'_>) {
        let value: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            value["line"], event.line,
            "line is the text a text client gets"
        );
        for id in to {
            self.sent.push((id.gen, value.clone()));
        }
    }
    fn close(&mut self, _id: ClientId, _reason: CloseReason) {}
}

fn core(size: usize, on_join: usize) -> ChatCore {
    ChatCore::new(CoreConfig {
        history_size: size,
        history_on_join: on_join,
        ..CoreConfig::default()
    })
}

fn at(unix_ms: i64) -> Now {
    Now {
        mono_ms: 1,
        unix_ms,
        utc_offset_s: 0,
    }
}

fn user(core: &mut ChatCore, out: &mut impl Outbox, n: u32, nick: &str) {
    core.handle_connect(now(0), id(n), Transport::Telnet, peer(), out);
    core.handle_line(now(0), id(n), nick, out);
}

#[test]
fn a_joiner_gets_the_recent_messages_with_their_original_times() {
    let mut c = core(200, 2);
    let mut out = Recorder::default();
    user(&mut c, &mut out, 0, "alice");
    c.handle_line(at(T - 86_400_000), id(0), "/join #g", &mut out);
    c.handle_line(at(T - 86_400_000), id(0), "yesterday", &mut out);
    c.handle_line(at(T - 60_000), id(0), "one", &mut out);
    c.handle_line(at(T), id(0), "two", &mut out);
    user(&mut c, &mut out, 1, "bob");
    out.sent();
    c.handle_line(at(T), id(1), "/join #G", &mut out);
    assert_eq!(
        out.sent(),
        vec![
            s(1, "There are 1 other users in this channel."),
            s(1, "Recent messages in #g:\n3:03PM-@alice: one\n3:04PM-@alice: two\nEnd of recent messages."),
            s(0, "3:04PM-@bob just joined channel #g"),
            s(1, "3:04PM-@bob just joined channel #g"),
        ]
    );
    // A day later the same entries carry their date.
    c.handle_line(at(T + 86_400_000), id(1), "/history 3", &mut out);
    assert_eq!(
        out.sent(),
        vec![s(
            1,
            "Last 3 messages in #g:\nNov 26 3:04PM-@alice: yesterday\nNov 27 3:03PM-@alice: one\nNov 27 3:04PM-@alice: two\nEnd of history."
        )]
    );
}

#[test]
fn no_replay_when_off_or_empty_and_history_answers() {
    let mut c = core(200, 0);
    let mut out = Recorder::default();
    user(&mut c, &mut out, 0, "alice");
    out.sent();
    c.handle_line(at(T), id(0), "/history", &mut out);
    assert_eq!(out.sent(), vec![s(0, super::strings::NOT_IN_CHANNEL)]);
    c.handle_line(at(T), id(0), "/join #g", &mut out);
    out.sent();
    c.handle_line(at(T), id(0), "/history", &mut out);
    assert_eq!(out.sent(), vec![s(0, "There are no messages in #g yet.")]);
    c.handle_line(at(T), id(0), "hi", &mut out);
    user(&mut c, &mut out, 1, "bob");
    out.sent();
    c.handle_line(at(T), id(1), "/join #g", &mut out);
    let sent = out.sent();
    assert_eq!(sent.len(), 3, "history_on_join 0: no block: {sent:?}");
    c.handle_line(at(T), id(1), "/history 1000", &mut out);
    assert_eq!(
        out.sent(),
        vec![s(
            1,
            "Last 1 messages in #g:\n3:04PM-@alice: hi\nEnd of history."
        )]
    );
    c.handle_line(at(T), id(1), "/history x", &mut out);
    assert_eq!(
        out.sent(),
        vec![s(
            1,
            "Could not find a number of messages in the input, use /history or /history N"
        )]
    );
}

#[test]
fn rings_outlive_an_empty_channel_and_announcements_are_kept() {
    let mut c = core(200, 20);
    let mut out = Recorder::default();
    user(&mut c, &mut out, 0, "alice");
    c.handle_line(at(T), id(0), "/join #g", &mut out);
    c.handle_line(at(T), id(0), "hello", &mut out);
    c.announce(at(T), "maintenance at noon", Some("#G"), &mut out)
        .unwrap();
    c.handle_line(at(T), id(0), "/join #other", &mut out);
    assert!(c.channel_names() == ["#other"], "#g is gone");
    out.sent();
    c.handle_line(at(T), id(0), "/join #g", &mut out);
    assert_eq!(
        out.sent()[1],
        s(0, "Recent messages in #g:\n3:04PM-@alice: hello\nPublic Server Announcement: maintenance at noon\nEnd of recent messages.")
    );
}

#[test]
fn since_replays_what_was_missed_and_says_when_it_cannot() {
    let mut c = core(3, 20);
    let mut out = JsonRecorder::default();
    user(&mut c, &mut out, 0, "alice");
    c.handle_line(at(T), id(0), "/join #g", &mut out);
    let mut seqs = Vec::new();
    for text in ["a", "b", "c", "d", "e"] {
        c.handle_line(at(T), id(0), text, &mut out);
        seqs.push(out.seq);
    }
    user(&mut c, &mut out, 1, "bob");
    let replay = |c: &mut ChatCore, out: &mut JsonRecorder, since: u64| {
        out.sent.clear();
        c.handle_line(at(T), id(1), &format!("/join #g since {since}"), out);
        let history: Vec<_> = out
            .sent
            .iter()
            .filter(|(to, v)| *to == 101 && v["type"] == "history")
            .map(|(_, v)| v.clone())
            .collect();
        c.handle_line(at(T), id(1), "/join #elsewhere", out);
        history
    };
    // Everything after "c" is still in the ring (it holds c, d, e).
    let h = replay(&mut c, &mut out, seqs[2]);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["complete"], true);
    let texts: Vec<&str> = h[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["d", "e"]);
    assert_eq!(h[0]["entries"][0]["seq"], seqs[3]);
    assert_eq!(h[0]["entries"][0]["line"], "3:04PM-@alice: d");
    // "b" left the ring: the replay is not complete.
    let h = replay(&mut c, &mut out, seqs[0]);
    assert_eq!(h[0]["complete"], false);
    assert_eq!(h[0]["entries"].as_array().unwrap().len(), 3);
    // Nothing newer: no block at all.
    assert!(replay(&mut c, &mut out, seqs[4]).is_empty());
}

#[test]
fn restored_records_fill_the_rings() {
    let mut c = core(200, 20);
    let chat = |text: &'static str| Record::Chat {
        nick: Cow::Borrowed("alice"),
        channel: Cow::Borrowed("#g"),
        text: Cow::Borrowed(text),
    };
    c.restore(5, T - 120_000, &chat("before"));
    c.restore(
        6,
        T - 60_000,
        &Record::Join {
            nick: Cow::Borrowed("bob"),
            channel: Cow::Borrowed("#g"),
        },
    );
    c.restore(7, T, &chat("after"));
    let ring = c.history_of("#G").unwrap();
    assert_eq!(ring.last(5).map(|e| e.seq).collect::<Vec<_>>(), [5, 7]);
    let mut out = Recorder::default();
    user(&mut c, &mut out, 0, "carol");
    out.sent();
    c.handle_line(at(T), id(0), "/join #g", &mut out);
    assert_eq!(
        out.sent()[1],
        s(0, "Recent messages in #g:\n3:02PM-@alice: before\n3:04PM-@alice: after\nEnd of recent messages.")
    );
}

#[test]
fn json_events_carry_their_fields() {
    let mut c = core(200, 20);
    let mut out = JsonRecorder::default();
    user(&mut c, &mut out, 0, "alice");
    c.handle_line(at(T), id(0), "/join #g", &mut out);
    c.handle_line(at(T), id(0), "hi", &mut out);
    user(&mut c, &mut out, 1, "bob");
    out.sent.clear();
    c.handle_line(at(T), id(1), "/join #g", &mut out);
    let types: Vec<(u32, &str)> = out
        .sent
        .iter()
        .map(|(to, v)| (*to, v["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        [
            (101, "members"),
            (101, "history"),
            (100, "join"),
            (101, "join")
        ]
    );
    let members = &out.sent[0].1;
    assert_eq!(members["line"], "There are 1 other users in this channel.");
    assert_eq!(
        members["members"],
        serde_json::json!([{"nick": "alice", "away": false}, {"nick": "bob", "away": false}])
    );
    assert_eq!(out.sent[2].1["nick"], "bob");
    assert_eq!(out.sent[2].1["ts"], "2026-11-27T15:04:05.000Z");
    out.sent.clear();
    c.handle_line(at(T), id(1), "/msg @alice psst", &mut out);
    let private: Vec<_> = out.sent.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(private[0]["type"], "private");
    assert_eq!(private[0]["line"], "3:04PM - *Private from @bob: psst");
    assert_eq!(private[1]["line"], "3:04PM - *Private to @alice: psst");
    assert_eq!(
        (&private[1]["from"], &private[1]["to"]),
        (&"bob".into(), &"alice".into())
    );
    out.sent.clear();
    c.handle_line(at(T), id(1), "/quit", &mut out);
    let leave = out.sent.iter().find(|(to, _)| *to == 100).unwrap();
    assert_eq!(leave.1["type"], "leave");
    assert!(matches!(Event::notice("x").kind, EventKind::Notice));
}

/// The commands of SPEC §11 in history and JSON mode: `/me` and `/topic text` are history
/// entries and `action` / `topic` events, `/nick` a `nick` event, `/list` a `members` event
/// with `away`, and the restore arms take action and topic records.
#[test]
fn commands_are_history_entries_and_typed_events() {
    let mut c = core(200, 20);
    let mut out = JsonRecorder::default();
    user(&mut c, &mut out, 0, "alice");
    user(&mut c, &mut out, 1, "bob");
    c.handle_line(at(T), id(0), "/join #g", &mut out);
    c.handle_line(at(T), id(1), "/join #g", &mut out);
    out.sent.clear();

    c.handle_line(at(T), id(0), "/me waves", &mut out);
    c.handle_line(at(T), id(1), "/topic Rust only", &mut out);
    let seqs: Vec<u64> = out
        .sent
        .iter()
        .filter_map(|(_, v)| v["seq"].as_u64())
        .collect();
    let (action, topic) = (&out.sent[0].1, &out.sent[2].1);
    assert_eq!(
        action,
        &serde_json::json!({"type": "action", "seq": seqs[0], "ts": "2026-11-27T15:04:05.000Z",
            "channel": "#g", "nick": "alice", "text": "waves", "line": "3:04PM-* @alice waves"})
    );
    assert_eq!(
        topic,
        &serde_json::json!({"type": "topic", "seq": seqs[2], "ts": "2026-11-27T15:04:05.000Z",
            "channel": "#g", "nick": "bob", "topic": "Rust only",
            "line": "3:04PM-@bob set the topic of #g: Rust only"})
    );
    let ring = c.history_of("#g").unwrap();
    let entries: Vec<_> = ring
        .last(5)
        .map(|e| (e.kind(), e.nick(), e.text()))
        .collect();
    assert_eq!(
        entries,
        [
            (EntryKind::Action, "alice", "waves"),
            (EntryKind::Topic, "bob", "Rust only")
        ]
    );

    out.sent.clear();
    c.handle_line(at(T), id(1), "/nick robert", &mut out);
    assert_eq!(out.sent.len(), 2, "both members see the rename");
    let nick = &out.sent[0].1;
    assert_eq!(nick["type"], "nick");
    assert_eq!(
        (&nick["old"], &nick["new"]),
        (&"bob".into(), &"robert".into())
    );
    assert_eq!(nick["line"], "3:04PM-@bob is now known as @robert");
    assert!(nick["seq"].as_u64().is_some() && nick["ts"].is_string());
    // Outside a channel only the user hears of it, with its own line.
    user(&mut c, &mut out, 2, "carol");
    out.sent.clear();
    c.handle_line(at(T), id(2), "/nick caroline", &mut out);
    assert_eq!(out.sent.len(), 1);
    assert_eq!(out.sent[0].1["type"], "nick");
    assert_eq!(out.sent[0].1["line"], "You are now known as @caroline");

    out.sent.clear();
    c.handle_line(at(T), id(0), "/away lunch", &mut out);
    c.handle_line(at(T), id(1), "/list", &mut out);
    let list = &out.sent.last().unwrap().1;
    assert_eq!(list["type"], "members");
    assert_eq!(
        list["members"],
        serde_json::json!([{"nick": "alice", "away": true}, {"nick": "robert", "away": false}])
    );
    assert_eq!(
        list["line"],
        "Here is the list of all users in this channel\n@alice (away)\n@robert"
    );

    // A joiner's replay holds the action and the topic change, as typed entries.
    c.handle_line(at(T), id(2), "/join #g", &mut out);
    let history = out
        .sent
        .iter()
        .find(|(to, v)| *to == 102 && v["type"] == "history")
        .map(|(_, v)| v.clone())
        .unwrap();
    let types: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["action", "topic"]);
    assert_eq!(history["entries"][1]["topic"], "Rust only");

    // Restored action and topic records fill a ring and set the topic.
    let mut c = core(200, 20);
    c.restore(
        3,
        T,
        &Record::Action {
            nick: Cow::Borrowed("alice"),
            channel: Cow::Borrowed("#h"),
            text: Cow::Borrowed("naps"),
        },
    );
    c.restore(
        4,
        T,
        &Record::Topic {
            nick: Cow::Borrowed("alice"),
            channel: Cow::Borrowed("#h"),
            topic: Cow::Borrowed("quiet"),
        },
    );
    let mut out = Recorder::default();
    user(&mut c, &mut out, 0, "dave");
    out.sent();
    c.handle_line(at(T), id(0), "/join #h", &mut out);
    let sent = out.sent();
    assert_eq!(sent[1], s(0, "Topic of #h: quiet"));
    assert_eq!(
        sent[2],
        s(0, "Recent messages in #h:\n3:04PM-* @alice naps\n3:04PM-@alice set the topic of #h: quiet\nEnd of recent messages.")
    );
}

/// An outbox for text clients only: it sends each event's line and notes whether a join's
/// `members` event came with its member list already built.
#[derive(Default)]
struct TextOnly {
    seq: u64,
    listed_members: usize,
    lazy_members: usize,
}

impl Outbox for TextOnly {
    fn log(&mut self, _now: Now, _record: &Record<'_>) -> Result<u64, LogFailed> {
        self.seq += 1;
        Ok(self.seq)
    }
    fn send(&mut self, _to: ClientId, _text: &str) {}
    fn send_many(&mut self, _to: &[ClientId], _text: &str) {}
    fn publish(&mut self, _to: &[ClientId], event: &Event<'_>) {
        match event.kind {
            EventKind::Members {
                members: crate::chat::Members::Listed(_),
                ..
            } => self.listed_members += 1,
            EventKind::Members { .. } => self.lazy_members += 1,
            _ => {}
        }
    }
    fn close(&mut self, _id: ClientId, _reason: CloseReason) {}
}

#[test]
fn a_join_does_not_list_the_members_unless_a_json_client_needs_them() {
    let mut c = core(10, 0);
    let mut out = TextOnly::default();
    for n in 0..5 {
        user(&mut c, &mut out, n, &format!("user{n}"));
        c.handle_line(now(0), id(n), "/join #big", &mut out);
    }
    assert_eq!((out.listed_members, out.lazy_members), (0, 5));
}
