//! Telnet chat over real sockets: a `chat-server` process on 127.0.0.1, ports picked by the
//! kernel, driven by raw TCP clients (SPEC §3, §4, §7, §8).
//!
//! Ordering, not sleeping, proves that something did NOT happen: the server is one thread, so
//! when a client gets a later message (a sentinel) it would already have got any earlier one.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const NOT_IN_CHANNEL: &str =
    "You need to join a channel, use /join #channel or use /help for more info.";
const LIST_NOT_IN_CHANNEL: &str = "You are not in a channel, use /join #channel to join one.";
const NICK_TAKEN: &str =
    "Another user with this nickname is connected to this server, Please enter a different nickname";
const INVALID_UTF8: &str = "Your message was not valid UTF-8 text and was not sent.";
const TOO_LONG_512: &str = "Your message is longer than 512 bytes and was not sent.";
const LIST_HEADER: &str = "Here is the list of all users in this channel";
const MSG_NEEDS_NICK: &str =
    "Could not find the required @nickname in the input, use /msg @nickname message";
const MSG_NEEDS_TEXT: &str =
    "Could not find the required message in the input, use /msg @nickname message";
const IGNORE_NEEDS_NICK: &str =
    "Could not find the required @nickname in the input, use /ignore @nickname";
const JOIN_NEEDS_CHANNEL: &str =
    "Could not find the required #channel in the input, use /join #channel";

fn expect_chat(t: &mut Telnet, nick: &str, text: &str) {
    t.expect_match(&format!("the chat line @{nick}: {text:?}"), |l| {
        is_chat(l, nick, text)
    });
}

fn expect_event(t: &mut Telnet, nick: &str, what: &str) {
    t.expect_match(&format!("<KITCHEN>-@{nick} {what}"), |l| {
        is_event(l, nick, what)
    });
}

/// Proves `t` got nothing since its last read: `from` sends it a private message, which must
/// be the very next line.
fn expect_nothing_before_sentinel(
    t: &mut Telnet,
    t_nick: &str,
    from: &mut Telnet,
    from_nick: &str,
) {
    let text = format!("sentinel for {t_nick}");
    from.send_line(&format!("/msg @{t_nick} {text}"));
    from.expect_match("the sender's copy of the sentinel", |l| {
        is_private_to(l, t_nick, &text)
    });
    t.expect_match(
        "the sentinel private message (and nothing before it)",
        |l| is_private_from(l, from_nick, &text),
    );
}

/// The `conn` number of the connection that took `nick` (from its `nick` log record).
fn conn_of(srv: &Server, nick: &str) -> Value {
    srv.wait_log(&format!("nick {nick}"), DEADLINE, |r| {
        r["kind"] == "nick" && r["nick"] == nick
    })["conn"]
        .clone()
}

/// Waits for the `close` record of `nick`'s connection with `reason`.
fn wait_close(srv: &Server, nick: &str, reason: &str) {
    let conn = conn_of(srv, nick);
    srv.wait_log(
        &format!("close of {nick} ({conn}), reason {reason}"),
        DEADLINE,
        |r| r["kind"] == "close" && r["conn"] == conn && r["reason"] == reason,
    );
}

fn fast_lines() -> Value {
    json!({"lines_burst": 1_000_000, "lines_per_s": 1_000_000.0})
}

// ================================================================================ §4 session

#[test]
fn greeting_counts_users_and_nicknames_are_checked() {
    let srv = Server::start_default();

    let mut a = srv.telnet();
    a.expect(&welcome(0));
    // Invalid nicknames: each gets a notice that says what is allowed, then a new try.
    for bad in ["9lives", "al ice", "bad!nick", &"n".repeat(25), "é"] {
        a.send_line(bad);
        let notice = a.next_line();
        assert!(
            notice.to_lowercase().contains("nickname") && notice != thanks(bad),
            "invalid nickname {bad:?} got {notice:?}"
        );
    }
    a.send_line("alice");
    a.expect(&thanks("alice"));

    // The count is of identified users; a connection without a nickname is not counted.
    let mut anon = srv.telnet();
    anon.expect(&welcome(1));

    let mut b = srv.telnet();
    b.expect(&welcome(1));
    b.send_line("alice");
    b.expect(NICK_TAKEN);
    b.send_line("ALICE"); // uniqueness is case-insensitive
    b.expect(NICK_TAKEN);
    b.send_line("@bob"); // a typed leading @ is dropped
    b.expect(&thanks("bob"));

    let mut c = srv.telnet();
    c.expect(&welcome(2));
    c.send_line("Bob");
    c.expect(NICK_TAKEN);
    c.send_line(&"c".repeat(24)); // 24 characters is the longest valid nickname
    c.expect(&thanks(&"c".repeat(24)));

    let mut d = srv.telnet();
    d.expect(&welcome(3));

    let nicks: Vec<String> = srv
        .log_kind("nick")
        .iter()
        .map(|r| r["nick"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(nicks, ["alice", "bob", &"c".repeat(24)]);
}

#[test]
fn help_lists_every_command_in_fixed_order() {
    let srv = Server::start_default();
    let mut a = srv.user("alice");
    for _ in 0..2 {
        a.send_line("/help");
        a.expect(HELP_HEADER);
        let expected = [
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
        ];
        for syntax in expected {
            let line = a.next_line();
            let (got, description) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("help line without a TAB: {line:?}"));
            assert_eq!(got, syntax, "help line {line:?}");
            assert!(!description.trim().is_empty(), "help line {line:?}");
        }
        // Nothing else follows: the next reply is the next command's.
        a.send_line("/list");
        a.expect(LIST_NOT_IN_CHANNEL);
    }
    // `/help` with extra words is still /help; `/helpme` is not.
    a.send_line("/helpme");
    a.expect("Unknown command /helpme, use /help to get all commands.");
}

#[test]
fn join_list_and_chat_reach_exactly_the_channel() {
    let srv = Server::start_default();
    let mut a = srv.user("alice");
    let mut b = srv.user("bob");
    let mut c = srv.user("carol");

    // Outside a channel: chat and /list are refused with a notice.
    a.send_line("hello?");
    a.expect(NOT_IN_CHANNEL);
    a.send_line("/list");
    a.expect(LIST_NOT_IN_CHANNEL);

    a.send_line("/join #general");
    a.expect(&others(0));
    expect_event(&mut a, "alice", "just joined channel #general");

    // Channel names are case-insensitive; the channel keeps its first spelling.
    b.send_line("/join #GENERAL");
    b.expect(&others(1));
    expect_event(&mut b, "bob", "just joined channel #general");
    expect_event(&mut a, "bob", "just joined channel #general");

    // Joining the channel you are in is an error notice, and nobody else hears of it.
    b.send_line("/join #general");
    b.expect("You are already in channel #general");

    c.send_line("/join #random");
    c.expect(&others(0));
    expect_event(&mut c, "carol", "just joined channel #random");

    // Bad /join arguments.
    c.send_line("/join");
    c.expect(JOIN_NEEDS_CHANNEL);
    c.send_line("/join random");
    let notice = c.next_line();
    assert!(
        notice.starts_with("Invalid channel name"),
        "/join random gave {notice:?}"
    );

    a.send_line("/list");
    a.expect(LIST_HEADER);
    let members: BTreeSet<String> = [a.next_line(), a.next_line()].into_iter().collect();
    assert_eq!(
        members,
        BTreeSet::from(["@alice".to_string(), "@bob".to_string()])
    );
    c.send_line("/list");
    c.expect(LIST_HEADER);
    c.expect("@carol");

    // Chat goes to every member of the sender's channel, the sender included...
    a.send_line("hello everyone");
    expect_chat(&mut a, "alice", "hello everyone");
    expect_chat(&mut b, "alice", "hello everyone");
    b.send_line("hi alice");
    expect_chat(&mut b, "bob", "hi alice");
    expect_chat(&mut a, "bob", "hi alice");
    // ...and to nobody in another channel.
    expect_nothing_before_sentinel(&mut c, "carol", &mut a, "alice");
    c.send_line("anyone here?");
    expect_chat(&mut c, "carol", "anyone here?");
    expect_nothing_before_sentinel(&mut a, "alice", &mut b, "bob");
    expect_nothing_before_sentinel(&mut b, "bob", &mut c, "carol");

    // Moving to another channel: the old channel hears `left`, the new one `just joined`.
    b.send_line("/join #random");
    b.expect(&others(1));
    // What was said in #random before (SPEC §12).
    b.expect("Recent messages in #random:");
    b.wait_for("the end of the replay", |l| l == "End of recent messages.");
    expect_event(&mut b, "bob", "just joined channel #random");
    expect_event(&mut c, "bob", "just joined channel #random");
    expect_event(&mut a, "bob", "left channel #general");
    b.send_line("back");
    expect_chat(&mut b, "bob", "back");
    expect_chat(&mut c, "bob", "back");
    expect_nothing_before_sentinel(&mut a, "alice", &mut c, "carol");

    // The log has the chat records with their channels.
    let chats: Vec<(String, String, String)> = srv
        .log_kind("chat")
        .iter()
        .map(|r| {
            (
                r["nick"].as_str().unwrap().to_owned(),
                r["channel"].as_str().unwrap().to_owned(),
                r["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("alice", "#general", "hello everyone"),
        ("bob", "#general", "hi alice"),
        ("carol", "#random", "anyone here?"),
        ("bob", "#random", "back"),
    ]
    .map(|(n, c, t)| (n.to_owned(), c.to_owned(), t.to_owned()));
    assert_eq!(chats, want);
}

#[test]
fn private_messages_cross_channels_and_report_every_error() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#one");
    let mut b = srv.user_in("bob", "#two");
    let mut c = srv.user("carol"); // in no channel

    a.send_line("/msg @bob psst, bob");
    a.expect_match("the sender's copy", |l| {
        is_private_to(l, "bob", "psst, bob")
    });
    b.expect_match("the recipient's copy", |l| {
        is_private_from(l, "alice", "psst, bob")
    });

    // The nickname is case-insensitive; the sender sees the recipient's real spelling.
    c.send_line("/msg @ALICE hi from nowhere");
    c.expect_match("the sender's copy", |l| {
        is_private_to(l, "alice", "hi from nowhere")
    });
    a.expect_match("the recipient's copy", |l| {
        is_private_from(l, "carol", "hi from nowhere")
    });

    // Errors, each with its own notice to the sender only.
    a.send_line("/msg bob no at sign");
    a.expect(MSG_NEEDS_NICK);
    a.send_line("/msg");
    a.expect(MSG_NEEDS_NICK);
    a.send_line("/msg @nobody hello");
    a.expect("User @nobody is not connected to this server.");
    a.send_line("/msg @bob");
    a.expect(MSG_NEEDS_TEXT);
    a.send_line("/msg @bob    ");
    a.expect(MSG_NEEDS_TEXT);
    expect_nothing_before_sentinel(&mut b, "bob", &mut c, "carol");

    // A private message is not chat: nobody in the sender's channel sees it.
    let mut d = srv.user_in("dave", "#one");
    expect_event(&mut a, "dave", "just joined channel #one");
    a.send_line("/msg @bob secret");
    a.expect_match("the sender's copy", |l| is_private_to(l, "bob", "secret"));
    b.expect_match("the recipient's copy", |l| {
        is_private_from(l, "alice", "secret")
    });
    expect_nothing_before_sentinel(&mut d, "dave", &mut c, "carol");

    let privates: Vec<(String, String, String)> = srv
        .log_kind("private")
        .iter()
        .map(|r| {
            (
                r["from"].as_str().unwrap().to_owned(),
                r["to"].as_str().unwrap().to_owned(),
                r["text"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(_, _, t)| !t.starts_with("sentinel"))
        .collect();
    let want = [
        ("alice", "bob", "psst, bob"),
        ("carol", "alice", "hi from nowhere"),
        ("alice", "bob", "secret"),
    ]
    .map(|(f, t, x)| (f.to_owned(), t.to_owned(), x.to_owned()));
    assert_eq!(privates, want);
}

#[test]
fn ignore_blocks_private_messages_and_reports_errors() {
    let srv = Server::start_default();
    let mut a = srv.user("alice");
    let mut b = srv.user("bob");
    let mut c = srv.user("carol");

    c.send_line("/ignore @alice");
    c.expect("alice is now ignored.");

    a.send_line("/msg @carol are you there?");
    a.expect("User @carol has ignored you, your message was not delivered.");
    // carol got nothing from alice: bob's sentinel is her next line.
    expect_nothing_before_sentinel(&mut c, "carol", &mut b, "bob");
    // Others can still write to carol, and carol can still write to alice.
    c.send_line("/msg @alice one way");
    c.expect_match("the sender's copy", |l| {
        is_private_to(l, "alice", "one way")
    });
    a.expect_match("the recipient's copy", |l| {
        is_private_from(l, "carol", "one way")
    });

    // Errors.
    c.send_line("/ignore @nobody");
    c.expect("User @nobody is not connected to this server.");
    c.send_line("/ignore @carol");
    c.expect("You can not ignore yourself.");
    c.send_line("/ignore @CAROL");
    c.expect("You can not ignore yourself.");
    c.send_line("/ignore");
    c.expect(IGNORE_NEEDS_NICK);
    c.send_line("/ignore bob");
    c.expect(IGNORE_NEEDS_NICK);

    // Nothing reached alice or bob from any of that.
    expect_nothing_before_sentinel(&mut a, "alice", &mut b, "bob");
    expect_nothing_before_sentinel(&mut b, "bob", &mut a, "alice");
}

#[test]
fn unknown_commands_are_reported_not_sent_as_chat() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");

    for (line, word) in [
        ("/helpme", "/helpme"),
        ("/joinx #room", "/joinx"),
        ("/quitter", "/quitter"),
        ("/HELP", "/HELP"),
        ("/foo bar baz", "/foo"),
    ] {
        a.send_line(line);
        a.expect(&format!(
            "Unknown command {word}, use /help to get all commands."
        ));
    }
    expect_nothing_before_sentinel(&mut b, "bob", &mut a, "alice");
    // Still connected and in the channel.
    a.send_line("still here");
    expect_chat(&mut a, "alice", "still here");
    expect_chat(&mut b, "alice", "still here");
}

#[test]
fn quit_says_goodbye_closes_and_frees_the_nickname_at_once() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");

    b.send_line("/quit");
    b.expect("Good Bye bob, come back again.");
    let rest = b.assert_closed_within(DEADLINE);
    assert!(rest.bytes.is_empty(), "bytes after the goodbye: {rest:?}");
    expect_event(&mut a, "bob", "left channel #room");

    // The nickname is free again immediately.
    let mut b2 = srv.telnet();
    b2.expect(&welcome(1));
    b2.send_line("BOB");
    b2.expect(&thanks("BOB"));

    // /quit before choosing a nickname.
    let mut anon = srv.telnet();
    anon.expect(&welcome(2));
    anon.send_line("/quit");
    anon.expect("Good Bye, come back again.");
    anon.assert_closed_within(DEADLINE);

    wait_close(&srv, "bob", "quit");
}

#[test]
fn closing_the_socket_frees_the_nickname_tells_the_channel_and_stays_idle() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");
    let mut c = srv.user_in("carol", "#room");
    expect_event(&mut a, "carol", "just joined channel #room");

    a.timeout = Duration::from_secs(5);
    drop(b); // close without /quit
    expect_event(&mut a, "bob", "left channel #room");
    expect_event(&mut c, "bob", "left channel #room");

    // Half-close: the client still reads but will send nothing more.
    c.shutdown_write();
    expect_event(&mut a, "carol", "left channel #room");
    c.assert_closed_within(DEADLINE);
    a.timeout = DEADLINE;

    // Both nicknames are free at once.
    let mut b2 = srv.telnet();
    b2.expect(&welcome(1));
    b2.send_line("bob");
    b2.expect(&thanks("bob"));
    let _c2 = srv.user("carol");

    // A connection that never chose a nickname, closed abruptly.
    let anon = srv.telnet();
    drop(anon);

    // Every one of them is logged as closed by the peer: a clean EOF, or a reset where the
    // client closed with unread data.
    let bob_conn = conn_of(&srv, "bob"); // the first bob
    let carol_conn = conn_of(&srv, "carol");
    let end = Instant::now() + DEADLINE;
    loop {
        let records = srv.log_records();
        let named: Vec<Value> = records
            .iter()
            .filter(|r| r["kind"] == "nick")
            .map(|r| r["conn"].clone())
            .collect();
        let by_peer = |want: &dyn Fn(&Value) -> bool| {
            records.iter().any(|r| {
                r["kind"] == "close"
                    && want(&r["conn"])
                    && (r["reason"] == "eof" || r["reason"] == "io_error")
            })
        };
        if by_peer(&|c| *c == bob_conn)
            && by_peer(&|c| *c == carol_conn)
            && by_peer(&|c| !named.contains(c))
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "missing close records; log:\n{}",
            render_records(&records)
        );
        thread::sleep(Duration::from_millis(20));
    }

    // A dead connection never spins the loop: the server idles afterwards.
    let (cpu, wall) = srv.cpu_during(Duration::from_secs(2), || {});
    assert!(
        cpu < 0.5 * wall,
        "the server used {cpu:.2} s of CPU in {wall:.2} s after disconnects (busy loop?)"
    );

    // And it still serves.
    a.send_line("anyone?");
    expect_chat(&mut a, "alice", "anyone?");
}

// ================================================================================ §3 telnet

#[test]
fn ctrl_c_timing_mark_is_answered_and_the_session_continues() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");

    // What Linux telnet sends on Ctrl-C: IAC IP, IAC DO TIMING-MARK.
    a.send_raw(&[0xff, 0xf4, 0xff, 0xfd, 0x06]);
    a.expect_bytes(&[0xff, 0xfb, 0x06]);
    a.send_line("after ctrl-c");
    expect_chat(&mut a, "alice", "after ctrl-c");
    expect_chat(&mut b, "alice", "after ctrl-c");

    // IAC IP discards the partial line typed before it.
    a.send_raw(b"half a line");
    a.send_raw(&[0xff, 0xf4, 0xff, 0xfd, 0x06]);
    a.expect_bytes(&[0xff, 0xfb, 0x06]);
    a.send_raw(b"fresh line\r\n");
    expect_chat(&mut a, "alice", "fresh line");
    expect_chat(&mut b, "alice", "fresh line");
}

#[test]
fn telnet_negotiation_is_refused_and_stripped() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");

    let mut bytes = Vec::new();
    bytes.extend_from_slice(&[0xff, 0xfd, 0x01]); // DO ECHO
    bytes.extend_from_slice(&[0xff, 0xfb, 0x1f]); // WILL NAWS
    bytes.extend_from_slice(&[0xff, 0xfc, 0x03]); // WONT SGA: ignored
    bytes.extend_from_slice(&[0xff, 0xfe, 0x03]); // DONT SGA: ignored
    bytes.extend_from_slice(&[0xff, 0xfd, 0x18]); // DO TERMINAL-TYPE
    bytes.extend_from_slice(&[0xff, 0xfb, 0x18]); // WILL TERMINAL-TYPE
    bytes.extend_from_slice(b"he");
    // SB TERMINAL-TYPE IS "xterm" IAC SE, in the middle of the line.
    bytes.extend_from_slice(&[0xff, 0xfa, 0x18, 0x00]);
    bytes.extend_from_slice(b"xterm");
    bytes.extend_from_slice(&[0xff, 0xf0]);
    bytes.extend_from_slice(b"llo");
    bytes.extend_from_slice(&[0xff, 0xf1]); // NOP
    bytes.extend_from_slice(b"\r\n");
    a.send_raw(&bytes);
    a.expect_bytes(&[
        0xff, 0xfc, 0x01, // WONT ECHO
        0xff, 0xfe, 0x1f, // DONT NAWS
        0xff, 0xfc, 0x18, // WONT TERMINAL-TYPE
        0xff, 0xfe, 0x18, // DONT TERMINAL-TYPE
    ]);
    expect_chat(&mut a, "alice", "hello");
    expect_chat(&mut b, "alice", "hello");

    // Negotiation split across writes is still understood.
    a.send_raw(&[0xff]);
    thread::sleep(Duration::from_millis(50));
    a.send_raw(&[0xfd]);
    thread::sleep(Duration::from_millis(50));
    a.send_raw(&[0x22]); // DO LINEMODE
    a.expect_bytes(&[0xff, 0xfc, 0x22]);
    a.send_line("split negotiation");
    expect_chat(&mut a, "alice", "split negotiation");
    expect_chat(&mut b, "alice", "split negotiation");
    // b never saw any negotiation bytes: its lines were all clean chat lines.
    assert!(
        b.seen().iter().all(|l| !l.contains('\u{fffd}')),
        "{:?}",
        b.seen()
    );
}

#[test]
fn invalid_utf8_is_rejected_and_never_relayed() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");

    a.send_raw(b"caf\xe9 au lait\r\n");
    a.expect(INVALID_UTF8);
    a.send_raw(b"\xc3\x28\r\n");
    a.expect(INVALID_UTF8);
    a.send_raw("café au lait ☕\r\n".as_bytes());
    expect_chat(&mut a, "alice", "café au lait ☕");
    expect_chat(&mut b, "alice", "café au lait ☕");

    let texts: Vec<Value> = srv
        .log_kind("chat")
        .iter()
        .map(|r| r["text"].clone())
        .collect();
    assert_eq!(texts, [json!("café au lait ☕")]);
}

#[test]
fn overlong_line_is_rejected_and_never_relayed() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");

    let long = "x".repeat(513);
    a.send_line(&long);
    a.expect(TOO_LONG_512);
    // The limit is inclusive: 512 bytes pass.
    let max = "y".repeat(512);
    a.send_line(&max);
    expect_chat(&mut a, "alice", &max);
    expect_chat(&mut b, "alice", &max);
    // Multi-byte: 171 × 3 bytes = 513 bytes.
    a.send_line(&"€".repeat(171));
    a.expect(TOO_LONG_512);
    a.send_line("short");
    expect_chat(&mut a, "alice", "short");
    expect_chat(&mut b, "alice", "short");

    let texts: Vec<Value> = srv
        .log_kind("chat")
        .iter()
        .map(|r| r["text"].clone())
        .collect();
    assert_eq!(texts, [json!(max), json!("short")]);
}

#[test]
fn escape_sequences_and_control_characters_are_removed() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");

    a.send_raw(b"\x1b[2J\x1b]0;title\x07hello\r\n");
    expect_chat(&mut a, "alice", "hello");
    expect_chat(&mut b, "alice", "hello");

    a.send_raw("be\x07l\x7fl\u{9b}31m \x1b[1;31mred\x1b[0m\tTAB\r\n".as_bytes());
    expect_chat(&mut a, "alice", "bell red\tTAB");
    expect_chat(&mut b, "alice", "bell red\tTAB");

    // A line that is nothing but escapes is empty: nothing is sent.
    a.send_raw(b"\x1b[2J\x1b[H\r\n");
    a.send_line("after");
    expect_chat(&mut a, "alice", "after");
    expect_chat(&mut b, "alice", "after");

    let texts: Vec<Value> = srv
        .log_kind("chat")
        .iter()
        .map(|r| r["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [json!("hello"), json!("bell red\tTAB"), json!("after")]
    );
}

#[test]
fn split_lines_and_several_lines_in_one_write() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");

    // One line in many writes (paced so that the server most likely reads them apart).
    for piece in ["he", "llo ", "wor", "ld", "\r", "\n"] {
        a.send_raw(piece.as_bytes());
        thread::sleep(Duration::from_millis(30));
    }
    expect_chat(&mut a, "alice", "hello world");
    expect_chat(&mut b, "alice", "hello world");
    // A multi-byte character split between writes.
    let snow = "snow ☃".as_bytes();
    a.send_raw(&snow[..snow.len() - 1]);
    thread::sleep(Duration::from_millis(30));
    a.send_raw(&snow[snow.len() - 1..]);
    a.send_raw(b"\n");
    expect_chat(&mut a, "alice", "snow ☃");
    expect_chat(&mut b, "alice", "snow ☃");

    // Several lines in one write, with every line end: CR LF, LF, CR NUL.
    a.send_raw(b"one\r\ntwo\nthree\r\0four\r\n");
    for text in ["one", "two", "three", "four"] {
        expect_chat(&mut a, "alice", text);
        expect_chat(&mut b, "alice", text);
    }
    // Blank lines are ignored.
    a.send_raw(b"\r\n\r\n   \r\nfive\r\n");
    expect_chat(&mut a, "alice", "five");
    expect_chat(&mut b, "alice", "five");

    // Even a command and a chat line in one write.
    a.send_raw(b"/list\r\nsix\r\n");
    a.expect(LIST_HEADER);
    let m: BTreeSet<String> = [a.next_line(), a.next_line()].into_iter().collect();
    assert_eq!(m, BTreeSet::from(["@alice".into(), "@bob".into()]));
    expect_chat(&mut a, "alice", "six");
    expect_chat(&mut b, "alice", "six");
}

#[test]
fn four_kib_without_a_newline_closes_the_connection() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");

    // Exactly 4096 bytes without a newline are still allowed (too long a line, though).
    b.send_raw(&[b'z'; 4096]);
    b.send_raw(b"\r\n");
    b.expect(TOO_LONG_512);
    b.send_line("still open");
    expect_chat(&mut b, "bob", "still open");
    expect_chat(&mut a, "bob", "still open");

    // One more byte and the connection is closed.
    let _ = b.try_send_raw(&[b'z'; 4097]);
    b.assert_closed_within(DEADLINE);
    expect_event(&mut a, "bob", "left channel #room");
    wait_close(&srv, "bob", "input_overflow");

    // Also before a nickname was chosen, and with a much larger flood.
    let mut c = srv.telnet();
    c.expect(&welcome(1));
    let _ = c.try_send_raw(&vec![b'q'; 64 * 1024]);
    c.assert_closed_within(DEADLINE);
}

#[test]
fn http_request_as_first_line_closes_the_connection() {
    let srv = Server::start_default();
    let mut h = srv.telnet();
    h.expect(&welcome(0));
    let _ = h.try_send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    h.assert_closed_within(DEADLINE);
    srv.wait_log("close http_on_telnet", DEADLINE, |r| {
        r["kind"] == "close" && r["reason"] == "http_on_telnet"
    });

    // Only the first line counts: later, it is just chat text.
    let mut a = srv.user_in("alice", "#room");
    a.send_line("GET / HTTP/1.1");
    expect_chat(&mut a, "alice", "GET / HTTP/1.1");
}

// ================================================================================ §8 limits

/// Reads chat lines from a clone of a client's socket on a thread, until `stop` and a quiet
/// read, or EOF. Counts them as they come, so the writer can pace itself.
struct Collector {
    count: Arc<AtomicUsize>,
    handle: thread::JoinHandle<(Vec<String>, Vec<String>)>,
}

fn collect_chat(t: &Telnet, stop: Arc<AtomicBool>) -> Collector {
    let mut stream = t.stream().try_clone().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let handle = thread::spawn(move || {
        let mut chats = Vec::new();
        let mut other = Vec::new();
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 65536];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                Err(_) => break,
            }
            let mut start = 0;
            while let Some(i) = buf[start..].windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&buf[start..start + i]).into_owned();
                start += i + 2;
                if parse_chat(&line).is_some() {
                    chats.push(line);
                    counter.fetch_add(1, Ordering::SeqCst);
                } else {
                    other.push(line);
                }
            }
            buf.drain(..start);
        }
        (chats, other)
    });
    Collector { count, handle }
}

fn wait_count(count: &AtomicUsize, n: usize, what: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    while count.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < end,
            "{what}: {} of {n} messages after 20 s",
            count.load(Ordering::SeqCst)
        );
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_client_that_never_reads_is_cut_off_while_others_get_everything() {
    let mut config = fast_lines();
    config["output_hard_limit_bytes"] = json!(65536);
    config["output_soft_limit_bytes"] = json!(16384);
    config["output_soft_limit_s"] = json!(1);
    // Long lines: fewer of them are needed to fill the kernel's buffers (about 4 MB).
    config["max_line_bytes"] = json!(4000);
    let srv = Server::start(config);

    let mut reader = srv.user_in("reader", "#flood");
    let stalled = srv.user_in("stalled", "#flood");
    expect_event(&mut reader, "stalled", "just joined channel #flood");
    let mut writer = srv.user_in("writer", "#flood");
    expect_event(&mut reader, "writer", "just joined channel #flood");

    let stop = Arc::new(AtomicBool::new(false));
    let r = collect_chat(&reader, stop.clone());
    let w = collect_chat(&writer, stop.clone());

    let pad = "p".repeat(3900);
    let mut sent: Vec<String> = Vec::new();
    let stalled_conn = conn_of(&srv, "stalled");
    let overflowed = |srv: &Server| {
        srv.log_kind("close")
            .iter()
            .any(|c| c["conn"] == stalled_conn && c["reason"] == "output_overflow")
    };
    let start = Instant::now();
    // Send in paced batches of ~39 KB, each fully received by the reader and the writer
    // before the next (so their own queues stay far below the caps however slowly they are
    // scheduled), until the stalled client is disconnected; then a few more batches to show
    // that the others go on.
    let mut extra_batches = 3;
    while extra_batches > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(180) && sent.len() < 20_000,
            "the stalled client was not disconnected after {} messages; log:\n{}",
            sent.len(),
            render_records(&srv.log_kind("close"))
        );
        let mut batch = Vec::new();
        for _ in 0..10 {
            let text = format!("m{:07} {pad}", sent.len());
            batch.extend_from_slice(text.as_bytes());
            batch.extend_from_slice(b"\r\n");
            sent.push(text);
        }
        writer.send_raw(&batch);
        wait_count(&r.count, sent.len(), "reader");
        wait_count(&w.count, sent.len(), "writer");
        if overflowed(&srv) {
            extra_batches -= 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (r_chats, r_other) = r.handle.join().unwrap();
    let (w_chats, _) = w.handle.join().unwrap();

    let want: Vec<(String, String)> = sent
        .iter()
        .map(|t| ("writer".to_owned(), t.clone()))
        .collect();
    let as_pairs = |lines: &[String]| -> Vec<(String, String)> {
        lines
            .iter()
            .map(|l| {
                let (n, t) = parse_chat(l).unwrap();
                (n.to_owned(), t.to_owned())
            })
            .collect()
    };
    assert!(
        as_pairs(&r_chats) == want,
        "the reader missed or reordered messages ({} received, {} sent)",
        r_chats.len(),
        want.len()
    );
    assert!(as_pairs(&w_chats) == want, "the writer's echo differs");
    assert!(
        r_other
            .iter()
            .any(|l| is_event(l, "stalled", "left channel #flood")),
        "the reader was not told that the stalled client left: {r_other:?}"
    );

    // The stalled client got an in-order prefix of the messages, then the end.
    let mut stalled = stalled;
    let closed = stalled.assert_closed_within(DEADLINE);
    let lines = closed.lines();
    let got: Vec<&str> = lines
        .iter()
        .filter_map(|l| parse_chat(l).map(|(_, t)| t))
        .collect();
    let complete = if closed.bytes.ends_with(b"\r\n") {
        got.len()
    } else {
        got.len().saturating_sub(1)
    };
    for (i, text) in got[..complete].iter().enumerate() {
        assert_eq!(*text, sent[i], "the stalled client's message {i}");
    }
    assert!(
        complete < sent.len(),
        "the stalled client received everything?"
    );

    // Bounded memory: the server never buffered the flood for the stalled client.
    let rss = srv.rss_kib();
    assert!(rss < 200 * 1024, "server RSS {rss} KiB after the flood");
}

#[test]
fn the_log_holds_every_chat_once_in_delivery_order() {
    let srv = Server::start(fast_lines());
    let mut rx = srv.user_in("rx", "#log");
    let mut senders: Vec<(String, Telnet)> = Vec::new();
    for nick in ["ann", "ben", "cid"] {
        let t = srv.user_in(nick, "#log");
        expect_event(&mut rx, nick, "just joined channel #log");
        senders.push((nick.to_owned(), t));
    }
    // Everyone's join notices are consumed, so from now on every line is a chat line.
    for i in 0..senders.len() {
        for later in senders[i + 1..]
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
        {
            let t = &mut senders[i].1;
            expect_event(t, &later, "just joined channel #log");
        }
    }

    const PER_SENDER: usize = 60;
    let barrier = Arc::new(std::sync::Barrier::new(senders.len()));
    let handles: Vec<_> = senders
        .iter()
        .map(|(nick, t)| {
            let mut stream = t.stream().try_clone().unwrap();
            let nick = nick.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                for i in 0..PER_SENDER {
                    // Some alone, some several per write, to interleave in every way.
                    let line = format!("{nick} says {i:03} \"quoted\" \\ {{json}}\r\n");
                    stream.write_all(line.as_bytes()).unwrap();
                    if i % 7 == 0 {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }

    let total = PER_SENDER * senders.len();
    let read_all = |t: &mut Telnet| -> Vec<(String, String)> {
        (0..total)
            .map(|_| {
                let line = t.next_line();
                let (n, x) =
                    parse_chat(&line).unwrap_or_else(|| panic!("not a chat line: {line:?}"));
                (n.to_owned(), x.to_owned())
            })
            .collect()
    };
    let received = read_all(&mut rx);
    let logged: Vec<(String, String)> = srv
        .log_kind("chat")
        .iter()
        .map(|r| {
            assert_eq!(r["channel"], "#log");
            (
                r["nick"].as_str().unwrap().to_owned(),
                r["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(logged.len(), total, "chat records in the log");
    assert_eq!(logged, received, "log order vs. what a receiver saw");
    let unique: BTreeSet<&(String, String)> = logged.iter().collect();
    assert_eq!(unique.len(), total, "a message is logged twice");
    for (nick, t) in &mut senders {
        let got = read_all(t);
        assert_eq!(got, logged, "what {nick} received vs. the log");
        // Each sender's own lines are in the order sent.
        let own: Vec<&String> = got
            .iter()
            .filter(|(n, _)| n == nick)
            .map(|(_, x)| x)
            .collect();
        for (i, text) in own.iter().enumerate() {
            assert_eq!(**text, format!("{nick} says {i:03} \"quoted\" \\ {{json}}"));
        }
    }
    // seq strictly increases through the whole log.
    let seqs: Vec<u64> = srv
        .log_records()
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq not increasing: {seqs:?}"
    );
}

#[test]
fn sigterm_tells_every_client_and_exits_zero() {
    let mut srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user("bob");
    let mut c = srv.telnet(); // no nickname yet
    c.expect(&welcome(2));

    srv.sigterm();
    for t in [&mut a, &mut b, &mut c] {
        t.expect(SHUTDOWN);
        let rest = t.assert_closed_within(DEADLINE);
        assert!(rest.bytes.is_empty(), "after the shutdown notice: {rest:?}");
    }
    let status = srv.wait_exit(DEADLINE).unwrap_or_else(|| {
        panic!(
            "still running 10 s after SIGTERM; stderr:\n{}",
            srv.stderr_text()
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; stderr:\n{}",
        srv.stderr_text()
    );

    let records = srv.log_records();
    assert_eq!(
        records.first().map(|r| r["kind"].clone()),
        Some(json!("server_start"))
    );
    assert_eq!(
        records.last().map(|r| r["kind"].clone()),
        Some(json!("server_stop")),
        "log:\n{}",
        render_records(&records)
    );
    // New connections are refused once the server is gone.
    assert!(std::net::TcpStream::connect(srv.telnet_addr()).is_err());
}

#[test]
fn sigterm_with_idle_clients_that_never_read_still_exits() {
    let mut srv = Server::start(json!({"shutdown_grace_s": 1}));
    let _a = srv.user_in("alice", "#room");
    let _b = srv.user_in("bob", "#room");
    srv.sigterm();
    let status = srv.wait_exit(DEADLINE).unwrap_or_else(|| {
        panic!(
            "still running 10 s after SIGTERM; stderr:\n{}",
            srv.stderr_text()
        )
    });
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_nickname_deadline_closes_a_silent_connection_with_a_notice() {
    let srv = Server::start(json!({"nick_timeout_s": 0.5}));
    let mut t = srv.telnet();
    t.expect(&welcome(0));
    t.expect(NICK_TIMEOUT);
    let rest = t.assert_closed_within(DEADLINE);
    assert!(rest.bytes.is_empty(), "after the notice: {rest:?}");
    srv.wait_log("close nick_timeout", DEADLINE, |r| {
        r["kind"] == "close" && r["reason"] == "nick_timeout"
    });
}

#[test]
fn the_rate_limit_delays_lines_but_never_drops_them() {
    let srv = Server::start(json!({"lines_burst": 3, "lines_per_s": 2}));
    let mut rx = srv.user_in("rx", "#rl");
    let mut tx = srv.user_in("tx", "#rl");
    expect_event(&mut rx, "tx", "just joined channel #rl");

    let mut burst = Vec::new();
    for i in 0..10 {
        burst.extend_from_slice(format!("line {i}\r\n").as_bytes());
    }
    tx.send_raw(&burst);
    rx.timeout = Duration::from_secs(20);
    let start = Instant::now();
    let mut first = None;
    for i in 0..10 {
        expect_chat(&mut rx, "tx", &format!("line {i}"));
        first.get_or_insert_with(Instant::now);
    }
    let spread = first.unwrap().elapsed();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "10 lines took {:?}",
        start.elapsed()
    );
    assert!(
        spread >= Duration::from_secs(1),
        "10 lines at burst 3, 2/s arrived within {spread:?}: not rate limited"
    );
    tx.timeout = Duration::from_secs(20);
    for i in 0..10 {
        expect_chat(&mut tx, "tx", &format!("line {i}"));
    }
    assert_eq!(srv.log_kind("chat").len(), 10);
}

/// Many clients at once, each in its own channel, with a shared log; keeps the harness honest
/// about concurrency (every client sees exactly its own channel's traffic).
#[test]
fn many_channels_stay_separate() {
    let srv = Server::start(fast_lines());
    let mut users: Vec<(String, Telnet)> = (0..8)
        .map(|i| {
            let nick = format!("u{i}");
            let t = srv.user_in(&nick, &format!("#c{}", i % 4));
            (nick, t)
        })
        .collect();
    // Pairs: u0/u4 in #c0, u1/u5 in #c1, ...
    for (i, (_, t)) in users.iter_mut().enumerate().take(4) {
        let joiner = format!("u{}", i + 4);
        expect_event(t, &joiner, &format!("just joined channel #c{i}"));
    }
    for (nick, t) in users.iter_mut() {
        t.send_line(&format!("hi from {nick}"));
    }
    for (i, (nick, t)) in users.iter_mut().enumerate() {
        let partner = (i + 4) % 8;
        let texts: BTreeSet<(String, String)> = (0..2)
            .map(|_| {
                let l = t.next_line();
                let (n, x) = parse_chat(&l).unwrap_or_else(|| panic!("not chat: {l:?}"));
                (n.to_owned(), x.to_owned())
            })
            .collect();
        let want: BTreeSet<(String, String)> = [i, partner]
            .iter()
            .map(|j| (format!("u{j}"), format!("hi from u{j}")))
            .collect();
        assert_eq!(texts, want, "what {nick} received");
    }
}

#[test]
fn ignoring_twice_is_reported() {
    let srv = Server::start_default();
    let _a = srv.user("alice");
    let mut b = srv.user("bob");
    b.send_line("/ignore @alice");
    b.expect("alice is now ignored.");
    b.send_line("/ignore @ALICE");
    let notice = b.next_line();
    assert!(
        notice.contains("already ignored"),
        "a second /ignore gave {notice:?}"
    );
}

// ================================================================================ §7 log

#[test]
fn user_text_cannot_forge_or_split_log_records() {
    let srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    let nasty = "x\"},{\"kind\":\"chat\",\"nick\":\"mallory\"} \u{2028}line\u{2029}para \\n";
    a.send_line(nasty);
    expect_chat(&mut a, "alice", nasty);
    let chats = srv.log_kind("chat");
    assert_eq!(chats.len(), 1, "{}", render_records(&chats));
    assert_eq!(chats[0]["nick"], "alice");
    assert_eq!(chats[0]["text"], nasty);
    // No raw Unicode line separators in the file: every tool sees one record per line.
    let raw = std::fs::read_to_string(srv.log_path()).unwrap();
    assert!(!raw.contains('\u{2028}') && !raw.contains('\u{2029}'));
    for line in raw.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["seq"].is_u64() && v["kind"].is_string(), "{line}");
        // RFC 3339 UTC with milliseconds: 2026-11-27T00:24:40.123Z
        let ts = v["ts"].as_str().unwrap_or_else(|| panic!("no ts: {line}"));
        let b = ts.as_bytes();
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
        assert!(
            b.len() == 24
                && digits.iter().all(|&i| b[i].is_ascii_digit())
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && b[13] == b':'
                && b[16] == b':'
                && b[19] == b'.'
                && b[23] == b'Z',
            "ts {ts:?} is not RFC 3339 UTC with milliseconds"
        );
    }
}

#[test]
fn a_torn_log_tail_is_cut_and_seq_continues() {
    let prefill = concat!(
        r#"{"ts":"2026-01-01T00:00:00.000Z","seq":1,"kind":"server_start","version":"0"}"#,
        "\n",
        r##"{"ts":"2026-01-01T00:00:01.000Z","seq":2,"kind":"chat","nick":"old","channel":"#a","text":"before the crash"}"##,
        "\n",
        r#"{"ts":"2026-01-01T00:00:02.000Z","seq":3,"kind":"chat","nick":"old","chan"#,
    );
    let srv = Server::start_with(
        json!({}),
        StartOptions {
            log_prefill: Some(prefill.as_bytes().to_vec()),
            ..StartOptions::default()
        },
    );
    let mut a = srv.user_in("alice", "#room");
    a.send_line("after the crash");
    expect_chat(&mut a, "alice", "after the crash");

    // Every line of the file parses (log_records fails on any that does not).
    let records = srv.log_records();
    assert_eq!(records[0]["seq"], 1);
    assert_eq!(records[1]["text"], "before the crash");
    assert_eq!(
        records[2]["kind"],
        "server_start",
        "log:\n{}",
        render_records(&records)
    );
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, want, "seq continues from the last good record");
    assert!(
        srv.stderr_text().contains("WARN"),
        "no warning about the torn line; stderr:\n{}",
        srv.stderr_text()
    );
}

#[test]
fn sighup_reopens_the_log_file() {
    let mut srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    a.send_line("into the old file");
    expect_chat(&mut a, "alice", "into the old file");

    let rotated = srv.dir().join("chat.log.1");
    std::fs::rename(srv.log_path(), &rotated).unwrap();
    srv.signal("HUP");
    // The reopen happens in the loop; once a later message is in the new file, it is done.
    let end = Instant::now() + DEADLINE;
    let mut n = 0;
    loop {
        n += 1;
        let text = format!("into the new file {n}");
        a.send_line(&text);
        expect_chat(&mut a, "alice", &text);
        if srv
            .log_kind("chat")
            .iter()
            .any(|r| r["text"] == text.as_str())
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "nothing written to a new log after SIGHUP"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("into the old file"));
    assert_eq!(srv.try_wait(), None, "SIGHUP must not stop the server");
}

#[test]
fn a_log_that_cannot_be_written_refuses_messages_with_a_notice() {
    const NOT_LOGGED: &str = "The server could not save your message to its log, so it was not sent. Please try again later.";
    let srv = Server::start(json!({"log_file": "/dev/full"}));
    let mut a = srv.user_in("alice", "#room");
    let mut b = srv.user_in("bob", "#room");
    expect_event(&mut a, "bob", "just joined channel #room");

    a.send_line("this cannot be logged");
    a.expect(NOT_LOGGED);
    a.send_line("/msg @bob nor this");
    a.expect(NOT_LOGGED);
    // Nothing reached bob; commands that need no log still work.
    b.send_line("/list");
    b.expect(LIST_HEADER);
    let m: BTreeSet<String> = [b.next_line(), b.next_line()].into_iter().collect();
    assert_eq!(m, BTreeSet::from(["@alice".into(), "@bob".into()]));
    assert!(
        srv.stderr_text().contains("WARN"),
        "no warning about the failing log; stderr:\n{}",
        srv.stderr_text()
    );
}

// ================================================================================ §8 limits

#[test]
fn a_full_server_refuses_with_a_notice() {
    let srv = Server::start(json!({"max_connections": 2}));
    let mut a = srv.user("alice");
    let _b = srv.user("bob");
    let mut c = srv.telnet();
    let closed = c.assert_closed_within(DEADLINE);
    let lines = closed.lines();
    assert_eq!(
        lines.len(),
        1,
        "one refusal notice, then the close: {lines:?}"
    );
    assert!(!lines[0].starts_with("Welcome"), "{lines:?}");

    // Once someone leaves, there is room again.
    a.send_line("/quit");
    a.expect("Good Bye alice, come back again.");
    a.assert_closed_within(DEADLINE);
    welcomed_within(&srv, DEADLINE);
}

#[test]
fn connections_per_address_are_limited_when_loopback_is_not_exempt() {
    let srv = Server::start(json!({"max_connections_per_ip": 2, "limit_loopback": true}));
    let _a = srv.user("alice");
    let b = srv.user("bob");
    let mut c = srv.telnet();
    let closed = c.assert_closed_within(DEADLINE);
    let lines = closed.lines();
    assert_eq!(
        lines.len(),
        1,
        "one refusal notice, then the close: {lines:?}"
    );
    assert!(!lines[0].starts_with("Welcome"), "{lines:?}");
    drop(b);
    welcomed_within(&srv, DEADLINE);

    // Loopback is exempt by default.
    let srv = Server::start(json!({"max_connections_per_ip": 2}));
    let _users: Vec<Telnet> = (0..5).map(|i| srv.user(&format!("u{i}"))).collect();
}

/// Connects until a connection is greeted (a refused one is closed at once).
fn welcomed_within(srv: &Server, deadline: Duration) -> Telnet {
    let end = Instant::now() + deadline;
    loop {
        let mut t = srv.telnet();
        let got = t.line_within(Duration::from_secs(2));
        match got {
            Ok(l) if l.starts_with("Welcome to chat server.") => return t,
            other => assert!(
                Instant::now() < end,
                "no connection was greeted within {deadline:?}; last: {other:?}"
            ),
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn running_out_of_file_descriptors_does_not_spin() {
    let srv = Server::start_with(
        json!({"max_connections": 1000}),
        StartOptions {
            fd_limit: Some(64),
            ..StartOptions::default()
        },
    );
    // The kernel completes every handshake (listen backlog); the server can accept only
    // about 50 of these with 64 descriptors.
    let mut clients: Vec<Telnet> = (0..90).map(|_| srv.telnet()).collect();
    for t in clients.iter_mut().take(30) {
        t.expect_match("the greeting", |l| l.starts_with("Welcome to chat server."));
    }
    // The server runs out of descriptors (the rest wait in the listen backlog).
    let end = Instant::now() + DEADLINE;
    while fd_count(srv.pid()) < 60 {
        assert!(
            Instant::now() < end,
            "the server never ran out of descriptors: {} open",
            fd_count(srv.pid())
        );
        thread::sleep(Duration::from_millis(20));
    }
    let (cpu, wall) = srv.cpu_during(Duration::from_secs(2), || {});
    assert!(
        cpu < 0.5 * wall,
        "the server used {cpu:.2} s of CPU in {wall:.2} s while out of descriptors"
    );
    // Free descriptors: the waiting connections are accepted and greeted.
    let waiting = clients.split_off(60);
    drop(clients);
    for mut t in waiting {
        t.expect_match("the greeting", |l| l.starts_with("Welcome to chat server."));
    }
}

#[test]
fn sigint_shuts_down_like_sigterm() {
    let mut srv = Server::start_default();
    let mut a = srv.user_in("alice", "#room");
    srv.signal("INT");
    a.expect(SHUTDOWN);
    a.assert_closed_within(DEADLINE);
    let status = srv.wait_exit(DEADLINE).expect("still running after SIGINT");
    assert_eq!(status.code(), Some(0));
    assert_eq!(srv.log_records().last().unwrap()["kind"], "server_stop");
}

/// Starts a server with a 20 s shutdown grace, and two users in `#room`: `slow`, who has not
/// read anything since joining, with more output queued than the kernel can buffer (so the
/// server itself holds some), and `writer`, who sent it all. Returns the messages sent.
fn server_with_a_slow_reader() -> (Server, Telnet, Telnet, Vec<String>) {
    let mut config = fast_lines();
    config["output_hard_limit_bytes"] = json!(16 << 20);
    config["output_soft_limit_bytes"] = json!(16 << 20);
    config["output_soft_limit_s"] = json!(600);
    config["shutdown_grace_s"] = json!(20);
    config["max_line_bytes"] = json!(4000);
    let srv = Server::start(config);
    let mut slow = srv.user_in("slow", "#room");
    let mut writer = srv.user_in("writer", "#room");
    expect_event(&mut slow, "writer", "just joined channel #room");

    // ~8 MB: more than the slow reader's receive buffer plus the server's send buffer\n    // (about 4 MB together on Linux defaults).
    let stop = Arc::new(AtomicBool::new(false));
    let w = collect_chat(&writer, stop.clone());
    let pad = "q".repeat(3900);
    let mut sent = Vec::new();
    while sent.len() < 2_000 {
        let mut batch = Vec::new();
        for _ in 0..25 {
            let text = format!("s{:06} {pad}", sent.len());
            batch.extend_from_slice(text.as_bytes());
            batch.extend_from_slice(b"\r\n");
            sent.push(text);
        }
        writer.send_raw(&batch);
        wait_count(&w.count, sent.len(), "writer");
    }
    stop.store(true, Ordering::SeqCst);
    let (chats, _) = w.handle.join().unwrap();
    assert_eq!(chats.len(), sent.len());
    (srv, slow, writer, sent)
}

/// Once the server is shutting down (the users have been told), a new connection is
/// refused, or closed at once, never left hanging without a greeting while the server waits
/// for slow readers.
#[test]
fn connections_made_during_shutdown_are_not_left_hanging() {
    let (mut srv, _slow, mut writer, _) = server_with_a_slow_reader();
    srv.sigterm();
    writer.expect(SHUTDOWN);
    writer.assert_closed_within(DEADLINE);
    // (If the kernel took the whole backlog, the server may be gone already: the connect is
    // then refused, which passes too.)
    let started = Instant::now();
    // Refused (the listener is closed) passes; so does a connection that is closed at once,
    // with nothing or just the shutdown notice. (The window is 2 s because the server, as it
    // is, gives up on the slow reader and exits about 3 s after the signal, whatever
    // `shutdown_grace_s` says; see the next test.)
    if let Ok(stream) = std::net::TcpStream::connect(srv.telnet_addr()) {
        let mut probe = Telnet::from_stream(stream);
        let Some(closed) = probe.read_until_eof(Duration::from_secs(2)) else {
            panic!(
                "a connection made during shutdown was accepted by the kernel and left hanging, \
                 without a greeting, for {:?} (the listening socket is still open); got {:?}",
                started.elapsed(),
                probe.context()
            );
        };
        let lines = closed.lines();
        assert!(
            lines.is_empty() || lines == [SHUTDOWN],
            "a connection made during shutdown was served: {lines:?}"
        );
    }
}

/// `shutdown_grace_s` is the time slow readers get to receive their backlog and the
/// shutdown notice.
#[test]
fn the_shutdown_grace_lets_a_slow_reader_get_its_backlog_and_the_notice() {
    let (mut srv, mut slow, mut writer, sent) = server_with_a_slow_reader();
    srv.sigterm();
    writer.expect(SHUTDOWN);
    let told = Instant::now();
    // The slow reader is slow: it reads nothing for 8 s, well within the 20 s grace.
    while told.elapsed() < Duration::from_secs(8) {
        thread::sleep(Duration::from_millis(100));
    }
    let closed = slow.assert_closed_within(Duration::from_secs(30));
    let lines = closed.lines();
    let got: Vec<&str> = lines
        .iter()
        .filter_map(|l| parse_chat(l).map(|(_, t)| t))
        .collect();
    assert!(
        got.len() == sent.len() && lines.last().map(String::as_str) == Some(SHUTDOWN),
        "with shutdown_grace_s 20, a reader that starts reading 8 s after SIGTERM got {} of {} \
         messages and ended with {:?} (reset: {}); close records:\n{}",
        got.len(),
        sent.len(),
        lines.last().map(|l| &l[..l.len().min(60)]),
        closed.reset,
        render_records(
            &srv.log_records()
                .into_iter()
                .filter(|r| r["kind"] != "chat")
                .collect::<Vec<_>>()
        )
    );
    let status = srv
        .wait_exit(DEADLINE)
        .expect("still running after the last client left");
    assert_eq!(status.code(), Some(0));
}
