//! Accepting connections: the listening sockets, the connection limits (refusing with a
//! notice), and a new connection's entry in the slab.

use super::conn::{ms32, Conn, ConnState, HttpConn, Proto};
use super::io::{Entry, ListenKind};
use super::limits::exempt_at_accept;
use super::start::{token, Server};
use super::timers::TimerKind;
use crate::chat::{ClientId, Transport};
use crate::proto::http::{HttpDecoder, Response};
use crate::proto::telnet::{self, TelnetDecoder};
use log::warn;
use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

/// How long accepting pauses after an accept error such as EMFILE.
const ACCEPT_PAUSE_MS: u64 = 100;
/// Connections the kernel may queue for `accept` (it caps this at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking listening socket with a backlog deep enough for bursts of connections
/// (mio's own `bind` uses 128).
pub(super) fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

impl Server {
    /// Accepts every connection waiting on the listener at `key`.
    pub(super) fn accept(&mut self, key: usize) {
        loop {
            let Some(Entry::Listener(listener)) = self.io.slab.get(key) else {
                return;
            };
            if listener.paused || self.shutdown_at.is_some() {
                return;
            }
            let kind = listener.kind;
            match listener.socket.accept() {
                Ok((stream, peer)) => self.on_accept(kind, stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: pause instead of spinning.
                    self.io.metrics.accept_errors += 1;
                    let now = self.now().mono_ms;
                    if self.accept_warned_ms.is_none_or(|t| now >= t + 30_000) {
                        warn!("accept failed ({e}); pausing accepts for {ACCEPT_PAUSE_MS} ms");
                        self.accept_warned_ms = Some(now);
                    }
                    if let Some(Entry::Listener(l)) = self.io.slab.get_mut(key) {
                        l.paused = true;
                    }
                    let listener = ClientId {
                        key: key as u32,
                        gen: 0,
                    };
                    self.io
                        .timers
                        .arm(listener, now + ACCEPT_PAUSE_MS, TimerKind::AcceptResume);
                    return;
                }
            }
        }
    }

    /// The accept-pause timer of the listener at `key` fired: accept again.
    pub(super) fn resume_accepting(&mut self, key: usize) {
        if let Some(Entry::Listener(l)) = self.io.slab.get_mut(key) {
            l.paused = false;
            self.accept(key);
        }
    }

    /// Answers a connection over the limits with a notice (`503` on the HTTP ports) and
    /// closes it.
    fn refuse(&mut self, kind: ListenKind, mut stream: TcpStream, text: &str) {
        self.io.metrics.refused += 1;
        let bytes = match kind {
            ListenKind::Telnet => {
                let mut b = Vec::new();
                telnet::encode_message(text, &mut b);
                b
            }
            _ => Response::text(503, &format!("{text}\n"))
                .header("Retry-After", "5")
                .encode(false, false),
        };
        let _ = stream.write(&bytes);
        let _ = stream.shutdown(Shutdown::Both);
    }

    fn on_accept(&mut self, kind: ListenKind, mut stream: TcpStream, peer: SocketAddr) {
        if self.refuse_banned(kind, &mut stream, peer) {
            return;
        }
        if self.io.metrics.open_total() >= self.settings.max_connections as u64 {
            self.refuse(kind, stream, "The server is full, please try again later.");
            return;
        }
        let ip = peer.ip();
        let trusted = self.settings.moderation.trusted(ip);
        let exempt = exempt_at_accept(kind, ip, self.settings.limit_loopback, trusted);
        if !exempt && self.per_ip.get(ip) >= self.settings.max_per_ip {
            self.refuse(
                kind,
                stream,
                "Too many connections from your address, please try again later.",
            );
            return;
        }
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(self.settings.keepalive)
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1).clamp(1, u32::MAX - 1);
        let now = self.now();
        if self.io.slab.len() == self.io.slab.capacity() {
            // Grow in steps rather than doubling (see the chat core's session table).
            self.io.slab.reserve_exact(1024);
        }
        let entry = self.io.slab.vacant_entry();
        let key = entry.key();
        let Ok(key32) = u32::try_from(key) else {
            return;
        };
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token(key, gen),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("cannot register a connection from {peer}: {e}");
            return;
        }
        let id = ClientId { key: key32, gen };
        let http = |site, wait_ms| {
            Proto::Http(Box::new(HttpConn {
                decoder: HttpDecoder::new(),
                site,
                deadline_ms: now.mono_ms + wait_ms,
                query: None,
                query_keep_alive: false,
                query_head: false,
                queued_at_deadline: usize::MAX,
            }))
        };
        let proto = match kind {
            ListenKind::Telnet => Proto::Telnet(TelnetDecoder::new()),
            ListenKind::Rest => http(kind, self.settings.http_header_ms),
            ListenKind::WebSocket => http(kind, self.settings.ws_handshake_ms),
        };
        let transport = proto.name();
        let deadline = match &proto {
            Proto::Http(h) => Some(h.deadline_ms),
            _ => None,
        };
        entry.insert(Entry::Conn(Box::new(Conn {
            stream,
            id,
            peer,
            proto,
            out: Default::default(),
            state: ConnState::Open,
            dirty: false,
            read_pending: false,
            seen_line: false,
            held: false,
            tokens: self.settings.lines_burst,
            refilled_ms: ms32(now.mono_ms),
            backlog: None,
        })));
        self.per_ip.add(ip);
        self.io.metrics.accepted += 1;
        *self.io.metrics.open_mut(transport) += 1;
        if let Some(at_ms) = deadline {
            self.io.timers.arm(id, at_ms, TimerKind::HttpDeadline);
        }
        if kind == ListenKind::Telnet {
            self.start_chat_session(id, Transport::Telnet);
        }
    }

    /// A telnet connection was accepted or a WebSocket upgraded: the core logs and greets it.
    pub(super) fn start_chat_session(&mut self, id: ClientId, transport: Transport) {
        let now = self.now();
        let Some(peer) = self.io.conn_mut(id).map(|c| c.peer) else {
            return;
        };
        self.core
            .handle_connect(now, id, transport, peer, &mut self.io);
    }
}
