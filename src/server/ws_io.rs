//! WebSocket input: bytes → frame decoder → clean lines → the chat core; pings, pongs,
//! close frames, and the keepalive timer that pings idle clients and closes silent ones.

use super::conn::{elapsed, ms32, Proto, WsConn};
use super::event_loop::Server;
use super::timers::{Timer, TimerKind};
use crate::chat::{BadInput, ClientId, CloseReason};
use crate::proto::text::clean_line;
use crate::proto::websocket::{self, WsDecoder, WsEvent};

impl Server {
    /// Switches an HTTP connection on the WebSocket port to WebSocket after a `101`, and
    /// feeds it the bytes that came in behind the upgrade request.
    pub(super) fn upgrade_to_ws(&mut self, id: ClientId, early: Vec<u8>, json: bool) {
        let now = self.now().mono_ms;
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        conn.proto = Proto::WebSocket(WsConn {
            decoder: WsDecoder::new(),
            last_seen_ms: ms32(now),
            ping_sent: false,
            json,
        });
        self.io.metrics.http_open -= 1;
        self.io.metrics.websocket_open += 1;
        self.io.timers.add(Timer {
            at_ms: now + self.settings.ws_ping_ms,
            key: id.key,
            gen: id.gen,
            kind: TimerKind::WsKeepalive,
        });
        self.start_chat_session(id, crate::chat::Transport::WebSocket);
        if !early.is_empty() {
            self.feed_ws(id, &early);
        }
    }

    pub(super) fn feed_ws(&mut self, id: ClientId, data: &[u8]) {
        let now = self.now().mono_ms;
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        let Proto::WebSocket(ws) = &mut conn.proto else {
            return;
        };
        ws.last_seen_ms = ms32(now);
        ws.ping_sent = false;
        let mut decoder = std::mem::take(&mut ws.decoder);
        let max = self.settings.ws_max_message;
        decoder.feed(data, max, |event| self.on_ws_event(id, event));
        if let Some(conn) = self.io.conn_mut(id) {
            if let Proto::WebSocket(ws) = &mut conn.proto {
                ws.decoder = decoder;
            }
        }
    }

    fn on_ws_event(&mut self, id: ClientId, event: WsEvent<'_>) {
        let now = self.now();
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        if !conn.is_open() {
            return;
        }
        match event {
            WsEvent::Text(text) => {
                if text.len() > self.settings.max_line {
                    let max = self.settings.max_line;
                    self.core
                        .handle_bad_input(now, id, BadInput::TooLong { max }, &mut self.io);
                    return;
                }
                // One frame is one line: line breaks inside it become spaces.
                let text: std::borrow::Cow<'_, str> = if text.contains(['\n', '\r']) {
                    text.replace(['\n', '\r'], " ").into()
                } else {
                    text.into()
                };
                match clean_line(text.as_bytes()) {
                    Ok(line) if !line.is_empty() => self.submit_line(id, &line),
                    Ok(_) => {}
                    Err(_) => {
                        self.core
                            .handle_bad_input(now, id, BadInput::InvalidUtf8, &mut self.io)
                    }
                }
            }
            WsEvent::Ping(payload) => {
                self.io
                    .enqueue_with(id, |b| websocket::encode_pong(payload, b));
            }
            WsEvent::Pong => {}
            WsEvent::Close(code) => {
                // Echo the client's code (1000 when it sent none), then close.
                let code = if code == 1005 { 1000 } else { code };
                self.io
                    .enqueue_with(id, |b| websocket::encode_close(code, "", b));
                self.io.close_quietly(id, CloseReason::Eof);
            }
            WsEvent::Fail(code) => {
                self.io
                    .enqueue_with(id, |b| websocket::encode_close(code, "", b));
                self.io.close_quietly(id, CloseReason::ProtocolError);
            }
        }
    }

    /// The keepalive timer of a WebSocket connection fired.
    pub(super) fn ws_keepalive(&mut self, id: ClientId) {
        let now = self.now().mono_ms;
        let (ping_ms, idle_ms) = (self.settings.ws_ping_ms, self.settings.ws_idle_ms);
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        if !conn.is_open() {
            return;
        }
        let Proto::WebSocket(ws) = &mut conn.proto else {
            return;
        };
        let silent = elapsed(now, ws.last_seen_ms);
        let seen_at = now - silent;
        let next = if silent >= idle_ms {
            self.io.close_after_flush(id, CloseReason::IdleTimeout);
            return;
        } else if silent >= ping_ms && !ws.ping_sent {
            ws.ping_sent = true;
            let at = seen_at + idle_ms;
            self.io.enqueue_with(id, websocket::encode_ping);
            at
        } else if ws.ping_sent {
            seen_at + idle_ms
        } else {
            seen_at + ping_ms
        };
        self.io.timers.add(Timer {
            at_ms: next,
            key: id.key,
            gen: id.gen,
            kind: TimerKind::WsKeepalive,
        });
    }
}
