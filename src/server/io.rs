//! The shell's side of the chat core's [`Outbox`]: the slab of connections, output queues
//! with their limits, the dirty/reap lists and the chat log.

use super::buffer::Chunk;
use super::conn::{ms32, Conn, ConnState, HttpConn, Proto};
use super::fanout::{Encoded, Wire};
use super::metrics::Metrics;
use super::output::{Caps, Pushed};
use super::timers::{TimerKind, Timers};
use crate::chat::{ClientId, CloseReason, Event, LogFailed, Now, Outbox};
use crate::log_store::LogStore;
use crate::proto::websocket;
use crate::record::Record;
use mio::net::TcpListener;
use slab::Slab;
use std::rc::Rc;

/// What a listener accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenKind {
    /// Telnet chat clients.
    Telnet,
    /// The HTTP REST admin API.
    Rest,
    /// WebSocket chat clients and the browser client page.
    WebSocket,
}

impl ListenKind {
    /// The name printed at start-up and used in logs.
    pub fn name(self) -> &'static str {
        match self {
            ListenKind::Telnet => "telnet",
            ListenKind::Rest => "rest",
            ListenKind::WebSocket => "websocket",
        }
    }
}

/// A listening socket.
pub struct Listener {
    /// The socket.
    pub socket: TcpListener,
    /// What it accepts.
    pub kind: ListenKind,
    /// Accepting is paused after an accept error until a timer fires.
    pub paused: bool,
    /// Closed at shutdown: reaped at the end of the pass.
    pub closed: bool,
}

/// A slab entry: listeners and connections share one slab (and one token space).
pub enum Entry {
    /// A listening socket.
    Listener(Listener),
    /// A client connection.
    Conn(Box<Conn>),
    /// One of the cluster's two Redis connections.
    Redis(Box<super::cluster_io::RedisConn>),
}

/// Output limits per connection.
#[derive(Clone, Copy, Debug)]
pub struct OutputLimits {
    /// Disconnect at once above this many queued bytes.
    pub hard: usize,
    /// Disconnect when above this for `soft_ms`.
    pub soft: usize,
    /// See `soft`.
    pub soft_ms: u64,
    /// How long a closing connection may take to flush its goodbye.
    pub close_flush_ms: u64,
}

/// Everything the shell owns except the poll and the chat core.
pub struct Io {
    /// Listeners and connections.
    pub slab: Slab<Entry>,
    /// Connections with output to write this pass.
    pub dirty: Vec<usize>,
    /// Connections to remove at the end of this pass.
    pub reap: Vec<usize>,
    /// Connections with input left unread at the read budget.
    pub pending_reads: Vec<usize>,
    /// Deadlines.
    pub timers: Timers,
    /// The chat log.
    pub log: LogStore,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Output limits.
    pub limits: OutputLimits,
    /// The time of this loop pass.
    pub now: Now,
    /// Bytes queued that no reader's push-back accounts for: the server's own backlog.
    pub backlog: usize,
    encode_buf: Vec<u8>,
}

impl Io {
    /// A shell with no sockets yet.
    pub fn new(log: LogStore, limits: OutputLimits, now: Now) -> Io {
        Io {
            slab: Slab::new(),
            dirty: Vec::new(),
            reap: Vec::new(),
            pending_reads: Vec::new(),
            timers: Timers::default(),
            log,
            metrics: Metrics::default(),
            limits,
            now,
            backlog: 0,
            encode_buf: Vec::new(),
        }
    }

    /// The connection with this id, if it is still the same connection.
    pub fn conn_mut(&mut self, id: ClientId) -> Option<&mut Conn> {
        conn_in(&mut self.slab, id)
    }

    /// An open HTTP connection's state, and the bytes of output it has queued.
    pub fn http_mut(&mut self, id: ClientId) -> Option<(&mut HttpConn, usize)> {
        let conn = self.conn_mut(id)?;
        if !conn.is_open() {
            return None;
        }
        let queued = conn.out.len();
        match &mut conn.proto {
            Proto::Http(http) => Some((http, queued)),
            _ => None,
        }
    }

    /// Queues an HTTP response's bytes. Not subject to the output caps: a response is a
    /// known size (an embedded file is shared, not copied), and an HTTP connection takes its
    /// next request only once its output has drained (see the HTTP dispatch).
    pub fn enqueue_response(&mut self, id: ClientId, chunk: Chunk) {
        let Some(conn) = conn_in(&mut self.slab, id) else {
            return;
        };
        if conn.is_dead() {
            return;
        }
        conn.out.push(chunk, &mut self.backlog);
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(id.key as usize);
        }
    }

    /// Queues bytes for a connection, enforcing the output caps.
    pub fn enqueue(&mut self, id: ClientId, chunk: Chunk) {
        self.queue(id, false, |_, _| Some(chunk));
    }

    /// Queues one message for a chat connection, encoded for its wire format on first use
    /// and shared after that (HTTP connections are skipped). One slab lookup per recipient.
    #[inline]
    pub fn enqueue_encoded(&mut self, id: ClientId, msg: &mut Encoded<'_>) {
        self.queue(id, true, |proto, buf| {
            let wire = match proto {
                Proto::Telnet(_) => Wire::Telnet,
                Proto::WebSocket(ws) if ws.json => Wire::Json,
                Proto::WebSocket(_) => Wire::WebSocket,
                Proto::Http(_) => return None,
            };
            Some(msg.chunk(wire, buf))
        });
    }

    /// Queues the chunk that `chunk_for` makes for the connection (given its protocol and
    /// the scratch buffer; `None` queues nothing), under the output caps, which judge only
    /// what is queued while the socket pushes back (see `output.rs`): above the hard cap the
    /// connection is killed (reaped at the end of the pass); above the soft cap a timer starts
    /// that kills it if it stays there. `count` counts it in `messages_out`. Inlined: it is
    /// the fan-out's step per recipient.
    #[inline(always)]
    fn queue(
        &mut self,
        id: ClientId,
        count: bool,
        chunk_for: impl FnOnce(&Proto, &mut Vec<u8>) -> Option<Chunk>,
    ) {
        let Some(Entry::Conn(conn)) = self.slab.get_mut(id.key as usize) else {
            return;
        };
        if conn.id.gen != id.gen {
            return;
        }
        let Some(chunk) = chunk_for(&conn.proto, &mut self.encode_buf) else {
            return;
        };
        if count {
            self.metrics.messages_out += 1;
        }
        if conn.is_dead() {
            return;
        }
        let (now_ms, limits) = (self.now.mono_ms, &self.limits);
        let caps = Caps {
            hard: limits.hard,
            soft: limits.soft,
        };
        match conn
            .out
            .push_capped(chunk, &caps, ms32(now_ms), &mut self.backlog)
        {
            Pushed::Queued => {}
            Pushed::OverSoft => {
                let at_ms = now_ms + limits.soft_ms;
                self.timers.arm(id, at_ms, TimerKind::SoftLimit);
            }
            Pushed::OverHard => {
                conn.state = ConnState::Dead(CloseReason::OutputOverflow);
                conn.out.clear(&mut self.backlog);
                self.reap.push(id.key as usize);
                return;
            }
        }
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(id.key as usize);
        }
    }

    /// Marks a connection dead: no more I/O, reaped at the end of the pass. Its queued
    /// output is dropped.
    pub fn kill(&mut self, id: ClientId, reason: CloseReason) {
        if let Some(conn) = conn_in(&mut self.slab, id) {
            if !conn.is_dead() {
                conn.state = ConnState::Dead(reason);
                conn.out.clear(&mut self.backlog);
                self.reap.push(id.key as usize);
            }
        }
    }

    /// Queues a chunk built by `build` into a reused buffer.
    pub fn enqueue_with(&mut self, id: ClientId, build: impl FnOnce(&mut Vec<u8>)) {
        self.encode_buf.clear();
        build(&mut self.encode_buf);
        let chunk: Chunk = Rc::from(&self.encode_buf[..]);
        self.enqueue(id, chunk);
    }

    /// Stops reading a connection and closes it once its queued output is written. A
    /// WebSocket connection gets a close frame first.
    pub fn close_after_flush(&mut self, id: ClientId, reason: CloseReason) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state != ConnState::Open {
            return;
        }
        if let Proto::WebSocket(_) = conn.proto {
            let (code, why) = ws_close_code(reason);
            self.enqueue_with(id, |b| websocket::encode_close(code, why, b));
        }
        self.close_quietly(id, reason);
    }

    /// Like [`Io::close_after_flush`], without adding a WebSocket close frame.
    pub fn close_quietly(&mut self, id: ClientId, reason: CloseReason) {
        let at_ms = self.now.mono_ms + self.limits.close_flush_ms;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state != ConnState::Open {
            return;
        }
        conn.state = ConnState::Closing(reason);
        if conn.out.is_empty() {
            // Nothing to flush: go straight to the lingering close via the flush step.
            conn.dirty = true;
            self.dirty.push(id.key as usize);
        }
        self.timers.arm(id, at_ms, TimerKind::CloseDeadline);
    }
}

/// The connection with this id in `slab`, if it is still the same connection.
fn conn_in(slab: &mut Slab<Entry>, id: ClientId) -> Option<&mut Conn> {
    match slab.get_mut(id.key as usize) {
        Some(Entry::Conn(c)) if c.id.gen == id.gen => Some(c),
        _ => None,
    }
}

/// The WebSocket close code and reason for a server-side close.
pub fn ws_close_code(reason: CloseReason) -> (u16, &'static str) {
    match reason {
        CloseReason::Shutdown => (websocket::close::GOING_AWAY, "server shutting down"),
        CloseReason::Quit => (websocket::close::NORMAL, "good bye"),
        CloseReason::NickTimeout => (websocket::close::POLICY, "no nickname in time"),
        CloseReason::IdleTimeout => (websocket::close::POLICY, "idle timeout"),
        CloseReason::Kicked => (websocket::close::POLICY, "kicked"),
        CloseReason::InputOverflow => (websocket::close::TOO_BIG, "input too long"),
        CloseReason::ProtocolError => (websocket::close::PROTOCOL, "protocol error"),
        _ => (websocket::close::NORMAL, ""),
    }
}

impl Outbox for Io {
    fn log(&mut self, now: Now, record: &Record<'_>) -> Result<u64, LogFailed> {
        self.log.append(now.unix_ms, record).map_err(|_| LogFailed)
    }

    fn send(&mut self, to: ClientId, text: &str) {
        self.enqueue_encoded(to, &mut Encoded::new(text));
    }

    fn send_many(&mut self, to: &[ClientId], text: &str) {
        let mut msg = Encoded::new(text);
        for &id in to {
            self.enqueue_encoded(id, &mut msg);
        }
    }

    fn publish(&mut self, to: &[ClientId], event: &Event<'_>) {
        let mut msg = Encoded::event(*event);
        for &id in to {
            self.enqueue_encoded(id, &mut msg);
        }
    }

    fn close(&mut self, id: ClientId, reason: CloseReason) {
        self.close_after_flush(id, reason);
    }
}
