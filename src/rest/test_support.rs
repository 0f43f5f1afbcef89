//! Test helpers: a fake [`ServerView`], temporary directories and hand-written logs.

use super::{ServerView, Snapshot};
use crate::chat::AnnounceError;
use crate::proto::http::{Request, Response};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// 2026-11-27T00:24:40.123Z
pub const T0: i64 = 1_795_739_080_123;

/// A server with a fixed set of users and channels; records announcements.
#[derive(Debug)]
pub struct FakeView {
    /// Users: (nick, channel).
    pub users: Vec<(String, Option<String>)>,
    pub log_failing: bool,
    /// The server is behind: announcements get 503.
    pub overloaded: bool,
    pub announced: Vec<(String, Option<String>)>,
    /// Channel history, as the core keeps it.
    pub history: crate::chat::History,
}

impl Default for FakeView {
    fn default() -> FakeView {
        FakeView {
            users: Vec::new(),
            log_failing: false,
            overloaded: false,
            announced: Vec::new(),
            history: crate::chat::History::new(200, 10),
        }
    }
}

impl FakeView {
    pub fn with_users(users: &[(&str, Option<&str>)]) -> FakeView {
        FakeView {
            users: users
                .iter()
                .map(|(n, c)| (n.to_string(), c.map(str::to_string)))
                .collect(),
            ..FakeView::default()
        }
    }
}

impl ServerView for FakeView {
    fn announce(
        &mut self,
        text: &str,
        channel: Option<&str>,
    ) -> Result<Vec<String>, AnnounceError> {
        let recipients: Vec<String> = match channel {
            Some(name) => {
                let valid = name.strip_prefix('#').is_some_and(|b| {
                    (1..=32).contains(&b.len())
                        && b.bytes()
                            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                });
                if !valid {
                    return Err(AnnounceError::InvalidChannel);
                }
                let members: Vec<String> = self
                    .users
                    .iter()
                    .filter(|(_, c)| c.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(name)))
                    .map(|(n, _)| format!("@{n}"))
                    .collect();
                if members.is_empty() {
                    return Err(AnnounceError::UnknownChannel);
                }
                members
            }
            None => self.users.iter().map(|(n, _)| format!("@{n}")).collect(),
        };
        if recipients.is_empty() {
            return Err(AnnounceError::NoUsers);
        }
        if self.log_failing {
            return Err(AnnounceError::LogFailed);
        }
        self.announced
            .push((text.to_string(), channel.map(str::to_string)));
        Ok(recipients)
    }

    fn overloaded(&self) -> bool {
        self.overloaded
    }

    fn history(&self, channel: &str) -> Option<&crate::chat::Ring> {
        self.history.ring(channel)
    }

    fn snapshot(&self) -> Snapshot {
        let mut channels: Vec<String> = self.users.iter().filter_map(|(_, c)| c.clone()).collect();
        channels.sort();
        channels.dedup();
        Snapshot {
            version: "0.1.0",
            uptime_s: 12,
            now_unix_ms: T0,
            users: self.users.len() as u64,
            channels,
            telnet_connections: 2,
            websocket_connections: 1,
            http_connections: 1,
            messages_in: 5,
            messages_out: 9,
            bytes_in: 100,
            bytes_out: 200,
            disconnects: vec![("quit", 1), ("eof", 2)],
            refused: 0,
            accepted: 4,
            accept_errors: 0,
            output_backlog_bytes: 0,
            input_pauses: 0,
            log_write_errors: u64::from(self.log_failing),
            log_failing: self.log_failing,
            queries: 3,
            cluster: None,
        }
    }
}

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "chat-server-rest-{}-{name}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `lines` (JSON objects without a trailing newline) as a log file.
pub fn write_log(path: &Path, lines: &[String]) {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// A chat record line.
pub fn chat(seq: u64, ts_ms: i64, nick: &str, channel: &str, text: &str) -> String {
    serde_json::json!({
        "ts": crate::timefmt::rfc3339_ms(ts_ms), "seq": seq, "kind": "chat",
        "nick": nick, "channel": channel, "text": text,
    })
    .to_string()
}

/// A private-message record line.
pub fn private(seq: u64, ts_ms: i64, from: &str, to: &str, text: &str) -> String {
    serde_json::json!({
        "ts": crate::timefmt::rfc3339_ms(ts_ms), "seq": seq, "kind": "private",
        "from": from, "to": to, "text": text,
    })
    .to_string()
}

/// An announcement record line.
pub fn announcement(seq: u64, ts_ms: i64, channel: Option<&str>, text: &str) -> String {
    let mut v = serde_json::json!({
        "ts": crate::timefmt::rfc3339_ms(ts_ms), "seq": seq, "kind": "announcement",
        "text": text, "recipients": 2,
    });
    if let Some(c) = channel {
        v["channel"] = serde_json::Value::from(c);
    }
    v.to_string()
}

/// A record the search never returns.
pub fn join(seq: u64, ts_ms: i64, nick: &str, channel: &str) -> String {
    serde_json::json!({
        "ts": crate::timefmt::rfc3339_ms(ts_ms), "seq": seq, "kind": "join",
        "nick": nick, "channel": channel,
    })
    .to_string()
}

/// A request.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut all = vec![("host".to_string(), "localhost:4001".to_string())];
    all.extend(
        headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())),
    );
    Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        version: 1,
        headers: all,
        body: body.to_vec(),
    }
}

/// The body of a JSON response.
pub fn body_json(resp: &Response) -> serde_json::Value {
    serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&resp.body)))
}

/// A header of a response (case-insensitive name).
pub fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
