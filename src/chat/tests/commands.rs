//! The commands of SPEC §11 (`/nick`, `/me`, `/topic`, `/away`, `/back`, `/whois`,
//! `/channels`, `/unignore`, `/motd`), driven as scripts with their exact strings.

use super::*;

impl Script {
    /// A line at monotonic time `ms`; returns what was sent and what was logged.
    fn line_at(&mut self, n: u32, ms: u64, line: &str) -> (Vec<(u32, String)>, Vec<String>) {
        self.core.handle_line(now(ms), id(n), line, &mut self.out);
        let logs = self
            .out
            .acts
            .iter()
            .filter_map(|a| match a {
                Act::Log(l) => Some(l.clone()),
                _ => None,
            })
            .collect();
        (self.out.sent(), logs)
    }
    fn logs_of(&mut self, n: u32, line: &str) -> Vec<String> {
        self.line_at(n, 1, line).1
    }
    fn member(&mut self, n: u32, nick: &str, channel: &str) {
        self.user(n, nick);
        self.line(n, &format!("/join {channel}"));
    }
    fn ws_user(&mut self, n: u32, nick: &str) {
        self.core
            .handle_connect(now(0), id(n), Transport::WebSocket, peer(), &mut self.out);
        self.line(n, nick);
    }
}

/// Feeds one record of the log's tail to the core, as the start-up rebuild does.
fn restore(t: &mut Script, seq: u64, record: Record<'static>) {
    t.core.restore(seq, T, &record);
}

fn topic_record(channel: &str, topic: &str) -> Record<'static> {
    Record::Topic {
        nick: "alice".to_string().into(),
        channel: channel.to_string().into(),
        topic: topic.to_string().into(),
    }
}

// ------------------------------------------------------------------------------------ /nick

#[test]
fn nick_renames_and_tells_the_channel() {
    let mut t = Script::new();
    t.member(0, "alice", "#a");
    t.member(1, "bob", "#a");
    let (sent, logs) = t.line_at(0, 1, "/nick carol");
    let notice = "3:04PM-@alice is now known as @carol";
    assert_eq!(sent, vec![s(0, notice), s(1, notice)]);
    assert_eq!(
        logs,
        vec![r#"{"kind":"nick_change","conn":100,"old":"alice","new":"carol"}"#]
    );
    assert_eq!(t.core.nick_of(id(0)), Some("carol"));
    // Found by the new name at once; the old one is unknown and free at once.
    assert_eq!(
        t.line(1, "/msg @carol hi"),
        vec![
            s(0, "3:04PM - *Private from @bob: hi"),
            s(1, "3:04PM - *Private to @carol: hi")
        ]
    );
    assert_eq!(
        t.line(1, "/msg @alice hi"),
        vec![s(1, "User @alice is not connected to this server.")]
    );
    assert!(t.line(1, "/whois @carol")[0]
        .1
        .starts_with("@carol is in #a,"));
    t.connect(2);
    assert_eq!(
        t.line(2, "alice"),
        vec![s(2, "Thanks alice, now please type /join #channel to join a channel or /help to get all commands")]
    );
    let sent = t.line(2, "/list");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        t.line(1, "/list")[0].1,
        "Here is the list of all users in this channel\n@carol\n@bob"
    );
}

#[test]
fn nick_outside_a_channel_answers_only_the_user() {
    let mut t = Script::new();
    t.user(0, "alice");
    t.user(1, "bob");
    assert_eq!(
        t.line(0, "/nick @Al-9"),
        vec![s(0, "You are now known as @Al-9")]
    );
    assert_eq!(t.core.stats().users, 2);
}

#[test]
fn nick_errors_change_nothing() {
    let mut t = Script::new();
    t.user(0, "alice");
    t.user(1, "bob");
    let cases = [
        (
            "/nick",
            "Could not find the required nickname in the input, use /nick newnickname",
        ),
        (
            "/nick @",
            "Could not find the required nickname in the input, use /nick newnickname",
        ),
        (
            "/nick 9lives",
            "Invalid nickname: use 1 to 24 letters, digits, _ or -, starting with a letter.",
        ),
        (
            "/nick two words",
            "Invalid nickname: use 1 to 24 letters, digits, _ or -, starting with a letter.",
        ),
        (
            "/nick BOB",
            "Another user with this nickname is connected to this server.",
        ),
        (
            "/nick bob",
            "Another user with this nickname is connected to this server.",
        ),
        ("/nick alice", "You are already known as @alice."),
    ];
    for (input, expected) in cases {
        let (sent, logs) = t.line_at(0, 1, input);
        assert_eq!(sent, vec![s(0, expected)], "input {input:?}");
        assert_eq!(logs.len(), 1, "{input:?}: {logs:?}");
        assert!(logs[0].contains(r#""kind":"error""#), "{logs:?}");
        assert_eq!(t.core.nick_of(id(0)), Some("alice"));
        assert_eq!(t.core.nick_of(id(1)), Some("bob"));
    }
    let long = format!("/nick {}", "a".repeat(25));
    assert_eq!(
        t.line(0, &long),
        vec![s(0, super::super::strings::RENAME_INVALID)]
    );
}

#[test]
fn a_case_only_rename_is_allowed() {
    let mut t = Script::new();
    t.user(0, "alice");
    assert_eq!(
        t.line(0, "/nick Alice"),
        vec![s(0, "You are now known as @Alice")]
    );
    assert_eq!(t.core.nick_of(id(0)), Some("Alice"));
    t.user(1, "bob");
    assert_eq!(
        t.line(1, "/msg @ALICE hi")[1],
        s(1, "3:04PM - *Private to @Alice: hi")
    );
    t.connect(2);
    assert_eq!(
        t.line(2, "alice"),
        vec![s(2, super::super::strings::NICK_TAKEN)]
    );
}

#[test]
fn two_renames_to_one_name_in_a_row_one_wins() {
    let mut t = Script::new();
    t.user(0, "alice");
    t.user(1, "bob");
    assert_eq!(
        t.line(0, "/nick carol"),
        vec![s(0, "You are now known as @carol")]
    );
    assert_eq!(
        t.line(1, "/nick Carol"),
        vec![s(
            1,
            "Another user with this nickname is connected to this server."
        )]
    );
    // The loser can take the winner's old name, free at once.
    assert_eq!(
        t.line(1, "/nick alice"),
        vec![s(1, "You are now known as @alice")]
    );
    assert_eq!(t.core.stats().users, 2);
}

#[test]
fn ignores_follow_the_person_through_renames() {
    let mut t = Script::new();
    t.user(0, "alice");
    t.user(1, "bob");
    assert_eq!(t.line(0, "/ignore @bob"), vec![s(0, "bob is now ignored.")]);
    t.line(1, "/nick robert");
    let ignored = "User @alice has ignored you, your message was not delivered.";
    assert_eq!(t.line(1, "/msg @alice hi"), vec![s(1, ignored)]);
    t.line(0, "/nick al");
    assert_eq!(
        t.line(1, "/msg @al hi"),
        vec![s(
            1,
            "User @al has ignored you, your message was not delivered."
        )]
    );
    // Someone new with the ignored person's old name is not ignored.
    t.user(2, "bob");
    assert_eq!(t.line(2, "/msg @al yo").len(), 2);
    assert_eq!(
        t.line(0, "/ignore @robert"),
        vec![s(0, "robert is already ignored.")]
    );
    assert_eq!(
        t.line(0, "/unignore @Robert"),
        vec![s(0, "Robert is no longer ignored.")]
    );
    assert_eq!(t.line(1, "/msg @al hi").len(), 2);
}

#[test]
fn unignore_yourself_is_refused_like_ignore() {
    let mut t = Script::new();
    t.user(0, "alice");
    t.user(1, "bob");
    for input in ["/unignore @alice", "/unignore @ALICE", "/ignore @alice"] {
        assert_eq!(
            t.line(0, input),
            vec![s(0, "You can not ignore yourself.")],
            "input {input:?}"
        );
    }
}

#[test]
fn unignore_errors() {
    let mut t = Script::new();
    t.user(0, "alice");
    t.user(1, "bob");
    let cases = [
        (
            "/unignore",
            "Could not find the required @nickname in the input, use /unignore @nickname",
        ),
        (
            "/unignore bob",
            "Could not find the required @nickname in the input, use /unignore @nickname",
        ),
        (
            "/unignore @ghost",
            "User @ghost is not connected to this server.",
        ),
        ("/unignore @bob", "bob is not ignored."),
    ];
    for (input, expected) in cases {
        assert_eq!(t.line(0, input), vec![s(0, expected)], "input {input:?}");
    }
    t.line(0, "/ignore @bob");
    let logs = t.logs_of(0, "/unignore @bob");
    assert_eq!(
        logs,
        vec![r#"{"kind":"command","nick":"alice","command":"/unignore @bob"}"#]
    );
    assert_eq!(
        t.line(0, "/unignore @bob"),
        vec![s(0, "bob is not ignored.")]
    );
}

// -------------------------------------------------------------------------------------- /me

#[test]
fn me_shows_an_action_to_the_channel() {
    let mut t = Script::new();
    t.member(0, "alice", "#a");
    t.member(1, "bob", "#a");
    t.member(2, "carol", "#b");
    let (sent, logs) = t.line_at(0, 1, "/me waves  hello");
    let line = "3:04PM-* @alice waves  hello";
    assert_eq!(sent, vec![s(0, line), s(1, line)]);
    assert_eq!(
        logs,
        vec![r##"{"kind":"action","nick":"alice","channel":"#a","text":"waves  hello"}"##]
    );
    assert_eq!(
        t.line(0, "/me"),
        vec![s(
            0,
            "Could not find the required action in the input, use /me action"
        )]
    );
    t.user(3, "dave");
    assert_eq!(
        t.line(3, "/me waves"),
        vec![s(3, super::super::strings::NOT_IN_CHANNEL)]
    );
    t.out.fail_log = true;
    assert_eq!(
        t.line(0, "/me waves"),
        vec![s(0, super::super::strings::NOT_LOGGED)]
    );
}

// ----------------------------------------------------------------------------------- /topic

#[test]
fn topic_is_set_shown_and_given_to_joiners() {
    let mut t = Script::new();
    t.member(0, "alice", "#Rust");
    assert_eq!(t.line(0, "/topic"), vec![s(0, "#Rust has no topic.")]);
    let (sent, logs) = t.line_at(0, 1, "/topic Borrowing,  explained");
    assert_eq!(
        sent,
        vec![s(
            0,
            "3:04PM-@alice set the topic of #Rust: Borrowing,  explained"
        )]
    );
    assert_eq!(
        logs,
        vec![
            r##"{"kind":"topic","nick":"alice","channel":"#Rust","topic":"Borrowing,  explained"}"##
        ]
    );
    assert_eq!(
        t.line(0, "/topic"),
        vec![s(0, "Topic of #Rust: Borrowing,  explained")]
    );
    t.user(1, "bob");
    assert_eq!(
        t.line(1, "/join #rust"),
        vec![
            s(1, "There are 1 other users in this channel."),
            s(1, "Topic of #Rust: Borrowing,  explained"),
            // The topic change is history too: the replay comes after the topic line.
            s(
                1,
                "Recent messages in #Rust:\n3:04PM-@alice set the topic of #Rust: Borrowing,  explained\nEnd of recent messages."
            ),
            s(0, "3:04PM-@bob just joined channel #Rust"),
            s(1, "3:04PM-@bob just joined channel #Rust"),
        ]
    );
    // Any member may change it.
    assert_eq!(t.line(1, "/topic new").len(), 2);
    assert_eq!(t.line(0, "/topic"), vec![s(0, "Topic of #Rust: new")]);
}

#[test]
fn topic_errors() {
    let mut t = Script::new();
    t.user(0, "alice");
    assert_eq!(
        t.line(0, "/topic"),
        vec![s(0, super::super::strings::NOT_IN_CHANNEL)]
    );
    assert_eq!(
        t.line(0, "/topic hi"),
        vec![s(0, super::super::strings::NOT_IN_CHANNEL)]
    );
    t.line(0, "/join #a");
    let long = format!("/topic {}", "é".repeat(151));
    assert_eq!(
        t.line(0, &long),
        vec![s(0, "Topics are limited to 300 bytes.")]
    );
    assert_eq!(t.line(0, "/topic"), vec![s(0, "#a has no topic.")]);
    let max = format!("/topic {}", "é".repeat(150));
    assert_eq!(t.line(0, &max).len(), 1);
    t.out.fail_log = true;
    assert_eq!(
        t.line(0, "/topic lost"),
        vec![s(0, super::super::strings::NOT_LOGGED)]
    );
    t.out.fail_log = false;
    assert!(t.line(0, "/topic")[0].1.starts_with("Topic of #a: éé"));
}

#[test]
fn a_topic_outlives_an_empty_channel() {
    let mut t = Script::new();
    t.member(0, "alice", "#a");
    t.line(0, "/topic kept");
    t.line(0, "/join #b");
    assert_eq!(t.core.channel_names(), vec!["#b"]);
    assert_eq!(t.core.dormant_topics(), 1);
    // Any case finds the topic; the channel keeps the spelling its history remembers.
    let sent = t.line(0, "/join #A");
    assert_eq!(sent[1], s(0, "Topic of #a: kept"));
    assert_eq!(t.core.dormant_topics(), 0);
}

#[test]
fn topics_are_restored_from_the_log() {
    let mut t = Script::new();
    restore(&mut t, 1, topic_record("#a", "old"));
    restore(&mut t, 2, topic_record("#A", "newer"));
    restore(&mut t, 3, topic_record("bad name", "x"));
    restore(
        &mut t,
        4,
        Record::Chat {
            nick: "bob".to_string().into(),
            channel: "#a".to_string().into(),
            text: "not a topic".to_string().into(),
        },
    );
    assert_eq!(t.core.dormant_topics(), 1);
    assert_eq!(t.core.channel_names(), Vec::<String>::new());
    t.user(0, "alice");
    assert_eq!(t.line(0, "/join #a")[1], s(0, "Topic of #a: newer"));
    // A record for a channel that exists sets its topic.
    restore(&mut t, 5, topic_record("#a", "live"));
    assert_eq!(t.line(0, "/topic"), vec![s(0, "Topic of #a: live")]);
}

#[test]
fn dormant_topics_are_bounded() {
    let mut t = Script::new();
    for n in 0..1005 {
        restore(&mut t, n, topic_record(&format!("#c{n}"), "t"));
    }
    assert_eq!(t.core.dormant_topics(), 1000);
    t.user(0, "alice");
    // The oldest went first.
    assert_eq!(
        t.line(0, "/join #c4")[1].1,
        "3:04PM-@alice just joined channel #c4"
    );
    assert_eq!(t.line(0, "/join #c5")[1], s(0, "Topic of #c5: t"));
}

// ---------------------------------------------------------------------------- /away, /back

#[test]
fn away_is_shown_and_answered() {
    let mut t = Script::new();
    t.member(0, "alice", "#a");
    t.member(1, "bob", "#a");
    let (sent, logs) = t.line_at(1, 1, "/away");
    assert_eq!(sent, vec![s(1, "You are now marked as away: away")]);
    assert_eq!(
        logs,
        vec![r#"{"kind":"away","nick":"bob","message":"away"}"#]
    );
    assert_eq!(
        t.line(1, "/away out to lunch"),
        vec![s(1, "You are now marked as away: out to lunch")]
    );
    assert_eq!(
        t.line(0, "/list"),
        vec![s(
            0,
            "Here is the list of all users in this channel\n@alice\n@bob (away)"
        )]
    );
    assert_eq!(
        t.line(0, "/msg @BOB hi"),
        vec![
            s(1, "3:04PM - *Private from @alice: hi"),
            s(0, "3:04PM - *Private to @bob: hi"),
            s(0, "@bob is away: out to lunch"),
        ]
    );
    let (sent, logs) = t.line_at(1, 1, "/back");
    assert_eq!(sent, vec![s(1, "You are no longer marked as away.")]);
    assert_eq!(logs, vec![r#"{"kind":"away","nick":"bob"}"#]);
    assert_eq!(
        t.line(1, "/back"),
        vec![s(1, "You are not marked as away.")]
    );
    assert_eq!(t.line(0, "/msg @bob hi").len(), 2);
    assert_eq!(
        t.line(0, "/list")[0].1,
        "Here is the list of all users in this channel\n@alice\n@bob"
    );
}

// ----------------------------------------------------------------------------------- /whois

#[test]
fn whois_shows_where_how_long_and_away() {
    let mut t = Script::new();
    t.user(0, "alice"); // connected at 0 ms
    t.ws_user(1, "bob");
    t.line_at(0, 312_000, "/join #general");
    let (sent, logs) = t.line_at(1, 315_000, "/whois @ALICE");
    assert_eq!(
        sent,
        vec![s(
            1,
            "@alice is in #general, connected via telnet for 5m15s, idle 3s"
        )]
    );
    assert_eq!(
        logs,
        vec![r#"{"kind":"command","nick":"bob","command":"/whois @ALICE"}"#]
    );
    t.line_at(1, 316_000, "/away lunch");
    assert_eq!(
        t.line_at(0, 7_390_000, "/whois @bob").0,
        vec![s(
            0,
            "@bob is not in a channel, connected via websocket for 2h3m, idle 1h57m, away: lunch"
        )]
    );
    t.core.set_operator(id(0), true);
    assert_eq!(
        t.line_at(0, 273_600_000, "/whois @bob").0,
        vec![s(0, "@bob is not in a channel, connected via websocket for 3d4h, idle 3d3h, away: lunch, from 127.0.0.1")]
    );
    assert_eq!(
        t.line_at(1, 273_642_000, "/whois @alice").0,
        vec![s(
            1,
            "@alice is in #general, connected via telnet for 3d4h, idle 42s"
        )]
    );
    assert_eq!(
        t.line(0, "/whois"),
        vec![s(
            0,
            "Could not find the required @nickname in the input, use /whois @nickname"
        )]
    );
    assert_eq!(
        t.line(0, "/whois @ghost"),
        vec![s(0, "User @ghost is not connected to this server.")]
    );
}

#[test]
fn durations_use_the_two_largest_units() {
    use super::super::strings::duration;
    let cases = [
        (0, "0s"),
        (999, "0s"),
        (42_000, "42s"),
        (59_999, "59s"),
        (60_000, "1m0s"),
        (312_000, "5m12s"),
        (3_599_000, "59m59s"),
        (3_600_000, "1h0m"),
        (7_380_000, "2h3m"),
        (86_399_000, "23h59m"),
        (86_400_000, "1d0h"),
        (273_600_000, "3d4h"),
        (u64::MAX, "213503982334d14h"),
    ];
    for (ms, want) in cases {
        assert_eq!(duration(ms), want, "{ms} ms");
    }
}

// -------------------------------------------------------------------------------- /channels

#[test]
fn channels_lists_every_channel_sorted_with_counts_and_topics() {
    let mut t = Script::new();
    t.user(0, "alice");
    assert_eq!(
        t.line(0, "/channels"),
        vec![s(
            0,
            "There are no channels, use /join #channel to create one."
        )]
    );
    t.line(0, "/join #zeta");
    t.member(1, "bob", "#Beta");
    t.member(2, "carol", "#beta");
    t.member(3, "dave", "#alpha");
    t.line(1, "/topic all about beta");
    assert_eq!(
        t.line(0, "/channels"),
        vec![s(
            0,
            "Here is the list of all channels\n#alpha (1 user)\n#Beta (2 users): all about beta\n#zeta (1 user)"
        )]
    );
}

#[test]
fn channels_lists_at_most_a_hundred() {
    let mut t = Script::new();
    for n in 0..103 {
        t.member(n, &format!("u{n}"), &format!("#c{n:03}"));
    }
    let sent = t.line(0, "/channels");
    let lines: Vec<&str> = sent[0].1.split('\n').collect();
    assert_eq!(lines.len(), 102);
    assert_eq!(lines[100], "#c099 (1 user)");
    assert_eq!(lines[101], "... and 3 more channels.");
}

// ------------------------------------------------------------------------------------ /motd

#[test]
fn motd_after_the_nickname_and_on_request() {
    let mut t = Script::new();
    t.user(0, "alice");
    assert_eq!(
        t.line(0, "/motd"),
        vec![s(0, "There is no message of the day.")]
    );
    t.core.set_motd(Some("Welcome!\r\nBe nice.\n\n"));
    assert_eq!(t.line(0, "/motd"), vec![s(0, "Welcome!\nBe nice.")]);
    t.connect(1);
    assert_eq!(
        t.line(1, "bob"),
        vec![
            s(1, "Thanks bob, now please type /join #channel to join a channel or /help to get all commands"),
            s(1, "Welcome!\nBe nice."),
        ]
    );
    t.core.set_motd(Some(" \n "));
    assert_eq!(
        t.line(0, "/motd"),
        vec![s(0, "There is no message of the day.")]
    );
}
