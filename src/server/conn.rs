//! A connection in the slab: its socket, protocol state, output queue and flags.

use super::io::ListenKind;
use super::output::Output;
use crate::chat::{ClientId, CloseReason};
use crate::proto::http::HttpDecoder;
use crate::proto::telnet::TelnetDecoder;
use crate::proto::websocket::WsDecoder;
use crate::rest::QueryJob;
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// An HTTP connection (REST, or the WebSocket port before the upgrade).
pub struct HttpConn {
    /// Request framing.
    pub decoder: HttpDecoder,
    /// The port it came in on: [`ListenKind::Rest`] (the REST API) or
    /// [`ListenKind::WebSocket`] (the upgrade endpoint and the browser client page).
    pub site: ListenKind,
    /// When the request being received (or the wait for the next one) times out.
    pub deadline_ms: u64,
    /// A log query being scanned across loop passes.
    pub query: Option<Box<QueryJob>>,
    /// Whether to keep the connection open after the query's response.
    pub query_keep_alive: bool,
    /// Whether the query request was HEAD.
    pub query_head: bool,
    /// Output queued when the last deadline fired: an answer still being sent is not idle
    /// as long as this shrinks.
    pub queued_at_deadline: usize,
}

/// A WebSocket chat connection.
pub struct WsConn {
    /// Frame decoding.
    pub decoder: WsDecoder,
    /// When the client last sent anything ([`ms32`] of the monotonic ms).
    pub last_seen_ms: u32,
    /// A ping was sent and not yet answered.
    pub ping_sent: bool,
    /// JSON mode (subprotocol `chat.v1.json`): every message is a JSON object.
    pub json: bool,
}

/// The protocol a connection speaks, and that protocol's input state.
pub enum Proto {
    /// A telnet chat client.
    Telnet(TelnetDecoder),
    /// A WebSocket chat client.
    WebSocket(WsConn),
    /// An HTTP client.
    Http(Box<HttpConn>),
}

impl Proto {
    /// The transport's name in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Proto::Telnet(_) => "telnet",
            Proto::WebSocket(_) => "websocket",
            Proto::Http(_) => "http",
        }
    }

    /// True for chat sessions (telnet and WebSocket), which the chat core knows.
    pub fn is_chat(&self) -> bool {
        !matches!(self, Proto::Http(_))
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Reading and writing.
    Open,
    /// No more input; close once the queued output is written (or a deadline passes).
    Closing(CloseReason),
    /// Output written and our side shut down; discarding input until the peer closes (so
    /// unread input never turns the close into a reset that loses the last response).
    Lingering(CloseReason),
    /// Waiting to be reaped at the end of the loop pass; no more I/O.
    Dead(CloseReason),
}

/// Lines a connection sent beyond its allowance (or while input is paused), waiting for
/// their turn. Bounded by what one read can bring in; while it exists the socket is not read.
#[derive(Default)]
pub struct Backlog {
    /// The waiting lines, oldest first.
    pub lines: VecDeque<Box<str>>,
    /// A WebSocket close read after those lines: acted on once they are all handled, so a
    /// client that sends its last messages and closes in one write loses none of them.
    pub close: Option<PendingClose>,
}

/// A WebSocket close waiting for the lines read before it.
#[derive(Clone, Copy, Debug)]
pub enum PendingClose {
    /// The client closed with this code (1005 when it sent none).
    Close(u16),
    /// The client broke the protocol; close with this code.
    Fail(u16),
}

/// One client connection.
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Slab key and generation.
    pub id: ClientId,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Protocol state.
    pub proto: Proto,
    /// Output not yet written, and whether the socket pushes back.
    pub out: Output,
    /// Life-cycle state.
    pub state: ConnState,
    /// In the loop's dirty list (output to write this pass).
    pub dirty: bool,
    /// In the loop's pending-read list (input left unread at the budget).
    pub read_pending: bool,
    /// The peer has sent at least one line (for the HTTP-on-telnet check).
    pub seen_line: bool,
    /// In the overload queue: its backlog waits for turns after a pause.
    pub held: bool,
    /// Line tokens left (rate limit).
    pub tokens: f32,
    /// When tokens were last refilled ([`ms32`]).
    pub refilled_ms: u32,
    /// Lines over the rate limit, waiting; `None` almost always.
    pub backlog: Option<Box<Backlog>>,
}

/// A monotonic time stamp in 32 bits (milliseconds, wrapping every 49 days), to keep
/// connections small; only ever compared with [`elapsed`] over spans far shorter than that.
pub fn ms32(mono_ms: u64) -> u32 {
    mono_ms as u32
}

/// Milliseconds from the [`ms32`] stamp `then` to `now_ms`.
pub fn elapsed(now_ms: u64, then: u32) -> u64 {
    u64::from(ms32(now_ms).wrapping_sub(then))
}

impl Conn {
    /// True while the connection still reads input.
    pub fn is_open(&self) -> bool {
        self.state == ConnState::Open
    }

    /// True once it is waiting to be reaped.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, ConnState::Dead(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Idle memory per connection is a product target (README, "Performance": bytes per
    /// idle connection): keep the struct small.
    #[test]
    fn a_connection_stays_small() {
        let size = std::mem::size_of::<Conn>();
        println!(
            "Conn: {size} bytes, Proto: {}",
            std::mem::size_of::<Proto>()
        );
        assert!(size <= 176, "Conn grew to {size} bytes");
    }
}
