//! Server configuration: the JSON config file, its defaults and its validation.
//!
//! The file is one JSON object. Every key is optional and falls back to its default, so `{}`
//! is a valid config, and so is the original Go project's file, which holds only `ip`,
//! `telnet_port`, `rest_port`, `websocket_port` and `log_file`. Unknown keys are rejected, so a
//! misspelt key is reported instead of silently ignored.
//!
//! [`Config::load`] reads and checks a file; every error it returns is one line that names the
//! file and, where there is one, the offending key:
//!
//! ```text
//! config file "x.json": unknown key "foo" at line 2 column 8 (known keys: ip, telnet_port, ...)
//! config file "x.json": bad value for "telnet_port": invalid value: integer `70000`, expected u16 at line 2 column 24
//! config file "x.json": "nick_timeout_s" must be a positive number of seconds, got -1
//! ```
//!
//! Durations are plain numbers of seconds (`f64`, so `0.2` is fine); [`duration`] turns one
//! into a [`Duration`].

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::Value;

/// Largest accepted `max_input_bytes` (and so `max_line_bytes`): 1 MiB.
const MAX_INPUT_LIMIT: usize = 1 << 20;
/// Largest accepted `*_s` value, in seconds.
const MAX_SECONDS: f64 = 1e6;
/// Smallest accepted output queue limit, in bytes.
const MIN_OUTPUT_LIMIT: usize = 1024;
/// Largest accepted `http_max_body_bytes`: 16 MiB.
const MAX_HTTP_BODY: usize = 16 << 20;
/// Shortest accepted `admin_token`, in characters.
pub const MIN_TOKEN_CHARS: usize = 16;
/// Largest `history_size` (entries per channel).
const MAX_HISTORY_SIZE: usize = 100_000;
/// Largest `history_channels`.
const MAX_HISTORY_CHANNELS: usize = 1_000_000;
/// Largest `history_scan_bytes`: 1 GiB.
const MAX_HISTORY_SCAN_BYTES: u64 = 1 << 30;

/// Defines [`Config`], its `Default`, [`KNOWN_KEYS`] and the per-key setter from one table,
/// so the four can never disagree.
macro_rules! define_config {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty = $default:expr, )*) => {
        /// Every setting of the server, as read from the JSON config file.
        ///
        /// Field names are the file's keys. Durations are in seconds and sizes in bytes.
        /// Build one with [`Config::load`] or [`Config::from_json_str`] (both validate), or
        /// start from `Config::default()` and call [`Config::validate`] after changing it.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $( $(#[$doc])* pub $field: $ty, )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $field: $default, )* }
            }
        }

        /// Every key a config file may hold, in the order the README documents them.
        pub const KNOWN_KEYS: &[&str] = &[ $( stringify!($field), )* ];

        impl Config {
            /// Sets the field named `key` from `value`. `key` must be one of [`KNOWN_KEYS`].
            fn set_field(&mut self, key: &str, value: Value) -> Result<(), String> {
                match key {
                    $( stringify!($field) => {
                        self.$field = serde_json::from_value(value).map_err(|e| e.to_string())?;
                    } )*
                    _ => return Err(format!("unknown key {key:?}")),
                }
                Ok(())
            }
        }
    };
}

define_config! {
    /// Address all three listeners bind, e.g. `0.0.0.0`, `127.0.0.1` or `::`.
    ip: String = "0.0.0.0".to_owned(),
    /// Port of the telnet listener (0 picks a free port).
    telnet_port: u16 = 4000,
    /// Port of the HTTP REST listener (0 picks a free port).
    rest_port: u16 = 4001,
    /// Port of the WebSocket listener (0 picks a free port).
    websocket_port: u16 = 4004,
    /// Path of the chat log (JSON Lines), appended to.
    log_file: String = "chat-server.log".to_owned(),
    /// Bearer token for the admin REST endpoints (see [`check_admin_token`]); `None`: the
    /// environment variable [`ADMIN_TOKEN_ENV`], else a random token printed at start-up.
    admin_token: Option<String> = None,
    /// Extra `Origin`s allowed to open the WebSocket, e.g. `https://chat.example.com`.
    allowed_origins: Vec<String> = Vec::new(),
    /// Longest accepted input line, in bytes.
    max_line_bytes: usize = 512,
    /// Bytes received without a newline before the connection is closed.
    max_input_bytes: usize = 4096,
    /// Time a new connection has to choose a nickname.
    nick_timeout_s: f64 = 60.0,
    /// Queued output for one reader above which it is disconnected at once.
    output_hard_limit_bytes: usize = 262_144,
    /// Queued output for one reader above which, for `output_soft_limit_s`, it is disconnected.
    output_soft_limit_bytes: usize = 65_536,
    /// How long a reader may stay above `output_soft_limit_bytes`.
    output_soft_limit_s: f64 = 30.0,
    /// Output queued on connections whose sockets are not pushing back (the server's own
    /// backlog) above which chat input is paused, until it is below half of this.
    backlog_high_bytes: usize = 16 << 20,
    /// Channels with more members than this get their join and leave notices summed up.
    presence_notice_max_members: usize = 500,
    /// At most one join/leave summary per big channel per this many seconds.
    presence_notice_interval_s: f64 = 10.0,
    /// Lines a connection may send in a burst.
    lines_burst: u32 = 20,
    /// Lines per second a connection may send after its burst; above this the server stops
    /// reading that socket for a while.
    lines_per_s: f64 = 5.0,
    /// Most connections at once; `None` means the open-file limit minus 32.
    max_connections: Option<usize> = None,
    /// Most connections at once from one IP address.
    max_connections_per_ip: usize = 16,
    /// Apply `max_connections_per_ip` to loopback peers too (they are exempt when false).
    limit_loopback: bool = false,
    /// Largest WebSocket message and frame, in bytes.
    ws_max_message_bytes: usize = 4096,
    /// Size of each WebSocket connection's read buffer, in bytes.
    ws_read_buffer_bytes: usize = 4096,
    /// Time a WebSocket client has to complete its opening handshake.
    ws_handshake_timeout_s: f64 = 10.0,
    /// A WebSocket client silent this long is sent a ping.
    ws_ping_interval_s: f64 = 30.0,
    /// A WebSocket client silent this long is disconnected.
    ws_idle_timeout_s: f64 = 60.0,
    /// Largest HTTP request head (request line and headers), in bytes.
    http_max_header_bytes: usize = 8192,
    /// Largest HTTP request body, in bytes.
    http_max_body_bytes: usize = 16_384,
    /// Time an HTTP client has to send the request head.
    http_header_timeout_s: f64 = 10.0,
    /// Time an HTTP client has to send the request body.
    http_body_timeout_s: f64 = 10.0,
    /// TCP keepalive idle time on accepted sockets.
    tcp_keepalive_s: f64 = 60.0,
    /// Time to flush goodbyes on SIGTERM before exiting.
    shutdown_grace_s: f64 = 2.0,
    /// The message of the day (`/motd`, and after a nickname is accepted); may hold `\n`.
    motd: Option<String> = None,
    /// Chat history entries (chat, actions, announcements, topic changes) kept per channel.
    history_size: usize = 200,
    /// Channels whose history is kept; the least recently active is dropped first.
    history_channels: usize = 1000,
    /// History entries replayed to a user joining a channel (0: none; at most `history_size`
    /// are replayed).
    history_on_join: usize = 20,
    /// Bytes at the end of the log read at start-up to rebuild topics and history (0: none).
    history_scan_bytes: u64 = 4 << 20,
    /// Server operators: `[{"name": ..., "password_hash": "$argon2id$..."}]` (`/oper`).
    operators: Vec<crate::config_moderation::OperatorEntry> = Vec::new(),
    /// Where bans and mutes are kept; `None` means the log's path with `.state.json`.
    state_file: Option<String> = None,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<String> = Vec::new(),
    /// Several processes serving one chat through Redis (see "Running several processes");
    /// `None` means one process.
    cluster: Option<crate::cluster::config::ClusterConfig> = None,
}

/// A config file that cannot be used; the message is one line naming the file and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Converts a number of seconds to a [`Duration`], saturating: zero, negative and NaN give
/// [`Duration::ZERO`]; values too large to represent (or infinite) give [`Duration::MAX`].
pub fn duration(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

impl Config {
    /// Reads, parses and validates the config file at `path`.
    ///
    /// The error is one line: `config file "PATH": PROBLEM`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let fail =
            |problem: String| ConfigError(one_line(&format!("config file {name:?}: {problem}")));
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| fail(format!("not UTF-8 text: {e}")))?;
        Config::from_json_str(text).map_err(fail)
    }

    /// Parses config file text and validates the result (see [`Config::validate`]).
    ///
    /// The error is one line naming the problem (and the key, where there is one), without a
    /// file name. A leading UTF-8 byte order mark is ignored.
    pub fn from_json_str(text: &str) -> Result<Config, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let config = parse(text).map_err(|e| one_line(&e))?;
        config.validate().map_err(|e| one_line(&e))?;
        Ok(config)
    }

    /// Checks every setting; the error names the key at fault and what it must be.
    pub fn validate(&self) -> Result<(), String> {
        if self.ip.parse::<IpAddr>().is_err() {
            return Err(format!(
                "\"ip\" must be an IP address such as 0.0.0.0, 127.0.0.1 or ::, got {:?}",
                self.ip
            ));
        }
        check_distinct_ports(self)?;
        crate::config_moderation::validate(self)?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        if self.log_file.is_empty() {
            return Err("\"log_file\" must not be empty".to_owned());
        }
        if let Some(token) = &self.admin_token {
            check_admin_token(token).map_err(|rule| format!("\"admin_token\" {rule}"))?;
        }
        for origin in &self.allowed_origins {
            check_origin(origin)
                .map_err(|why| format!("\"allowed_origins\" entry {origin:?} {why}"))?;
        }
        check_min("max_line_bytes", self.max_line_bytes, 1)?;
        if self.max_line_bytes > self.max_input_bytes {
            return Err(format!(
                "\"max_line_bytes\" ({}) must not exceed \"max_input_bytes\" ({})",
                self.max_line_bytes, self.max_input_bytes
            ));
        }
        check_max("max_input_bytes", self.max_input_bytes, MAX_INPUT_LIMIT)?;
        check_min(
            "output_soft_limit_bytes",
            self.output_soft_limit_bytes,
            MIN_OUTPUT_LIMIT,
        )?;
        check_min(
            "output_hard_limit_bytes",
            self.output_hard_limit_bytes,
            MIN_OUTPUT_LIMIT,
        )?;
        if self.output_soft_limit_bytes > self.output_hard_limit_bytes {
            return Err(format!(
                "\"output_soft_limit_bytes\" ({}) must not exceed \"output_hard_limit_bytes\" ({})",
                self.output_soft_limit_bytes, self.output_hard_limit_bytes
            ));
        }
        check_min(
            "backlog_high_bytes",
            self.backlog_high_bytes,
            MIN_OUTPUT_LIMIT,
        )?;
        if self.lines_burst < 1 {
            return Err(format!(
                "\"lines_burst\" must be at least 1, got {}",
                self.lines_burst
            ));
        }
        if !(self.lines_per_s.is_finite()
            && self.lines_per_s > 0.0
            && self.lines_per_s <= MAX_SECONDS)
        {
            return Err(format!(
                "\"lines_per_s\" must be a positive number of lines per second up to {}, got {}",
                fmt_num(MAX_SECONDS),
                fmt_num(self.lines_per_s)
            ));
        }
        if self.max_connections == Some(0) {
            return Err(
                "\"max_connections\" must be at least 1 (or null for the default), got 0"
                    .to_owned(),
            );
        }
        check_min("max_connections_per_ip", self.max_connections_per_ip, 1)?;
        check_range("history_size", self.history_size, 1, MAX_HISTORY_SIZE)?;
        check_range(
            "history_channels",
            self.history_channels,
            1,
            MAX_HISTORY_CHANNELS,
        )?;
        if self.history_scan_bytes > MAX_HISTORY_SCAN_BYTES {
            return Err(format!(
                "\"history_scan_bytes\" must be at most {MAX_HISTORY_SCAN_BYTES}, got {}",
                self.history_scan_bytes
            ));
        }
        check_range(
            "ws_max_message_bytes",
            self.ws_max_message_bytes,
            125,
            MAX_INPUT_LIMIT,
        )?;
        check_range(
            "ws_read_buffer_bytes",
            self.ws_read_buffer_bytes,
            1024,
            65_536,
        )?;
        check_range(
            "http_max_header_bytes",
            self.http_max_header_bytes,
            1024,
            MAX_INPUT_LIMIT,
        )?;
        check_max(
            "http_max_body_bytes",
            self.http_max_body_bytes,
            MAX_HTTP_BODY,
        )?;
        let seconds = [
            ("nick_timeout_s", self.nick_timeout_s),
            ("output_soft_limit_s", self.output_soft_limit_s),
            ("ws_handshake_timeout_s", self.ws_handshake_timeout_s),
            ("ws_ping_interval_s", self.ws_ping_interval_s),
            ("ws_idle_timeout_s", self.ws_idle_timeout_s),
            ("http_header_timeout_s", self.http_header_timeout_s),
            ("http_body_timeout_s", self.http_body_timeout_s),
            ("tcp_keepalive_s", self.tcp_keepalive_s),
            ("shutdown_grace_s", self.shutdown_grace_s),
            (
                "presence_notice_interval_s",
                self.presence_notice_interval_s,
            ),
        ];
        if let Some(motd) = &self.motd {
            check_motd(motd)?;
        }
        for (key, secs) in seconds {
            if !(secs.is_finite() && secs > 0.0) {
                return Err(format!(
                    "{key:?} must be a positive number of seconds, got {}",
                    fmt_num(secs)
                ));
            }
            if secs > MAX_SECONDS {
                return Err(format!(
                    "{key:?} must be at most {} seconds, got {}",
                    fmt_num(MAX_SECONDS),
                    fmt_num(secs)
                ));
            }
        }
        Ok(())
    }
}

/// The environment variable that supplies the admin token when the config has none.
pub const ADMIN_TOKEN_ENV: &str = "CHAT_ADMIN_TOKEN";

/// The rule every admin token the operator sets must follow, wherever it comes from: at least
/// [`MIN_TOKEN_CHARS`] characters, no whitespace. The error completes the sentence "the token
/// ..." and never echoes the token (it is a secret).
pub fn check_admin_token(token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_TOKEN_CHARS {
        return Err(format!(
            "must be at least {MIN_TOKEN_CHARS} characters long"
        ));
    }
    if token.chars().any(char::is_whitespace) {
        return Err("must not contain whitespace".to_owned());
    }
    Ok(())
}

/// The admin token the operator chose: the config's `admin_token`, else `env` (the value of
/// [`ADMIN_TOKEN_ENV`], if set). `Ok(None)` when neither is set. A token from the environment
/// that breaks [`check_admin_token`] (or is not UTF-8) is an error naming the variable and the
/// rule; the config's own token was checked when the config was loaded.
pub fn operator_admin_token(
    config: &Config,
    env: Option<std::ffi::OsString>,
) -> Result<Option<String>, String> {
    if let Some(token) = &config.admin_token {
        return Ok(Some(token.clone()));
    }
    let Some(value) = env else {
        return Ok(None);
    };
    let token = value
        .into_string()
        .map_err(|_| format!("environment variable {ADMIN_TOKEN_ENV} must be UTF-8 text"))?;
    check_admin_token(&token)
        .map_err(|rule| format!("environment variable {ADMIN_TOKEN_ENV} {rule}"))?;
    Ok(Some(token))
}

/// The longest message of the day, in bytes.
const MAX_MOTD_BYTES: usize = 4096;

/// A message of the day is text users see as it is: no control characters but line breaks
/// and TAB, and at most [`MAX_MOTD_BYTES`].
fn check_motd(motd: &str) -> Result<(), String> {
    if motd.len() > MAX_MOTD_BYTES {
        return Err(format!(
            "\"motd\" must be at most {MAX_MOTD_BYTES} bytes, got {}",
            motd.len()
        ));
    }
    if let Some(c) = motd
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(format!(
            "\"motd\" must not hold control characters other than line breaks and TAB, found {c:?}"
        ));
    }
    Ok(())
}

/// Rejects two listeners configured on the same non-zero port (port 0 picks a free port).
fn check_distinct_ports(config: &Config) -> Result<(), String> {
    let ports = [
        ("telnet_port", config.telnet_port),
        ("rest_port", config.rest_port),
        ("websocket_port", config.websocket_port),
    ];
    for (i, (key_a, port_a)) in ports.iter().enumerate() {
        for (key_b, port_b) in &ports[i + 1..] {
            if *port_a != 0 && port_a == port_b {
                return Err(format!(
                    "{key_a:?} and {key_b:?} must differ, both are {port_a}"
                ));
            }
        }
    }
    Ok(())
}

fn check_min(key: &str, value: usize, min: usize) -> Result<(), String> {
    if value < min {
        return Err(format!("{key:?} must be at least {min}, got {value}"));
    }
    Ok(())
}

fn check_max(key: &str, value: usize, max: usize) -> Result<(), String> {
    if value > max {
        return Err(format!("{key:?} must be at most {max}, got {value}"));
    }
    Ok(())
}

fn check_range(key: &str, value: usize, min: usize, max: usize) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "{key:?} must be between {min} and {max}, got {value}"
        ));
    }
    Ok(())
}

/// Checks that `origin` is what a browser sends in an `Origin` header:
/// `scheme://host[:port]`, scheme `http` or `https`, lowercase, no path, query or user info.
/// The error completes the sentence "entry X ...".
fn check_origin(origin: &str) -> Result<(), &'static str> {
    const FORM: &str = "must look like https://host or http://host:port";
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or(FORM)?;
    if rest.contains(['/', '?', '#']) {
        return Err("must not have a path (not even a trailing /), query or fragment");
    }
    if rest.contains('@') {
        return Err("must not contain user info (@)");
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']').ok_or(FORM)?;
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err("has an invalid IPv6 address between [ and ]");
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(FORM)?),
        };
        (inside, port)
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if !rest.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err("has a host with characters other than a-z, 0-9, '-' and '.' (browsers send it lowercase)");
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Err("has an invalid port (must be 1 to 65535)");
        }
    }
    Ok(())
}

/// Formats a number for a message: plain for ordinary magnitudes (`-1`, `0.2`), scientific
/// otherwise, so a message stays short.
fn fmt_num(value: f64) -> String {
    let magnitude = value.abs();
    if !value.is_finite() || value == 0.0 || (1e-6..1e15).contains(&magnitude) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// Makes `text` one line, so an error never spans lines in a log or on a terminal.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What went wrong with a key while parsing, recorded beside serde_json's error (which then
/// carries the line and column).
enum Problem {
    UnknownKey(String),
    DuplicateKey(String),
    BadValue { key: String, message: String },
}

/// Parses the text into a `Config` key by key, so that every error names its key and has a
/// position: syntax errors come from serde_json; key problems are recorded in `problem` and
/// reported through a serde error that serde_json places at the key or value.
fn parse(text: &str) -> Result<Config, String> {
    let mut problem = None;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = ConfigSeed {
        problem: &mut problem,
    }
    .deserialize(&mut deserializer)
    .and_then(|config| deserializer.end().map(|()| config));
    let error = match result {
        Ok(config) => return Ok(config),
        Err(error) => error,
    };
    let at = position(&error);
    Err(match problem {
        Some(Problem::UnknownKey(key)) => {
            format!(
                "unknown key {key:?}{at} (known keys: {})",
                KNOWN_KEYS.join(", ")
            )
        }
        Some(Problem::DuplicateKey(key)) => format!("duplicate key {key:?}{at}"),
        Some(Problem::BadValue { key, message }) => format!("bad value for {key:?}: {message}{at}"),
        None if error.is_data() => format!("{}{at}", message_without_position(&error)),
        None => format!("invalid JSON{at}: {}", message_without_position(&error)),
    })
}

/// `" at line L column C"`, or nothing when serde_json gave no position.
fn position(error: &serde_json::Error) -> String {
    if error.line() == 0 {
        String::new()
    } else {
        format!(" at line {} column {}", error.line(), error.column())
    }
}

/// serde_json's message without the `" at line L column C"` it appends.
fn message_without_position(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let suffix = position(error);
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// Deserializes the top-level object into a `Config`, starting from the defaults.
struct ConfigSeed<'a> {
    problem: &'a mut Option<Problem>,
}

impl<'de> DeserializeSeed<'de> for ConfigSeed<'_> {
    type Value = Config;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Config, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ConfigSeed<'_> {
    type Value = Config;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of settings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Config, A::Error> {
        let mut config = Config::default();
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                *self.problem = Some(Problem::UnknownKey(key));
                return Err(de::Error::custom("unknown key"));
            }
            if seen.contains(&key) {
                *self.problem = Some(Problem::DuplicateKey(key));
                return Err(de::Error::custom("duplicate key"));
            }
            let value: Value = map.next_value()?;
            if let Err(message) = config.set_field(&key, value) {
                *self.problem = Some(Problem::BadValue { key, message });
                return Err(de::Error::custom("bad value"));
            }
            seen.push(key);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
