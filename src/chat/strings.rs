//! Every string the chat core says to users, in one place. Clients and scripts match on
//! these: the original's strings are kept (with its bugs fixed), new ones follow their style.

use super::command::{CommandError, HELP};

pub fn welcome(others: usize) -> String {
    format!(
        "Welcome to chat server. There are {others} other users on this server. please enter a nickname"
    )
}

pub const NICK_TAKEN: &str =
    "Another user with this nickname is connected to this server, Please enter a different nickname";

pub const NICK_INVALID: &str = "Invalid nickname: use 1 to 24 letters, digits, _ or -, starting with a letter. please enter a nickname";

pub const NICK_FIRST: &str = "Please enter a nickname first, or /quit to leave.";

pub const NICK_TIMEOUT: &str = "You did not enter a nickname in time, good bye.";

pub fn thanks(nick: &str) -> String {
    format!("Thanks {nick}, now please type /join #channel to join a channel or /help to get all commands")
}

pub const NOT_IN_CHANNEL: &str =
    "You need to join a channel, use /join #channel or use /help for more info.";

pub const LIST_NOT_IN_CHANNEL: &str = "You are not in a channel, use /join #channel to join one.";

pub fn help() -> String {
    let mut s = String::from("Here is the list of all available commands");
    for (syntax, description) in HELP.iter().chain(&super::moderation_text::HELP) {
        s.push('\n');
        s.push_str(syntax);
        s.push('\t');
        s.push_str(description);
    }
    s
}

pub const LIST_HEADER: &str = "Here is the list of all users in this channel";

pub fn chat(kitchen: &str, nick: &str, text: &str) -> String {
    format!("{kitchen}-@{nick}: {text}")
}

pub fn joined(kitchen: &str, nick: &str, channel: &str) -> String {
    format!("{kitchen}-@{nick} just joined channel {channel}")
}

pub fn left(kitchen: &str, nick: &str, channel: &str) -> String {
    format!("{kitchen}-@{nick} left channel {channel}")
}

pub fn others_in_channel(n: usize) -> String {
    format!("There are {n} other users in this channel.")
}

pub fn already_in(channel: &str) -> String {
    format!("You are already in channel {channel}")
}

pub fn private_from(kitchen: &str, from: &str, text: &str) -> String {
    format!("{kitchen} - *Private from @{from}: {text}")
}

pub fn private_to(kitchen: &str, to: &str, text: &str) -> String {
    format!("{kitchen} - *Private to @{to}: {text}")
}

pub fn not_connected(nick: &str) -> String {
    format!("User @{nick} is not connected to this server.")
}

pub fn ignored_you(nick: &str) -> String {
    format!("User @{nick} has ignored you, your message was not delivered.")
}

pub fn now_ignored(nick: &str) -> String {
    format!("{nick} is now ignored.")
}

pub fn already_ignored(nick: &str) -> String {
    format!("{nick} is already ignored.")
}

pub const IGNORE_SELF: &str = "You can not ignore yourself.";

pub fn good_bye(nick: &str) -> String {
    format!("Good Bye {nick}, come back again.")
}

pub const GOOD_BYE_ANON: &str = "Good Bye, come back again.";

pub const NOT_LOGGED: &str =
    "The server could not save your message to its log, so it was not sent. Please try again later.";

pub const INVALID_UTF8: &str = "Your message was not valid UTF-8 text and was not sent.";

pub fn too_long(max: usize) -> String {
    format!("Your message is longer than {max} bytes and was not sent.")
}

pub const BINARY: &str = "Binary messages are not supported, please send text.";

pub const SHUTDOWN: &str = "The server is shutting down, good bye.";

pub fn announcement(text: &str) -> String {
    format!("Public Server Announcement: {text}")
}

pub fn command_error(err: &CommandError<'_>) -> String {
    match err {
        CommandError::Unknown(word) => {
            format!("Unknown command {word}, use /help to get all commands.")
        }
        CommandError::JoinNeedsChannel => {
            "Could not find the required #channel in the input, use /join #channel".to_string()
        }
        CommandError::InvalidChannel(name) => format!(
            "Invalid channel name {name}: use # followed by 1 to 32 letters, digits, _ or -, e.g. /join #general"
        ),
        CommandError::MsgNeedsNick => {
            "Could not find the required @nickname in the input, use /msg @nickname message"
                .to_string()
        }
        CommandError::MsgNeedsText => {
            "Could not find the required message in the input, use /msg @nickname message"
                .to_string()
        }
        CommandError::IgnoreNeedsNick => {
            "Could not find the required @nickname in the input, use /ignore @nickname".to_string()
        }
        CommandError::JoinSinceNeedsSeq => {
            "Could not find the required sequence number in the input, use /join #channel since SEQ"
                .to_string()
        }
        CommandError::HistoryNeedsNumber => {
            "Could not find a number of messages in the input, use /history or /history N"
                .to_string()
        }
        CommandError::NickNeedsNick => {
            "Could not find the required nickname in the input, use /nick newnickname".to_string()
        }
        CommandError::MeNeedsAction => {
            "Could not find the required action in the input, use /me action".to_string()
        }
        CommandError::WhoisNeedsNick => {
            "Could not find the required @nickname in the input, use /whois @nickname".to_string()
        }
        CommandError::UnignoreNeedsNick => {
            "Could not find the required @nickname in the input, use /unignore @nickname"
                .to_string()
        }
    }
}

// ------------------------------------------------------------------ /nick, /me, /topic, ...

pub const RENAME_INVALID: &str =
    "Invalid nickname: use 1 to 24 letters, digits, _ or -, starting with a letter.";

pub const RENAME_TAKEN: &str = "Another user with this nickname is connected to this server.";

pub fn already_known_as(nick: &str) -> String {
    format!("You are already known as @{nick}.")
}

pub fn renamed(kitchen: &str, old: &str, new: &str) -> String {
    format!("{kitchen}-@{old} is now known as @{new}")
}

pub fn now_known_as(nick: &str) -> String {
    format!("You are now known as @{nick}")
}

pub fn action(kitchen: &str, nick: &str, text: &str) -> String {
    format!("{kitchen}-* @{nick} {text}")
}

pub fn topic_of(channel: &str, topic: &str) -> String {
    format!("Topic of {channel}: {topic}")
}

pub fn no_topic(channel: &str) -> String {
    format!("{channel} has no topic.")
}

pub fn topic_too_long(max: usize) -> String {
    format!("Topics are limited to {max} bytes.")
}

pub fn topic_set(kitchen: &str, nick: &str, channel: &str, topic: &str) -> String {
    format!("{kitchen}-@{nick} set the topic of {channel}: {topic}")
}

pub fn now_away(message: &str) -> String {
    format!("You are now marked as away: {message}")
}

pub const BACK: &str = "You are no longer marked as away.";

pub const NOT_AWAY: &str = "You are not marked as away.";

pub fn is_away(nick: &str, message: &str) -> String {
    format!("@{nick} is away: {message}")
}

pub fn list_member(nick: &str, away: bool) -> String {
    if away {
        format!("@{nick} (away)")
    } else {
        format!("@{nick}")
    }
}

pub const CHANNELS_HEADER: &str = "Here is the list of all channels";

pub const NO_CHANNELS: &str = "There are no channels, use /join #channel to create one.";

pub fn channel_entry(channel: &str, users: usize, topic: Option<&str>) -> String {
    let plural = if users == 1 { "" } else { "s" };
    match topic {
        Some(topic) => format!("{channel} ({users} user{plural}): {topic}"),
        None => format!("{channel} ({users} user{plural})"),
    }
}

pub fn no_longer_ignored(nick: &str) -> String {
    format!("{nick} is no longer ignored.")
}

pub fn not_ignored(nick: &str) -> String {
    format!("{nick} is not ignored.")
}

pub const NO_MOTD: &str = "There is no message of the day.";

pub fn more_channels(n: usize) -> String {
    format!("... and {n} more channels.")
}

/// What `/whois` shows about a user.
pub struct Whois<'a> {
    pub nick: &'a str,
    pub channel: Option<&'a str>,
    pub transport: &'a str,
    pub connected: &'a str,
    pub idle: &'a str,
    pub away: Option<&'a str>,
    /// Shown to operators only.
    pub address: Option<&'a str>,
}

pub fn whois(w: &Whois<'_>) -> String {
    let mut text = match w.channel {
        Some(channel) => format!("@{} is in {channel}, ", w.nick),
        None => format!("@{} is not in a channel, ", w.nick),
    };
    text.push_str(&format!(
        "connected via {} for {}, idle {}",
        w.transport, w.connected, w.idle
    ));
    if let Some(away) = w.away {
        text.push_str(&format!(", away: {away}"));
    }
    if let Some(address) = w.address {
        text.push_str(&format!(", from {address}"));
    }
    text
}

/// A duration in milliseconds as `/whois` shows it: `42s`, `5m12s`, `2h3m`, `3d4h` (the
/// largest unit and the next one, rounded down).
pub fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if d > 0 {
        format!("{d}d{}h", h % 24)
    } else if h > 0 {
        format!("{h}h{}m", m % 60)
    } else if m > 0 {
        format!("{m}m{}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

// ------------------------------------------------------------------ history

pub fn recent_header(channel: &str) -> String {
    format!("Recent messages in {channel}:")
}

pub const RECENT_FOOTER: &str = "End of recent messages.";

pub fn history_header(count: usize, channel: &str) -> String {
    format!("Last {count} messages in {channel}:")
}

pub const HISTORY_FOOTER: &str = "End of history.";

pub fn history_empty(channel: &str) -> String {
    format!("There are no messages in {channel} yet.")
}

// ------------------------------------------------------------------ cluster

/// A state change refused while the cluster link is down (SPEC §15).
pub const CLUSTER_DOWN: &str =
    "Chat is unavailable right now: the cluster link is down. Please try again shortly.";

/// Every local user, when Redis lost its data (epoch change).
pub const CLUSTER_EPOCH_CHANGE: &str =
    "The chat server's shared history was reset; messages sent in the last moments may be missing.";

/// Every local user, when stream entries were trimmed before this node read them.
pub fn cluster_gap(from: u64, to: u64) -> String {
    format!("Messages {from} to {to} could not be delivered to this server in time and are missing here.")
}

/// A local user whose nickname another node took while this one was cut off.
pub fn cluster_nick_lost(nick: &str) -> String {
    format!(
        "Your nickname {nick} was taken by another user while this server was cut off from the \
         chat. Please choose a new nickname."
    )
}

/// `/nick` changing only the case, in a cluster.
pub const CLUSTER_CASE_ONLY: &str =
    "Changing only the case of your nickname is not possible on this server; choose another nickname.";
