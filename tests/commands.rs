//! The commands users expect (SPEC §11) over real sockets: `/nick`, `/me`, `/topic`, `/away`,
//! `/back`, `/whois`, `/channels`, `/unignore` and `/motd`, each with its errors, over telnet
//! and over WebSocket (raw frames from `common::ws`), against the real binary; renames racing
//! in one loop pass; topics surviving a restart.
//!
//! Every wait loops on a condition with a generous deadline; no assertion rests on a sleep.

mod common;

use common::ws::Ws;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A chat client of either transport, as the tests drive it.
trait Client {
    fn send(&mut self, line: &str);
    /// The next message must be exactly `lines` (one message: telnet lines, or one frame).
    fn expect_lines(&mut self, lines: &[&str]);
    /// The next line (telnet) or message (WebSocket).
    fn next(&mut self) -> String;
    fn expect(&mut self, line: &str) {
        self.expect_lines(&[line]);
    }
    /// The next line must be `<KITCHEN>-@nick what`.
    fn expect_event(&mut self, nick: &str, what: &str) {
        let line = self.next();
        assert!(
            is_event(&line, nick, what),
            "expected @{nick} {what}, got {line:?}"
        );
    }
}

impl Client for Telnet {
    fn send(&mut self, line: &str) {
        self.send_line(line);
    }
    fn expect_lines(&mut self, lines: &[&str]) {
        for line in lines {
            Telnet::expect(self, line);
        }
    }
    fn next(&mut self) -> String {
        self.next_line()
    }
}

impl Client for Ws {
    fn send(&mut self, line: &str) {
        self.send_text(line);
    }
    fn expect_lines(&mut self, lines: &[&str]) {
        let want = lines.join("\n");
        self.expect_message(&format!("{want:?}"), |m| m == want);
    }
    fn next(&mut self) -> String {
        self.next_message()
    }
}

fn server(extra: Value) -> Server {
    Server::start_expecting(extra, &["telnet", "websocket"])
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Telnet,
    WebSocket,
}

/// A user of `kind` past the greeting and the nickname (and the motd, when one is set).
fn user(srv: &mut Server, kind: Kind, nick: &str) -> Box<dyn Client> {
    match kind {
        Kind::Telnet => Box::new(srv.user(nick)),
        Kind::WebSocket => {
            let addr = srv.addr("websocket");
            Box::new(Ws::user(addr, nick))
        }
    }
}

/// A user of `kind` in `channel`, its own join lines consumed.
fn member(srv: &mut Server, kind: Kind, nick: &str, channel: &str) -> Box<dyn Client> {
    let mut c = user(srv, kind, nick);
    c.send(&format!("/join {channel}"));
    let others = c.next();
    assert!(others.starts_with("There are "), "{others:?}");
    let mut line = c.next();
    if line.starts_with("Topic of ") {
        line = c.next();
    }
    assert!(
        is_event(&line, nick, &format!("just joined channel {channel}")),
        "{line:?}"
    );
    c
}

const NOT_IN_CHANNEL: &str =
    "You need to join a channel, use /join #channel or use /help for more info.";

/// Every error string of SPEC §11, for a user of `kind`.
fn every_error(kind: Kind) {
    let mut srv = server(json!({}));
    let mut alice = user(&mut srv, kind, "alice");
    let _bob = user(&mut srv, kind, "bob");
    let cases: [(&str, &str); 15] = [
        (
            "/nick",
            "Could not find the required nickname in the input, use /nick newnickname",
        ),
        (
            "/nick 9lives",
            "Invalid nickname: use 1 to 24 letters, digits, _ or -, starting with a letter.",
        ),
        (
            "/nick BOB",
            "Another user with this nickname is connected to this server.",
        ),
        ("/nick alice", "You are already known as @alice."),
        (
            "/me",
            "Could not find the required action in the input, use /me action",
        ),
        ("/me waves", NOT_IN_CHANNEL),
        ("/topic", NOT_IN_CHANNEL),
        ("/topic hello", NOT_IN_CHANNEL),
        ("/back", "You are not marked as away."),
        (
            "/whois",
            "Could not find the required @nickname in the input, use /whois @nickname",
        ),
        (
            "/whois @ghost",
            "User @ghost is not connected to this server.",
        ),
        (
            "/unignore",
            "Could not find the required @nickname in the input, use /unignore @nickname",
        ),
        (
            "/unignore @ghost",
            "User @ghost is not connected to this server.",
        ),
        ("/unignore @bob", "bob is not ignored."),
        ("/motd", "There is no message of the day."),
    ];
    for (input, expected) in cases {
        alice.send(input);
        alice.expect(expected);
    }
    alice.send("/channels");
    alice.expect("There are no channels, use /join #channel to create one.");
    alice.send("/join #a");
    alice.expect(&others(0));
    alice.expect_event("alice", "just joined channel #a");
    alice.send(&format!("/topic {}", "x".repeat(301)));
    alice.expect("Topics are limited to 300 bytes.");
    alice.send("/topic");
    alice.expect("#a has no topic.");
    // Every error was logged as one.
    let errors = srv.log_kind("error");
    for (_, expected) in cases.iter().filter(|(_, e)| !e.starts_with("There is no")) {
        assert!(
            errors.iter().any(|r| r["error"] == *expected),
            "{expected:?} not logged: {errors:?}"
        );
    }
}

#[test]
fn every_error_over_telnet() {
    every_error(Kind::Telnet);
}

#[test]
fn every_error_over_websocket() {
    every_error(Kind::WebSocket);
}

/// Every command working, for two users of `a` and `b`.
fn every_command(a: Kind, b: Kind) {
    let mut srv = server(json!({}));
    let mut alice = member(&mut srv, a, "alice", "#room");
    let mut bob = member(&mut srv, b, "bob", "#room");
    alice.expect_event("bob", "just joined channel #room");

    alice.send("/topic Rust and  friends");
    for c in [&mut alice, &mut bob] {
        c.expect_event("alice", "set the topic of #room: Rust and  friends");
    }
    bob.send("/topic");
    bob.expect("Topic of #room: Rust and  friends");

    bob.send("/me waves at @alice");
    for c in [&mut alice, &mut bob] {
        let line = c.next();
        let (kitchen, rest) = line.split_once("-* @").unwrap_or_default();
        assert!(
            is_kitchen(kitchen) && rest == "bob waves at @alice",
            "{line:?}"
        );
    }

    alice.send("/away out to lunch");
    alice.expect("You are now marked as away: out to lunch");
    bob.send("/msg @alice are you there?");
    alice.expect_match_private("bob", "are you there?");
    let to = bob.next();
    assert!(is_private_to(&to, "alice", "are you there?"), "{to:?}");
    bob.expect("@alice is away: out to lunch");
    bob.send("/list");
    bob.expect_lines(&[
        "Here is the list of all users in this channel",
        "@alice (away)",
        "@bob",
    ]);
    bob.send("/whois @alice");
    let whois = bob.next();
    let via = match a {
        Kind::Telnet => "telnet",
        Kind::WebSocket => "websocket",
    };
    let rest = whois
        .strip_prefix(&format!("@alice is in #room, connected via {via} for "))
        .unwrap_or_else(|| panic!("{whois:?}"));
    let (connected, rest) = rest.split_once(", idle ").unwrap_or_default();
    let (idle, rest) = rest.split_once(", ").unwrap_or_default();
    assert!(is_duration(connected) && is_duration(idle), "{whois:?}");
    // Not an operator: no address.
    assert_eq!(rest, "away: out to lunch", "{whois:?}");
    alice.send("/back");
    alice.expect("You are no longer marked as away.");

    alice.send("/channels");
    alice.expect_lines(&[
        "Here is the list of all channels",
        "#room (2 users): Rust and  friends",
    ]);

    alice.send("/ignore @bob");
    alice.expect("bob is now ignored.");
    alice.send("/unignore @bob");
    alice.expect("bob is no longer ignored.");

    alice.send("/nick Alicia");
    for c in [&mut alice, &mut bob] {
        c.expect_event("alice", "is now known as @Alicia");
    }
    bob.send("/msg @alicia hi");
    alice.expect_match_private("bob", "hi");
    assert!(is_private_to(&bob.next(), "Alicia", "hi"));
    bob.send("/msg @alice hi");
    bob.expect("User @alice is not connected to this server.");
    bob.send("/whois @ALICIA");
    assert!(bob
        .next()
        .starts_with("@Alicia is in #room, connected via "));
    // The old name is free at once.
    let _other = user(&mut srv, b, "alice");

    alice.send("/join #other");
    alice.expect(&others(0));
    alice.expect_event("Alicia", "just joined channel #other");
    bob.expect_event("Alicia", "left channel #room");
    alice.send("/nick al");
    alice.expect_event("Alicia", "is now known as @al");

    let kinds: Vec<String> = srv
        .log_records()
        .iter()
        .filter_map(|r| r["kind"].as_str().map(str::to_owned))
        .collect();
    for kind in ["topic", "action", "away", "nick_change"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} record: {kinds:?}"
        );
    }
    let renames = srv.log_kind("nick_change");
    assert_eq!(renames[0]["old"], "alice");
    assert_eq!(renames[0]["new"], "Alicia");
    let topic = &srv.log_kind("topic")[0];
    assert_eq!(topic["channel"], "#room");
    assert_eq!(topic["topic"], "Rust and  friends");
}

/// `Ns`, `NmNs`, `NhNm` or `NdNh`.
fn is_duration(s: &str) -> bool {
    let units: String = s.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    let digits_ok = s
        .split(|c: char| c.is_ascii_alphabetic())
        .all(|d| d.chars().all(|c| c.is_ascii_digit()));
    digits_ok
        && ["s", "ms", "hm", "dh"].contains(&units.as_str())
        && s.ends_with(|c: char| c.is_ascii_alphabetic())
}

trait PrivateExt {
    fn expect_match_private(&mut self, from: &str, text: &str);
}

impl PrivateExt for Box<dyn Client> {
    fn expect_match_private(&mut self, from: &str, text: &str) {
        let line = self.next();
        assert!(is_private_from(&line, from, text), "{line:?}");
    }
}

#[test]
fn every_command_over_telnet() {
    every_command(Kind::Telnet, Kind::Telnet);
}

#[test]
fn every_command_over_websocket() {
    every_command(Kind::WebSocket, Kind::WebSocket);
}

#[test]
fn every_command_between_websocket_and_telnet() {
    every_command(Kind::WebSocket, Kind::Telnet);
}

/// Two users renaming to one name, both lines written before either answer is read so they
/// land in one loop pass as far as the kernel allows: exactly one wins, every time.
#[test]
fn nick_race_one_wins() {
    let mut srv = server(json!({}));
    for (round, (ka, kb)) in [
        (Kind::Telnet, Kind::Telnet),
        (Kind::WebSocket, Kind::Telnet),
        (Kind::Telnet, Kind::WebSocket),
        (Kind::WebSocket, Kind::WebSocket),
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = user(&mut srv, ka, &format!("a{round}"));
        let mut b = user(&mut srv, kb, &format!("b{round}"));
        let wanted = format!("Winner{round}");
        a.send(&format!("/nick {wanted}"));
        b.send(&format!("/nick {}", wanted.to_lowercase()));
        let (ra, rb) = (a.next(), b.next());
        let taken = "Another user with this nickname is connected to this server.";
        let won_a = ra == format!("You are now known as @{wanted}");
        let won_b = rb == format!("You are now known as @{}", wanted.to_lowercase());
        assert!(won_a != won_b, "round {round}: {ra:?} / {rb:?}");
        assert!(ra == taken || rb == taken, "round {round}: {ra:?} / {rb:?}");
        // The loser's old name is still its own; the winner's old name is free.
        let (mut winner, loser_nick, winner_old) = if won_a {
            (a, format!("b{round}"), format!("a{round}"))
        } else {
            (b, format!("a{round}"), format!("b{round}"))
        };
        winner.send(&format!("/whois @{loser_nick}"));
        assert!(winner
            .next()
            .starts_with(&format!("@{loser_nick} is not in a channel")));
        winner.send(&format!("/whois @{winner_old}"));
        winner.expect(&format!(
            "User @{winner_old} is not connected to this server."
        ));
    }
    assert_eq!(srv.log_kind("nick_change").len(), 4);
}

/// Ignores follow the person: a rename of the ignored user or of the one ignoring keeps
/// the ignore, and a newcomer with the old name is not ignored.
#[test]
fn nick_while_ignored() {
    let mut srv = server(json!({}));
    let mut alice = user(&mut srv, Kind::Telnet, "alice");
    let mut bob = user(&mut srv, Kind::WebSocket, "bob");
    alice.send("/ignore @bob");
    alice.expect("bob is now ignored.");
    bob.send("/nick robert");
    bob.expect("You are now known as @robert");
    bob.send("/msg @alice hi");
    bob.expect("User @alice has ignored you, your message was not delivered.");
    alice.send("/nick alicia");
    alice.expect("You are now known as @alicia");
    bob.send("/msg @alicia hi");
    bob.expect("User @alicia has ignored you, your message was not delivered.");
    let mut newbob = user(&mut srv, Kind::Telnet, "bob");
    newbob.send("/msg @alicia hello");
    assert!(is_private_to(&newbob.next(), "alicia", "hello"));
    alice.expect_match_private("bob", "hello");
    alice.send("/unignore @robert");
    alice.expect("robert is no longer ignored.");
    bob.send("/msg @alicia back");
    alice.expect_match_private("robert", "back");
}

/// `/away` answers private messages from either transport after the `Private to` line.
#[test]
fn away_answers_private_messages() {
    let mut srv = server(json!({}));
    let mut away = user(&mut srv, Kind::WebSocket, "sleepy");
    let mut tel = user(&mut srv, Kind::Telnet, "tel");
    away.send("/away");
    away.expect("You are now marked as away: away");
    tel.send("/msg @sleepy ping");
    assert!(is_private_to(&tel.next(), "sleepy", "ping"));
    tel.expect("@sleepy is away: away");
    away.expect_match_private("tel", "ping");
    away.send("/back");
    away.expect("You are no longer marked as away.");
    tel.send("/msg @sleepy ping");
    assert!(is_private_to(&tel.next(), "sleepy", "ping"));
    // Nothing more: the next answer is the next command's.
    tel.send("/motd");
    tel.expect("There is no message of the day.");
}

/// The message of the day comes right after the nickname is accepted, and on `/motd`.
#[test]
fn motd_after_the_nickname_and_on_request() {
    let mut srv = server(json!({"motd": "Welcome to the test server!\nBe kind."}));
    let mut t = srv.telnet();
    t.expect_match("the greeting", |l| l.starts_with("Welcome to chat server."));
    t.send_line("alice");
    Telnet::expect(&mut t, &thanks("alice"));
    Telnet::expect(&mut t, "Welcome to the test server!");
    Telnet::expect(&mut t, "Be kind.");
    t.send_line("/motd");
    Telnet::expect(&mut t, "Welcome to the test server!");
    Telnet::expect(&mut t, "Be kind.");
    let addr = srv.addr("websocket");
    let mut ws = Ws::open(addr);
    ws.expect_message("the greeting", |m| m.starts_with("Welcome to chat server."));
    ws.send_text("bob");
    ws.expect_message("the thanks", |m| m == thanks("bob"));
    ws.expect_message("the motd", |m| m == "Welcome to the test server!\nBe kind.");
}

/// A topic set before a restart is shown after it, from the log, even for a channel that
/// had emptied; a later topic wins over an earlier one.
#[test]
fn topic_survives_a_restart() {
    let mut first = server(json!({}));
    let mut alice = member(&mut first, Kind::Telnet, "alice", "#keep");
    alice.send("/topic first");
    alice.expect_event("alice", "set the topic of #keep: first");
    alice.send("/topic Kept across restarts");
    alice.expect_event("alice", "set the topic of #keep: Kept across restarts");
    alice.send("/join #gone");
    alice.expect(&others(0));
    alice.expect_event("alice", "just joined channel #gone");
    alice.send("/topic also kept");
    alice.expect_event("alice", "set the topic of #gone: also kept");
    first.sigterm();
    assert!(
        first.wait_exit(Duration::from_secs(10)).is_some(),
        "the server did not exit"
    );
    let log = std::fs::read(first.log_path()).unwrap();

    let second = Server::start_with(
        json!({}),
        StartOptions {
            log_prefill: Some(log),
            ..StartOptions::default()
        },
    );
    let mut bob = second.user("bob");
    bob.send_line("/channels");
    bob.expect("There are no channels, use /join #channel to create one.");
    // Any case finds it; the channel keeps the spelling its history remembers. The topic
    // changes are history too, replayed after the topic line.
    bob.send_line("/join #KEEP");
    bob.expect(&others(0));
    bob.expect("Topic of #keep: Kept across restarts");
    bob.expect("Recent messages in #keep:");
    // (A replayed line from another day has the date before its time.)
    bob.expect_match("the first topic change", |l| {
        l.ends_with("-@alice set the topic of #keep: first")
    });
    bob.expect_match("the second topic change", |l| {
        l.ends_with("-@alice set the topic of #keep: Kept across restarts")
    });
    bob.expect("End of recent messages.");
    bob.expect_match("the join", |l| {
        is_event(l, "bob", "just joined channel #keep")
    });
    bob.send_line("/join #gone");
    bob.expect(&others(0));
    bob.expect("Topic of #gone: also kept");
    bob.expect("Recent messages in #gone:");
}

/// Only the last `history_scan_bytes` of the log are read at start-up: a topic before them is
/// forgotten, one inside them is shown.
#[test]
fn topics_come_from_the_scanned_tail_only() {
    let record = |seq: u64, body: &str| {
        format!(r#"{{"ts":"2026-11-27T15:04:05.000Z","seq":{seq},{body}}}"#) + "\n"
    };
    let mut log = record(
        1,
        r##""kind":"topic","nick":"a","channel":"#old","topic":"too old""##,
    );
    for seq in 2..200 {
        log += &record(
            seq,
            r##""kind":"chat","nick":"a","channel":"#x","text":"filler""##,
        );
    }
    log += &record(
        200,
        r##""kind":"topic","nick":"a","channel":"#new","topic":"recent""##,
    );
    let srv = Server::start_with(
        json!({"history_scan_bytes": 4096}),
        StartOptions {
            log_prefill: Some(log.into_bytes()),
            ..StartOptions::default()
        },
    );
    let mut t = srv.user("alice");
    t.send_line("/join #old");
    t.expect(&others(0));
    t.expect_match("the join", |l| {
        is_event(l, "alice", "just joined channel #old")
    });
    t.send_line("/join #new");
    t.expect(&others(0));
    t.expect("Topic of #new: recent");
}
