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
    for (syntax, description) in HELP {
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
    }
}

pub fn action(kitchen: &str, nick: &str, text: &str) -> String {
    format!("{kitchen}-* @{nick} {text}")
}

pub fn topic_set(kitchen: &str, nick: &str, channel: &str, topic: &str) -> String {
    format!("{kitchen}-@{nick} set the topic of {channel}: {topic}")
}

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
