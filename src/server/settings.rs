//! The settings the loop reads, derived once from the config.

use super::conn::{elapsed, ms32, Conn};
use super::io::OutputLimits;
use super::limits::fd_limit;
use super::moderation_io::ModerationShell;
use crate::chat::PresenceConfig;
use crate::config::{duration, Config};
use crate::proto::http::HttpLimits;
use crate::proto::telnet::TelnetLimits;
use crate::rest::RestConfig;
use std::path::PathBuf;
use std::time::Duration;

/// How long a closing connection may take to flush its last messages and see the peer close.
const CLOSE_FLUSH_MS: u64 = 3_000;

/// Seconds from the config as milliseconds.
pub(super) fn ms(secs: f64) -> u64 {
    u64::try_from(duration(secs).as_millis()).unwrap_or(u64::MAX)
}

/// Settings the loop reads, in the units it uses.
pub(super) struct Settings {
    pub telnet: TelnetLimits,
    pub max_line: usize,
    pub lines_burst: f32,
    pub lines_per_ms: f32,
    pub max_connections: usize,
    pub max_per_ip: u32,
    pub limit_loopback: bool,
    pub keepalive: Duration,
    pub shutdown_grace_ms: u64,
    pub output: OutputLimits,
    pub backlog_high: usize,
    pub presence: PresenceConfig,
    pub nick_timeout_ms: u64,
    pub http: HttpLimits,
    pub http_header_ms: u64,
    pub http_body_ms: u64,
    pub ws_handshake_ms: u64,
    pub ws_max_message: usize,
    pub ws_read_buffer: usize,
    pub ws_ping_ms: u64,
    pub ws_idle_ms: u64,
    pub allowed_origins: Vec<String>,
    /// The REST API's settings; the admin token is filled in by [`super::Server::bind`].
    pub rest: RestConfig,
    pub log_path: PathBuf,
    /// The state file and trusted proxies (these are filled in by [`super::Server::bind`]),
    /// and the state file's write status.
    pub moderation: ModerationShell,
}

impl From<&Config> for Settings {
    fn from(config: &Config) -> Settings {
        let max_connections = config
            .max_connections
            .unwrap_or_else(|| fd_limit().unwrap_or(1024).saturating_sub(32).max(1));
        Settings {
            telnet: TelnetLimits {
                max_line: config.max_line_bytes,
                max_input: config.max_input_bytes,
            },
            max_line: config.max_line_bytes,
            lines_burst: config.lines_burst as f32,
            lines_per_ms: (config.lines_per_s / 1000.0) as f32,
            max_connections,
            max_per_ip: u32::try_from(config.max_connections_per_ip).unwrap_or(u32::MAX),
            limit_loopback: config.limit_loopback,
            keepalive: duration(config.tcp_keepalive_s),
            shutdown_grace_ms: ms(config.shutdown_grace_s),
            output: OutputLimits {
                hard: config.output_hard_limit_bytes,
                soft: config.output_soft_limit_bytes,
                soft_ms: ms(config.output_soft_limit_s),
                close_flush_ms: CLOSE_FLUSH_MS,
            },
            backlog_high: config.backlog_high_bytes,
            presence: PresenceConfig {
                max_members: config.presence_notice_max_members,
                interval_ms: ms(config.presence_notice_interval_s),
            },
            nick_timeout_ms: ms(config.nick_timeout_s),
            http: HttpLimits {
                max_header: config.http_max_header_bytes,
                max_body: config.http_max_body_bytes,
            },
            http_header_ms: ms(config.http_header_timeout_s),
            http_body_ms: ms(config.http_body_timeout_s),
            ws_handshake_ms: ms(config.ws_handshake_timeout_s),
            ws_max_message: config.ws_max_message_bytes,
            ws_read_buffer: config.ws_read_buffer_bytes,
            ws_ping_ms: ms(config.ws_ping_interval_s),
            ws_idle_ms: ms(config.ws_idle_timeout_s),
            allowed_origins: config.allowed_origins.clone(),
            rest: RestConfig {
                admin_token: String::new(),
                max_announcement_bytes: config.max_line_bytes,
            },
            log_path: PathBuf::from(&config.log_file),
            moderation: ModerationShell {
                state_path: crate::config_moderation::state_path(config),
                ..ModerationShell::default()
            },
        }
    }
}

impl Settings {
    /// Adds the line tokens a connection earned since its last refill, up to the burst.
    pub fn refill(&self, conn: &mut Conn, now_ms: u64) {
        let elapsed = elapsed(now_ms, conn.refilled_ms) as f32;
        conn.tokens = (conn.tokens + elapsed * self.lines_per_ms).min(self.lines_burst);
        conn.refilled_ms = ms32(now_ms);
    }

    /// Milliseconds until a connection with `tokens` has one whole token.
    pub fn token_wait_ms(&self, tokens: f32) -> u64 {
        (((1.0 - tokens).max(0.0) / self.lines_per_ms).ceil() as u64).max(1)
    }
}
