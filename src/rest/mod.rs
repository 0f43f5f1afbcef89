//! The HTTP REST admin API: routing a [`Request`] to a [`Response`], using a [`ServerView`]
//! of the running server. Pure: the shell supplies the view and drives log queries in slices.

use crate::chat::AnnounceError;
use crate::proto::http::{Request, Response};

/// What the REST API may see and do of the running server.
pub trait ServerView {
    /// Sends `Public Server Announcement: <text>` to every identified user, or to one
    /// channel's members; the recipients' `@nick`s on success.
    fn announce(&mut self, text: &str, channel: Option<&str>) -> Result<Vec<String>, AnnounceError>;
    /// A snapshot of the numbers for `/status` and `/metrics`.
    fn snapshot(&self) -> Snapshot;
}

/// Numbers for `/status` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Server version.
    pub version: &'static str,
    /// Seconds since start-up.
    pub uptime_s: u64,
    /// Wall clock, ms since the Unix epoch.
    pub now_unix_ms: i64,
    /// Users with a nickname.
    pub users: u64,
    /// Names of channels with members.
    pub channels: Vec<String>,
    /// Open connections by transport.
    pub telnet_connections: u64,
    /// Open WebSocket connections (upgraded).
    pub websocket_connections: u64,
    /// Open HTTP connections (REST, and WebSocket-port requests not yet upgraded).
    pub http_connections: u64,
    /// Input lines/messages received from users.
    pub messages_in: u64,
    /// Messages queued to recipients (one per recipient).
    pub messages_out: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Closed connections by reason name (`quit`, `eof`, `output_overflow`, ...), every
    /// reason listed, zeros included.
    pub disconnects: Vec<(&'static str, u64)>,
    /// Connections refused by limits.
    pub refused: u64,
    /// Failed chat-log writes since start-up.
    pub log_write_errors: u64,
    /// True while the chat log cannot be written (status "degraded").
    pub log_failing: bool,
    /// Log queries started.
    pub queries: u64,
}
