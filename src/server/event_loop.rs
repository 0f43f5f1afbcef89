//! The loop: poll → dispatch → resume pending reads → timers → reap → flush.

use super::clock::Clock;
use super::conn::{Conn, ConnState, Proto};
use super::io::{Entry, Io, ListenKind, Listener, OutputLimits};
use super::limits::{fd_limit, PerIp};
use super::timers::{Timer, TimerKind};
use crate::chat::{BadInput, ChatCore, ClientId, CloseReason, CoreConfig, Now, Outbox};
use crate::config::{duration, Config};
use crate::log_store::LogStore;
use crate::proto::telnet::{self, TelnetDecoder, TelnetEvent, TelnetLimits};
use crate::proto::text::clean_line;
use crate::record::Record;
use log::{info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

/// Bytes read from one connection per readiness event before yielding to others.
const READ_BUDGET: usize = 16 * 1024;
/// Bytes written to one connection per loop pass.
const WRITE_BUDGET: usize = 64 * 1024;
/// The token of the signal pipe (no slab key can produce it).
const SIGNAL_TOKEN: Token = Token(usize::MAX);
/// How long accepting pauses after an accept error such as EMFILE.
const ACCEPT_PAUSE_MS: u64 = 100;
/// How long a closing connection may take to flush its last messages.
const CLOSE_FLUSH_MS: u64 = 5_000;

fn token(key: usize, gen: u32) -> Token {
    Token((gen as usize) << 32 | key)
}

fn split_token(t: Token) -> (usize, u32) {
    (t.0 & 0xffff_ffff, (t.0 >> 32) as u32)
}

fn ms(secs: f64) -> u64 {
    u64::try_from(duration(secs).as_millis()).unwrap_or(u64::MAX)
}

/// Settings the loop reads on the hot path, derived once from the config.
#[derive(Clone, Copy)]
struct Settings {
    telnet: TelnetLimitsCopy,
    lines_burst: f32,
    lines_per_ms: f32,
    max_connections: usize,
    max_per_ip: u32,
    limit_loopback: bool,
    keepalive: Duration,
    shutdown_grace_ms: u64,
}

#[derive(Clone, Copy)]
struct TelnetLimitsCopy {
    max_line: usize,
    max_input: usize,
}

/// The chat server: listeners, connections, the chat core and the loop that drives them.
pub struct Server {
    poll: Poll,
    core: ChatCore,
    io: Io,
    clock: Clock,
    signals: Signals,
    settings: Settings,
    read_buf: Vec<u8>,
    next_gen: u32,
    connections: usize,
    per_ip: PerIp,
    addrs: Vec<(ListenKind, SocketAddr)>,
    shutdown_at: Option<u64>,
    accept_warned_ms: Option<u64>,
}

impl Server {
    /// Binds the listeners the config names and opens the poll. Nothing is accepted until
    /// [`Server::run`].
    pub fn bind(config: &Config, log: LogStore) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut clock = Clock::new();
        let now = clock.now();
        let limits = OutputLimits {
            hard: config.output_hard_limit_bytes,
            soft: config.output_soft_limit_bytes,
            soft_ms: ms(config.output_soft_limit_s),
            close_flush_ms: CLOSE_FLUSH_MS,
        };
        let mut io = Io::new(log, limits, now);
        let ip: IpAddr = config
            .ip
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("ip: {e}")))?;
        let mut addrs = Vec::new();
        let listen = [(ListenKind::Telnet, config.telnet_port)];
        for (kind, port) in listen {
            let addr = SocketAddr::new(ip, port);
            let mut socket = TcpListener::bind(addr).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot listen on {addr} ({kind:?}): {e}"))
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
            }));
        }
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        let max_connections = config
            .max_connections
            .unwrap_or_else(|| fd_limit().unwrap_or(1024).saturating_sub(32).max(1));
        let settings = Settings {
            telnet: TelnetLimitsCopy {
                max_line: config.max_line_bytes,
                max_input: config.max_input_bytes,
            },
            lines_burst: config.lines_burst as f32,
            lines_per_ms: (config.lines_per_s / 1000.0) as f32,
            max_connections,
            max_per_ip: u32::try_from(config.max_connections_per_ip).unwrap_or(u32::MAX),
            limit_loopback: config.limit_loopback,
            keepalive: duration(config.tcp_keepalive_s),
            shutdown_grace_ms: ms(config.shutdown_grace_s),
        };
        let core = ChatCore::new(CoreConfig {
            nick_timeout_ms: ms(config.nick_timeout_s),
        });
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
            self.reap();
            self.flush();
            if let Some(at) = self.shutdown_at {
                if self.connections == 0 || self.io.now.mono_ms >= at {
                    return self.finish_shutdown();
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.io.pending_reads.is_empty()
            || !self.io.dirty.is_empty()
            || !self.io.reap.is_empty()
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
        let now = self.clock_peek_ms();
        // Round up so a deadline is never polled for as 0 ms repeatedly before it is due.
        Some(Duration::from_millis(next.saturating_sub(now) + 1))
    }

    fn clock_peek_ms(&self) -> u64 {
        self.io.now.mono_ms
    }

    fn now(&self) -> Now {
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

    fn refuse(&mut self, mut stream: TcpStream, text: &str) {
        self.io.metrics.refused += 1;
        let mut bytes = Vec::new();
        telnet::encode_message(text, &mut bytes);
        let _ = stream.write(&bytes);
    }

    fn on_accept(&mut self, kind: ListenKind, stream: TcpStream, peer: SocketAddr) {
        if self.connections >= self.settings.max_connections {
            self.refuse(stream, "The server is full, please try again later.");
            return;
        }
        let ip = peer.ip();
        let exempt = ip.is_loopback() && !self.settings.limit_loopback;
        if !exempt && self.per_ip.get(ip) >= self.settings.max_per_ip {
            self.refuse(
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
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        let now = self.now();
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
        let proto = match kind {
            ListenKind::Telnet => Proto::Telnet(TelnetDecoder::new()),
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
            refilled_ms: now.mono_ms,
            backlog: None,
        })));
        self.connections += 1;
        self.per_ip.add(ip);
        self.io.metrics.accepted += 1;
        self.io.metrics.telnet_open += 1;
        let peer_s = peer.to_string();
        let _ = self.io.log(
            now,
            &Record::Connect {
                conn: u64::from(gen),
                transport: Cow::Borrowed("telnet"),
                peer: Cow::Borrowed(&peer_s),
            },
        );
        self.core.handle_connect(now, id, &mut self.io);
    }

    // ---------------------------------------------------------------- input

    fn read_conn(&mut self, key: usize) {
        let mut buf = std::mem::take(&mut self.read_buf);
        let mut total = 0;
        while let Some(Entry::Conn(conn)) = self.io.slab.get_mut(key) {
            if !conn.is_open() || conn.backlog.is_some() {
                break;
            }
            let id = conn.id;
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    self.io.kill(id, CloseReason::Eof);
                    break;
                }
                Ok(n) => {
                    self.io.metrics.bytes_in += n as u64;
                    total += n;
                    self.feed(id, &buf[..n]);
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

    fn remember_pending(&mut self, key: usize) {
        if let Some(Entry::Conn(conn)) = self.io.slab.get_mut(key) {
            if !conn.read_pending {
                conn.read_pending = true;
                self.io.pending_reads.push(key);
            }
        }
    }

    fn resume_pending_reads(&mut self) {
        let pending = std::mem::take(&mut self.io.pending_reads);
        for key in pending {
            if let Some(Entry::Conn(conn)) = self.io.slab.get_mut(key) {
                conn.read_pending = false;
                self.read_conn(key);
            }
        }
    }

    fn feed(&mut self, id: ClientId, data: &[u8]) {
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        let Proto::Telnet(decoder) = &mut conn.proto;
        let mut decoder = std::mem::take(decoder);
        let limits = TelnetLimits {
            max_line: self.settings.telnet.max_line,
            max_input: self.settings.telnet.max_input,
        };
        decoder.feed(data, &limits, |event| self.on_telnet_event(id, event));
        if let Some(conn) = self.io.conn_mut(id) {
            let Proto::Telnet(slot) = &mut conn.proto;
            *slot = decoder;
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
                self.io.enqueue(id, &chunk);
            }
            TelnetEvent::TooLong => {
                let max = self.settings.telnet.max_line;
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

    /// Hands a line to the core, or to the connection's backlog when it is over its rate.
    fn submit_line(&mut self, id: ClientId, line: &str) {
        let now = self.now();
        let settings = self.settings;
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        refill(conn, now.mono_ms, &settings);
        if conn.backlog.is_none() && conn.tokens >= 1.0 {
            conn.tokens -= 1.0;
            self.io.metrics.messages_in += 1;
            self.core.handle_line(now, id, line, &mut self.io);
            return;
        }
        let newly = conn.backlog.is_none();
        conn.backlog.get_or_insert_default().push_back(line.into());
        if newly {
            let wait = ((1.0 - conn.tokens).max(0.0) / settings.lines_per_ms).ceil() as u64;
            self.io.timers.add(Timer {
                at_ms: now.mono_ms + wait.max(1),
                key: id.key,
                gen: id.gen,
                kind: TimerKind::RateResume,
            });
        }
    }

    fn resume_rate_limited(&mut self, id: ClientId) {
        let now = self.now();
        let settings = self.settings;
        loop {
            let Some(conn) = self.io.conn_mut(id) else {
                return;
            };
            if !conn.is_open() {
                return;
            }
            refill(conn, now.mono_ms, &settings);
            let Some(backlog) = conn.backlog.as_mut() else {
                return;
            };
            if backlog.is_empty() {
                conn.backlog = None;
                // Edge-triggered: bytes may be waiting that no new edge will announce.
                self.remember_pending(id.key as usize);
                return;
            }
            if conn.tokens < 1.0 {
                let wait = ((1.0 - conn.tokens) / settings.lines_per_ms).ceil() as u64;
                self.io.timers.add(Timer {
                    at_ms: now.mono_ms + wait.max(1),
                    key: id.key,
                    gen: id.gen,
                    kind: TimerKind::RateResume,
                });
                return;
            }
            conn.tokens -= 1.0;
            let Some(line) = backlog.pop_front() else {
                return;
            };
            self.io.metrics.messages_in += 1;
            self.core.handle_line(now, id, &line, &mut self.io);
        }
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
                    if since != 0 && now.mono_ms >= since + soft_ms {
                        self.io.kill(id, CloseReason::OutputOverflow);
                    } else if since != 0 {
                        self.io.timers.add(Timer {
                            at_ms: since + soft_ms,
                            ..timer
                        });
                    }
                }
                TimerKind::CloseDeadline => {
                    if let ConnState::Closing(reason) = conn.state {
                        self.io.kill(id, reason);
                    }
                }
                TimerKind::RateResume => self.resume_rate_limited(id),
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
        let dirty = std::mem::take(&mut self.io.dirty);
        let soft = self.io.limits.soft;
        for key in dirty {
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
                    }
                    if conn.out.is_empty() {
                        if let ConnState::Closing(reason) = conn.state {
                            self.io.kill(id, reason);
                        }
                    } else if !written.blocked {
                        conn.dirty = true;
                        self.io.dirty.push(key);
                    }
                }
                Err(_) => self.io.kill(id, CloseReason::IoError),
            }
        }
    }

    // ---------------------------------------------------------------- reap

    fn reap(&mut self) {
        while !self.io.reap.is_empty() {
            let reap = std::mem::take(&mut self.io.reap);
            for key in reap {
                let Some(Entry::Conn(conn)) = self.io.slab.get(key) else {
                    continue;
                };
                let ConnState::Dead(reason) = conn.state else {
                    continue;
                };
                let id = conn.id;
                let now = self.now();
                let nick = self.core.nick_of(id).map(str::to_owned);
                self.core.handle_disconnect(now, id, &mut self.io);
                let Entry::Conn(mut conn) = self.io.slab.remove(key) else {
                    continue;
                };
                let _ = self.poll.registry().deregister(&mut conn.stream);
                self.connections -= 1;
                self.per_ip.remove(conn.peer.ip());
                self.io.metrics.telnet_open -= 1;
                self.io.metrics.count_close(reason);
                let peer = conn.peer.to_string();
                drop(conn);
                let _ = self.io.log(
                    now,
                    &Record::Close {
                        conn: u64::from(id.gen),
                        peer: Cow::Borrowed(&peer),
                        nick: nick.as_deref().map(Cow::Borrowed),
                        reason: Cow::Borrowed(reason.as_str()),
                    },
                );
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
        for (_, entry) in self.io.slab.iter_mut() {
            if let Entry::Listener(l) = entry {
                let _ = self.poll.registry().deregister(&mut l.socket);
            }
        }
        self.core.handle_shutdown(now, &mut self.io);
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

/// Adds the tokens earned since the last refill, up to the burst.
fn refill(conn: &mut Conn, now_ms: u64, settings: &Settings) {
    let elapsed = now_ms.saturating_sub(conn.refilled_ms) as f32;
    conn.tokens = (conn.tokens + elapsed * settings.lines_per_ms).min(settings.lines_burst);
    conn.refilled_ms = now_ms;
}
