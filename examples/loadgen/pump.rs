//! The event loop: poll, handle readiness, read, and run until a condition holds.

use crate::conn::{flush, Kind, Role, St};
use crate::gen::Gen;
use crate::opts::Opts;
use crate::recv::{process, After};
use crate::WS_KEY;
use mio::Events;
use std::io::{self, Read};
use std::net::Shutdown;
use std::time::{Duration, Instant};

impl Gen {
    /// Polls once and handles the events.
    pub fn poll_once(&mut self, events: &mut Events, timeout: Duration) {
        // Read coalescing: when the last poll found work, wait until `--read-batch-us` has
        // passed since it, so that several messages queue up per socket and one read takes
        // them all (otherwise the generator makes a read per delivery, like an unbatched
        // server makes a write per delivery). Bounded extra latency, measured like the rest.
        if self.busy {
            let batch = Duration::from_micros(self.o.read_batch_us);
            let since = self.last_poll.elapsed();
            if since < batch {
                std::thread::sleep((batch - since).min(timeout));
            }
        }
        self.last_poll = Instant::now();
        let r = self.poll.poll(events, Some(timeout));
        self.busy = r.is_ok() && !events.is_empty();
        if let Err(e) = r {
            if e.kind() != io::ErrorKind::Interrupted {
                self.sh.error(&format!("poll: {e}"));
            }
            return;
        }
        for ev in events.iter() {
            let key = ev.token().0;
            let hup = ev.is_read_closed() || ev.is_error();
            self.handle(key, ev.is_readable() || hup, hup, ev.is_writable());
        }
    }

    pub fn handle(&mut self, key: usize, readable: bool, hup: bool, writable: bool) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.st == St::Connecting && (writable || readable) {
            match c.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    let why = format!("connect: {e}");
                    self.close(key, &why);
                    return;
                }
            }
            if c.sock.peer_addr().is_err() {
                if readable {
                    self.close(key, "connect refused");
                }
                return;
            }
            match (c.role, c.kind) {
                (Role::Rest, _) => {
                    let req = format!(
                        "GET /v1/api/message?pattern={}&limit=100 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                        self.o.rest_pattern,
                        self.o.rest.map(|a| a.to_string()).unwrap_or_default(),
                        self.o.token
                    );
                    c.out.extend_from_slice(req.as_bytes());
                    c.st = St::RestWait;
                }
                (_, Kind::Ws) => {
                    let req = format!(
                        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
                        Opts::addr_for(&self.o.ws, usize::from(c.node))
                            .map(|a| a.to_string())
                            .unwrap_or_default()
                    );
                    c.out.extend_from_slice(req.as_bytes());
                    c.st = St::WsHandshake;
                }
                (_, Kind::Telnet) => c.st = St::Greeting,
            }
        }
        if !c.out.is_empty() && flush(c).is_err() {
            self.close(key, "write failed");
            return;
        }
        if readable {
            self.read(key, hup);
        }
    }

    /// Reads until `WouldBlock` or EOF. `hup`: the peer closed, so read on to the EOF.
    pub fn read(&mut self, key: usize, hup: bool) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            if c.stalled && !c.draining {
                return;
            }
            self.sh.reads += 1;
            match c.sock.read(&mut self.scratch) {
                Ok(0) => {
                    self.close(key, "eof");
                    return;
                }
                Ok(n) => {
                    let now = Instant::now();
                    let after = process(c, &self.scratch[..n], now, &mut self.sh);
                    if after == After::Close {
                        self.close(key, "protocol");
                        return;
                    }
                    if !c.out.is_empty() && flush(c).is_err() {
                        self.close(key, "write failed");
                        return;
                    }
                    if c.st == St::ChurnQuit && c.out.is_empty() {
                        let _ = c.sock.shutdown(Shutdown::Write);
                    }
                    // A short read emptied the socket's receive queue (TCP): the next edge
                    // will tell us about new data, so the confirming EAGAIN read is skipped,
                    // unless the peer's FIN came with this edge (then read on to the EOF).
                    if n < self.scratch.len() && !hup {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = format!("read: {e}");
                    self.close(key, &why);
                    return;
                }
            }
        }
    }

    /// Runs the loop until `done` holds or `until` passes; returns whether `done` held.
    pub fn pump(
        &mut self,
        events: &mut Events,
        until: Instant,
        done: impl Fn(&Gen) -> bool,
    ) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= until || now >= self.deadline {
                if now >= self.deadline {
                    self.aborted = true;
                }
                return false;
            }
            self.timers(now);
            let mut timeout = until.min(self.deadline) - now;
            timeout = timeout.min(Duration::from_millis(5));
            if let Some(due) = self.sh.sched.as_ref().and_then(|s| s.next_due()) {
                timeout = timeout.min(due.saturating_duration_since(now));
            }
            if self.next_member < self.want_members {
                timeout = timeout.min(Duration::from_millis(1));
            }
            self.poll_once(events, timeout);
        }
    }
}
