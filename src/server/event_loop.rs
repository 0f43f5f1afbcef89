//! The loop: poll → dispatch → resume pending reads → timers → log queries → reap → flush.

use super::clock::Clock;
use super::conn::{Conn, ConnState, HttpConn, Proto, Site};
use super::io::{Entry, Io, ListenKind, Listener, OutputLimits};
use super::limits::{fd_limit, PerIp};
use super::timers::{Timer, TimerKind};
use crate::chat::{ChatCore, ClientId, CloseReason, CoreConfig, Now, Outbox, Transport};
use crate::config::{duration, Config};
use crate::log_store::LogStore;
use crate::proto::http::{HttpDecoder, HttpLimits};
use crate::proto::telnet::{self, TelnetDecoder};
use crate::record::Record;
use crate::rest::RestConfig;
use log::{info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::Duration;

/// Bytes read from one connection per readiness event before yielding to others.
pub(super) const READ_BUDGET: usize = 16 * 1024;
/// Bytes written to one connection per loop pass.
const WRITE_BUDGET: usize = 64 * 1024;
/// The token of the signal pipe (no slab key can produce it).
const SIGNAL_TOKEN: Token = Token(usize::MAX);
/// How long accepting pauses after an accept error such as EMFILE.
const ACCEPT_PAUSE_MS: u64 = 100;
/// How long a closing connection may take to flush its last messages and see the peer close.
const CLOSE_FLUSH_MS: u64 = 3_000;

/// Connections the kernel may queue for `accept` (it caps this at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking listening socket with a backlog deep enough for bursts of connections
/// (mio's own `bind` uses 128).
fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

fn token(key: usize, gen: u32) -> Token {
    Token((gen as usize) << 32 | key)
}

fn split_token(t: Token) -> (usize, u32) {
    (t.0 & 0xffff_ffff, (t.0 >> 32) as u32)
}

/// Seconds from the config as milliseconds.
pub(super) fn ms(secs: f64) -> u64 {
    u64::try_from(duration(secs).as_millis()).unwrap_or(u64::MAX)
}

/// Settings the loop reads, derived once from the config.
pub(super) struct Settings {
    pub max_line: usize,
    pub max_input: usize,
    pub lines_burst: f32,
    pub lines_per_ms: f32,
    pub max_connections: usize,
    pub max_per_ip: u32,
    pub limit_loopback: bool,
    pub keepalive: Duration,
    pub shutdown_grace_ms: u64,
    pub http: HttpLimits,
    pub http_header_ms: u64,
    pub http_body_ms: u64,
    pub ws_handshake_ms: u64,
    pub ws_max_message: usize,
    pub ws_read_buffer: usize,
    pub ws_ping_ms: u64,
    pub ws_idle_ms: u64,
    pub allowed_origins: Vec<String>,
    pub rest: RestConfig,
    pub log_path: std::path::PathBuf,
}

/// The chat server: listeners, connections, the chat core and the loop that drives them.
pub struct Server {
    poll: Poll,
    pub(super) core: ChatCore,
    pub(super) io: Io,
    clock: Clock,
    signals: Signals,
    pub(super) settings: Settings,
    read_buf: Vec<u8>,
    next_gen: u32,
    connections: usize,
    per_ip: PerIp,
    addrs: Vec<(ListenKind, SocketAddr)>,
    shutdown_at: Option<u64>,
    accept_warned_ms: Option<u64>,
    /// HTTP connections with a log query in progress.
    pub(super) queries: Vec<ClientId>,
    /// Spare lists swapped with the dirty and pending-read lists each pass.
    spare_dirty: Vec<usize>,
    spare_pending: Vec<usize>,
    /// Embedded files as shared chunks, made on first use.
    pub(super) static_chunks: std::collections::HashMap<(usize, usize), super::buffer::Chunk>,
}

impl Server {
    /// Binds the listeners the config names and opens the poll. Nothing is accepted until
    /// [`Server::run`]. `admin_token` guards the REST admin endpoints.
    pub fn bind(config: &Config, log: LogStore, admin_token: String) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut clock = Clock::new();
        let now = clock.now();
        let limits = OutputLimits {
            hard: config.output_hard_limit_bytes,
            soft: config.output_soft_limit_bytes,
            soft_ms: ms(config.output_soft_limit_s),
            close_flush_ms: CLOSE_FLUSH_MS,
        };
        let log_path = log.path().to_path_buf();
        let mut io = Io::new(log, limits, now);
        let ip: IpAddr = config
            .ip
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("ip: {e}")))?;
        let mut addrs = Vec::new();
        let listen = [
            (ListenKind::Telnet, config.telnet_port),
            (ListenKind::Rest, config.rest_port),
            (ListenKind::WebSocket, config.websocket_port),
        ];
        for (kind, port) in listen {
            let addr = SocketAddr::new(ip, port);
            let mut socket = listen_on(addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} ({}): {e}", kind.name()),
                )
            })?;
            let entry = io.slab.vacant_entry();
            let key = entry.key();
            poll.registry()
                .register(&mut socket, token(key, 0), Interest::READABLE)?;
            addrs.push((kind, socket.local_addr()?));
            entry.insert(Entry::Listener(Listener {
                socket,
                kind,
                paused: false,
                closed: false,
            }));
        }
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        let max_connections = config
            .max_connections
            .unwrap_or_else(|| fd_limit().unwrap_or(1024).saturating_sub(32).max(1));
        let settings = Settings {
            max_line: config.max_line_bytes,
            max_input: config.max_input_bytes,
            lines_burst: config.lines_burst as f32,
            lines_per_ms: (config.lines_per_s / 1000.0) as f32,
            max_connections,
            max_per_ip: u32::try_from(config.max_connections_per_ip).unwrap_or(u32::MAX),
            limit_loopback: config.limit_loopback,
            keepalive: duration(config.tcp_keepalive_s),
            shutdown_grace_ms: ms(config.shutdown_grace_s),
            http: HttpLimits {
                max_header: config.http_max_header_bytes,
                max_body: config.http_max_body_bytes,
            },
            http_header_ms: ms(config.http_header_timeout_s),
            http_body_ms: ms(config.http_body_timeout_s),
            ws_handshake_ms: ms(config.ws_handshake_timeout_s),
            ws_max_message: config.ws_max_message_bytes,
            ws_read_buffer: config.ws_read_buffer_bytes,
            ws_ping_ms: ms(config.ws_ping_interval_s),
            ws_idle_ms: ms(config.ws_idle_timeout_s),
            allowed_origins: config.allowed_origins.clone(),
            rest: RestConfig {
                admin_token,
                max_announcement_bytes: config.max_line_bytes,
            },
            log_path,
        };
        let mut core = ChatCore::new(CoreConfig {
            nick_timeout_ms: ms(config.nick_timeout_s),
            history_size: config.history_size,
            history_channels: config.history_channels,
            history_on_join: config.history_on_join,
        });
        super::restore::rebuild(&mut core, &settings.log_path, config.history_scan_bytes);
        Ok(Server {
            poll,
            core,
            io,
            clock,
            signals,
            settings,
            read_buf: vec![0; READ_BUDGET],
            next_gen: 1,
            connections: 0,
            per_ip: PerIp::default(),
            addrs,
            shutdown_at: None,
            accept_warned_ms: None,
            queries: Vec::new(),
            static_chunks: Default::default(),
            spare_dirty: Vec::new(),
            spare_pending: Vec::new(),
        })
    }

    /// The bound addresses (port 0 in the config becomes the real port here).
    pub fn local_addrs(&self) -> &[(ListenKind, SocketAddr)] {
        &self.addrs
    }

    /// The most connections this server accepts at once.
    pub fn max_connections(&self) -> usize {
        self.settings.max_connections
    }

    /// Runs the loop until SIGTERM or SIGINT, then shuts down gracefully.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let now = self.clock.now();
        let _ = self.io.log(
            now,
            &Record::ServerStart {
                version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
            },
        );
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.io.now = self.clock.now();
            for event in events.iter() {
                if event.token() == SIGNAL_TOKEN {
                    self.on_signals();
                    continue;
                }
                let (key, gen) = split_token(event.token());
                match self.io.slab.get(key) {
                    Some(Entry::Listener(_)) if gen == 0 => self.accept(key),
                    Some(Entry::Conn(c)) if c.id.gen == gen => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read_conn(key);
                        }
                        if event.is_writable() {
                            self.mark_dirty(key);
                        }
                    }
                    _ => {} // stale token: the connection is gone
                }
            }
            self.resume_pending_reads();
            self.fire_timers();
            self.step_queries();
            self.reap();
            self.flush();
            if let Some(at) = self.shutdown_at {
                if self.io.now.mono_ms >= at || self.all_said() {
                    return self.finish_shutdown();
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.io.pending_reads.is_empty()
            || !self.io.dirty.is_empty()
            || !self.io.reap.is_empty()
            || !self.queries.is_empty()
        {
            return Some(Duration::ZERO);
        }
        let next = [
            self.io.timers.next(),
            self.core.next_deadline(),
            self.shutdown_at,
        ]
        .into_iter()
        .flatten()
        .min()?;
        // Round up so a deadline is never polled for as 0 ms repeatedly before it is due.
        Some(Duration::from_millis(
            next.saturating_sub(self.io.now.mono_ms) + 1,
        ))
    }

    pub(super) fn now(&self) -> Now {
        self.io.now
    }

    // ---------------------------------------------------------------- accept

    fn accept(&mut self, key: usize) {
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
                    self.io.timers.add(Timer {
                        at_ms: now + ACCEPT_PAUSE_MS,
                        key: key as u32,
                        gen: 0,
                        kind: TimerKind::AcceptResume,
                    });
                    return;
                }
            }
        }
    }

    fn refuse(&mut self, kind: ListenKind, mut stream: TcpStream, text: &str) {
        self.io.metrics.refused += 1;
        let bytes = match kind {
            ListenKind::Telnet => {
                let mut b = Vec::new();
                telnet::encode_message(text, &mut b);
                b
            }
            _ => crate::proto::http::Response::text(503, &format!("{text}\n"))
                .header("Retry-After", "5")
                .encode(false, false),
        };
        let _ = stream.write(&bytes);
        let _ = stream.shutdown(Shutdown::Both);
    }

    fn on_accept(&mut self, kind: ListenKind, stream: TcpStream, peer: SocketAddr) {
        if self.connections >= self.settings.max_connections {
            self.refuse(kind, stream, "The server is full, please try again later.");
            return;
        }
        let ip = peer.ip();
        let exempt = ip.is_loopback() && !self.settings.limit_loopback;
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
        let mut stream = stream;
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
            ListenKind::Rest => http(Site::Rest, self.settings.http_header_ms),
            ListenKind::WebSocket => http(Site::WebSocket, self.settings.ws_handshake_ms),
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
            over_soft_since: 0,
            tokens: self.settings.lines_burst,
            refilled_ms: super::conn::ms32(now.mono_ms),
            backlog: None,
        })));
        self.connections += 1;
        self.per_ip.add(ip);
        self.io.metrics.accepted += 1;
        *self.io.metrics.open_mut(transport) += 1;
        if let Some(at_ms) = deadline {
            self.io.timers.add(Timer {
                at_ms,
                key: key32,
                gen,
                kind: TimerKind::HttpDeadline,
            });
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

    // ---------------------------------------------------------------- input

    fn read_conn(&mut self, key: usize) {
        let mut buf = std::mem::take(&mut self.read_buf);
        let mut total = 0;
        while let Some(Entry::Conn(conn)) = self.io.slab.get_mut(key) {
            let lingering = matches!(conn.state, ConnState::Lingering(_));
            if !(conn.is_open() || lingering) || conn.backlog.is_some() {
                break;
            }
            let id = conn.id;
            // WebSocket clients are read in chunks of `ws_read_buffer_bytes`, as tungstenite's
            // read buffer would; the others in chunks of the whole budget.
            let chunk = match conn.proto {
                Proto::WebSocket(_) => self.settings.ws_read_buffer.min(buf.len()),
                _ => buf.len(),
            };
            match conn.stream.read(&mut buf[..chunk]) {
                Ok(0) => {
                    let reason = match conn.state {
                        ConnState::Lingering(r) => r,
                        _ => CloseReason::Eof,
                    };
                    self.io.kill(id, reason);
                    break;
                }
                Ok(n) => {
                    self.io.metrics.bytes_in += n as u64;
                    total += n;
                    if !lingering {
                        self.feed(id, &buf[..n]);
                    }
                    if total >= READ_BUDGET {
                        self.remember_pending(key);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.io.kill(id, CloseReason::IoError);
                    break;
                }
            }
        }
        self.read_buf = buf;
    }

    fn feed(&mut self, id: ClientId, data: &[u8]) {
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        match conn.proto {
            Proto::Telnet(_) => self.feed_telnet(id, data),
            Proto::WebSocket(_) => self.feed_ws(id, data),
            Proto::Http(_) => self.feed_http(id, data),
        }
    }

    pub(super) fn remember_pending(&mut self, key: usize) {
        if let Some(Entry::Conn(conn)) = self.io.slab.get_mut(key) {
            if !conn.read_pending {
                conn.read_pending = true;
                self.io.pending_reads.push(key);
            }
        }
    }

    fn resume_pending_reads(&mut self) {
        // The lists swap with spares, so that steady traffic allocates nothing per pass.
        let spare = std::mem::take(&mut self.spare_pending);
        let mut pending = std::mem::replace(&mut self.io.pending_reads, spare);
        for key in pending.drain(..) {
            if let Some(Entry::Conn(conn)) = self.io.slab.get_mut(key) {
                conn.read_pending = false;
                if let Proto::Http(_) = conn.proto {
                    // Requests that waited for the output to drain.
                    let id = conn.id;
                    self.http_dispatch(id);
                }
                self.read_conn(key);
            }
        }
        self.spare_pending = pending;
    }

    // ---------------------------------------------------------------- timers

    fn fire_timers(&mut self) {
        let now = self.now();
        while let Some(timer) = self.io.timers.pop_due(now.mono_ms) {
            let key = timer.key as usize;
            if timer.kind == TimerKind::AcceptResume {
                if let Some(Entry::Listener(l)) = self.io.slab.get_mut(key) {
                    l.paused = false;
                    self.accept(key);
                }
                continue;
            }
            let id = ClientId {
                key: timer.key,
                gen: timer.gen,
            };
            let soft_ms = self.io.limits.soft_ms;
            let Some(conn) = self.io.conn_mut(id) else {
                continue;
            };
            match timer.kind {
                TimerKind::SoftLimit => {
                    let since = conn.over_soft_since;
                    let over_for = super::conn::elapsed(now.mono_ms, since);
                    if since != 0 && over_for >= soft_ms {
                        self.io.kill(id, CloseReason::OutputOverflow);
                    } else if since != 0 {
                        self.io.timers.add(Timer {
                            at_ms: now.mono_ms + (soft_ms - over_for),
                            ..timer
                        });
                    }
                }
                TimerKind::CloseDeadline => {
                    if let ConnState::Closing(reason) | ConnState::Lingering(reason) = conn.state {
                        self.io.kill(id, reason);
                    }
                }
                TimerKind::RateResume => self.resume_rate_limited(id),
                TimerKind::HttpDeadline => self.http_deadline(id),
                TimerKind::WsKeepalive => self.ws_keepalive(id),
                TimerKind::AcceptResume => {}
            }
        }
        self.core.handle_tick(now, &mut self.io);
    }

    // ---------------------------------------------------------------- output

    fn mark_dirty(&mut self, key: usize) {
        if let Some(Entry::Conn(conn)) = self.io.slab.get_mut(key) {
            if !conn.dirty && !conn.out.is_empty() && !conn.is_dead() {
                conn.dirty = true;
                self.io.dirty.push(key);
            }
        }
    }

    fn flush(&mut self) {
        let spare = std::mem::take(&mut self.spare_dirty);
        let mut dirty = std::mem::replace(&mut self.io.dirty, spare);
        let soft = self.io.limits.soft;
        for key in dirty.drain(..) {
            let Some(Entry::Conn(conn)) = self.io.slab.get_mut(key) else {
                continue;
            };
            conn.dirty = false;
            if conn.is_dead() {
                continue;
            }
            let id = conn.id;
            match conn.out.write_to(&mut conn.stream, WRITE_BUDGET) {
                Ok(written) => {
                    self.io.metrics.bytes_out += written.bytes as u64;
                    if conn.out.len() <= soft {
                        conn.over_soft_since = 0;
                        if let Proto::Http(http) = &conn.proto {
                            if http.decoder.buffered() > 0 && conn.is_open() && !conn.read_pending {
                                // Requests may have waited for this output to drain.
                                conn.read_pending = true;
                                self.io.pending_reads.push(key);
                            }
                        }
                    }
                    if conn.out.is_empty() {
                        if let ConnState::Closing(reason) = conn.state {
                            // All said: shut our side and wait briefly for the peer's close.
                            conn.state = ConnState::Lingering(reason);
                            if conn.stream.shutdown(Shutdown::Write).is_err() {
                                self.io.kill(id, reason);
                            } else {
                                // Input that arrived before the shutdown has no edge left.
                                self.remember_pending(key);
                            }
                        }
                    } else if !written.blocked {
                        conn.dirty = true;
                        self.io.dirty.push(key);
                    }
                }
                Err(_) => self.io.kill(id, CloseReason::IoError),
            }
        }
        self.spare_dirty = dirty;
    }

    // ---------------------------------------------------------------- reap

    fn reap(&mut self) {
        while !self.io.reap.is_empty() {
            let reap = std::mem::take(&mut self.io.reap);
            for key in reap {
                let conn = match self.io.slab.get(key) {
                    Some(Entry::Conn(conn)) => conn,
                    Some(Entry::Listener(l)) if l.closed => {
                        if let Entry::Listener(mut l) = self.io.slab.remove(key) {
                            let _ = self.poll.registry().deregister(&mut l.socket);
                        }
                        continue;
                    }
                    _ => continue,
                };
                let ConnState::Dead(reason) = conn.state else {
                    continue;
                };
                let id = conn.id;
                let chat = conn.proto.is_chat();
                let now = self.now();
                if chat {
                    self.core.handle_disconnect(now, id, reason, &mut self.io);
                }
                let Entry::Conn(mut conn) = self.io.slab.remove(key) else {
                    continue;
                };
                let _ = self.poll.registry().deregister(&mut conn.stream);
                self.connections -= 1;
                self.per_ip.remove(conn.peer.ip());
                *self.io.metrics.open_mut(conn.proto.name()) -= 1;
                self.io.metrics.count_close(reason);
            }
        }
    }

    // ---------------------------------------------------------------- signals

    fn on_signals(&mut self) {
        let signals: Vec<i32> = self.signals.pending().collect();
        for signal in signals {
            match signal {
                SIGHUP => match self.io.log.reopen() {
                    Ok(()) => info!(
                        "SIGHUP: reopened the log file {}",
                        self.io.log.path().display()
                    ),
                    Err(e) => warn!("SIGHUP: cannot reopen the log file: {e}"),
                },
                SIGTERM | SIGINT => self.begin_shutdown(),
                _ => {}
            }
        }
    }

    fn begin_shutdown(&mut self) {
        let now = self.now();
        if self.shutdown_at.is_some() {
            info!("second stop signal: exiting now");
            self.shutdown_at = Some(now.mono_ms);
            return;
        }
        info!(
            "stop signal: telling {} connections and shutting down",
            self.connections
        );
        self.shutdown_at = Some(now.mono_ms + self.settings.shutdown_grace_ms);
        // Stop accepting: the listeners are closed (reaped) at the end of this pass, so new
        // connections are refused instead of waiting in the backlog.
        for (key, entry) in self.io.slab.iter_mut() {
            if let Entry::Listener(l) = entry {
                l.closed = true;
                self.io.reap.push(key);
            }
        }
        // Every connection may use the whole grace period to take its last messages.
        let limits = &mut self.io.limits;
        limits.close_flush_ms = limits.close_flush_ms.max(self.settings.shutdown_grace_ms);
        self.core.handle_shutdown(now, &mut self.io);
        let http: Vec<ClientId> = self
            .io
            .slab
            .iter()
            .filter_map(|(_, e)| match e {
                Entry::Conn(c) if !c.proto.is_chat() => Some(c.id),
                _ => None,
            })
            .collect();
        for id in http {
            self.io.close_after_flush(id, CloseReason::Shutdown);
        }
    }

    /// During shutdown: every connection has had all its output written (what is left only
    /// waits for the peer to close, which exiting does as well).
    fn all_said(&self) -> bool {
        self.io.slab.iter().all(|(_, e)| match e {
            Entry::Conn(c) => matches!(c.state, ConnState::Lingering(_) | ConnState::Dead(_)),
            Entry::Listener(_) => true,
        })
    }

    fn finish_shutdown(mut self) -> io::Result<()> {
        let now = self.clock.now();
        let _ = self.io.log(
            now,
            &Record::ServerStop {
                reason: Cow::Borrowed("signal"),
            },
        );
        if let Err(e) = self.io.log.sync() {
            warn!("cannot sync the log file: {e}");
        }
        info!("stopped");
        Ok(())
    }
}
