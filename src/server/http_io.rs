//! HTTP input on the REST and WebSocket ports: framing, deadlines, routing to the REST API
//! or the web pages, WebSocket upgrades, and log queries scanned in slices across passes.

use super::buffer::Chunk;
use super::conn::Proto;
use super::io::{Io, ListenKind};
use super::start::{Server, READ_BUDGET};
use super::timers::TimerKind;
use crate::chat::{AnnounceError, ChatCore, ClientId, CloseReason};
use crate::proto::http::{HttpParse, Request, Response};
use crate::rest::{self, Outcome, ServerView, Snapshot};
use crate::web::{self, WebOutcome};
use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Time the log queries may scan per loop pass, all together (each gets at least one slice).
const QUERY_BUDGET: Duration = Duration::from_micros(1500);

/// What the HTTP side keeps besides its connections.
#[derive(Default)]
pub(super) struct HttpShared {
    /// HTTP connections with a log query in progress.
    queries: Vec<ClientId>,
    /// Embedded files as shared chunks, made on first use.
    static_chunks: HashMap<(usize, usize), Chunk>,
}

impl HttpShared {
    /// True while a log query is in progress (the loop must not sleep).
    pub(super) fn busy(&self) -> bool {
        !self.queries.is_empty()
    }
}

/// True when the connection is HTTP and holds the bytes of requests that wait for its output
/// to drain before they are handled.
pub(super) fn requests_waiting(proto: &Proto) -> bool {
    matches!(proto, Proto::Http(http) if http.decoder.buffered() > 0)
}

impl Server {
    pub(super) fn feed_http(&mut self, id: ClientId, data: &[u8]) {
        let limits = self.settings.http;
        let Some((http, _)) = self.io.http_mut(id) else {
            return;
        };
        if http.decoder.buffered() + data.len() > limits.max_header + limits.max_body + READ_BUDGET
        {
            let status = if http.decoder.in_body() { 413 } else { 431 };
            let site = http.site;
            let resp = self.error_response(site, status, "request too large");
            self.respond(id, resp, false, false);
            return;
        }
        http.decoder.push(data);
        self.http_dispatch(id);
    }

    /// Handles every complete request in the connection's buffer, one at a time.
    pub(super) fn http_dispatch(&mut self, id: ClientId) {
        loop {
            let now = self.now().mono_ms;
            let limits = self.settings.http;
            let body_ms = self.settings.http_body_ms;
            let soft = self.io.limits.soft;
            let Some((http, queued)) = self.io.http_mut(id) else {
                return;
            };
            if queued > soft {
                return; // the client is not reading its answers: take no more requests
            }
            if http.query.is_some() {
                return; // one request at a time: the next waits for the query's answer
            }
            let was_in_body = http.decoder.in_body();
            match http.decoder.parse(&limits) {
                HttpParse::Partial => {
                    if !was_in_body && http.decoder.in_body() {
                        // Headers complete: the body gets its own deadline.
                        http.deadline_ms = now + body_ms;
                        let at_ms = http.deadline_ms;
                        self.io.timers.arm(id, at_ms, TimerKind::HttpDeadline);
                    }
                    return;
                }
                HttpParse::Error(status, why) => {
                    let site = http.site;
                    let resp = self.error_response(site, status, why);
                    self.respond(id, resp, false, false);
                    return;
                }
                HttpParse::Request(req) => {
                    let site = http.site;
                    http.deadline_ms = now + self.settings.http_header_ms;
                    let at_ms = http.deadline_ms;
                    self.io.timers.arm(id, at_ms, TimerKind::HttpDeadline);
                    match site {
                        ListenKind::Rest => self.rest_request(id, req),
                        _ => self.web_request(id, req),
                    }
                }
            }
        }
    }

    /// Queues a response; closes after it unless the exchange may continue. An embedded
    /// file's bytes are queued as one shared chunk, never copied per response.
    fn respond(&mut self, id: ClientId, resp: Response, head_only: bool, keep_alive: bool) {
        let keep = keep_alive && !resp.close;
        self.io
            .enqueue_response(id, Rc::from(resp.encode_head(keep)));
        if !head_only && resp.has_body() && !resp.body.is_empty() {
            let body = match resp.body {
                Cow::Borrowed(file) => self.static_chunk(file),
                Cow::Owned(bytes) => Rc::from(bytes),
            };
            self.io.enqueue_response(id, body);
        }
        if !keep {
            self.io.close_quietly(id, CloseReason::Done);
        }
    }

    /// The shared chunk of an embedded file, made on first use.
    fn static_chunk(&mut self, file: &'static [u8]) -> Chunk {
        self.http
            .static_chunks
            .entry((file.as_ptr() as usize, file.len()))
            .or_insert_with(|| Rc::from(file))
            .clone()
    }

    fn web_request(&mut self, id: ClientId, req: Request) {
        let head = req.method == "HEAD";
        let keep = req.keep_alive();
        match web::route(&req, &self.settings.allowed_origins) {
            WebOutcome::Respond(resp) => self.respond(id, resp, head, keep),
            WebOutcome::Upgrade(resp) => {
                if let Some(refused) = self.check_upgrade(id, &req) {
                    return self.respond(id, refused, false, false);
                }
                let Some((http, _)) = self.io.http_mut(id) else {
                    return;
                };
                let early = http.decoder.take_rest();
                let bytes = resp.encode(false, true);
                self.io.enqueue_with(id, |b| b.extend_from_slice(&bytes));
                let json = crate::proto::websocket::wants_json(&req);
                self.upgrade_to_ws(id, early, json);
            }
        }
    }

    fn rest_request(&mut self, id: ClientId, mut req: Request) {
        let head = req.method == "HEAD";
        if head {
            req.method = "GET".to_string();
        }
        let keep = req.keep_alive();
        let mut view = View {
            core: &mut self.core,
            io: &mut self.io,
            overloaded: self.overload.paused(),
            input_pauses: self.overload.pauses,
            cluster: self.cluster.as_ref().map(|c| c.status()),
        };
        let outcome = rest::route(
            &req,
            &mut view,
            &self.settings.rest,
            &self.settings.log_path,
        );
        match outcome {
            Outcome::Respond(resp) => self.respond(id, resp, head, keep),
            Outcome::Query(mut job) => {
                self.io.metrics.queries += 1;
                if self.core.is_clustered() {
                    job.set_applied_seq(self.core.applied_seq());
                }
                let Some((http, _)) = self.io.http_mut(id) else {
                    return;
                };
                http.query = Some(Box::new(job));
                http.query_keep_alive = keep;
                http.query_head = head;
                self.http.queries.push(id);
            }
        }
    }

    /// Scans the log for the queries in progress, for `QUERY_BUDGET` together; answers the
    /// finished ones.
    pub(super) fn step_queries(&mut self) {
        let active = std::mem::take(&mut self.http.queries);
        let deadline = Instant::now() + QUERY_BUDGET;
        for id in active {
            let Some((http, _)) = self.io.http_mut(id) else {
                continue;
            };
            let Some(job) = http.query.as_mut() else {
                continue;
            };
            match job.step_until(deadline, Instant::now) {
                None => self.http.queries.push(id),
                Some(resp) => {
                    let (head, keep) = (http.query_head, http.query_keep_alive);
                    http.query = None;
                    self.respond(id, resp, head, keep);
                    self.http_dispatch(id);
                }
            }
        }
    }

    /// An HTTP deadline fired: a request still incomplete gets `408`, an idle keep-alive
    /// connection is closed.
    pub(super) fn http_deadline(&mut self, id: ClientId) {
        let now = self.now().mono_ms;
        let Some((http, queued)) = self.io.http_mut(id) else {
            return;
        };
        if http.query.is_some() || now < http.deadline_ms {
            return; // busy with a query, or the deadline moved: a newer timer covers it
        }
        if queued > 0 && queued < http.queued_at_deadline {
            // Still sending an answer, and the client is taking it: not idle.
            http.queued_at_deadline = queued;
            http.deadline_ms = now + self.settings.http_header_ms;
            let at_ms = http.deadline_ms;
            self.io.timers.arm(id, at_ms, TimerKind::HttpDeadline);
            return;
        }
        if http.decoder.buffered() > 0 || http.decoder.in_body() {
            let site = http.site;
            let resp = self.error_response(site, 408, "request timed out");
            self.respond(id, resp, false, false);
        } else {
            self.io.close_quietly(id, CloseReason::IdleTimeout);
        }
    }
}

impl Server {
    /// A framing error's answer, closing the connection: the REST port answers in its JSON
    /// envelope (as its OpenAPI document says), the web port in plain text.
    fn error_response(&self, site: ListenKind, status: u16, why: &str) -> Response {
        match site {
            ListenKind::Rest => rest::framing_error(status, self.now().unix_ms),
            _ => error_page(status, why),
        }
    }
}

/// A plain-text error answer that closes the connection.
fn error_page(status: u16, why: &str) -> Response {
    Response::text(
        status,
        &format!("{} {}: {why}\n", status, crate::proto::http::reason(status)),
    )
    .closing()
}

/// The REST API's view of the running server.
pub(super) struct View<'a> {
    pub(super) core: &'a mut ChatCore,
    pub(super) io: &'a mut Io,
    overloaded: bool,
    input_pauses: u64,
    cluster: Option<rest::ClusterSnapshot>,
}

impl ServerView for View<'_> {
    fn announce(
        &mut self,
        text: &str,
        channel: Option<&str>,
    ) -> Result<Vec<String>, AnnounceError> {
        let now = self.io.now;
        self.core.announce(now, text, channel, self.io)
    }

    fn now_unix_ms(&self) -> i64 {
        self.io.now.unix_ms
    }

    fn overloaded(&self) -> bool {
        self.overloaded
    }

    fn history(&self, channel: &str) -> Option<&crate::chat::Ring> {
        self.core.history_of(channel)
    }

    fn moderation(&mut self) -> Option<&mut dyn rest::ModerationApi> {
        Some(self)
    }

    fn snapshot(&self) -> Snapshot {
        let m = &self.io.metrics;
        let stats = self.core.stats();
        let health = self.io.log.health();
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: self.io.now.mono_ms / 1000,
            now_unix_ms: self.io.now.unix_ms,
            users: stats.users as u64,
            channels: self.core.channel_names(),
            telnet_connections: m.telnet_open,
            websocket_connections: m.websocket_open,
            http_connections: m.http_open,
            messages_in: m.messages_in,
            messages_out: m.messages_out,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            disconnects: CloseReason::ALL
                .iter()
                .zip(m.disconnects.iter())
                .map(|(r, n)| (r.as_str(), *n))
                .collect(),
            refused: m.refused,
            accepted: m.accepted,
            accept_errors: m.accept_errors,
            output_backlog_bytes: self.io.backlog as u64,
            input_pauses: self.input_pauses,
            log_write_errors: health.write_errors,
            log_failing: health.failing,
            queries: m.queries,
            cluster: self.cluster.clone(),
        }
    }
}
