//! The core driven as a script, asserting the exact actions and strings.

use super::*;
use crate::record::Record;
use std::net::SocketAddr;

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5000))
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Act {
    Send(u32, String),
    Close(u32, CloseReason),
    Log(String),
}

#[derive(Default)]
struct Recorder {
    acts: Vec<Act>,
    fail_log: bool,
    seq: u64,
}

impl Outbox for Recorder {
    fn log(&mut self, _now: Now, record: &Record<'_>) -> Result<u64, LogFailed> {
        if self.fail_log {
            return Err(LogFailed);
        }
        self.acts
            .push(Act::Log(serde_json::to_string(record).unwrap()));
        self.seq += 1;
        Ok(self.seq)
    }
    fn send(&mut self, to: ClientId, text: &str) {
        self.acts.push(Act::Send(to.gen, text.to_string()));
    }
    fn send_many(&mut self, to: &[ClientId], text: &str) {
        for id in to {
            self.send(*id, text);
        }
    }
    fn close(&mut self, id: ClientId, reason: CloseReason) {
        self.acts.push(Act::Close(id.gen, reason));
    }
}

impl Recorder {
    /// The messages sent (not logs), then forget everything.
    fn sent(&mut self) -> Vec<(u32, String)> {
        let out = self
            .acts
            .iter()
            .filter_map(|a| match a {
                Act::Send(to, text) => Some((*to, text.clone())),
                _ => None,
            })
            .collect();
        self.acts.clear();
        out
    }
}

/// 2026-11-27 15:04:05 UTC: kitchen time 3:04PM at offset 0.
const T: i64 = 1_795_791_845_000;

fn now(mono_ms: u64) -> Now {
    Now {
        mono_ms,
        unix_ms: T,
        utc_offset_s: 0,
    }
}

fn id(n: u32) -> ClientId {
    ClientId {
        key: n,
        gen: 100 + n,
    }
}

fn s(to: u32, text: &str) -> (u32, String) {
    (100 + to, text.to_string())
}

struct Script {
    core: ChatCore,
    out: Recorder,
}

impl Script {
    fn new() -> Script {
        Script {
            core: ChatCore::new(CoreConfig {
                nick_timeout_ms: 60_000,
                ..CoreConfig::default()
            }),
            out: Recorder::default(),
        }
    }
    fn connect(&mut self, n: u32) -> Vec<(u32, String)> {
        self.core
            .handle_connect(now(0), id(n), Transport::Telnet, peer(), &mut self.out);
        self.out.sent()
    }
    fn line(&mut self, n: u32, line: &str) -> Vec<(u32, String)> {
        self.core.handle_line(now(1), id(n), line, &mut self.out);
        self.out.sent()
    }
    fn user(&mut self, n: u32, nick: &str) {
        self.connect(n);
        self.line(n, nick);
    }
}

#[test]
fn welcome_counts_identified_users() {
    let mut t = Script::new();
    assert_eq!(
        t.connect(0),
        vec![s(0, "Welcome to chat server. There are 0 other users on this server. please enter a nickname")]
    );
    t.line(0, "alice");
    t.connect(1); // not identified: not counted
    assert_eq!(
        t.connect(2),
        vec![s(2, "Welcome to chat server. There are 1 other users on this server. please enter a nickname")]
    );
}

#[test]
fn nickname_flow_validates_and_is_case_insensitive() {
    let mut t = Script::new();
    t.user(0, "Alice");
    t.connect(1);
    assert_eq!(
        t.line(1, "alice"),
        vec![s(1, "Another user with this nickname is connected to this server, Please enter a different nickname")]
    );
    assert_eq!(t.line(1, "9bad"), vec![s(1, super::strings::NICK_INVALID)]);
    assert_eq!(
        t.line(1, "/join #x"),
        vec![s(1, super::strings::NICK_FIRST)]
    );
    assert_eq!(
        t.line(1, "@bob"),
        vec![s(1, "Thanks bob, now please type /join #channel to join a channel or /help to get all commands")]
    );
    assert_eq!(t.core.nick_of(id(1)), Some("bob"));
}

#[test]
fn a_full_session_script() {
    let mut t = Script::new();
    t.user(0, "alice");
    t.user(1, "bob");
    t.user(2, "carol");

    assert_eq!(
        t.line(0, "hello"),
        vec![s(
            0,
            "You need to join a channel, use /join #channel or use /help for more info."
        )]
    );
    assert_eq!(
        t.line(0, "/join #general"),
        vec![
            s(0, "There are 0 other users in this channel."),
            s(0, "3:04PM-@alice just joined channel #general"),
        ]
    );
    assert_eq!(
        t.line(1, "/join #GENERAL"),
        vec![
            s(1, "There are 1 other users in this channel."),
            s(0, "3:04PM-@bob just joined channel #general"),
            s(1, "3:04PM-@bob just joined channel #general"),
        ]
    );
    assert_eq!(
        t.line(0, "/join #general"),
        vec![s(0, "You are already in channel #general")]
    );
    // Chat is echoed to the sender.
    assert_eq!(
        t.line(1, "hi alice"),
        vec![s(0, "3:04PM-@bob: hi alice"), s(1, "3:04PM-@bob: hi alice")]
    );
    assert_eq!(
        t.line(0, "/list"),
        vec![s(
            0,
            "Here is the list of all users in this channel\n@alice\n@bob"
        )]
    );
    // Private messages reach users in any channel.
    assert_eq!(
        t.line(2, "/msg @Alice psst"),
        vec![
            s(0, "3:04PM - *Private from @carol: psst"),
            s(2, "3:04PM - *Private to @alice: psst"),
        ]
    );
    assert_eq!(
        t.line(0, "/ignore @carol"),
        vec![s(0, "carol is now ignored.")]
    );
    assert_eq!(
        t.line(2, "/msg @alice again"),
        vec![s(
            2,
            "User @alice has ignored you, your message was not delivered."
        )]
    );
    assert_eq!(
        t.line(0, "/ignore @alice"),
        vec![s(0, "You can not ignore yourself.")]
    );
    assert_eq!(
        t.line(0, "/ignore @nobody"),
        vec![s(0, "User @nobody is not connected to this server.")]
    );
    // Moving to another channel leaves the old one.
    assert_eq!(
        t.line(1, "/join #other"),
        vec![
            s(0, "3:04PM-@bob left channel #general"),
            s(1, "There are 0 other users in this channel."),
            s(1, "3:04PM-@bob just joined channel #other"),
        ]
    );
    assert_eq!(
        t.line(0, "/list"),
        vec![s(
            0,
            "Here is the list of all users in this channel\n@alice"
        )]
    );
    // Quit: goodbye, close, and the nick is free at once.
    t.line(1, "/join #general");
    t.core.handle_line(now(1), id(1), "/quit", &mut t.out);
    let all: Vec<Act> = t.out.acts.drain(..).collect();
    assert!(
        all.contains(&Act::Log(
            r#"{"kind":"close","conn":101,"peer":"127.0.0.1:5000","nick":"bob","reason":"quit"}"#
                .into()
        )),
        "{all:?}"
    );
    let acts: Vec<Act> = all
        .into_iter()
        .filter(|a| !matches!(a, Act::Log(_)))
        .collect();
    assert_eq!(
        acts,
        vec![
            Act::Send(101, "Good Bye bob, come back again.".into()),
            Act::Close(101, CloseReason::Quit),
            Act::Send(100, "3:04PM-@bob left channel #general".into()),
        ]
    );
    // The session ended with its close record: the shell reporting the connection gone
    // later changes nothing and logs nothing twice.
    assert_eq!(t.core.nick_of(id(1)), None);
    t.core
        .handle_disconnect(now(1), id(1), CloseReason::Eof, &mut t.out);
    assert!(t.out.acts.is_empty());
    t.connect(3);
    assert_eq!(
        t.line(3, "bob"),
        vec![s(3, "Thanks bob, now please type /join #channel to join a channel or /help to get all commands")]
    );
    // A disconnect without /quit tells the channel too.
    t.line(3, "/join #general");
    t.core
        .handle_disconnect(now(2), id(3), CloseReason::Eof, &mut t.out);
    assert_eq!(
        t.out.sent(),
        vec![s(0, "3:04PM-@bob left channel #general")]
    );
    assert_eq!(
        t.core.stats(),
        Stats {
            sessions: 2,
            users: 2,
            channels: 1
        }
    );
}

#[test]
fn help_is_one_message_in_fixed_order() {
    let mut t = Script::new();
    t.user(0, "alice");
    let sent = t.line(0, "/help");
    assert_eq!(sent.len(), 1);
    let lines: Vec<&str> = sent[0].1.split('\n').collect();
    assert_eq!(lines[0], "Here is the list of all available commands");
    let words: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        words,
        vec![
            "/help",
            "/list",
            "/ignore @nickname",
            "/join #channel",
            "/msg @nickname message",
            "/quit",
            "/nick newnickname",
            "/me action",
            "/topic [text]",
            "/away [message]",
            "/back",
            "/whois @nickname",
            "/channels",
            "/unignore @nickname",
            "/motd",
            "/history [N]",
            "/oper name password",
            "/kick @nickname [reason]",
            "/ban @nickname|address|CIDR [duration] [reason]",
            "/unban @nickname|address|CIDR",
            "/bans",
            "/mute @nickname [duration]",
            "/unmute @nickname",
        ]
    );
}

#[test]
fn every_command_error_is_reported() {
    let mut t = Script::new();
    t.user(0, "alice");
    let cases = [
        (
            "/helpme",
            "Unknown command /helpme, use /help to get all commands.",
        ),
        (
            "/list",
            "You are not in a channel, use /join #channel to join one.",
        ),
        (
            "/join",
            "Could not find the required #channel in the input, use /join #channel",
        ),
        (
            "/msg",
            "Could not find the required @nickname in the input, use /msg @nickname message",
        ),
        (
            "/msg @alice",
            "Could not find the required message in the input, use /msg @nickname message",
        ),
        (
            "/msg @ghost hi",
            "User @ghost is not connected to this server.",
        ),
        (
            "/ignore",
            "Could not find the required @nickname in the input, use /ignore @nickname",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(t.line(0, input), vec![s(0, expected)], "input {input:?}");
    }
    let sent = t.line(0, "/join nohash");
    assert!(
        sent[0].1.starts_with("Invalid channel name nohash"),
        "{sent:?}"
    );
}

#[test]
fn nickname_deadline_closes_unidentified_connections_only() {
    let mut t = Script::new();
    t.connect(0);
    t.user(1, "bob");
    assert_eq!(t.core.next_deadline(), Some(60_000));
    t.core.handle_tick(now(59_999), &mut t.out);
    assert!(t.out.acts.is_empty());
    t.core.handle_tick(now(60_000), &mut t.out);
    assert_eq!(
        t.out.acts,
        vec![
            Act::Send(
                100,
                "You did not enter a nickname in time, good bye.".into()
            ),
            Act::Close(100, CloseReason::NickTimeout),
            Act::Log(
                r#"{"kind":"close","conn":100,"peer":"127.0.0.1:5000","reason":"nick_timeout"}"#
                    .into()
            ),
        ]
    );
    assert_eq!(t.core.stats().sessions, 1);
}

#[test]
fn a_message_that_cannot_be_logged_is_not_sent() {
    let mut t = Script::new();
    t.user(0, "alice");
    t.user(1, "bob");
    t.line(0, "/join #a");
    t.line(1, "/join #a");
    t.out.fail_log = true;
    assert_eq!(t.line(0, "hello"), vec![s(0, super::strings::NOT_LOGGED)]);
    assert_eq!(
        t.line(0, "/msg @bob hi"),
        vec![s(0, super::strings::NOT_LOGGED)]
    );
    assert_eq!(
        t.core.announce(now(1), "x", None, &mut t.out),
        Err(AnnounceError::LogFailed)
    );
    assert!(t.out.sent().is_empty());
    t.out.fail_log = false;
    assert_eq!(
        t.line(0, "hello"),
        vec![s(0, "3:04PM-@alice: hello"), s(1, "3:04PM-@alice: hello")]
    );
}

#[test]
fn chat_is_logged_before_it_is_sent() {
    let mut t = Script::new();
    t.user(0, "alice");
    t.line(0, "/join #a");
    t.out.acts.clear();
    t.core.handle_line(now(1), id(0), "hi", &mut t.out);
    assert_eq!(
        t.out.acts,
        vec![
            Act::Log(r##"{"kind":"chat","nick":"alice","channel":"#a","text":"hi"}"##.into()),
            Act::Send(100, "3:04PM-@alice: hi".into()),
        ]
    );
}

#[test]
fn announcements_reach_everyone_or_one_channel() {
    let mut t = Script::new();
    assert_eq!(
        t.core.announce(now(1), "x", None, &mut t.out),
        Err(AnnounceError::NoUsers)
    );
    t.user(0, "alice");
    t.user(1, "bob");
    t.connect(2); // no nickname: not a recipient
    t.line(0, "/join #a");
    t.out.acts.clear();
    assert_eq!(
        t.core.announce(now(1), "noon", None, &mut t.out),
        Ok(vec!["@alice".to_string(), "@bob".to_string()])
    );
    assert_eq!(
        t.out.sent(),
        vec![
            s(0, "Public Server Announcement: noon"),
            s(1, "Public Server Announcement: noon")
        ]
    );
    assert_eq!(
        t.core.announce(now(1), "a only", Some("#A"), &mut t.out),
        Ok(vec!["@alice".to_string()])
    );
    assert_eq!(
        t.core.announce(now(1), "x", Some("#none"), &mut t.out),
        Err(AnnounceError::UnknownChannel)
    );
}

#[test]
fn shutdown_tells_and_closes_everyone() {
    let mut t = Script::new();
    t.user(0, "alice");
    t.line(0, "/join #a");
    t.connect(1);
    t.out.acts.clear();
    t.core.handle_shutdown(now(1), &mut t.out);
    let acts: Vec<Act> = t
        .out
        .acts
        .drain(..)
        .filter(|a| !matches!(a, Act::Log(_)))
        .collect();
    assert_eq!(
        acts,
        vec![
            Act::Send(100, super::strings::SHUTDOWN.into()),
            Act::Send(101, super::strings::SHUTDOWN.into()),
            Act::Close(100, CloseReason::Shutdown),
            Act::Close(101, CloseReason::Shutdown),
        ]
    );
    assert_eq!(t.core.stats(), Stats::default());
}

#[test]
fn stale_ids_are_ignored() {
    let mut t = Script::new();
    t.user(0, "alice");
    let stale = ClientId { key: 0, gen: 999 };
    t.core.handle_line(now(1), stale, "/join #a", &mut t.out);
    t.core
        .handle_disconnect(now(1), stale, CloseReason::Eof, &mut t.out);
    assert!(t.out.acts.is_empty());
    assert_eq!(t.core.nick_of(id(0)), Some("alice"));
}

mod cluster;
mod commands;
mod history;
mod moderation;
