//! The chat core: users, channels and commands, as a pure state machine.
//!
//! The core never touches sockets, files or the clock. The shell calls its `handle_*` methods
//! with the time ([`Now`]) and an [`Outbox`]; the core answers by pushing actions into the
//! outbox: send text to one or many connections, close a connection, append a log record.

mod banlist;
mod command;
mod core;
pub mod duration;
mod event;
mod history;
mod moderation_text;
mod nick;
mod presence;
mod strings;

pub use self::banlist::{parse_target, BanTarget};
pub use self::command::{
    is_quit, is_valid_channel, parse_command, talks_to_others, Command, CommandError,
};
pub use self::core::moderation::{
    error_text as moderation_error_text, hash_password, is_valid_hash, verify_password, Actor,
    BanInfo, ChannelInfo, ModError, Operator, UserInfo, MAX_OPER_FAILURES,
};
pub use self::core::{AnnounceError, ChatCore, CoreConfig, Stats};
pub use self::event::{Event, EventKind, Member, Members, Presence, Replayed, Said};
pub use self::history::{Entry, EntryKind, History, Ring};
pub use self::moderation_text::{BANNED_HERE, NICK_BANNED};
pub use self::nick::Nick;
pub use self::presence::PresenceConfig;

use crate::record::Record;

/// A connection: its slab key plus a generation, so that a stale reference to a closed
/// connection can never reach the next connection that reuses the slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ClientId {
    /// The slab key.
    pub key: u32,
    /// Unique per accepted connection (a counter), also used as the connection number in logs.
    pub gen: u32,
}

/// The time, as read by the shell and handed to the core on every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds (since the server started); used for deadlines.
    pub mono_ms: u64,
    /// Wall-clock milliseconds since the Unix epoch; used for log timestamps.
    pub unix_ms: i64,
    /// The local time zone's offset from UTC in seconds; used for `3:04PM` stamps.
    pub utc_offset_s: i32,
}

/// How a user reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A telnet (plain TCP line) connection.
    Telnet,
    /// A WebSocket connection.
    WebSocket,
}

impl Transport {
    /// The transport's name in logs, metrics and `/whois`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Telnet => "telnet",
            Transport::WebSocket => "websocket",
        }
    }
}

/// Why a connection was closed. Logged, and counted in metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The user typed `/quit`.
    Quit,
    /// The peer closed its side (EOF).
    Eof,
    /// A read or write failed (reset, broken pipe, ...).
    IoError,
    /// No nickname chosen before the deadline.
    NickTimeout,
    /// The peer stopped reading and its output queue reached the cap.
    OutputOverflow,
    /// The peer sent too many bytes without a newline.
    InputOverflow,
    /// An HTTP request arrived on the telnet port.
    HttpOnTelnet,
    /// A protocol violation (bad WebSocket frame, malformed HTTP, ...).
    ProtocolError,
    /// The peer stayed silent past the idle timeout.
    IdleTimeout,
    /// The server is shutting down.
    Shutdown,
    /// The server closed the connection after too many failed `/oper` attempts.
    Refused,
    /// An operator kicked or banned the user.
    Kicked,
    /// The HTTP exchange completed.
    Done,
}

impl CloseReason {
    /// The reason's name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Quit => "quit",
            CloseReason::Eof => "eof",
            CloseReason::IoError => "io_error",
            CloseReason::NickTimeout => "nick_timeout",
            CloseReason::OutputOverflow => "output_overflow",
            CloseReason::InputOverflow => "input_overflow",
            CloseReason::HttpOnTelnet => "http_on_telnet",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Refused => "refused",
            CloseReason::Kicked => "kicked",
            CloseReason::Done => "done",
        }
    }

    /// Every reason, for metrics.
    pub const ALL: [CloseReason; 13] = [
        CloseReason::Quit,
        CloseReason::Eof,
        CloseReason::IoError,
        CloseReason::NickTimeout,
        CloseReason::OutputOverflow,
        CloseReason::InputOverflow,
        CloseReason::HttpOnTelnet,
        CloseReason::ProtocolError,
        CloseReason::IdleTimeout,
        CloseReason::Shutdown,
        CloseReason::Refused,
        CloseReason::Kicked,
        CloseReason::Done,
    ];
}

/// Input that the framer rejected before it reached the core; the core tells the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadInput {
    /// The line was not valid UTF-8.
    InvalidUtf8,
    /// The line was longer than the limit (bytes).
    TooLong {
        /// The limit in bytes.
        max: usize,
    },
    /// A WebSocket binary frame.
    Binary,
}

/// The log could not be written (disk full, I/O error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogFailed;

/// Where the core puts its actions. The shell implements it over sockets and the log file;
/// tests implement it with a recorder.
pub trait Outbox {
    /// Append a record to the chat log; `Ok` holds the record's sequence number. `Err` means
    /// it was not written: a message whose record failed must not be sent to anyone.
    fn log(&mut self, now: Now, record: &Record<'_>) -> Result<u64, LogFailed>;
    /// Send one message (it may hold `\n` between lines, never at the end) to one connection.
    fn send(&mut self, to: ClientId, text: &str);
    /// Send the same message to many connections; the shell encodes it once per protocol.
    fn send_many(&mut self, to: &[ClientId], text: &str);
    /// Send a typed event to many connections: text clients get `event.line`, JSON-mode
    /// clients its JSON object; each format is encoded once. An outbox that knows no
    /// formats sends the line.
    fn publish(&mut self, to: &[ClientId], event: &Event<'_>) {
        self.send_many(to, event.line);
    }
    /// Close a connection after its queued output is written.
    fn close(&mut self, id: ClientId, reason: CloseReason);
}

#[cfg(test)]
mod tests;
