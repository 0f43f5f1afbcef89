//! The HTTP REST admin API: routing a [`Request`] to a [`Response`], using a [`ServerView`]
//! of the running server. Pure apart from reading the chat log: the shell supplies the view
//! and drives log queries in slices ([`QueryJob::step`]).
//!
//! # Endpoints
//!
//! | method and path | auth | answer |
//! |---|---|---|
//! | `GET /status` | – | envelope + `Data` (health, uptime, users, channels, connections, version) |
//! | `POST /v1/api/message` | bearer | announcement to every user or one channel; `recipients` |
//! | `GET /v1/api/message` | bearer | log search ([`QueryJob`]); `occurrences`, `records`, `next_cursor` |
//! | `GET /v1/api/channels/{name}/history` | bearer | a channel's remembered messages as records |
//! | `GET /v1/api/users`, `/v1/api/channels`; `POST /v1/api/kick`; `GET/POST/DELETE /v1/api/bans`; `POST/DELETE /v1/api/mute` | bearer | moderation ([`ModerationApi`]) |
//! | `GET /healthz` | – | `200 ok` (text/plain) |
//! | `GET /metrics` | – | Prometheus text exposition 0.0.4 |
//! | `GET /docs` (and `/docs/`) | – | Swagger UI, offline (embedded assets under `/docs/…`) |
//! | `GET /openapi.json`, `GET /docs.json` | – | the OpenAPI 3.0.3 document |
//!
//! `HEAD` is routed like `GET` (the shell drops the body). Any other method on a known path,
//! `OPTIONS` included, gets `405` with `Allow`; an unknown path gets `404`. Every JSON answer,
//! errors included, uses the original's envelope
//! `{"links":{"self":…},"metadata":{"generated":…},"errors":null|[…]}` with a real status code;
//! error objects are `{"severity":"err"|"info"|"crit","human_friendly_message":…,"short_message":…}`.
//!
//! Admin endpoints need `Authorization: Bearer <token>`, compared in constant time
//! ([`auth`]); a missing or wrong token gets `401` with `WWW-Authenticate`. The token is never
//! logged or echoed. No CORS headers are sent.

mod auth;
mod docs;
mod envelope;
mod history;
mod metrics_text;
mod moderation;
mod query;
mod routes;
#[cfg(test)]
mod test_support;

use crate::chat::{AnnounceError, Ring};
use crate::proto::http::Response;

pub use self::auth::constant_time_eq;
pub use self::envelope::framing_error;
pub use self::metrics_text::render as render_metrics;
pub use self::moderation::ModerationApi;
pub use self::query::{QueryJob, MIN_SLICE_BYTES, SUGGESTED_SLICE_BYTES};
pub use self::routes::route;

/// What the REST API may see and do of the running server.
pub trait ServerView {
    /// Sends `Public Server Announcement: <text>` to every identified user, or to one
    /// channel's members; the recipients' `@nick`s on success.
    fn announce(&mut self, text: &str, channel: Option<&str>)
        -> Result<Vec<String>, AnnounceError>;
    /// A snapshot of the numbers for `/status` and `/metrics`.
    fn snapshot(&self) -> Snapshot;
    /// The history ring of a channel (`#name`, any case), if it has one.
    fn history(&self, channel: &str) -> Option<&Ring>;
    /// Wall clock, ms since the Unix epoch, for the envelope's `metadata.generated`.
    /// The default takes it from [`ServerView::snapshot`]; override it with something cheaper.
    fn now_unix_ms(&self) -> i64 {
        self.snapshot().now_unix_ms
    }
    /// True while the server is behind on delivering messages and has paused chat input: an
    /// announcement then gets `503` with `Retry-After: 1` instead of adding to the backlog.
    fn overloaded(&self) -> bool {
        false
    }
    /// The moderation endpoints' access to the server; `None` answers them with `503`.
    fn moderation(&mut self) -> Option<&mut dyn ModerationApi> {
        None
    }
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
    /// Connections accepted since start-up.
    pub accepted: u64,
    /// Failed `accept` calls (out of file descriptors and the like) since start-up.
    pub accept_errors: u64,
    /// Output bytes queued on connections that keep up with what they are sent: the server's
    /// own backlog.
    pub output_backlog_bytes: u64,
    /// Times chat input was paused because that backlog passed its high watermark.
    pub input_pauses: u64,
    /// Failed chat-log writes since start-up.
    pub log_write_errors: u64,
    /// True while the chat log cannot be written (status "degraded").
    pub log_failing: bool,
    /// Log queries started.
    pub queries: u64,
    /// Cluster mode: the link to Redis; `None` in one process.
    pub cluster: Option<ClusterSnapshot>,
}

/// The cluster link as `/status`, `/metrics` and `/healthz` show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterSnapshot {
    /// This node's id.
    pub node_id: String,
    /// Both Redis connections ready and the lease held.
    pub link_up: bool,
    /// The seq of the last stream entry applied here.
    pub applied_seq: u64,
    /// Entries known to be in the stream and not applied here yet.
    pub lag: u64,
    /// Whether this node holds its lease.
    pub lease_held: bool,
    /// The last proposal's round trip to its acknowledgement, in ms.
    pub append_rtt_ms: f64,
}

/// REST settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestConfig {
    /// The bearer token for the admin endpoints. An empty token matches nothing (every admin
    /// request is refused).
    pub admin_token: String,
    /// Longest announcement text, in bytes of UTF-8 (the JSON-decoded `message`).
    pub max_announcement_bytes: usize,
}

/// What [`route`] decided.
#[derive(Debug)]
pub enum Outcome {
    /// Send this response.
    Respond(Response),
    /// A log query: call [`QueryJob::step`] once per loop pass until it returns the response.
    /// The shell counts these for `chat_log_queries_total`.
    Query(QueryJob),
}
