//! Parsing a `/command args` line into a [`Command`].

/// A chat command with its arguments, borrowed from the input line.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Command<'a> {
    /// `/help`
    Help,
    /// `/list`
    List,
    /// `/join #channel` (the channel name includes the `#`).
    Join(&'a str),
    /// `/join #channel since SEQ`: replay every remembered entry after SEQ.
    JoinSince(&'a str, u64),
    /// `/history [N]`.
    History(Option<usize>),
    /// `/msg @nick text` (the nick without its `@`).
    Msg {
        /// Recipient nickname, without `@`.
        to: &'a str,
        /// The message text.
        text: &'a str,
    },
    /// `/ignore @nick` (the nick without its `@`).
    Ignore(&'a str),
    /// `/quit`
    Quit,
    /// `/nick newnick` (as typed, a leading `@` removed; validated by the core).
    Nick(&'a str),
    /// `/me action` (the action text).
    Me(&'a str),
    /// `/topic` (show it) or `/topic text` (set it).
    Topic(Option<&'a str>),
    /// `/away` or `/away message`.
    Away(Option<&'a str>),
    /// `/back`
    Back,
    /// `/whois @nick` (the nick without its `@`).
    Whois(&'a str),
    /// `/channels`
    Channels,
    /// `/unignore @nick` (the nick without its `@`).
    Unignore(&'a str),
    /// `/motd`
    Motd,
}

/// A command line that could not be parsed; each variant has its own notice.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum CommandError<'a> {
    /// The command word is not one of the six (holds the word, with its `/`).
    Unknown(&'a str),
    /// `/join` without a `#channel`.
    JoinNeedsChannel,
    /// `/join` with a name that is not a valid channel name.
    InvalidChannel(&'a str),
    /// `/msg` without an `@nickname`.
    MsgNeedsNick,
    /// `/msg @nick` without text.
    MsgNeedsText,
    /// `/ignore` without an `@nickname`.
    IgnoreNeedsNick,
    /// `/join #channel since` without a sequence number.
    JoinSinceNeedsSeq,
    /// `/history` with something other than a positive number.
    HistoryNeedsNumber,
    /// `/nick` without a new nickname.
    NickNeedsNick,
    /// `/me` without an action.
    MeNeedsAction,
    /// `/whois` without an `@nickname`.
    WhoisNeedsNick,
    /// `/unignore` without an `@nickname`.
    UnignoreNeedsNick,
}

/// The commands in `/help` order: syntax and description.
pub const HELP: [(&str, &str); 16] = [
    ("/help", "Shows the list of all available commands."),
    ("/list", "Lists user nicknames in the current channel."),
    (
        "/ignore @nickname",
        "Ignore a user, followed by user nickname. An ignored user can not send you private messages.",
    ),
    ("/join #channel", "Join a channel."),
    ("/msg @nickname message", "Send a private message to a user."),
    ("/quit", "Quit chat server."),
    ("/nick newnickname", "Change your nickname."),
    ("/me action", "Show an action to your channel, e.g. /me waves."),
    (
        "/topic [text]",
        "Show the topic of your channel, or set it to text.",
    ),
    (
        "/away [message]",
        "Mark yourself as away; private messages are answered with the message.",
    ),
    ("/back", "Mark yourself as no longer away."),
    ("/whois @nickname", "Show who a user is, where and since when."),
    ("/channels", "Lists all channels with their users and topics."),
    ("/unignore @nickname", "Stop ignoring a user."),
    ("/motd", "Show the message of the day."),
    (
        "/history [N]",
        "Show the last N messages of the current channel (default 20).",
    ),
];

/// Whether a line, as typed, speaks to other users: chat text, `/msg`, `/me`, and setting a
/// channel's topic (`/topic text`). This is what a muted user may not send. Renaming,
/// joining, `/away` and the commands that only answer the sender do not count.
pub fn talks_to_others(line: &str) -> bool {
    match parse_command(line) {
        None => true,
        Some(Ok(Command::Msg { .. } | Command::Me(_) | Command::Topic(Some(_)))) => true,
        Some(_) => false,
    }
}

/// Whether a line is `/quit` (the one command that still goes through while chat input is
/// paused: leaving only lightens the server's load).
pub fn is_quit(line: &str) -> bool {
    matches!(parse_command(line), Some(Ok(Command::Quit)))
}

/// Parses a line. `None` when the line is not a command (does not start with `/`).
/// The command word must match exactly: `/helpme` is an unknown command.
pub fn parse_command(line: &str) -> Option<Result<Command<'_>, CommandError<'_>>> {
    if !line.starts_with('/') {
        return None;
    }
    let (word, rest) = split_word(line);
    let parsed = match word {
        "/help" => Ok(Command::Help),
        "/list" => Ok(Command::List),
        "/quit" => Ok(Command::Quit),
        "/join" => parse_join(rest),
        "/msg" => parse_msg(rest),
        "/history" => parse_history(rest),
        "/ignore" => at_nick(rest)
            .map(Command::Ignore)
            .ok_or(CommandError::IgnoreNeedsNick),
        "/nick" => {
            let nick = rest.trim_end();
            let nick = nick.strip_prefix('@').unwrap_or(nick);
            if nick.is_empty() {
                Err(CommandError::NickNeedsNick)
            } else {
                Ok(Command::Nick(nick))
            }
        }
        "/me" => match rest.trim_end() {
            "" => Err(CommandError::MeNeedsAction),
            action => Ok(Command::Me(action)),
        },
        "/topic" => Ok(Command::Topic(non_empty(rest))),
        "/away" => Ok(Command::Away(non_empty(rest))),
        "/back" => Ok(Command::Back),
        "/whois" => at_nick(rest)
            .map(Command::Whois)
            .ok_or(CommandError::WhoisNeedsNick),
        "/channels" => Ok(Command::Channels),
        "/unignore" => at_nick(rest)
            .map(Command::Unignore)
            .ok_or(CommandError::UnignoreNeedsNick),
        "/motd" => Ok(Command::Motd),
        other => Err(CommandError::Unknown(other)),
    };
    Some(parsed)
}

fn parse_join(rest: &str) -> Result<Command<'_>, CommandError<'_>> {
    let (name, extra) = split_word(rest);
    if name.is_empty() {
        return Err(CommandError::JoinNeedsChannel);
    }
    if !is_valid_channel(name) {
        return Err(CommandError::InvalidChannel(rest));
    }
    if extra.is_empty() {
        return Ok(Command::Join(name));
    }
    let (word, seq) = split_word(extra);
    if word != "since" {
        return Err(CommandError::InvalidChannel(rest));
    }
    match split_word(seq) {
        (n, "") if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
            .parse()
            .map(|n| Command::JoinSince(name, n))
            .map_err(|_| CommandError::JoinSinceNeedsSeq),
        _ => Err(CommandError::JoinSinceNeedsSeq),
    }
}

fn parse_history(rest: &str) -> Result<Command<'_>, CommandError<'_>> {
    match split_word(rest) {
        ("", _) => Ok(Command::History(None)),
        (n, "") if n.bytes().all(|b| b.is_ascii_digit()) => match n.parse::<usize>() {
            Ok(0) => Err(CommandError::HistoryNeedsNumber),
            Ok(n) => Ok(Command::History(Some(n))),
            // More digits than fit: as many as there are.
            Err(_) => Ok(Command::History(Some(usize::MAX))),
        },
        _ => Err(CommandError::HistoryNeedsNumber),
    }
}

fn parse_msg(rest: &str) -> Result<Command<'_>, CommandError<'_>> {
    let (target, text) = split_word(rest);
    match target.strip_prefix('@') {
        Some(nick) if !nick.is_empty() => {
            if text.is_empty() {
                Err(CommandError::MsgNeedsText)
            } else {
                Ok(Command::Msg { to: nick, text })
            }
        }
        _ => Err(CommandError::MsgNeedsNick),
    }
}

/// The `@nickname` that starts `rest`, without its `@`.
fn at_nick(rest: &str) -> Option<&str> {
    split_word(rest)
        .0
        .strip_prefix('@')
        .filter(|n| !n.is_empty())
}

/// `rest` without trailing whitespace, or `None` when nothing is left.
fn non_empty(rest: &str) -> Option<&str> {
    Some(rest.trim_end()).filter(|r| !r.is_empty())
}

/// Splits off the first whitespace-separated word; the rest has leading whitespace removed.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// `#` then 1–32 ASCII letters, digits, `_` or `-`.
pub fn is_valid_channel(name: &str) -> bool {
    match name.strip_prefix('#') {
        Some(body) => {
            (1..=32).contains(&body.len())
                && body
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        None => false,
    }
}

/// 1–24 ASCII letters, digits, `_` or `-`, starting with a letter.
pub fn is_valid_nick(nick: &str) -> bool {
    (1..=24).contains(&nick.len())
        && nick.as_bytes()[0].is_ascii_alphabetic()
        && nick
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_not_a_command() {
        assert_eq!(parse_command("hello /help"), None);
        assert_eq!(parse_command(""), None);
    }

    #[test]
    fn command_word_must_match_exactly() {
        assert_eq!(parse_command("/help"), Some(Ok(Command::Help)));
        assert_eq!(parse_command("/help extra"), Some(Ok(Command::Help)));
        assert_eq!(
            parse_command("/helpme"),
            Some(Err(CommandError::Unknown("/helpme")))
        );
        assert_eq!(parse_command("/"), Some(Err(CommandError::Unknown("/"))));
        assert_eq!(
            parse_command("/quitter"),
            Some(Err(CommandError::Unknown("/quitter")))
        );
    }

    #[test]
    fn join_parses_and_validates_the_channel() {
        assert_eq!(
            parse_command("/join #general"),
            Some(Ok(Command::Join("#general")))
        );
        assert_eq!(
            parse_command("/join   #a-b_c "),
            Some(Ok(Command::Join("#a-b_c")))
        );
        assert_eq!(
            parse_command("/join"),
            Some(Err(CommandError::JoinNeedsChannel))
        );
        assert_eq!(
            parse_command("/join general"),
            Some(Err(CommandError::InvalidChannel("general")))
        );
        assert_eq!(
            parse_command("/join #a #b"),
            Some(Err(CommandError::InvalidChannel("#a #b")))
        );
        let long = format!("/join #{}", "x".repeat(33));
        assert!(matches!(
            parse_command(&long),
            Some(Err(CommandError::InvalidChannel(_)))
        ));
    }

    #[test]
    fn msg_needs_a_nick_and_text() {
        assert_eq!(
            parse_command("/msg @bob hello  there"),
            Some(Ok(Command::Msg {
                to: "bob",
                text: "hello  there"
            }))
        );
        assert_eq!(parse_command("/msg"), Some(Err(CommandError::MsgNeedsNick)));
        assert_eq!(
            parse_command("/msg bob hi"),
            Some(Err(CommandError::MsgNeedsNick))
        );
        assert_eq!(
            parse_command("/msg @ hi"),
            Some(Err(CommandError::MsgNeedsNick))
        );
        assert_eq!(
            parse_command("/msg @bob"),
            Some(Err(CommandError::MsgNeedsText))
        );
    }

    #[test]
    fn ignore_needs_a_nick() {
        assert_eq!(
            parse_command("/ignore @bob"),
            Some(Ok(Command::Ignore("bob")))
        );
        assert_eq!(
            parse_command("/ignore"),
            Some(Err(CommandError::IgnoreNeedsNick))
        );
        assert_eq!(
            parse_command("/ignore bob"),
            Some(Err(CommandError::IgnoreNeedsNick))
        );
    }

    #[test]
    fn new_commands_parse_their_arguments() {
        assert_eq!(parse_command("/nick bob"), Some(Ok(Command::Nick("bob"))));
        assert_eq!(parse_command("/nick @bob "), Some(Ok(Command::Nick("bob"))));
        assert_eq!(parse_command("/nick a b"), Some(Ok(Command::Nick("a b"))));
        assert_eq!(
            parse_command("/nick"),
            Some(Err(CommandError::NickNeedsNick))
        );
        assert_eq!(
            parse_command("/nick @"),
            Some(Err(CommandError::NickNeedsNick))
        );
        assert_eq!(
            parse_command("/me waves  hello"),
            Some(Ok(Command::Me("waves  hello")))
        );
        assert_eq!(
            parse_command("/me "),
            Some(Err(CommandError::MeNeedsAction))
        );
        assert_eq!(parse_command("/topic"), Some(Ok(Command::Topic(None))));
        assert_eq!(
            parse_command("/topic Rust  talk"),
            Some(Ok(Command::Topic(Some("Rust  talk"))))
        );
        assert_eq!(parse_command("/away"), Some(Ok(Command::Away(None))));
        assert_eq!(
            parse_command("/away at lunch"),
            Some(Ok(Command::Away(Some("at lunch"))))
        );
        assert_eq!(parse_command("/back"), Some(Ok(Command::Back)));
        assert_eq!(
            parse_command("/whois @bob"),
            Some(Ok(Command::Whois("bob")))
        );
        assert_eq!(
            parse_command("/whois bob"),
            Some(Err(CommandError::WhoisNeedsNick))
        );
        assert_eq!(parse_command("/channels"), Some(Ok(Command::Channels)));
        assert_eq!(
            parse_command("/unignore @bob"),
            Some(Ok(Command::Unignore("bob")))
        );
        assert_eq!(
            parse_command("/unignore"),
            Some(Err(CommandError::UnignoreNeedsNick))
        );
        assert_eq!(parse_command("/motd"), Some(Ok(Command::Motd)));
        assert_eq!(
            parse_command("/nickname x"),
            Some(Err(CommandError::Unknown("/nickname")))
        );
    }

    #[test]
    fn join_since_and_history_parse() {
        assert_eq!(
            parse_command("/join #a since 42"),
            Some(Ok(Command::JoinSince("#a", 42)))
        );
        assert_eq!(
            parse_command("/join #a since"),
            Some(Err(CommandError::JoinSinceNeedsSeq))
        );
        assert_eq!(
            parse_command("/join #a since -1"),
            Some(Err(CommandError::JoinSinceNeedsSeq))
        );
        assert_eq!(
            parse_command("/join #a since 1 2"),
            Some(Err(CommandError::JoinSinceNeedsSeq))
        );
        assert_eq!(
            parse_command("/join #a after 1"),
            Some(Err(CommandError::InvalidChannel("#a after 1")))
        );
        assert_eq!(parse_command("/history"), Some(Ok(Command::History(None))));
        assert_eq!(
            parse_command("/history 5"),
            Some(Ok(Command::History(Some(5))))
        );
        assert_eq!(
            parse_command("/history 99999999999999999999999"),
            Some(Ok(Command::History(Some(usize::MAX))))
        );
        for bad in ["/history 0", "/history x", "/history -3", "/history 2 3"] {
            assert_eq!(
                parse_command(bad),
                Some(Err(CommandError::HistoryNeedsNumber)),
                "{bad}"
            );
        }
    }

    #[test]
    fn nick_rules() {
        assert!(is_valid_nick("alice"));
        assert!(is_valid_nick("a-b_9"));
        assert!(is_valid_nick(&"a".repeat(24)));
        assert!(!is_valid_nick(&"a".repeat(25)));
        assert!(!is_valid_nick(""));
        assert!(!is_valid_nick("9lives"));
        assert!(!is_valid_nick("al ice"));
        assert!(!is_valid_nick("/help"));
        assert!(!is_valid_nick("é"));
    }

    #[test]
    fn talks_to_others_covers_chat_msg_me_and_setting_a_topic() {
        for line in ["hello", "/msg @bob hi", "/me waves", "/topic new topic"] {
            assert!(talks_to_others(line), "{line:?}");
        }
        for line in [
            "/topic",
            "/topic   ",
            "/nick bob",
            "/join #x",
            "/away",
            "/quit",
            "/help",
        ] {
            assert!(!talks_to_others(line), "{line:?}");
        }
        assert!(is_quit("/quit"));
        assert!(!is_quit("/quitter"));
        assert!(!is_quit("quit"));
    }
}
