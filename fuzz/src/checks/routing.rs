//! Routing: the web page / WebSocket upgrade and REST routers, and their responses.

use super::*;
use chat_server::chat::{
    AnnounceError, ChatCore, ClientId, CloseReason, CoreConfig, Now, Transport,
};
use chat_server::log_store::LogStore;
use chat_server::proto::http::{reason, Request, Response};
use chat_server::record::Record;
use chat_server::rest::{self, Outcome, QueryJob, RestConfig, ServerView, Snapshot};
use chat_server::web::{self, WebOutcome};
use std::path::{Path, PathBuf};

/// The admin token of [`Routes`].
pub const ADMIN_TOKEN: &str = "fuzz-token";
/// Statuses the web port's router may answer with.
pub const WEB_STATUSES: [u16; 8] = [101, 200, 302, 400, 403, 404, 405, 426];
/// Statuses the REST router may answer with.
pub const REST_STATUSES: [u16; 9] = [200, 301, 400, 401, 404, 405, 415, 500, 503];

/// Everything the routers need: a chat core with two users in `#a` (so announcements reach
/// someone), the REST settings and a small chat log to search.
pub struct Routes {
    core: ChatCore,
    rec: Recorder,
    now: Now,
    cfg: RestConfig,
    log_path: PathBuf,
    origins: Vec<String>,
}

impl Routes {
    /// Routes over the chat log `log_path` (see [`write_fixture_log`]).
    pub fn new(log_path: &Path) -> Routes {
        let mut core = ChatCore::new(CoreConfig {
            nick_timeout_ms: 60_000,
            ..CoreConfig::default()
        });
        let mut rec = Recorder::new();
        let now = now_at(0);
        for (key, line) in [(0, "alice"), (1, "Bob"), (0, "/join #a"), (1, "/join #a")] {
            let id = ClientId { key, gen: key + 1 };
            if line == "alice" || line == "Bob" {
                rec.connected(id);
                core.handle_connect(now, id, Transport::Telnet, PEER, &mut rec);
            }
            core.handle_line(now, id, line, &mut rec);
        }
        Routes {
            core,
            rec,
            now,
            cfg: RestConfig {
                admin_token: ADMIN_TOKEN.to_string(),
                max_announcement_bytes: 512,
            },
            log_path: log_path.to_path_buf(),
            origins: vec!["https://chat.example".to_string()],
        }
    }

    /// Routes `req` through the web port's router and the REST router (a log search is
    /// driven to its end), and checks every response with [`check_response`]. After an
    /// accepted WebSocket upgrade, `after_upgrade` (the bytes behind the request) goes
    /// through [`check_ws`].
    pub fn route(&mut self, req: &Request, after_upgrade: &[u8]) {
        self.rec.begin_step(self.now);
        let head = req.method == "HEAD";
        match web::route(req, &self.origins) {
            WebOutcome::Upgrade(resp) => {
                assert_eq!(resp.status, 101, "web: upgrade without 101");
                assert!(req.path == "/ws" && req.method == "GET");
                assert!(resp
                    .headers
                    .iter()
                    .any(|(n, v)| { *n == "Sec-WebSocket-Accept" && v.len() == 28 }));
                check_response(&resp, req, false, Site::Web);
                check_ws(after_upgrade, 4096, &[after_upgrade.len() / 2]);
            }
            WebOutcome::Respond(resp) => {
                assert_ne!(resp.status, 101, "web: 101 without an upgrade");
                check_response(&resp, req, head, Site::Web);
            }
        }
        // The shell routes HEAD like GET on the REST port and leaves the body out.
        let mut rest_req = req.clone();
        if head {
            rest_req.method = "GET".to_string();
        }
        let mut view = View {
            core: &mut self.core,
            rec: &mut self.rec,
            now: self.now,
        };
        match rest::route(&rest_req, &mut view, &self.cfg, &self.log_path) {
            Outcome::Respond(resp) => check_response(&resp, req, head, Site::Rest),
            Outcome::Query(mut job) => {
                let resp = drive_query(&mut job);
                check_response(&resp, req, head, Site::Rest);
            }
        }
        self.rec.check_core(&self.core);
    }
}

pub(crate) fn drive_query(job: &mut QueryJob) -> Response {
    for _ in 0..100_000 {
        if let Some(resp) = job.step(rest::MIN_SLICE_BYTES) {
            assert!(job.is_finished());
            assert!(job.step(rest::MIN_SLICE_BYTES).is_none());
            return resp;
        }
    }
    panic!("rest: a log query over a tiny log did not finish");
}

pub(crate) struct View<'a> {
    core: &'a mut ChatCore,
    rec: &'a mut Recorder,
    now: Now,
}

impl ServerView for View<'_> {
    fn announce(
        &mut self,
        text: &str,
        channel: Option<&str>,
    ) -> Result<Vec<String>, AnnounceError> {
        assert!(text.len() <= 512, "rest: announcement over the limit");
        self.core.announce(self.now, text, channel, self.rec)
    }

    fn history(&self, channel: &str) -> Option<&chat_server::chat::Ring> {
        self.core.history_of(channel)
    }

    fn snapshot(&self) -> Snapshot {
        let stats = self.core.stats();
        Snapshot {
            version: "0.0.0-fuzz",
            uptime_s: 1,
            now_unix_ms: self.now.unix_ms,
            users: stats.users as u64,
            channels: self.core.channel_names(),
            telnet_connections: stats.sessions as u64,
            disconnects: CloseReason::ALL.iter().map(|r| (r.as_str(), 1)).collect(),
            ..Snapshot::default()
        }
    }
}

/// Writes a small chat log (a few records, hostile text included) at `path` for the log
/// search, replacing any file there.
pub fn write_fixture_log(path: &Path) {
    let _ = std::fs::remove_file(path);
    let mut store = LogStore::open(path).expect("create the fixture chat log");
    let records = [
        Record::Chat {
            nick: "alice".into(),
            channel: "#a".into(),
            text: "hello world".into(),
        },
        Record::Private {
            from: "alice".into(),
            to: "Bob".into(),
            text: "psst \u{1b}[2J\r\n{\"kind\":\"chat\"}".into(),
        },
        Record::Announcement {
            text: "maintenance at 5".into(),
            channel: None,
            recipients: 2,
        },
        Record::Chat {
            nick: "Bob".into(),
            channel: "#b".into(),
            text: "ünïcödé ✓ 🎉".into(),
        },
    ];
    for (i, record) in records.iter().enumerate() {
        store
            .append(1_790_000_000_000 + i as i64 * 61_000, record)
            .expect("write the fixture chat log");
    }
}

/// Which router answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The WebSocket port's pages ([`WEB_STATUSES`]).
    Web,
    /// The REST API ([`REST_STATUSES`]).
    Rest,
}

/// Checks one response of a router to `req`: a status from the router's set with a known reason;
/// header names that are tokens and values without control characters; `WWW-Authenticate`
/// on 401 and `Allow` on 405; JSON bodies that parse (with the envelope on REST answers);
/// and an encoding that `httparse` reads back with the same status, a `Connection` header
/// and a `Content-Length` equal to the body (left out for HEAD).
pub fn check_response(resp: &Response, req: &Request, head_only: bool, site: Site) {
    let statuses: &[u16] = match site {
        Site::Web => &WEB_STATUSES,
        Site::Rest => &REST_STATUSES,
    };
    assert!(
        statuses.contains(&resp.status),
        "http: status {} not expected for {} {}",
        resp.status,
        req.method,
        req.path
    );
    assert_ne!(
        reason(resp.status),
        "Unknown",
        "http: status {}",
        resp.status
    );
    for (name, value) in &resp.headers {
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "http: header name {name:?}"
        );
        assert!(
            value.chars().all(|c| c == '\t' || !c.is_control()),
            "http: control character in header {name}: {value:?} (header injection)"
        );
    }
    let has = |name: &str| {
        resp.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if resp.status == 401 {
        assert!(
            has("WWW-Authenticate"),
            "http: 401 without WWW-Authenticate"
        );
    }
    if resp.status == 405 {
        assert!(has("Allow"), "http: 405 without Allow");
    }
    let json = resp
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.starts_with("application/json"));
    if json && !resp.body.is_empty() {
        let value: serde_json::Value =
            serde_json::from_slice(&resp.body).expect("http: JSON body does not parse");
        if site == Site::Rest && req.path != "/openapi.json" && req.path != "/docs.json" {
            for key in ["links", "metadata", "errors"] {
                assert!(value.get(key).is_some(), "rest: envelope without {key}");
            }
            if let Some(errors) = value["errors"].as_array() {
                for e in errors {
                    for key in ["severity", "human_friendly_message", "short_message"] {
                        assert!(e[key].is_string(), "rest: error object without {key}");
                    }
                }
            }
        }
    }
    for keep_alive in [false, true] {
        let wire = resp.encode(head_only, keep_alive);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(&wire) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("http: encoded response does not parse: {other:?}"),
        };
        assert_eq!(parsed.code, Some(resp.status));
        let get = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let body = &wire[head_len..];
        if matches!(resp.status, 101 | 204 | 304) {
            assert!(body.is_empty());
        } else {
            let length = get("content-length").and_then(|v| std::str::from_utf8(v).ok());
            assert_eq!(
                length.and_then(|v| v.parse::<usize>().ok()),
                Some(resp.body.len()),
                "http: Content-Length does not match the body"
            );
            if head_only {
                assert!(body.is_empty(), "http: HEAD answer with a body");
            } else {
                assert_eq!(body, &resp.body[..]);
            }
        }
        if resp.status != 101 {
            let conn = get("connection");
            let expect: &[u8] = if keep_alive && !resp.close {
                b"keep-alive"
            } else {
                b"close"
            };
            assert_eq!(conn, Some(expect), "http: Connection header");
        }
    }
}
