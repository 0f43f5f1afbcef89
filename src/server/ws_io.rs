//! WebSocket connections: the switch from HTTP after a `101`, and the keepalive timer that
//! pings idle clients and closes silent ones. (Their input goes through the chat input path.)

use super::conn::{elapsed, ms32, Proto, WsConn};
use super::start::Server;
use super::timers::TimerKind;
use crate::chat::{ClientId, CloseReason, Transport};
use crate::proto::websocket::{self, WsDecoder};

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
        let at_ms = now + self.settings.ws_ping_ms;
        self.io.timers.arm(id, at_ms, TimerKind::WsKeepalive);
        self.start_chat_session(id, Transport::WebSocket);
        if !early.is_empty() {
            self.feed(id, &early);
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
        self.io.timers.arm(id, next, TimerKind::WsKeepalive);
    }
}
