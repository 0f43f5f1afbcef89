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
use serde::Deserialize;
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
const MIN_TOKEN_CHARS: usize = 16;
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
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields, default)]
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
    /// Bearer token for the admin REST endpoints; `None` disables them.
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
    /// Chat history entries (chat, actions, announcements, topic changes) kept per channel.
    history_size: usize = 200,
    /// Channels whose history is kept; the least recently active is dropped first.
    history_channels: usize = 1000,
    /// History entries replayed to a user joining a channel (0: none; at most `history_size`
    /// are replayed).
    history_on_join: usize = 20,
    /// Bytes at the end of the log read at start-up to rebuild the history (0: none).
    history_scan_bytes: u64 = 4 * 1024 * 1024,
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
        if self.log_file.is_empty() {
            return Err("\"log_file\" must not be empty".to_owned());
        }
        if let Some(token) = &self.admin_token {
            // The token is a secret: never echo it.
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(format!(
                    "\"admin_token\" must be at least {MIN_TOKEN_CHARS} characters long"
                ));
            }
            if token.chars().any(char::is_whitespace) {
                return Err("\"admin_token\" must not contain whitespace".to_owned());
            }
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
        ];
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
mod tests {
    use super::*;

    /// The config file the original Go project shipped.
    const SHIPPED: &str = r#"{"telnet_port": 4000, "rest_port": 4001, "websocket_port": 4004, "log_file": "chat-server.log", "ip": "0.0.0.0"}"#;

    fn parse_err(text: &str) -> String {
        match Config::from_json_str(text) {
            Ok(config) => panic!("expected an error for {text}, got {config:?}"),
            Err(e) => e,
        }
    }

    /// Validates `Config::default()` changed by `change`, expecting an error naming `key`.
    fn invalid(key: &str, change: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        change(&mut config);
        match config.validate() {
            Ok(()) => panic!("expected {key} to be rejected: {config:?}"),
            Err(e) => {
                assert!(
                    e.contains(&format!("\"{key}\"")),
                    "{e:?} does not name {key}"
                );
                assert!(!e.contains('\n'));
                e
            }
        }
    }

    #[test]
    fn shipped_file_is_the_default() {
        assert_eq!(Config::from_json_str(SHIPPED), Ok(Config::default()));
        // The derived Deserialize agrees.
        let derived: Config = serde_json::from_str(SHIPPED).unwrap();
        assert_eq!(derived, Config::default());
    }

    #[test]
    fn empty_object_is_the_default() {
        assert_eq!(Config::from_json_str("{}"), Ok(Config::default()));
        assert_eq!(Config::from_json_str(" \n{ }\n"), Ok(Config::default()));
        assert_eq!(Config::from_json_str("\u{feff}{}"), Ok(Config::default()));
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn known_keys_match_the_struct() {
        let documented = [
            "ip",
            "telnet_port",
            "rest_port",
            "websocket_port",
            "log_file",
            "admin_token",
            "allowed_origins",
            "max_line_bytes",
            "max_input_bytes",
            "nick_timeout_s",
            "output_hard_limit_bytes",
            "output_soft_limit_bytes",
            "output_soft_limit_s",
            "lines_burst",
            "lines_per_s",
            "max_connections",
            "max_connections_per_ip",
            "limit_loopback",
            "ws_max_message_bytes",
            "ws_read_buffer_bytes",
            "ws_handshake_timeout_s",
            "ws_ping_interval_s",
            "ws_idle_timeout_s",
            "http_max_header_bytes",
            "http_max_body_bytes",
            "http_header_timeout_s",
            "http_body_timeout_s",
            "tcp_keepalive_s",
            "shutdown_grace_s",
            "history_size",
            "history_channels",
            "history_on_join",
            "history_scan_bytes",
        ];
        assert_eq!(KNOWN_KEYS, &documented[..]);
        // Every known key is a field that the derived Deserialize and set_field accept.
        for key in KNOWN_KEYS {
            let derived: Result<Config, _> = serde_json::from_str(&format!("{{{key:?}: {{}}}}"));
            let e = derived.unwrap_err().to_string();
            assert!(!e.contains("unknown field"), "{key}: {e}");
            let e = Config::default()
                .set_field(key, Value::Object(Default::default()))
                .unwrap_err();
            assert!(!e.contains("unknown key"), "{key}: {e}");
        }
    }

    #[test]
    fn every_key_parses() {
        let text = r#"{
            "ip": "::1", "telnet_port": 0, "rest_port": 0, "websocket_port": 0,
            "log_file": "x.log", "admin_token": "0123456789abcdef",
            "allowed_origins": ["https://chat.example.com", "http://localhost:8080"],
            "max_line_bytes": 100, "max_input_bytes": 200, "nick_timeout_s": 0.2,
            "output_hard_limit_bytes": 2048, "output_soft_limit_bytes": 1024,
            "output_soft_limit_s": 1.5, "lines_burst": 1, "lines_per_s": 0.5,
            "max_connections": 10, "max_connections_per_ip": 2, "limit_loopback": true,
            "ws_max_message_bytes": 125, "ws_read_buffer_bytes": 1024,
            "ws_handshake_timeout_s": 1, "ws_ping_interval_s": 2, "ws_idle_timeout_s": 3,
            "http_max_header_bytes": 1024, "http_max_body_bytes": 0,
            "http_header_timeout_s": 4, "http_body_timeout_s": 5, "tcp_keepalive_s": 6,
            "shutdown_grace_s": 0.25, "history_size": 50, "history_channels": 7,
            "history_on_join": 0, "history_scan_bytes": 1024
        }"#;
        let config = Config::from_json_str(text).unwrap();
        let expected = Config {
            ip: "::1".into(),
            telnet_port: 0,
            rest_port: 0,
            websocket_port: 0,
            log_file: "x.log".into(),
            admin_token: Some("0123456789abcdef".into()),
            allowed_origins: vec![
                "https://chat.example.com".into(),
                "http://localhost:8080".into(),
            ],
            max_line_bytes: 100,
            max_input_bytes: 200,
            nick_timeout_s: 0.2,
            output_hard_limit_bytes: 2048,
            output_soft_limit_bytes: 1024,
            output_soft_limit_s: 1.5,
            lines_burst: 1,
            lines_per_s: 0.5,
            max_connections: Some(10),
            max_connections_per_ip: 2,
            limit_loopback: true,
            ws_max_message_bytes: 125,
            ws_read_buffer_bytes: 1024,
            ws_handshake_timeout_s: 1.0,
            ws_ping_interval_s: 2.0,
            ws_idle_timeout_s: 3.0,
            http_max_header_bytes: 1024,
            http_max_body_bytes: 0,
            http_header_timeout_s: 4.0,
            http_body_timeout_s: 5.0,
            tcp_keepalive_s: 6.0,
            shutdown_grace_s: 0.25,
            history_size: 50,
            history_channels: 7,
            history_on_join: 0,
            history_scan_bytes: 1024,
        };
        assert_eq!(config, expected);
        // The derived Deserialize agrees with the key-by-key parser.
        let derived: Config = serde_json::from_str(text).unwrap();
        assert_eq!(derived, expected);
    }

    #[test]
    fn port_zero_and_nulls_accepted() {
        let config =
            Config::from_json_str(r#"{"telnet_port": 0, "rest_port": 0, "websocket_port": 0}"#)
                .unwrap();
        assert_eq!(
            (config.telnet_port, config.rest_port, config.websocket_port),
            (0, 0, 0)
        );
        let config =
            Config::from_json_str(r#"{"admin_token": null, "max_connections": null}"#).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn fractional_seconds_accepted() {
        let config =
            Config::from_json_str(r#"{"nick_timeout_s": 0.2, "ws_ping_interval_s": 0.05}"#)
                .unwrap();
        assert_eq!(config.nick_timeout_s, 0.2);
        assert_eq!(duration(config.nick_timeout_s), Duration::from_millis(200));
        assert_eq!(
            duration(config.ws_ping_interval_s),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn unknown_key_rejected_naming_it() {
        let e = parse_err("{\n  \"telnet_port\": 4000,\n  \"foo\": 1\n}");
        assert!(e.starts_with("unknown key \"foo\" at line 3 column"), "{e}");
        assert!(
            e.contains("(known keys: ip, telnet_port, rest_port,"),
            "{e}"
        );
        assert!(e.contains("shutdown_grace_s, history_size,"), "{e}");
        assert!(!e.contains('\n'));
        // Case matters: the Go-era keys are exact.
        let e = parse_err(r#"{"Telnet_Port": 4000}"#);
        assert!(e.starts_with("unknown key \"Telnet_Port\""), "{e}");
        // A key with a newline in it stays on one line.
        let e = parse_err("{\"a\\nb\": 1}");
        assert!(e.starts_with(r#"unknown key "a\nb""#), "{e}");
    }

    #[test]
    fn bad_value_rejected_naming_it() {
        let e = parse_err(r#"{"telnet_port": 70000}"#);
        assert!(
            e.starts_with("bad value for \"telnet_port\": invalid value: integer `70000`, expected u16 at line 1 column"),
            "{e}"
        );
        let e = parse_err(r#"{"nick_timeout_s": "60"}"#);
        assert!(
            e.starts_with("bad value for \"nick_timeout_s\": invalid type: string \"60\""),
            "{e}"
        );
        let e = parse_err(r#"{"limit_loopback": 1}"#);
        assert!(e.starts_with("bad value for \"limit_loopback\":"), "{e}");
        let e = parse_err(r#"{"allowed_origins": "https://a.example"}"#);
        assert!(e.starts_with("bad value for \"allowed_origins\":"), "{e}");
        let e = parse_err(r#"{"max_line_bytes": -1}"#);
        assert!(e.starts_with("bad value for \"max_line_bytes\":"), "{e}");
        let e = parse_err(r#"{"ip": null}"#);
        assert!(e.starts_with("bad value for \"ip\":"), "{e}");
        let e = parse_err(r#"{"rest_port": 4001.0}"#);
        assert!(e.starts_with("bad value for \"rest_port\":"), "{e}");
    }

    #[test]
    fn duplicate_key_rejected() {
        let e = parse_err(r#"{"ip": "0.0.0.0", "ip": "127.0.0.1"}"#);
        assert!(
            e.starts_with("duplicate key \"ip\" at line 1 column"),
            "{e}"
        );
    }

    #[test]
    fn invalid_json_rejected_with_position() {
        let e = parse_err("{\n  \"ip\": \"0.0.0.0\",\n  }");
        assert!(e.starts_with("invalid JSON at line 3 column 3: "), "{e}");
        let e = parse_err("");
        assert!(e.starts_with("invalid JSON at line 1 column 0: EOF"), "{e}");
        let e = parse_err("{} {}");
        assert!(
            e.starts_with("invalid JSON at line 1 column 4: trailing characters"),
            "{e}"
        );
        let e = parse_err("[1]");
        assert!(e.contains("expected a JSON object of settings"), "{e}");
        let e = parse_err("null");
        assert!(e.contains("expected a JSON object of settings"), "{e}");
    }

    #[test]
    fn validation_runs_on_parse() {
        let e = parse_err(r#"{"nick_timeout_s": -1}"#);
        assert_eq!(
            e,
            "\"nick_timeout_s\" must be a positive number of seconds, got -1"
        );
    }

    #[test]
    fn rejects_bad_ip_and_log_file() {
        invalid("ip", |c| c.ip = "localhost".into());
        invalid("ip", |c| c.ip = String::new());
        invalid("ip", |c| c.ip = "0.0.0.0:4000".into());
        invalid("log_file", |c| c.log_file = String::new());
    }

    #[test]
    fn rejects_clashing_ports() {
        let e = invalid("telnet_port", |c| c.rest_port = c.telnet_port);
        assert!(e.contains("\"rest_port\""), "{e}");
        invalid("websocket_port", |c| c.websocket_port = c.rest_port);
    }

    #[test]
    fn rejects_bad_line_limits() {
        invalid("max_line_bytes", |c| c.max_line_bytes = 0);
        let e = invalid("max_line_bytes", |c| {
            c.max_line_bytes = c.max_input_bytes + 1
        });
        assert!(e.contains("\"max_input_bytes\""), "{e}");
        invalid("max_input_bytes", |c| {
            c.max_input_bytes = MAX_INPUT_LIMIT + 1
        });
        let mut ok = Config {
            max_line_bytes: MAX_INPUT_LIMIT,
            max_input_bytes: MAX_INPUT_LIMIT,
            ..Config::default()
        };
        assert!(ok.validate().is_ok());
        ok.max_line_bytes = 1;
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn rejects_bad_seconds() {
        let keys = [
            "nick_timeout_s",
            "output_soft_limit_s",
            "ws_handshake_timeout_s",
            "ws_ping_interval_s",
            "ws_idle_timeout_s",
            "http_header_timeout_s",
            "http_body_timeout_s",
            "tcp_keepalive_s",
            "shutdown_grace_s",
        ];
        for key in keys {
            for bad in ["0", "-1", "1000000.5", "1e300"] {
                let e = parse_err(&format!("{{{key:?}: {bad}}}"));
                assert!(e.starts_with(&format!("{key:?} must be ")), "{e}");
            }
            assert!(Config::from_json_str(&format!("{{{key:?}: 1000000}}")).is_ok());
            assert!(Config::from_json_str(&format!("{{{key:?}: 0.001}}")).is_ok());
        }
        let e = invalid("nick_timeout_s", |c| c.nick_timeout_s = f64::NAN);
        assert!(e.ends_with("got NaN"), "{e}");
        invalid("shutdown_grace_s", |c| c.shutdown_grace_s = f64::INFINITY);
        let e = invalid("tcp_keepalive_s", |c| c.tcp_keepalive_s = 1e300);
        assert!(e.ends_with("got 1e300"), "{e}");
    }

    #[test]
    fn rejects_bad_history_settings() {
        invalid("history_size", |c| c.history_size = 0);
        invalid("history_size", |c| c.history_size = 100_001);
        invalid("history_channels", |c| c.history_channels = 0);
        invalid("history_scan_bytes", |c| {
            c.history_scan_bytes = (1 << 30) + 1
        });
        assert!(
            Config::from_json_str(r#"{"history_on_join": 0, "history_scan_bytes": 0}"#).is_ok()
        );
    }

    #[test]
    fn rejects_bad_output_limits() {
        invalid("output_soft_limit_bytes", |c| {
            c.output_soft_limit_bytes = 1023
        });
        invalid("output_hard_limit_bytes", |c| {
            c.output_soft_limit_bytes = 1024;
            c.output_hard_limit_bytes = 1023;
        });
        let e = invalid("output_soft_limit_bytes", |c| {
            c.output_soft_limit_bytes = c.output_hard_limit_bytes + 1
        });
        assert!(e.contains("\"output_hard_limit_bytes\""), "{e}");
        let ok = Config {
            output_soft_limit_bytes: 1024,
            output_hard_limit_bytes: 1024,
            ..Config::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn rejects_bad_line_rate() {
        invalid("lines_burst", |c| c.lines_burst = 0);
        invalid("lines_per_s", |c| c.lines_per_s = 0.0);
        invalid("lines_per_s", |c| c.lines_per_s = -5.0);
        invalid("lines_per_s", |c| c.lines_per_s = f64::NAN);
        invalid("lines_per_s", |c| c.lines_per_s = 2e6);
        let ok = Config {
            lines_per_s: 0.1,
            ..Config::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn rejects_bad_connection_limits() {
        invalid("max_connections", |c| c.max_connections = Some(0));
        invalid("max_connections_per_ip", |c| c.max_connections_per_ip = 0);
        let ok = Config {
            max_connections: Some(1),
            max_connections_per_ip: 1,
            ..Config::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn rejects_bad_websocket_sizes() {
        invalid("ws_max_message_bytes", |c| c.ws_max_message_bytes = 124);
        invalid("ws_max_message_bytes", |c| {
            c.ws_max_message_bytes = MAX_INPUT_LIMIT + 1
        });
        invalid("ws_read_buffer_bytes", |c| c.ws_read_buffer_bytes = 1023);
        invalid("ws_read_buffer_bytes", |c| c.ws_read_buffer_bytes = 65_537);
        let ok = Config {
            ws_max_message_bytes: MAX_INPUT_LIMIT,
            ws_read_buffer_bytes: 65_536,
            ..Config::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn rejects_bad_http_sizes() {
        invalid("http_max_header_bytes", |c| c.http_max_header_bytes = 1023);
        invalid("http_max_header_bytes", |c| {
            c.http_max_header_bytes = MAX_INPUT_LIMIT + 1
        });
        invalid("http_max_body_bytes", |c| {
            c.http_max_body_bytes = MAX_HTTP_BODY + 1
        });
        let ok = Config {
            http_max_body_bytes: MAX_HTTP_BODY,
            ..Config::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn rejects_bad_admin_token_without_echoing_it() {
        let e = invalid("admin_token", |c| {
            c.admin_token = Some("short-secret".into())
        });
        assert!(!e.contains("short-secret"), "{e}");
        let e = invalid("admin_token", |c| {
            c.admin_token = Some("0123456789 abcdef".into())
        });
        assert!(!e.contains("0123456789"), "{e}");
        invalid("admin_token", |c| {
            c.admin_token = Some("0123456789abcdef\t".into())
        });
        invalid("admin_token", |c| c.admin_token = Some(String::new()));
    }

    #[test]
    fn origins() {
        for good in [
            "https://chat.example.com",
            "http://localhost",
            "http://localhost:8080",
            "https://127.0.0.1:443",
            "http://[::1]",
            "https://[2001:db8::1]:8443",
            "https://xn--bcher-kva.example",
        ] {
            assert_eq!(check_origin(good), Ok(()), "{good}");
        }
        for bad in [
            "chat.example.com",
            "ftp://chat.example.com",
            "HTTPS://chat.example.com",
            "https://Chat.Example.com",
            "https://chat.example.com/",
            "https://chat.example.com/path",
            "https://chat.example.com?x",
            "https://user@chat.example.com",
            "https://",
            "https://:8080",
            "https://chat.example.com:",
            "https://chat.example.com:0",
            "https://chat.example.com:65536",
            "https://chat.example.com:+80",
            "https://[::1",
            "https://[zz]",
            "https://[::1]8080",
            "https://*.example.com",
            "null",
            "",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
            invalid("allowed_origins", |c| {
                c.allowed_origins = vec!["https://ok.example".into(), bad.into()]
            });
        }
        let e = parse_err(r#"{"allowed_origins": ["https://a.example/"]}"#);
        assert!(
            e.starts_with(r#""allowed_origins" entry "https://a.example/" must not have a path"#),
            "{e}"
        );
    }

    #[test]
    fn duration_saturates() {
        assert_eq!(duration(0.2), Duration::from_millis(200));
        assert_eq!(duration(60.0), Duration::from_secs(60));
        assert_eq!(duration(0.0), Duration::ZERO);
        assert_eq!(duration(-1.0), Duration::ZERO);
        assert_eq!(duration(f64::NAN), Duration::ZERO);
        assert_eq!(duration(f64::INFINITY), Duration::MAX);
        assert_eq!(duration(1e300), Duration::MAX);
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir =
            std::env::temp_dir().join(format!("chat-server-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let missing = dir.join("missing.json");
        let e = Config::load(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "config file {:?}: cannot read: ",
                missing.display().to_string()
            )),
            "{e}"
        );

        let good = dir.join("good.json");
        std::fs::write(&good, SHIPPED).unwrap();
        assert_eq!(Config::load(&good), Ok(Config::default()));

        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{\n  \"ip\": \"0.0.0.0\",\n  \"foo\": true\n}\n").unwrap();
        let e = Config::load(&bad).unwrap_err();
        let expected_prefix = format!(
            "config file {:?}: unknown key \"foo\" at line 3",
            bad.display().to_string()
        );
        assert!(e.0.starts_with(&expected_prefix), "{e}");

        let binary = dir.join("binary.json");
        std::fs::write(&binary, b"{\"ip\": \"\xff\"}").unwrap();
        let e = Config::load(&binary).unwrap_err().to_string();
        assert!(e.contains(": not UTF-8 text: "), "{e}");

        let e = Config::load(&dir).unwrap_err().to_string();
        assert!(e.contains(": cannot read: "), "{e}");

        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_error_is_an_error() {
        let e: Box<dyn std::error::Error> = Box::new(ConfigError("config file \"x\": oops".into()));
        assert_eq!(e.to_string(), "config file \"x\": oops");
    }

    #[test]
    fn one_line_joins_lines() {
        assert_eq!(one_line("a\nb\r\nc"), "a b c");
        assert_eq!(fmt_num(-1.0), "-1");
        assert_eq!(fmt_num(0.2), "0.2");
        assert_eq!(fmt_num(1e300), "1e300");
    }
}
