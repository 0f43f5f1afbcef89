//! Chat input from both transports, in one place: the line rules (too long, bad UTF-8,
//! cleaning, HTTP on the telnet port) and the per-connection line rate limit, then the chat
//! core; and the transports' control input (telnet replies, WebSocket pings and closes).

use super::buffer::Chunk;
use super::conn::{PendingClose, Proto};
use super::start::Server;
use super::timers::TimerKind;
use crate::chat::{is_quit, BadInput, ClientId, CloseReason};
use crate::proto::input::Input;
use crate::proto::telnet;
use crate::proto::text::clean_line;
use crate::proto::websocket;

impl Server {
    /// Handles one decoded input of a chat connection. The connection is looked up once.
    pub(super) fn chat_input(&mut self, id: ClientId, input: Input<'_>) {
        let now = self.now();
        let paused = self.input_paused();
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        if !conn.is_open() || conn.backlog.as_ref().is_some_and(|b| b.close.is_some()) {
            // Closed, or closing once its waiting lines are handled: nothing more counts.
            return;
        }
        let max = self.settings.max_line;
        let raw = match input {
            Input::Line(raw) if raw.len() > max => {
                let bad = BadInput::TooLong { max };
                return self.core.handle_bad_input(now, id, bad, &mut self.io);
            }
            Input::Line(raw) => raw,
            Input::TooLong => {
                let bad = BadInput::TooLong { max };
                return self.core.handle_bad_input(now, id, bad, &mut self.io);
            }
            Input::Overflow => return self.io.kill(id, CloseReason::InputOverflow),
            Input::Reply(bytes) => return self.io.enqueue(id, Chunk::from(bytes)),
            Input::Ping(payload) => {
                return self
                    .io
                    .enqueue_with(id, |b| websocket::encode_pong(payload, b));
            }
            Input::Pong => return,
            Input::Close(code) => return self.close_after_backlog(id, PendingClose::Close(code)),
            Input::Fail(code) => return self.close_after_backlog(id, PendingClose::Fail(code)),
        };
        let Ok(line) = clean_line(raw) else {
            let bad = BadInput::InvalidUtf8;
            return self.core.handle_bad_input(now, id, bad, &mut self.io);
        };
        if let Proto::Telnet(_) = conn.proto {
            let first = !conn.seen_line;
            conn.seen_line = true;
            if first && telnet::looks_like_http_request(&line) {
                return self.io.kill(id, CloseReason::HttpOnTelnet);
            }
        }
        if line.is_empty() {
            return;
        }
        // Over the line rate limit, or while input is paused (only `/quit` from a sender with
        // nothing waiting still goes through: every other command may reach others), the
        // line waits in the connection's backlog and the socket is not read until the
        // backlog drains: nothing is dropped, nothing reordered.
        self.settings.refill(conn, now.mono_ms);
        let hold = paused && holds_while_paused(conn.backlog.is_some(), &line);
        if conn.backlog.is_none() && conn.tokens >= 1.0 && !hold {
            conn.tokens -= 1.0;
            self.io.metrics.messages_in += 1;
            self.core.handle_line(now, id, &line, &mut self.io);
            return;
        }
        let newly = conn.backlog.is_none();
        conn.backlog
            .get_or_insert_with(Default::default)
            .lines
            .push_back(line.into());
        if hold {
            self.hold(id);
        } else if newly {
            let at_ms = now.mono_ms + self.settings.token_wait_ms(conn.tokens);
            self.io.timers.arm(id, at_ms, TimerKind::RateResume);
        }
    }

    /// A rate-limited connection earned tokens: hand its waiting lines to the core, and
    /// resume reading once they are all handled. While input is paused (or when it pauses on
    /// the way), the rest waits for its turns after the pause.
    pub(super) fn resume_rate_limited(&mut self, id: ClientId) {
        let now = self.now();
        loop {
            if self.input_paused() {
                return self.hold(id);
            }
            let Some(conn) = self.io.conn_mut(id) else {
                return;
            };
            if !conn.is_open() || conn.held {
                return;
            }
            self.settings.refill(conn, now.mono_ms);
            let Some(backlog) = conn.backlog.as_mut() else {
                return;
            };
            if conn.tokens < 1.0 {
                let at_ms = now.mono_ms + self.settings.token_wait_ms(conn.tokens);
                self.io.timers.arm(id, at_ms, TimerKind::RateResume);
                return;
            }
            let Some(line) = backlog.lines.pop_front() else {
                let close = conn.backlog.take().and_then(|b| b.close);
                return self.backlog_drained(id, close);
            };
            conn.tokens -= 1.0;
            self.io.metrics.messages_in += 1;
            self.core.handle_line(now, id, &line, &mut self.io);
        }
    }

    /// A WebSocket close or protocol failure: acted on now, or, when lines wait in the
    /// connection's backlog, once they are all handled.
    fn close_after_backlog(&mut self, id: ClientId, close: PendingClose) {
        if let Some(backlog) = self.io.conn_mut(id).and_then(|c| c.backlog.as_mut()) {
            backlog.close = Some(close);
            return;
        }
        self.websocket_close(id, close);
    }

    /// A connection's backlog has all been handled: act on the close that came after it, or
    /// read on (edge-triggered: bytes may be waiting that no new edge will announce).
    pub(super) fn backlog_drained(&mut self, id: ClientId, close: Option<PendingClose>) {
        match close {
            Some(close) => self.websocket_close(id, close),
            None => self.remember_pending(id.key as usize),
        }
    }

    fn websocket_close(&mut self, id: ClientId, close: PendingClose) {
        if !self.io.conn_mut(id).is_some_and(|c| c.is_open()) {
            return;
        }
        let (code, reason) = match close {
            // Echo the client's code (1000 when it sent none), then close.
            PendingClose::Close(1005) => (1000, CloseReason::Eof),
            PendingClose::Close(code) => (code, CloseReason::Eof),
            PendingClose::Fail(code) => (code, CloseReason::ProtocolError),
        };
        self.io
            .enqueue_with(id, |b| websocket::encode_close(code, "", b));
        self.io.close_quietly(id, reason);
    }
}

/// Whether a line waits while chat input is paused: every line does, except `/quit` from a
/// sender with nothing waiting (leaving only lightens the load; every other command may
/// reach others, and lines behind waiting ones keep their order).
fn holds_while_paused(waiting: bool, line: &str) -> bool {
    waiting || !is_quit(line)
}

#[cfg(test)]
mod tests {
    use super::holds_while_paused;

    #[test]
    fn paused_input_holds_every_command_but_quit() {
        for line in [
            "hi",
            "/me waves",
            "/msg @bob hi",
            "/topic t",
            "/nick bob",
            "/join #x",
        ] {
            assert!(holds_while_paused(false, line), "{line:?}");
        }
        assert!(!holds_while_paused(false, "/quit"));
        assert!(
            holds_while_paused(true, "/quit"),
            "a /quit behind waiting lines waits"
        );
    }
}
