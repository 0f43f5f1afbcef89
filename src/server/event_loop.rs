//! The loop: poll → dispatch → resume pending reads → timers → log queries → reap → flush;
//! then reading, writing and reaping connections, in that order below.

use super::conn::{elapsed, ms32, ConnState, Proto};
use super::http_io::requests_waiting;
use super::io::Entry;
use super::shutdown::SIGNAL_TOKEN;
use super::start::{split_token, Server, READ_BUDGET};
use super::timers::TimerKind;
use crate::chat::{ClientId, CloseReason, Outbox};
use crate::record::Record;
use mio::Events;
use std::borrow::Cow;
use std::io::{self, Read};
use std::net::Shutdown;
use std::time::Duration;

/// Bytes written to one connection per loop pass.
const WRITE_BUDGET: usize = 64 * 1024;

impl Server {
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
                    Some(Entry::Redis(_)) if gen == super::cluster_io::REDIS_GEN => {
                        self.redis_ready(key)
                    }
                    _ => {} // stale token: the connection is gone
                }
            }
            self.resume_pending_reads();
            self.resume_held();
            self.fire_timers();
            self.step_queries();
            self.reap();
            self.cluster_pass();
            self.flush();
            self.moderation_pass();
            self.check_backlog();
            if self.shutdown_due() {
                return self.finish_shutdown();
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.io.pending_reads.is_empty()
            || !self.io.dirty.is_empty()
            || !self.io.reap.is_empty()
            || self.http.busy()
            || self.overload.busy()
        {
            return Some(Duration::ZERO);
        }
        let next = [
            self.io.timers.next(),
            self.core.next_deadline(),
            self.shutdown_at,
            self.state_retry_at(),
            (self.cluster.as_ref().map(|c| c.next_deadline())).filter(|&t| t != u64::MAX),
        ]
        .into_iter()
        .flatten()
        .min()?;
        // Round up so a deadline is never polled for as 0 ms repeatedly before it is due.
        Some(Duration::from_millis(
            next.saturating_sub(self.io.now.mono_ms) + 1,
        ))
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

    /// Hands bytes to the connection's decoder: HTTP requests are handled by the HTTP
    /// module; chat input is decoded into the server's scratch list, then drained through
    /// [`Server::chat_input`].
    pub(super) fn feed(&mut self, id: ClientId, data: &[u8]) {
        let now_ms = self.now().mono_ms;
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        match &mut conn.proto {
            Proto::Telnet(decoder) => {
                decoder.decode_into(data, &self.settings.telnet, &mut self.inputs);
            }
            Proto::WebSocket(ws) => {
                ws.last_seen_ms = ms32(now_ms);
                ws.ping_sent = false;
                let max = self.settings.ws_max_message;
                ws.decoder.decode_into(data, max, &mut self.inputs);
            }
            Proto::Http(_) => return self.feed_http(id, data),
        }
        let inputs = std::mem::take(&mut self.inputs);
        for input in inputs.iter() {
            self.chat_input(id, input);
        }
        self.inputs = inputs;
        self.inputs.clear();
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
                let id = conn.id;
                // Requests that waited for the output to drain (nothing for chat clients).
                self.http_dispatch(id);
                self.read_conn(key);
            }
        }
        self.spare_pending = pending;
    }

    // ---------------------------------------------------------------- timers

    fn fire_timers(&mut self) {
        let now = self.now();
        while let Some(timer) = self.io.timers.pop_due(now.mono_ms) {
            if timer.kind == TimerKind::AcceptResume {
                self.resume_accepting(timer.key as usize);
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
                    let since = conn.out.over_soft_since();
                    let over_for = elapsed(now.mono_ms, since);
                    if since != 0 && over_for >= soft_ms {
                        self.io.kill(id, CloseReason::OutputOverflow);
                    } else if since != 0 {
                        let at_ms = now.mono_ms + (soft_ms - over_for);
                        self.io.timers.arm(id, at_ms, TimerKind::SoftLimit);
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
            let written =
                (conn.out).write_to(&mut conn.stream, WRITE_BUDGET, soft, &mut self.io.backlog);
            match written {
                Ok(written) => {
                    self.io.metrics.bytes_out += written.bytes as u64;
                    if conn.out.len() <= soft
                        && requests_waiting(&conn.proto)
                        && conn.is_open()
                        && !conn.read_pending
                    {
                        // Requests may have waited for this output to drain.
                        conn.read_pending = true;
                        self.io.pending_reads.push(key);
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
        super::buffer::end_pass(self.io.now.mono_ms);
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
                if conn.proto.is_chat() {
                    let now = self.now();
                    self.core.handle_disconnect(now, id, reason, &mut self.io);
                }
                let Entry::Conn(mut conn) = self.io.slab.remove(key) else {
                    continue;
                };
                let _ = self.poll.registry().deregister(&mut conn.stream);
                conn.out.clear(&mut self.io.backlog);
                self.per_ip.remove(conn.peer.ip());
                *self.io.metrics.open_mut(conn.proto.name()) -= 1;
                self.io.metrics.count_close(reason);
            }
        }
    }
}
