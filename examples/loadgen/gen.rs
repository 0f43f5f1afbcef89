//! The generator: its state, opening connections, the timers, publishing and closing.

use crate::conn::{flush, kind_of, push_line, Conn, Kind, Role, St};
use crate::opts::{Opts, Phase};
use crate::stats::Shared;
use crate::sys::{proc_cpu_s, proc_rss_kib, set_bind_address_no_port};
use crate::{MSG_LEN, SCRATCH};
use mio::net::TcpStream;
use mio::{Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub struct Gen {
    pub o: Opts,
    pub poll: Poll,
    pub conns: Slab<Conn>,
    pub scratch: Vec<u8>,
    pub sh: Shared,
    pub deadline: Instant,
    /// Member index to connect next, and how many members are wanted now.
    pub next_member: usize,
    pub want_members: usize,
    pub next_connect_at: Instant,
    pub src_rr: u32,
    pub touched: Vec<usize>,
    /// The server processes, one per node (or one for all).
    pub pids: Vec<String>,
    pub next_rss_at: Instant,
    pub aborted: bool,
    /// The knee found by the last knee search (deliveries/s), for the overload phase.
    pub knee_dps: Option<f64>,
    /// The last poll returned events (see `poll_once`).
    pub busy: bool,
    pub last_poll: Instant,
}

impl Gen {
    pub fn new(o: Opts) -> io::Result<Gen> {
        let now = Instant::now();
        let senders = o.senders.max(o.channels);
        let deadline = now + Duration::from_secs_f64(o.max_seconds);
        Ok(Gen {
            poll: Poll::new()?,
            conns: Slab::with_capacity(o.telnet_clients + o.ws_clients + 64),
            scratch: vec![0u8; SCRATCH],
            sh: Shared {
                base: now,
                now_cache: (now, 0),
                reads: 0,
                colon_space: memchr::memmem::Finder::new(b": "),
                channels: o.channels,
                senders,
                member_keys: Vec::new(),
                live: vec![0; o.channels],
                joined: 0,
                inflight: 0,
                failed: 0,
                disconnects: 0,
                barrier_nonce: 0,
                barrier_seen: 0,
                steps: Vec::new(),
                sched: None,
                seq: vec![0; senders],
                rest: None,
                churn: None,
                errors: BTreeMap::new(),
                rss_max_kib: 0,
                drained_bytes: 0,
                stalled_eof: 0,
                retried: 0,
                order_check: o.order_check,
                nodes: o.nodes(),
            },
            deadline,
            next_member: 0,
            want_members: 0,
            next_connect_at: now,
            src_rr: 0,
            touched: Vec::new(),
            pids: o.server_pids.iter().map(|p| p.to_string()).collect(),
            next_rss_at: now,
            aborted: false,
            knee_dps: None,
            busy: false,
            last_poll: now,
            o,
        })
    }

    pub fn total_clients(&self) -> usize {
        self.o.telnet_clients + self.o.ws_clients
    }

    /// CPU seconds of the server processes together.
    pub fn cpu(&self) -> Option<f64> {
        self.pids.iter().map(|p| proc_cpu_s(p)).sum()
    }

    /// CPU seconds of each server process.
    pub fn node_cpus(&self) -> Vec<Option<f64>> {
        self.pids.iter().map(|p| proc_cpu_s(p)).collect()
    }

    /// RSS of the server processes together.
    pub fn rss(&self) -> Option<u64> {
        self.pids.iter().map(|p| proc_rss_kib(p)).sum()
    }

    pub fn own_cpu() -> f64 {
        proc_cpu_s("self").unwrap_or(0.0)
    }

    /// Opens a non-blocking connection from 127.0.0.(2 + n % src_addrs).
    pub fn open(&mut self, addr: SocketAddr, small_rcvbuf: bool) -> io::Result<TcpStream> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_nonblocking(true)?;
        s.set_tcp_nodelay(true)?;
        if small_rcvbuf {
            s.set_recv_buffer_size(4096)?;
        }
        if addr.ip().is_loopback() {
            // Choose the port at connect() (4-tuple aware) instead of at bind(), which
            // searches for a port unused on that address and slows down with every socket.
            set_bind_address_no_port(&s);
            let last = 2 + (self.src_rr % u32::from(self.o.src_addrs)) as u8;
            self.src_rr = self.src_rr.wrapping_add(1);
            let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0);
            s.bind(&src.into())?;
        }
        match s.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(115) => {} // EINPROGRESS
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(TcpStream::from_std(std::net::TcpStream::from(s)))
    }

    pub fn add_conn(
        &mut self,
        mut sock: TcpStream,
        kind: Kind,
        role: Role,
        id: u64,
        ch: u32,
        node: u8,
    ) -> Option<usize> {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.sh.error(&format!("register: {e}"));
            return None;
        }
        entry.insert(Conn {
            sock,
            kind,
            role,
            st: St::Connecting,
            id,
            channel: ch,
            node,
            order: Vec::new(),
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            stalled: false,
            draining: false,
            touched: false,
            next_seq: Box::new([]),
            barrier: 0,
            started: Instant::now(),
            head: Vec::new(),
        });
        Some(key)
    }

    pub fn is_stall_candidate(&self, i: usize) -> bool {
        let share = self.o.stalled_share;
        if share <= 0.0 || i < self.sh.senders {
            return false;
        }
        if !self
            .o
            .phases
            .iter()
            .chain(self.o.extra_phases.iter())
            .any(|p| matches!(p, Phase::Stalled(_)))
        {
            return false;
        }
        let every = (1.0 / share).round().max(1.0) as usize;
        (i - self.sh.senders) % every == every - 1
    }

    pub fn connect_member(&mut self) {
        let i = self.next_member;
        self.next_member += 1;
        self.connect_member_at(i);
    }

    pub fn connect_member_at(&mut self, i: usize) {
        let kind = kind_of(i, self.o.telnet_clients, self.o.ws_clients);
        let node = self.o.node_of(i);
        let addr = match kind {
            Kind::Telnet => Opts::addr_for(&self.o.telnet, node),
            Kind::Ws => Opts::addr_for(&self.o.ws, node),
        };
        let Some(addr) = addr else { return };
        let small = self.is_stall_candidate(i);
        let ch = (i % self.o.channels) as u32;
        if self.sh.member_keys.len() <= i {
            self.sh.member_keys.resize(i + 1, None);
        }
        match self.open(addr, small) {
            Ok(sock) => {
                if let Some(key) = self.add_conn(sock, kind, Role::Member, i as u64, ch, node as u8)
                {
                    self.sh.member_keys[i] = Some(key);
                    self.sh.inflight += 1;
                } else {
                    self.sh.failed += 1;
                }
            }
            Err(e) => {
                self.sh.failed += 1;
                self.sh.error(&format!("connect: {e}"));
            }
        }
    }

    /// Starts due work: connections, sends, churn cycles, REST queries, RSS samples.
    pub fn timers(&mut self, now: Instant) {
        // Connections, at a bounded rate and with a bounded number in flight.
        if self.next_member < self.want_members {
            let step = Duration::from_secs_f64(1.0 / self.o.connect_rate.max(1.0));
            if self.next_connect_at + Duration::from_millis(20) < now {
                self.next_connect_at = now;
            }
            while self.next_member < self.want_members
                && self.sh.inflight < self.o.max_inflight
                && self.next_connect_at <= now
            {
                self.connect_member();
                self.next_connect_at += step;
            }
        }
        self.send_due(now);
        self.churn_due(now);
        self.rest_due(now);
        if now >= self.next_rss_at {
            if let Some(r) = self.rss() {
                self.sh.rss_max_kib = self.sh.rss_max_kib.max(r);
            }
            self.next_rss_at = now + Duration::from_millis(100);
        }
    }

    pub fn send_due(&mut self, now: Instant) {
        let Some(sched) = self.sh.sched.as_mut() else {
            return;
        };
        let base = self.sh.base;
        let channels = self.sh.channels;
        let senders = self.sh.senders;
        let mut buf = [b'x'; MSG_LEN];
        while let Some(due) = sched.next_due() {
            if due > now {
                break;
            }
            let s = (sched.next_j % senders as u64) as usize;
            sched.next_j += 1;
            let step = &mut self.sh.steps[sched.step as usize];
            let lag = now.duration_since(due).as_micros() as u64;
            step.max_send_lag_us = step.max_send_lag_us.max(lag);
            let Some(key) = self.sh.member_keys.get(s).copied().flatten() else {
                continue;
            };
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            if c.st != St::Joined {
                continue;
            }
            let sched_ns = due.duration_since(base).as_nanos() as u64;
            let seq = self.sh.seq[s];
            let echoed = c.next_seq.get(s / channels).copied().unwrap_or(0);
            if step.shed_window > 0 && seq.saturating_sub(echoed) >= step.shed_window {
                // Too many of this sender's messages are still on their way: this one would
                // wait behind them. Offered, not sent (no sequence number spent: no gap).
                step.shed += 1;
                if let Some(slots) = step.slots.as_mut() {
                    slots.shed(sched_ns);
                }
                continue;
            }
            self.sh.seq[s] += 1;
            buf.fill(b'x');
            let mut cur = io::Cursor::new(&mut buf[..]);
            let _ = write!(cur, "b{s}:{}:{seq}:{sched_ns}:", sched.step);
            push_line(c, &buf);
            step.sent += 1;
            if let Some(n) = step.sent_by_channel.get_mut(s % channels) {
                *n += 1;
            }
            step.expected += u64::from(self.sh.live[s % channels]);
            if !c.touched {
                c.touched = true;
                self.touched.push(key);
            }
        }
        let touched = std::mem::take(&mut self.touched);
        for &key in &touched {
            if let Some(c) = self.conns.get_mut(key) {
                c.touched = false;
                if flush(c).is_err() {
                    self.close(key, "write failed");
                }
            }
        }
        self.touched = touched;
        self.touched.clear();
    }
}

impl Gen {
    /// Removes a connection and updates the counts.
    pub fn close(&mut self, key: usize, why: &str) {
        let Some(mut c) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.sock);
        match c.role {
            Role::Member => {
                let i = c.id as usize;
                if let Some(slot) = self.sh.member_keys.get_mut(i) {
                    *slot = None;
                }
                if c.draining {
                    self.sh.stalled_eof += 1;
                    return;
                }
                self.sh.disconnects += 1;
                if let Some(s) = self.sh.steps.last_mut() {
                    if !s.closed {
                        s.disconnects += 1;
                    }
                }
                match c.st {
                    St::Joined => {
                        self.sh.joined -= 1;
                        if !c.stalled {
                            self.sh.live[c.channel as usize] -= 1;
                        }
                    }
                    _ => {
                        self.sh.inflight = self.sh.inflight.saturating_sub(1);
                        self.sh.failed += 1;
                    }
                }
                self.sh.error(&format!("member closed: {why}"));
            }
            Role::Churn => {
                let ok = c.st == St::ChurnQuit && why == "eof";
                if !ok {
                    self.sh
                        .error(&format!("churn client closed in {:?}: {why}", c.st));
                }
                self.churn_end(ok, Some(c.started));
            }
            Role::Rest => {
                let status = if why == "eof" {
                    let head = String::from_utf8_lossy(&c.head);
                    head.split_whitespace()
                        .nth(1)
                        .unwrap_or("no-response")
                        .to_owned()
                } else {
                    why.to_owned()
                };
                self.rest_end(status, Some(c.started));
            }
        }
    }
}
