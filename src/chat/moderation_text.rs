//! Every string of the moderation commands (§14). Clients and scripts match on these.

use super::duration::format_until;

/// The moderation commands in `/help` order: syntax and description.
pub const HELP: [(&str, &str); 7] = [
    ("/oper name password", "Become a server operator."),
    ("/kick @nickname [reason]", "Disconnect a user (operators)."),
    (
        "/ban @nickname|address|CIDR [duration] [reason]",
        "Ban a user and its address, an address or a range, e.g. 30m, 12h, 7d or permanently (operators).",
    ),
    ("/unban @nickname|address|CIDR", "Lift a ban (operators)."),
    ("/bans", "List the bans (operators)."),
    ("/mute @nickname [duration]", "Stop a user from talking (operators)."),
    ("/unmute @nickname", "Let a muted user talk again (operators)."),
];

pub const OPER_OK: &str = "You are now a server operator.";
pub const OPER_FAILED: &str = "Invalid operator credentials.";
pub const OPER_NEEDS_ARGS: &str =
    "Could not find the required name and password in the input, use /oper name password";
pub const OPER_PENDING: &str =
    "Your previous /oper attempt is still being checked, please wait for its answer.";
pub const OPER_BUSY: &str =
    "The server is busy checking other operator logins, please try /oper again in a moment.";

pub fn needs_oper(command: &str) -> String {
    format!("You need to be a server operator to use {command}.")
}

pub fn needs_nick(command: &str, usage: &str) -> String {
    format!("Could not find the required @nickname in the input, use {command} @nickname{usage}")
}

pub fn needs_target(command: &str, usage: &str) -> String {
    format!(
        "Could not find the required target in the input, use {command} @nickname|address|CIDR{usage}"
    )
}

pub fn invalid_target(target: &str) -> String {
    format!(
        "Invalid ban target {target}: use @nickname, an address such as 203.0.113.7 or a CIDR range such as 203.0.113.0/24."
    )
}

pub fn invalid_duration(word: &str) -> String {
    format!(
        "Invalid duration {word}: use a number followed by s, m, h, d or w, such as 30m, 12h or 7d."
    )
}

pub fn cannot_self(action: &str) -> String {
    format!("You can not {action} yourself.")
}

/// `@op` or `api`, as shown in `/bans` and kick notices.
pub fn kicked_you(by: &str, reason: Option<&str>) -> String {
    match reason {
        Some(r) => format!("You were kicked by {by}: {r}"),
        None => format!("You were kicked by {by}."),
    }
}

pub fn was_kicked(kitchen: &str, nick: &str, by: &str, reason: Option<&str>) -> String {
    match reason {
        Some(r) => format!("{kitchen}-@{nick} was kicked by {by}: {r}"),
        None => format!("{kitchen}-@{nick} was kicked by {by}"),
    }
}

pub fn kick_done(nick: &str) -> String {
    format!("Kicked @{nick}.")
}

pub fn banned(target: &str, until_ms: Option<i64>) -> String {
    match until_ms {
        Some(t) => format!("Banned {target} until {}.", format_until(t)),
        None => format!("Banned {target} permanently."),
    }
}

pub const BANNED_HERE: &str = "You are banned from this server.";
pub const NICK_BANNED: &str = "This nickname is banned.";

pub fn unbanned(target: &str) -> String {
    format!("Removed the ban on {target}.")
}

pub fn not_banned(target: &str) -> String {
    format!("There is no ban on {target}.")
}

pub const BANS_HEADER: &str = "Here is the list of all bans";
pub const NO_BANS: &str = "There are no bans.";

pub fn ban_line(target: &str, until_ms: Option<i64>, by: &str, reason: Option<&str>) -> String {
    let when = match until_ms {
        Some(t) => format!("until {}", format_until(t)),
        None => "permanent".to_string(),
    };
    match reason {
        Some(r) => format!("{target} {when} by {by}: {r}"),
        None => format!("{target} {when} by {by}"),
    }
}

pub fn you_are_muted(until_ms: Option<i64>) -> String {
    match until_ms {
        Some(t) => format!("You are muted until {}.", format_until(t)),
        None => "You are muted.".to_string(),
    }
}

pub fn is_muted(nick: &str, until_ms: Option<i64>) -> String {
    match until_ms {
        Some(t) => format!("@{nick} is muted until {}.", format_until(t)),
        None => format!("@{nick} is muted."),
    }
}

pub fn unmuted(nick: &str) -> String {
    format!("@{nick} is no longer muted.")
}

pub fn not_muted(nick: &str) -> String {
    format!("@{nick} is not muted.")
}

pub const YOU_ARE_UNMUTED: &str = "You are no longer muted.";
