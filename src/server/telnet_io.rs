//! Telnet input: bytes → telnet framer → clean lines → the chat core, with the per-connection
//! line rate limit shared by both chat transports.

use super::conn::{Conn, Proto};
use super::event_loop::Server;
use super::timers::{Timer, TimerKind};
use crate::chat::{BadInput, ClientId, CloseReason};
use crate::proto::telnet::{self, TelnetEvent, TelnetLimits};
use crate::proto::text::clean_line;
use std::rc::Rc;

impl Server {
    pub(super) fn feed_telnet(&mut self, id: ClientId, data: &[u8]) {
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        let Proto::Telnet(decoder) = &mut conn.proto else {
            return;
        };
        // The decoder leaves the connection while its events run, so that the handlers may
        // use the whole server; it goes back afterwards.
        let mut decoder = std::mem::take(decoder);
        let limits = TelnetLimits {
            max_line: self.settings.max_line,
            max_input: self.settings.max_input,
        };
        decoder.feed(data, &limits, |event| self.on_telnet_event(id, event));
        if let Some(conn) = self.io.conn_mut(id) {
            if let Proto::Telnet(slot) = &mut conn.proto {
                *slot = decoder;
            }
        }
    }

    fn on_telnet_event(&mut self, id: ClientId, event: TelnetEvent<'_>) {
        let now = self.now();
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        if !conn.is_open() {
            return;
        }
        match event {
            TelnetEvent::Reply(bytes) => {
                let chunk: Rc<[u8]> = Rc::from(&bytes[..]);
                self.io.enqueue(id, chunk);
            }
            TelnetEvent::TooLong => {
                let max = self.settings.max_line;
                self.core
                    .handle_bad_input(now, id, BadInput::TooLong { max }, &mut self.io);
            }
            TelnetEvent::InputOverflow => self.io.kill(id, CloseReason::InputOverflow),
            TelnetEvent::Line(raw) => match clean_line(raw) {
                Err(_) => self
                    .core
                    .handle_bad_input(now, id, BadInput::InvalidUtf8, &mut self.io),
                Ok(line) => {
                    let first = !conn.seen_line;
                    conn.seen_line = true;
                    if first && telnet::looks_like_http_request(&line) {
                        self.io.kill(id, CloseReason::HttpOnTelnet);
                    } else if !line.is_empty() {
                        self.submit_line(id, &line);
                    }
                }
            },
        }
    }

    /// Hands a clean line to the core, or to the connection's backlog when it is over its
    /// rate: then the socket is not read until the backlog drains (nothing is dropped).
    pub(super) fn submit_line(&mut self, id: ClientId, line: &str) {
        let now = self.now();
        let (burst, per_ms) = (self.settings.lines_burst, self.settings.lines_per_ms);
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        refill(conn, now.mono_ms, burst, per_ms);
        if conn.backlog.is_none() && conn.tokens >= 1.0 {
            conn.tokens -= 1.0;
            self.io.metrics.messages_in += 1;
            self.core.handle_line(now, id, line, &mut self.io);
            return;
        }
        let newly = conn.backlog.is_none();
        conn.backlog
            .get_or_insert_with(Default::default)
            .push_back(line.into());
        if newly {
            let at_ms = now.mono_ms + wait_ms(conn.tokens, per_ms);
            self.io.timers.add(Timer {
                at_ms,
                key: id.key,
                gen: id.gen,
                kind: TimerKind::RateResume,
            });
        }
    }

    /// A rate-limited connection earned tokens: hand its waiting lines to the core, and
    /// resume reading once they are all handled.
    pub(super) fn resume_rate_limited(&mut self, id: ClientId) {
        let now = self.now();
        let (burst, per_ms) = (self.settings.lines_burst, self.settings.lines_per_ms);
        loop {
            let Some(conn) = self.io.conn_mut(id) else {
                return;
            };
            if !conn.is_open() {
                return;
            }
            refill(conn, now.mono_ms, burst, per_ms);
            let Some(backlog) = conn.backlog.as_mut() else {
                return;
            };
            if conn.tokens < 1.0 {
                let at_ms = now.mono_ms + wait_ms(conn.tokens, per_ms);
                self.io.timers.add(Timer {
                    at_ms,
                    key: id.key,
                    gen: id.gen,
                    kind: TimerKind::RateResume,
                });
                return;
            }
            let Some(line) = backlog.pop_front() else {
                conn.backlog = None;
                // Edge-triggered: bytes may be waiting that no new edge will announce.
                self.remember_pending(id.key as usize);
                return;
            };
            conn.tokens -= 1.0;
            self.io.metrics.messages_in += 1;
            self.core.handle_line(now, id, &line, &mut self.io);
        }
    }
}

/// Adds the tokens earned since the last refill, up to the burst.
fn refill(conn: &mut Conn, now_ms: u64, burst: f32, per_ms: f32) {
    let elapsed = super::conn::elapsed(now_ms, conn.refilled_ms) as f32;
    conn.tokens = (conn.tokens + elapsed * per_ms).min(burst);
    conn.refilled_ms = super::conn::ms32(now_ms);
}

/// Milliseconds until a connection with `tokens` has one whole token.
fn wait_ms(tokens: f32, per_ms: f32) -> u64 {
    (((1.0 - tokens).max(0.0) / per_ms).ceil() as u64).max(1)
}
