//! Chat core: messages, commands and session scripts.

use super::*;
use chat_server::chat::{
    parse_command, BadInput, ChatCore, ClientId, CloseReason, Command, CommandError, CoreConfig,
    LogFailed, Now, Outbox, Transport,
};
use chat_server::proto::telnet::{encode_message, TelnetDecoder, TelnetLimits};
use chat_server::proto::websocket::encode_text;
use chat_server::record::Record;
use chat_server::timefmt::kitchen;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Largest message the core may send with lines of at most [`MAX_LINE`] bytes and at most
/// 8 clients.
pub const MAX_MESSAGE: usize = 4096;
/// The line limit the scripts apply before the core (the server's default `max_line_bytes`).
pub const MAX_LINE: usize = 512;

/// A recording [`Outbox`] that checks every action of the core (see the module docs).
pub struct Recorder {
    /// Connected (the shell told the core) and not yet reported gone.
    live: BTreeSet<ClientId>,
    /// Closed by the core, not yet reported gone by the shell.
    closed: BTreeSet<ClientId>,
    /// Fail every log write while set.
    pub fail_log: bool,
    /// Renderings of message records logged in this step: may be delivered.
    logged: HashSet<String>,
    /// Renderings of message records whose log write failed in this step: must not be.
    refused: HashSet<String>,
    /// Texts already checked for their wire encodings.
    encoded: HashSet<String>,
    /// Messages sent, for the callers' bookkeeping.
    pub sends: usize,
    now: Now,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder {
            live: BTreeSet::new(),
            closed: BTreeSet::new(),
            fail_log: false,
            logged: HashSet::new(),
            refused: HashSet::new(),
            encoded: HashSet::new(),
            sends: 0,
            now: now_at(0),
        }
    }

    /// The shell accepted `id` (call before `handle_connect`).
    pub fn connected(&mut self, id: ClientId) {
        self.live.insert(id);
        self.closed.remove(&id);
    }

    /// The shell reports `id` gone (call before `handle_disconnect`).
    pub fn gone(&mut self, id: ClientId) {
        self.live.remove(&id);
        self.closed.remove(&id);
    }

    /// Connections the core closed that the shell has not reported gone.
    pub fn closed(&self) -> Vec<ClientId> {
        self.closed.iter().copied().collect()
    }

    /// Connected clients the core has not closed.
    pub fn open(&self) -> Vec<ClientId> {
        self.live.difference(&self.closed).copied().collect()
    }

    /// A new call into the core begins at `now`.
    pub fn begin_step(&mut self, now: Now) {
        self.now = now;
        self.logged.clear();
        self.refused.clear();
    }

    fn check_text(&mut self, to: ClientId, text: &str) {
        assert!(
            self.live.contains(&to),
            "core: message to a client that is not connected: {to:?} {text:?}"
        );
        assert!(
            !self.closed.contains(&to),
            "core: message to a client it closed: {to:?} {text:?}"
        );
        self.sends += 1;
        if !self.encoded.contains(text) {
            check_message(text);
            if self.encoded.len() < 256 {
                self.encoded.insert(text.to_string());
            }
        }
        if let Some(kind) = message_kind(text) {
            assert!(
                !self.refused.contains(text) || self.logged.contains(text),
                "core: {kind} message sent although its log write failed: {text:?}"
            );
            assert!(
                self.logged.contains(text),
                "core: {kind} message sent without a log record before it: {text:?}"
            );
        }
    }

    /// Consistency of the core with what the recorder saw: the counts match the open
    /// clients, nicknames are valid and unique (case-insensitively), channel names are valid
    /// and unique.
    pub fn check_core(&self, core: &ChatCore) {
        let stats = core.stats();
        let open = self.open();
        assert_eq!(stats.sessions, open.len(), "core: session count");
        let mut nicks = BTreeSet::new();
        for id in &open {
            if let Some(nick) = core.nick_of(*id) {
                assert!(valid_nick(nick), "core: invalid nickname {nick:?}");
                assert!(
                    nicks.insert(nick.to_ascii_lowercase()),
                    "core: nickname {nick} twice"
                );
            }
        }
        assert_eq!(stats.users, nicks.len(), "core: user count");
        let channels = core.channel_names();
        assert_eq!(stats.channels, channels.len(), "core: channel count");
        let mut seen = BTreeSet::new();
        for c in &channels {
            assert!(valid_channel(c), "core: invalid channel {c:?}");
            assert!(
                seen.insert(c.to_ascii_lowercase()),
                "core: channel {c} twice"
            );
        }
        assert!(channels.len() <= nicks.len(), "core: empty channel kept");
    }
}

/// What a user may receive: non-empty, at most [`MAX_MESSAGE`] bytes, lines separated by
/// single `'\n'` (none empty, none at either end), no control character but TAB and `'\n'`;
/// and its telnet and WebSocket encodings are right.
pub fn check_message(text: &str) {
    assert!(!text.is_empty(), "core: empty message");
    assert!(
        text.len() <= MAX_MESSAGE,
        "core: message of {} bytes (max {MAX_MESSAGE})",
        text.len()
    );
    assert!(
        text.chars().all(allowed_char),
        "core: control character in message {text:?}"
    );
    assert!(
        text.split('\n').all(|l| !l.is_empty()),
        "core: empty line in message {text:?}"
    );
    // Telnet: one CR LF terminated line per line, given back by the decoder.
    let mut wire = Vec::new();
    encode_message(text, &mut wire);
    let limits = TelnetLimits {
        max_line: text.len(),
        max_input: text.len() + 2,
    };
    let mut lines = Vec::new();
    TelnetDecoder::new().feed(&wire, &limits, |e| lines.push(owned_telnet(e)));
    let expected: Vec<TelnetOut> = text
        .split('\n')
        .map(|l| TelnetOut::Line(l.as_bytes().to_vec()))
        .collect();
    assert_eq!(lines, expected, "telnet encoding of {text:?}");
    // WebSocket: one unmasked final text frame holding the text.
    let mut frame = Vec::new();
    encode_text(text, &mut frame);
    assert_eq!(frame[0], 0x81);
    let (len, start) = match frame[1] {
        126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&frame[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (usize::from(n), 2),
    };
    assert_eq!(len, text.len());
    assert_eq!(&frame[start..], text.as_bytes());
}

/// Which kind of logged message `text` is a rendering of, from its shape: chat
/// `3:04PM-@nick: text`, private `3:04PM - *Private from/to @nick: text`, announcement.
pub(crate) fn message_kind(text: &str) -> Option<&'static str> {
    if text.starts_with("Public Server Announcement: ") {
        return Some("announcement");
    }
    let b = text.as_bytes();
    let hour = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&hour)
        || b.get(hour) != Some(&b':')
        || !b.get(hour + 1..hour + 3)?.iter().all(u8::is_ascii_digit)
        || !matches!(b.get(hour + 3..hour + 5)?, b"AM" | b"PM")
    {
        return None;
    }
    let rest = &text[hour + 5..];
    if rest.starts_with(" - *Private from @") || rest.starts_with(" - *Private to @") {
        return Some("private");
    }
    let after = rest.strip_prefix("-@")?;
    let nick_end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(after.len());
    after[nick_end..].starts_with(": ").then_some("chat")
}

pub(crate) fn valid_nick(nick: &str) -> bool {
    (1..=24).contains(&nick.len())
        && nick.as_bytes()[0].is_ascii_alphabetic()
        && nick
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn valid_channel(name: &str) -> bool {
    name.strip_prefix('#').is_some_and(|body| {
        (1..=32).contains(&body.len())
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

impl Outbox for Recorder {
    fn log(&mut self, now: Now, record: &Record<'_>) -> Result<u64, LogFailed> {
        // JSON escaping: one line, and it reads back as the same record.
        let json = serde_json::to_string(record).expect("record serializes");
        assert!(!json.contains('\n'), "log: record spans lines: {json}");
        let back: Record<'_> = serde_json::from_str(&json).expect("record reads back");
        assert_eq!(&back, record, "log: record does not read back the same");
        let k = kitchen(now.unix_ms, now.utc_offset_s);
        let renderings = match record {
            Record::Chat { nick, text, .. } => vec![format!("{k}-@{nick}: {text}")],
            Record::Private { from, to, text } => vec![
                format!("{k} - *Private from @{from}: {text}"),
                format!("{k} - *Private to @{to}: {text}"),
            ],
            Record::Announcement { text, .. } => {
                vec![format!("Public Server Announcement: {text}")]
            }
            _ => Vec::new(),
        };
        if self.fail_log {
            self.refused.extend(renderings);
            Err(LogFailed)
        } else {
            self.logged.extend(renderings);
            Ok(0)
        }
    }

    fn send(&mut self, to: ClientId, text: &str) {
        self.check_text(to, text);
    }

    fn send_many(&mut self, to: &[ClientId], text: &str) {
        let distinct: BTreeSet<&ClientId> = to.iter().collect();
        assert_eq!(
            distinct.len(),
            to.len(),
            "core: a recipient twice in send_many"
        );
        for id in to {
            self.check_text(*id, text);
        }
    }

    fn close(&mut self, id: ClientId, _reason: CloseReason) {
        assert!(
            self.live.contains(&id),
            "core: closes an unknown client {id:?}"
        );
        assert!(self.closed.insert(id), "core: closes {id:?} twice");
    }
}

/// A time `ms` milliseconds after a fixed start (in 2026, UTC).
pub fn now_at(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        unix_ms: 1_790_000_000_000 + ms as i64,
        utc_offset_s: 0,
    }
}

/// Every command word.
const COMMAND_WORDS: [&str; 16] = [
    "/help",
    "/list",
    "/quit",
    "/join",
    "/msg",
    "/ignore",
    "/nick",
    "/me",
    "/topic",
    "/away",
    "/back",
    "/whois",
    "/channels",
    "/unignore",
    "/motd",
    "/history",
];

/// Checks [`parse_command`] on any string: `None` exactly for lines not starting with `/`;
/// the command word matched exactly; arguments are non-empty words (or the text tail) of
/// the line; channel names valid.
pub fn check_parse_command(line: &str) {
    let parsed = parse_command(line);
    assert_eq!(parsed.is_none(), !line.starts_with('/'));
    let Some(parsed) = parsed else { return };
    let mut words = line.split_whitespace();
    let word = words.next().unwrap_or_default();
    let second = words.next();
    let is_word = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
    match parsed {
        Ok(Command::Help) => assert_eq!(word, "/help"),
        Ok(Command::List) => assert_eq!(word, "/list"),
        Ok(Command::Quit) => assert_eq!(word, "/quit"),
        Ok(Command::Join(name)) => {
            assert_eq!(word, "/join");
            assert!(valid_channel(name), "command: /join with {name:?}");
            assert_eq!(second, Some(name));
            assert_eq!(words.next(), None);
        }
        Ok(Command::JoinSince(name, seq)) => {
            assert_eq!(word, "/join");
            assert!(valid_channel(name), "command: /join with {name:?}");
            assert_eq!(second, Some(name));
            assert_eq!(words.next(), Some("since"));
            assert_eq!(words.next().and_then(|n| n.parse().ok()), Some(seq));
            assert_eq!(words.next(), None);
        }
        Ok(Command::History(n)) => {
            assert_eq!(word, "/history");
            assert_eq!(n.is_some(), second.is_some());
            assert_ne!(n, Some(0));
        }
        Ok(Command::Msg { to, text }) => {
            assert_eq!(word, "/msg");
            assert!(is_word(to));
            assert_eq!(second.and_then(|s| s.strip_prefix('@')), Some(to));
            assert!(!text.is_empty() && line.ends_with(text));
            assert_eq!(text, text.trim_start());
        }
        Ok(Command::Ignore(nick)) => {
            assert_eq!(word, "/ignore");
            assert!(is_word(nick));
            assert_eq!(second.and_then(|s| s.strip_prefix('@')), Some(nick));
        }
        Ok(Command::Nick(nick)) => {
            assert_eq!(word, "/nick");
            assert!(!nick.is_empty() && line.trim_end().ends_with(nick));
            assert_eq!(nick, nick.trim());
        }
        Ok(Command::Me(text)) => {
            assert_eq!(word, "/me");
            assert!(!text.is_empty() && line.trim_end().ends_with(text));
            assert_eq!(text, text.trim());
        }
        Ok(Command::Topic(text) | Command::Away(text)) => {
            assert!(word == "/topic" || word == "/away", "{word}");
            match text {
                Some(text) => {
                    assert!(!text.is_empty() && line.trim_end().ends_with(text));
                    assert_eq!(text, text.trim());
                }
                None => assert_eq!(second, None),
            }
        }
        Ok(Command::Back) => assert_eq!(word, "/back"),
        Ok(Command::Channels) => assert_eq!(word, "/channels"),
        Ok(Command::Motd) => assert_eq!(word, "/motd"),
        Ok(Command::Whois(nick) | Command::Unignore(nick)) => {
            assert!(word == "/whois" || word == "/unignore", "{word}");
            assert!(is_word(nick));
            assert_eq!(second.and_then(|s| s.strip_prefix('@')), Some(nick));
        }
        Err(CommandError::Unknown(w)) => {
            assert_eq!(w, word);
            assert!(!COMMAND_WORDS.contains(&w));
        }
        Err(CommandError::NickNeedsNick) => assert_eq!(word, "/nick"),
        Err(CommandError::MeNeedsAction) => assert_eq!(word, "/me"),
        Err(CommandError::WhoisNeedsNick) => assert_eq!(word, "/whois"),
        Err(CommandError::UnignoreNeedsNick) => assert_eq!(word, "/unignore"),
        Err(CommandError::JoinNeedsChannel) => {
            assert_eq!(word, "/join");
            assert_eq!(second, None);
        }
        Err(CommandError::InvalidChannel(_)) => assert_eq!(word, "/join"),
        Err(CommandError::MsgNeedsNick | CommandError::MsgNeedsText) => assert_eq!(word, "/msg"),
        Err(CommandError::IgnoreNeedsNick) => assert_eq!(word, "/ignore"),
        Err(CommandError::JoinSinceNeedsSeq) => {
            assert_eq!(word, "/join");
            assert_eq!(words.next(), Some("since"));
        }
        Err(CommandError::HistoryNeedsNumber) => assert_eq!(word, "/history"),
    }
}

/// The script that every [`run_script`] starts with: three clients (keys 0–2), two of them
/// named and in `#a`.
pub const SCRIPT_PRELUDE: &[u8] = b"c0\nc1\nc2\n0>alice\n1>Bob\n0>/join #a\n1>/join #a\n";

/// Runs a session script through a [`ChatCore`] with a checking [`Recorder`], after
/// [`SCRIPT_PRELUDE`]. One action per line:
///
/// | line | action |
/// |---|---|
/// | `cK` | client K (a digit 0–7) connects (a new generation on slot K) |
/// | `dK` | the shell reports client K gone |
/// | `K>text` | client K sends the line `text` (cleaned as the framers do; invalid UTF-8 and lines over [`MAX_LINE`] are reported as bad input) |
/// | `bK` | client K sends a binary WebSocket message |
/// | `tN` | N seconds pass (a timer tick) |
/// | `oN` | the UTC offset becomes N quarter hours |
/// | `a text` / `a#chan text` | an administrator's announcement (to everyone / one channel) |
/// | `f` | log writes start/stop failing |
/// | `s` | the server shuts down |
/// | anything else | client 0 sends the whole line |
///
/// After every action, the connections the core closed are reported gone (as the shell's
/// reap step does) and [`Recorder::check_core`] runs; at the end the server shuts down and
/// nothing may be left.
pub fn run_script(script: &[u8]) {
    let mut core = ChatCore::new(CoreConfig {
        nick_timeout_ms: 60_000,
        ..CoreConfig::default()
    });
    let mut rec = Recorder::new();
    let mut ids: BTreeMap<u32, ClientId> = BTreeMap::new();
    let mut gen = 0u32;
    let mut ms = 0u64;
    let mut offset = 0i32;
    for line in SCRIPT_PRELUDE
        .split(|&b| b == b'\n')
        .chain(script.split(|&b| b == b'\n'))
    {
        let now = Now {
            utc_offset_s: offset,
            ..now_at(ms)
        };
        rec.begin_step(now);
        let digit = |b: Option<&u8>| match b {
            Some(d @ b'0'..=b'7') => Some(u32::from(d - b'0')),
            _ => None,
        };
        let key = digit(line.get(1));
        match (line.first(), key) {
            (Some(b'c'), Some(k)) if line.len() == 2 => {
                gen += 1;
                let id = ClientId { key: k, gen };
                if let Some(old) = ids.insert(k, id) {
                    // The slot is reused without the old connection reported gone.
                    rec.gone(old);
                }
                rec.connected(id);
                core.handle_connect(now, id, Transport::Telnet, PEER, &mut rec);
            }
            (Some(b'd'), Some(k)) if line.len() == 2 => {
                if let Some(id) = ids.remove(&k) {
                    rec.gone(id);
                    core.handle_disconnect(now, id, CloseReason::Eof, &mut rec);
                }
            }
            (Some(b'b'), Some(k)) if line.len() == 2 => {
                if let Some(id) = ids.get(&k) {
                    core.handle_bad_input(now, *id, BadInput::Binary, &mut rec);
                }
            }
            (Some(b't'), _) => {
                let n = number(&line[1..]);
                ms = ms.saturating_add(n.saturating_mul(1000));
                let later = Now {
                    utc_offset_s: offset,
                    ..now_at(ms)
                };
                rec.begin_step(later);
                core.handle_tick(later, &mut rec);
            }
            (Some(b'o'), _) => {
                offset = ((number(&line[1..]) % 105) as i32 - 52) * 900;
            }
            (Some(b'f'), None) if line.len() == 1 => rec.fail_log = !rec.fail_log,
            (Some(b's'), None) if line.len() == 1 => core.handle_shutdown(now, &mut rec),
            (Some(b'a'), _) => {
                if let Some(text) = check_clean_line(&line[1..]) {
                    let (channel, text) = match text.strip_prefix('#') {
                        Some(_) => match text.split_once(' ') {
                            Some((c, t)) => (Some(c.to_string()), t.trim().to_string()),
                            None => (Some(text.clone()), String::new()),
                        },
                        None => (None, text.clone()),
                    };
                    if !text.is_empty() && text.len() <= MAX_LINE {
                        let result = core.announce(now, &text, channel.as_deref(), &mut rec);
                        if let Ok(recipients) = result {
                            assert!(!recipients.is_empty());
                        }
                    }
                }
            }
            (Some(d @ b'0'..=b'7'), _) if line.get(1) == Some(&b'>') => {
                let k = u32::from(d - b'0');
                if let Some(id) = ids.get(&k) {
                    user_line(&mut core, &mut rec, now, *id, &line[2..]);
                }
            }
            _ => {
                if let Some(id) = ids.get(&0) {
                    user_line(&mut core, &mut rec, now, *id, line);
                }
            }
        }
        // The shell's reap step: what the core closed is gone.
        for id in rec.closed() {
            rec.gone(id);
            if ids.get(&id.key) == Some(&id) {
                ids.remove(&id.key);
            }
            core.handle_disconnect(now, id, CloseReason::Eof, &mut rec);
        }
        rec.check_core(&core);
        if let Some(deadline) = core.next_deadline() {
            assert!(
                deadline <= ms.saturating_add(60_000),
                "core: deadline too far"
            );
        }
    }
    let now = now_at(ms);
    rec.begin_step(now);
    let open = rec.open();
    core.handle_shutdown(now, &mut rec);
    assert_eq!(
        rec.closed(),
        open,
        "core: shutdown did not close every client"
    );
    for id in rec.closed() {
        rec.gone(id);
        core.handle_disconnect(now, id, CloseReason::Eof, &mut rec);
    }
    let stats = core.stats();
    assert_eq!(
        (stats.sessions, stats.users, stats.channels),
        (0, 0, 0),
        "core: state left after shutdown"
    );
    assert!(core.channel_names().is_empty());
}

/// One line from a user, through the same steps as the server's framers.
pub(crate) fn user_line(
    core: &mut ChatCore,
    rec: &mut Recorder,
    now: Now,
    id: ClientId,
    raw: &[u8],
) {
    if raw.len() > MAX_LINE {
        core.handle_bad_input(now, id, BadInput::TooLong { max: MAX_LINE }, rec);
        return;
    }
    match check_clean_line(raw) {
        None => core.handle_bad_input(now, id, BadInput::InvalidUtf8, rec),
        Some(line) => {
            check_parse_command(&line);
            if !line.is_empty() {
                core.handle_line(now, id, &line, rec);
            }
        }
    }
}

/// The leading decimal digits of `s` (at most 6), 0 when none.
pub(crate) fn number(s: &[u8]) -> u64 {
    s.iter()
        .take_while(|b| b.is_ascii_digit())
        .take(6)
        .fold(0, |n, b| n * 10 + u64::from(b - b'0'))
}
