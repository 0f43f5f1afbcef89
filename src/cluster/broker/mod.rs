//! The sans-IO client of the cluster's two Redis connections (CLUSTER.md §1, §3, §5).
//!
//! The event loop owns the sockets and the clock; this state machine owns everything else.
//! The loop tells it what happened — [`Broker::connected`], [`Broker::received`],
//! [`Broker::disconnected`], [`Broker::tick`] — and takes back bytes to write
//! ([`Broker::output`], [`Broker::consume_output`]) and [`Event`]s ([`Broker::poll_event`]),
//! among them [`Event::Connect`] and [`Event::Close`] for the sockets themselves.
//!
//! - **Command link** ([`Link::Cmd`]): on connect, `AUTH` (if a password is set), `SCRIPT
//!   LOAD` of every script, `SET epoch NX` + `GET epoch`, `GET seq` and the entry at
//!   `last_applied`, pipelined; then the §5 checks — epoch changed, the stream shorter than
//!   what this node applied, or the entry at `last_applied` not the one it applied, is an
//!   **epoch change** — then `register` (the lease), then the pending proposals are re-sent
//!   with their `msg_id` (exactly once, through the scripts' de-duplication). Replies are
//!   matched to requests by a FIFO. `EVALSHA` answered `NOSCRIPT` (someone ran `SCRIPT
//!   FLUSH`) stops new sends until every in-flight call has answered, reloads the scripts
//!   and re-sends in the original order. The lease is refreshed every `lease_ms / 3`; an
//!   idle link is pinged every second; a reply missing its deadline drops the link.
//! - **Tail link** ([`Link::Tail`]): `XREAD BLOCK` from `last_applied`, entries applied
//!   strictly in `seq` order and exactly once ([`Event::Apply`]); a first seq beyond
//!   `last_applied + 1` is a [`Event::Gap`] (the stream was trimmed past this node).
//!
//! - **Peers**: every other node's incarnation seen in the stream (or passed to
//!   [`Broker::watch`]) has its lease read every `lease_ms`; once it no longer holds, the
//!   broker proposes `reap` itself, and the `node_down` entry arrives through the tail.
//!
//! The link is [`Event::Up`] while both links are ready, [`Event::Down`] otherwise; while
//! down, [`Broker::propose`] refuses (the caller shows SPEC §15's notice) and proposals
//! already sent stay pending. Reconnects back off from 100 ms to 2 s.

mod api;

pub use api::{BrokerConfig, Event, Link, Proposal, ProposeError, Resume};

use super::entry::{parse_stream_id, Entry};
use super::peers::Peers;
use super::scripts::{self, CallContext};
use super::PREFIX;
use crate::proto::resp::{as_bytes, as_int, encode_command, Frame, RespDecoder, RespLimits};
use api::{SCRIPT_REFRESH, SCRIPT_REGISTER};
use std::collections::VecDeque;

/// What a reply in a link's FIFO answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Auth,
    Load(usize),
    SetEpoch,
    GetEpoch,
    GetSeq,
    CheckLast,
    Register,
    /// A lease refresh for this incarnation (a late answer for an old one is ignored).
    Refresh(Box<str>),
    Ping,
    /// The lease key of a watched peer incarnation.
    PeerLease(Box<str>, Box<str>),
    Propose(Box<str>),
    /// The de-dup key of a proposal sent under an incarnation that lost its lease: present
    /// means Redis sequenced it (at that seq), absent that it never will.
    Resolve(Box<str>),
    Xread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting to (re)connect at the given time.
    Idle {
        retry_at: u64,
    },
    Connecting,
    /// Handshake or (tail) waiting for the command link.
    Starting,
    Ready,
}

#[derive(Debug)]
struct Conn {
    state: State,
    out: Vec<u8>,
    input: Vec<u8>,
    decoder: RespDecoder,
    /// Requests awaiting replies, oldest first, with when each was sent.
    fifo: VecDeque<(Req, u64)>,
    backoff_ms: u64,
    last_sent: u64,
}

impl Conn {
    fn new(limits: RespLimits, min_backoff: u64) -> Conn {
        Conn {
            state: State::Idle { retry_at: 0 },
            out: Vec::new(),
            input: Vec::new(),
            decoder: RespDecoder::new(limits),
            fifo: VecDeque::new(),
            backoff_ms: min_backoff,
            last_sent: 0,
        }
    }
}

#[derive(Debug)]
struct Pending {
    msg_id: Box<str>,
    proposal: Proposal,
    sent: bool,
    /// Sent to Redis at least once (it may have been sequenced even without an answer).
    tried: bool,
    /// Proposed by the broker itself (a reap): answered without events.
    internal: bool,
}

/// A proposal sent under an incarnation that has since lost its lease: never sent again;
/// whether Redis sequenced it is read from its de-dup key (or seen in the stream).
#[derive(Debug)]
struct Fenced {
    msg_id: Box<str>,
    /// Its de-dup key was asked for on the current connection.
    asked: bool,
}

/// The handshake's answers, gathered before the §5 checks run.
#[derive(Debug, Default)]
struct Handshake {
    /// `last_applied` and its msg_id when the handshake was sent (the tail may move on).
    applied: u64,
    applied_msg_id: Option<Box<str>>,
    epoch: Option<Box<str>>,
    seq: u64,
    /// The msg_id of the entry at `applied` in Redis (None: no such entry).
    last: Option<Box<str>>,
    /// Set once the checks passed on this connection: the tail may read.
    done: bool,
}

/// The cluster link's state machine; see the module docs.
#[derive(Debug)]
pub struct Broker {
    cfg: BrokerConfig,
    incarnation: Box<str>,
    epoch_seed: Box<str>,
    epoch_tries: u64,
    epoch: Option<Box<str>>,
    last_applied: u64,
    last_msg_id: Option<Box<str>>,
    cmd: Conn,
    tail: Conn,
    shas: [Option<Box<str>>; 6],
    hs: Handshake,
    registered: bool,
    /// This incarnation has held the lease: registering again is a renewal.
    registered_once: bool,
    lease_lost: bool,
    reloading: bool,
    next_refresh: u64,
    peers: Peers,
    next_peer_check: u64,
    counter: u64,
    pending: VecDeque<Pending>,
    /// Proposals whose fate a lost lease left open; the link is not up until they are settled.
    fenced: VecDeque<Fenced>,
    events: VecDeque<Event>,
    up: bool,
    /// The reason last reported with [`Event::Down`] while the link is down.
    down_why: Option<Box<str>>,
}

impl Broker {
    /// A new client for this process's `incarnation` (random, drawn by the caller, as is
    /// `epoch_seed`, used to make a fresh epoch if Redis has none), resuming from `resume`.
    pub fn new(
        cfg: BrokerConfig,
        incarnation: &str,
        epoch_seed: &str,
        resume: Option<Resume>,
    ) -> Broker {
        let limits = cfg.limits;
        let backoff = cfg.backoff_min_ms;
        let peers = Peers::new(&cfg.node_id);
        let (epoch, last_applied, last_msg_id) = match resume {
            Some(r) => (Some(r.epoch), r.last_seq, r.last_msg_id),
            None => (None, 0, None),
        };
        Broker {
            cfg,
            incarnation: incarnation.into(),
            epoch_seed: epoch_seed.into(),
            epoch_tries: 0,
            epoch,
            last_applied,
            last_msg_id,
            cmd: Conn::new(limits, backoff),
            tail: Conn::new(limits, backoff),
            shas: Default::default(),
            hs: Handshake::default(),
            registered: false,
            registered_once: false,
            lease_lost: false,
            reloading: false,
            next_refresh: 0,
            peers,
            next_peer_check: 0,
            counter: 0,
            pending: VecDeque::new(),
            fenced: VecDeque::new(),
            events: VecDeque::new(),
            up: false,
            down_why: None,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn last_applied(&self) -> u64 {
        self.last_applied
    }

    pub fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }

    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }

    /// Proposals not yet acknowledged (or refused).
    pub fn pending(&self) -> usize {
        self.pending.len() + self.fenced.len()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to write to `link`'s socket.
    pub fn output(&self, link: Link) -> &[u8] {
        &self.conn(link).out
    }

    /// `n` bytes of [`Broker::output`] were written.
    pub fn consume_output(&mut self, link: Link, n: usize) {
        let out = &mut self.conn_mut(link).out;
        out.drain(..n.min(out.len()));
    }

    /// The socket of `link` connected.
    pub fn connected(&mut self, link: Link, now: u64) {
        let c = self.conn_mut(link);
        if c.state != State::Connecting {
            return;
        }
        c.state = State::Starting;
        c.input.clear();
        c.decoder.reset();
        c.fifo.clear();
        c.out.clear();
        if let Some(pw) = self.cfg.password.clone() {
            self.send(link, Req::Auth, &["AUTH", pw.as_str()], now);
        }
        match link {
            Link::Cmd => self.start_handshake(now),
            Link::Tail => self.maybe_start_tail(now),
        }
    }

    /// The socket of `link` failed to connect, hit EOF or an error.
    pub fn disconnected(&mut self, link: Link, now: u64) {
        self.go_idle(link, now, "the connection to Redis was lost");
    }

    fn go_idle(&mut self, link: Link, now: u64, why: &str) {
        let max_backoff = self.cfg.backoff_max_ms;
        let c = self.conn_mut(link);
        if matches!(c.state, State::Idle { .. }) {
            return;
        }
        let backoff = c.backoff_ms;
        c.state = State::Idle {
            retry_at: now + backoff,
        };
        c.backoff_ms = (backoff * 2).min(max_backoff);
        c.fifo.clear();
        c.out.clear();
        c.input.clear();
        c.decoder.reset();
        if link == Link::Cmd {
            self.registered = false;
            self.reloading = false;
            self.hs.done = false;
            for p in &mut self.pending {
                p.sent = false;
            }
            for f in &mut self.fenced {
                f.asked = false;
            }
        }
        self.set_up(now, why);
    }

    /// Bytes read from `link`'s socket.
    pub fn received(&mut self, link: Link, bytes: &[u8], now: u64) {
        let mut frames = Vec::new();
        let c = self.conn_mut(link);
        if !matches!(c.state, State::Starting | State::Ready) {
            return;
        }
        c.input.extend_from_slice(bytes);
        let result = c.decoder.drain(&mut c.input, &mut frames);
        for frame in frames {
            let Some((req, _)) = self.conn_mut(link).fifo.pop_front() else {
                return self.drop_link(link, now, "Redis sent a reply nobody asked for");
            };
            self.on_reply(link, req, frame, now);
            if matches!(self.conn(link).state, State::Idle { .. }) {
                return;
            }
        }
        if let Err(e) = result {
            self.drop_link(link, now, &format!("unreadable reply from Redis: {e}"));
        }
    }

    /// Timers: reconnects, lease refresh, pings, reply deadlines. Call at
    /// [`Broker::next_deadline`] at the latest.
    pub fn tick(&mut self, now: u64) {
        for link in [Link::Cmd, Link::Tail] {
            match self.conn(link).state {
                State::Idle { retry_at } if now >= retry_at && self.may_connect(link) => {
                    self.conn_mut(link).state = State::Connecting;
                    self.events.push_back(Event::Connect(link));
                }
                State::Starting | State::Ready => {
                    let allowed = match link {
                        Link::Cmd => self.cfg.reply_timeout_ms,
                        Link::Tail => self.cfg.block_ms + self.cfg.reply_timeout_ms,
                    };
                    if let Some((_, sent)) = self.conn(link).fifo.front() {
                        if now >= sent + allowed {
                            self.drop_link(link, now, "Redis did not answer in time");
                        }
                    }
                }
                _ => {}
            }
        }
        if self.up && now >= self.next_peer_check {
            self.next_peer_check = now + self.cfg.lease_ms;
            for (node, inc) in self.peers.to_check() {
                let key = format!("{PREFIX}:node:{node}");
                self.send(
                    Link::Cmd,
                    Req::PeerLease(node, inc),
                    &["GET", key.as_str()],
                    now,
                );
            }
        }
        if self.cmd.state == State::Ready && self.registered && !self.reloading {
            if now >= self.next_refresh {
                self.next_refresh = now + self.cfg.lease_ms / 3;
                let lease = self.cfg.lease_ms.to_string();
                let req = Req::Refresh(self.incarnation.clone());
                self.call_script(SCRIPT_REFRESH, req, "", &[lease], now);
            } else if self.cmd.fifo.is_empty() && now >= self.cmd.last_sent + self.cfg.ping_every_ms
            {
                // The heartbeat reads the epoch, so a FLUSHALL is noticed within a second.
                let key = format!("{PREFIX}:epoch");
                self.send(Link::Cmd, Req::Ping, &["GET", key.as_str()], now);
            }
        }
    }

    /// The next time [`Broker::tick`] has something to do.
    pub fn next_deadline(&self) -> u64 {
        let mut t = u64::MAX;
        for (link, c) in [(Link::Cmd, &self.cmd), (Link::Tail, &self.tail)] {
            match c.state {
                State::Idle { retry_at } if self.may_connect(link) => t = t.min(retry_at),
                State::Idle { .. } => {}
                State::Starting | State::Ready => {
                    if let Some((_, sent)) = c.fifo.front() {
                        let allowed = match link {
                            Link::Cmd => self.cfg.reply_timeout_ms,
                            Link::Tail => self.cfg.block_ms + self.cfg.reply_timeout_ms,
                        };
                        t = t.min(sent + allowed);
                    }
                }
                State::Connecting => {}
            }
        }
        if self.up && !self.peers.is_empty() {
            t = t.min(self.next_peer_check);
        }
        if self.cmd.state == State::Ready && self.registered && !self.reloading {
            t = t.min(self.next_refresh);
            if self.cmd.fifo.is_empty() {
                t = t.min(self.cmd.last_sent + self.cfg.ping_every_ms);
            }
        }
        t
    }

    /// Sequences a state change: its msg_id, or why not. It is re-sent with that msg_id
    /// after a reconnect until Redis answers (exactly once).
    pub fn propose(&mut self, proposal: Proposal, now: u64) -> Result<Box<str>, ProposeError> {
        if !self.up {
            return Err(ProposeError::Down);
        }
        if self.pending.len() >= self.cfg.max_pending {
            return Err(ProposeError::Overloaded);
        }
        Ok(self.enqueue(proposal, false, now))
    }

    /// Watches another node's incarnation (one named in this node's own log at start-up):
    /// once its lease is gone, this node reaps it.
    pub fn watch(&mut self, node: &str, incarnation: &str) {
        self.peers.watch(node, incarnation);
    }

    fn enqueue(&mut self, proposal: Proposal, internal: bool, now: u64) -> Box<str> {
        self.counter += 1;
        let msg_id: Box<str> =
            format!("{}/{}/{}", self.cfg.node_id, self.incarnation, self.counter).into();
        self.pending.push_back(Pending {
            msg_id: msg_id.clone(),
            proposal,
            sent: false,
            tried: false,
            internal,
        });
        self.flush_pending(now);
        msg_id
    }

    /// After [`Event::LeaseLost`]: continue as a new incarnation (drawn by the caller).
    pub fn reincarnate(&mut self, incarnation: &str, now: u64) {
        self.incarnation = incarnation.into();
        self.lease_lost = false;
        self.registered = false;
        self.registered_once = false;
        if self.hs.done {
            self.register(now);
        }
    }

    // ---------------------------------------------------------------------------------
    // Internals

    fn conn(&self, link: Link) -> &Conn {
        match link {
            Link::Cmd => &self.cmd,
            Link::Tail => &self.tail,
        }
    }

    fn conn_mut(&mut self, link: Link) -> &mut Conn {
        match link {
            Link::Cmd => &mut self.cmd,
            Link::Tail => &mut self.tail,
        }
    }

    /// The tail connects only once the command link has settled the epoch.
    fn may_connect(&self, link: Link) -> bool {
        link == Link::Cmd || self.epoch.is_some()
    }

    fn send<A: AsRef<[u8]>>(&mut self, link: Link, req: Req, args: &[A], now: u64) {
        let max = self.cfg.max_output;
        let c = self.conn_mut(link);
        if !matches!(c.state, State::Starting | State::Ready) {
            return; // dropped earlier in this step
        }
        encode_command(&mut c.out, args);
        c.fifo.push_back((req, now));
        c.last_sent = now;
        if c.out.len() > max {
            self.drop_link(link, now, "too much output queued for Redis");
        }
    }

    /// Drops a link (protocol error, deadline, overflow): the loop closes the socket.
    fn drop_link(&mut self, link: Link, now: u64, why: &str) {
        if matches!(self.conn(link).state, State::Idle { .. }) {
            return;
        }
        self.events.push_back(Event::Close(link));
        self.go_idle(link, now, why);
    }

    fn set_up(&mut self, _now: u64, why: &str) {
        let up = self.cmd.state == State::Ready
            && self.registered
            && !self.lease_lost
            && self.fenced.is_empty()
            && self.tail.state == State::Ready;
        if up != self.up {
            self.up = up;
            self.down_why = None;
            self.events.push_back(if up {
                Event::Up {
                    epoch: self.epoch.clone().unwrap_or_default(),
                }
            } else {
                self.down_why = Some(why.into());
                Event::Down { why: why.into() }
            });
        } else if !up && !why.is_empty() && self.down_why.as_deref() != Some(why) {
            // Still down (or never up, e.g. Redis refusing the password at start-up): a new
            // reason is reported once, so the operator sees why.
            self.down_why = Some(why.into());
            self.events.push_back(Event::Down { why: why.into() });
        }
    }

    fn call_script(&mut self, idx: usize, req: Req, msg_id: &str, own: &[String], now: u64) {
        let Some(sha) = self.shas[idx].clone() else {
            return self.drop_link(Link::Cmd, now, "a script was not loaded");
        };
        let epoch = self.epoch.clone().unwrap_or_default();
        let ctx = CallContext {
            prefix: PREFIX,
            epoch: &epoch,
            node: &self.cfg.node_id,
            incarnation: &self.incarnation,
            msg_id,
            stream_maxlen: self.cfg.stream_maxlen,
        };
        let args = ctx.evalsha(&sha, own);
        self.send(Link::Cmd, req, &args, now);
    }

    fn start_handshake(&mut self, now: u64) {
        self.hs = Handshake {
            applied: self.last_applied,
            applied_msg_id: self.last_msg_id.clone(),
            ..Handshake::default()
        };
        for (i, s) in scripts::ALL.iter().enumerate() {
            self.send(Link::Cmd, Req::Load(i), &["SCRIPT", "LOAD", s.source], now);
        }
        self.epoch_tries += 1;
        let candidate = format!(
            "{}-{}-{}",
            self.epoch_seed, self.cfg.node_id, self.epoch_tries
        );
        let epoch_key = format!("{PREFIX}:epoch");
        self.send(
            Link::Cmd,
            Req::SetEpoch,
            &["SET", epoch_key.as_str(), candidate.as_str(), "NX"],
            now,
        );
        self.send(Link::Cmd, Req::GetEpoch, &["GET", epoch_key.as_str()], now);
        self.send(
            Link::Cmd,
            Req::GetSeq,
            &["GET", format!("{PREFIX}:seq").as_str()],
            now,
        );
        if self.hs.applied > 0 {
            let id = format!("0-{}", self.hs.applied);
            self.send(
                Link::Cmd,
                Req::CheckLast,
                &["XRANGE", &format!("{PREFIX}:log"), &id, &id],
                now,
            );
        }
    }

    /// The §5 checks, once the handshake's last reply is in.
    fn finish_handshake(&mut self, now: u64) {
        let Some(current) = self.hs.epoch.take() else {
            return self.drop_link(Link::Cmd, now, "Redis has no epoch");
        };
        // Redis holds fewer entries than this node applied, or another entry at its last
        // position: it lost a suffix (restart without persistence). A missing entry with
        // the counter past it was trimmed (MAXLEN): the tail reports that as a gap.
        let applied = self.hs.applied;
        let lost_suffix = applied > 0
            && (self.hs.seq < applied
                || matches!((&self.hs.last, &self.hs.applied_msg_id),
                    (Some(theirs), Some(ours)) if theirs != ours));
        match self.epoch.clone() {
            None => self.epoch = Some(current),
            Some(old) if old != current || lost_suffix => {
                self.epoch_changed(old, current, now);
            }
            Some(_) => {}
        }
        self.hs.done = true;
        self.ask_fenced(now);
        self.maybe_start_tail(now);
        // After a lost lease, registration waits for a new incarnation (`reincarnate`).
        if !self.lease_lost {
            self.register(now);
        }
    }

    fn epoch_changed(&mut self, old: Box<str>, new: Box<str>, now: u64) {
        self.events.push_back(Event::EpochChanged {
            old,
            new: new.clone(),
            last_seq: self.last_applied,
        });
        self.epoch = Some(new);
        self.last_applied = 0;
        self.last_msg_id = None;
        // A new history: this incarnation registers afresh (and appends its node_up there).
        self.registered_once = false;
        // What was pending was sequenced in a history that is gone, or never: refuse it.
        self.peers.clear();
        let fenced = std::mem::take(&mut self.fenced)
            .into_iter()
            .map(|f| f.msg_id);
        let pending = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|p| !p.internal)
            .map(|p| p.msg_id);
        for msg_id in fenced.chain(pending) {
            self.events.push_back(Event::Refused {
                msg_id,
                code: "EPOCH".into(),
                detail: "Redis lost its data before this was sequenced".into(),
            });
        }
        // The tail's cursor belongs to the old history: restart it.
        self.drop_link(Link::Tail, now, "the cluster's history was reset");
    }

    /// Takes the lease: a first registration for a new incarnation, a renewal after that
    /// (refused as FENCED if the lease expired in between).
    fn register(&mut self, now: u64) {
        let lease = self.cfg.lease_ms.to_string();
        let renew = if self.registered_once { "1" } else { "" }.to_string();
        self.counter += 1;
        let msg_id = format!("{}/{}/{}", self.cfg.node_id, self.incarnation, self.counter);
        self.call_script(
            SCRIPT_REGISTER,
            Req::Register,
            &msg_id,
            &[lease, renew],
            now,
        );
    }

    /// Starts (or resumes) reading once the command link has checked the epoch on this
    /// connection, so no entry of a replaced history is ever applied.
    fn maybe_start_tail(&mut self, now: u64) {
        if !self.hs.done {
            return;
        }
        if self.tail.state == State::Starting {
            self.tail.state = State::Ready;
            self.tail.backoff_ms = self.cfg.backoff_min_ms;
        }
        if self.tail.state == State::Ready && self.tail.fifo.is_empty() {
            self.xread(now);
        }
        self.set_up(now, "");
    }

    fn xread(&mut self, now: u64) {
        let block = self.cfg.block_ms.to_string();
        let count = self.cfg.read_count.to_string();
        let from = format!("0-{}", self.last_applied);
        let key = format!("{PREFIX}:log");
        self.send(
            Link::Tail,
            Req::Xread,
            &[
                "XREAD", "COUNT", &count, "BLOCK", &block, "STREAMS", &key, &from,
            ],
            now,
        );
    }

    /// Asks for the de-dup keys of the fenced proposals (no lease needed: a read).
    fn ask_fenced(&mut self, now: u64) {
        if !self.hs.done || !matches!(self.cmd.state, State::Starting | State::Ready) {
            return;
        }
        let mut ask = Vec::new();
        for f in &mut self.fenced {
            if !f.asked {
                f.asked = true;
                ask.push(f.msg_id.clone());
            }
        }
        for msg_id in ask {
            let key = format!("{PREFIX}:dedupe:{msg_id}");
            self.send(Link::Cmd, Req::Resolve(msg_id), &["GET", key.as_str()], now);
        }
    }

    fn flush_pending(&mut self, now: u64) {
        if self.cmd.state != State::Ready || !self.registered || self.reloading {
            return;
        }
        let mut to_send = Vec::new();
        for p in &mut self.pending {
            if !p.sent {
                p.sent = true;
                p.tried = true;
                to_send.push((p.msg_id.clone(), p.proposal.script(), p.proposal.own_args()));
            }
        }
        for (msg_id, idx, own) in to_send {
            self.call_script(idx, Req::Propose(msg_id.clone()), &msg_id, &own, now);
        }
    }

    fn on_reply(&mut self, link: Link, req: Req, frame: Frame, now: u64) {
        let err = match &frame {
            Frame::Error(e) => Some(e.clone()),
            _ => None,
        };
        let code = err
            .as_deref()
            .and_then(|e| e.split_whitespace().next())
            .unwrap_or("")
            .to_string();
        match req {
            Req::Auth
            | Req::Load(_)
            | Req::SetEpoch
            | Req::GetEpoch
            | Req::GetSeq
            | Req::CheckLast
                if err.is_some() =>
            {
                let e = err.unwrap_or_default();
                self.drop_link(link, now, &format!("Redis refused the handshake: {e}"));
            }
            // The tail's AUTH answered: its XREAD waited for the link's queue to empty.
            Req::Auth if link == Link::Tail => self.maybe_start_tail(now),
            Req::Auth | Req::SetEpoch => {}
            Req::Load(i) => match as_bytes(&frame).and_then(|b| std::str::from_utf8(b).ok()) {
                Some(sha) => {
                    self.shas[i] = Some(sha.into());
                    if self.reloading && i + 1 == scripts::ALL.len() {
                        self.reloading = false;
                        self.flush_pending(now);
                    }
                }
                None => self.drop_link(link, now, "SCRIPT LOAD gave no SHA-1"),
            },
            Req::GetEpoch => {
                self.hs.epoch = as_bytes(&frame)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .map(Into::into);
                if self.hs.epoch.is_none() {
                    self.drop_link(link, now, "Redis lost the epoch during the handshake");
                }
            }
            Req::GetSeq => {
                self.hs.seq = as_int(&frame).map_or(0, |s| s.max(0) as u64);
                if self.hs.applied == 0 {
                    self.finish_handshake(now);
                }
            }
            Req::CheckLast => {
                self.hs.last = match &frame {
                    Frame::Array(items) => items
                        .first()
                        .and_then(|f| Entry::from_frame(f).ok())
                        .map(|e| e.msg_id),
                    _ => None,
                };
                self.finish_handshake(now);
            }
            Req::Register => self.on_register(frame, &code, now),
            Req::Refresh(inc) if inc != self.incarnation => {}
            Req::Refresh(_) => match (&frame, code.as_str()) {
                (Frame::Array(v), _) if v.first().and_then(as_int) == Some(1) => {}
                (Frame::Array(_), _) => self.lose_lease(now),
                (_, "NOSCRIPT") => {
                    self.next_refresh = 0;
                    self.start_reload(now);
                }
                (_, "EPOCH") => self.drop_link(link, now, "the cluster's epoch changed"),
                _ => self.drop_link(link, now, "the lease refresh failed"),
            },
            Req::PeerLease(node, inc) => {
                let holder = match &frame {
                    Frame::Null => None,
                    Frame::BulkString(b) => Some(&b[..]),
                    _ => return, // an error (e.g. LOADING) says nothing about the lease
                };
                if self.peers.lease_seen(&node, &inc, holder) {
                    let reap = Proposal::Reap {
                        node,
                        incarnation: inc,
                    };
                    self.enqueue(reap, true, now);
                }
            }
            Req::Ping => {
                let theirs = as_bytes(&frame);
                if theirs != self.epoch.as_deref().map(str::as_bytes) {
                    self.drop_link(link, now, "the cluster's epoch changed");
                }
            }
            Req::Propose(msg_id) => self.on_propose_reply(msg_id, frame, &code, now),
            Req::Resolve(msg_id) => self.on_resolve_reply(msg_id, &frame, now),
            Req::Xread => self.on_xread(frame, now),
        }
    }

    fn on_register(&mut self, frame: Frame, code: &str, now: u64) {
        match (&frame, code) {
            (Frame::Array(_), _) => {
                self.registered = true;
                self.registered_once = true;
                self.cmd.state = State::Ready;
                self.cmd.backoff_ms = self.cfg.backoff_min_ms;
                self.next_refresh = now + self.cfg.lease_ms / 3;
                self.flush_pending(now);
                self.maybe_start_tail(now);
                self.set_up(now, "");
            }
            (_, "NOSCRIPT") => {
                self.drop_link(Link::Cmd, now, "the scripts vanished during the handshake")
            }
            (_, "REAPED") | (_, "FENCED") => {
                self.cmd.state = State::Ready;
                self.lose_lease(now);
            }
            // NODEBUSY: the previous process's lease has not expired yet; EPOCH: it changed
            // under the handshake. Either way: reconnect after the backoff.
            _ => {
                let why = match &frame {
                    Frame::Error(e) => format!("Redis refused to register this node: {e}"),
                    _ => "Redis refused to register this node".to_string(),
                };
                self.drop_link(Link::Cmd, now, &why);
            }
        }
    }

    fn lose_lease(&mut self, now: u64) {
        if self.lease_lost {
            return;
        }
        self.lease_lost = true;
        self.registered = false;
        for p in std::mem::take(&mut self.pending) {
            if let (true, Proposal::Reap { node, incarnation }) = (p.internal, &p.proposal) {
                self.peers.reap_failed(node, incarnation);
                continue;
            }
            if p.tried {
                // Redis may have run it without its answer reaching this node: its de-dup
                // key says (the lost incarnation's scripts are refused from now on, so the
                // answer cannot change afterwards).
                self.fenced.push_back(Fenced {
                    msg_id: p.msg_id,
                    asked: false,
                });
                continue;
            }
            self.events.push_back(fenced_refusal(p.msg_id));
        }
        self.ask_fenced(now);
        self.events.push_back(Event::LeaseLost);
        self.set_up(now, "this node lost its cluster lease");
    }

    fn start_reload(&mut self, now: u64) {
        self.reloading = true;
        self.maybe_reload(now);
    }

    /// Reloads once no script call is in flight (each one still in flight will also answer
    /// NOSCRIPT and be marked for re-sending, so the original order is kept).
    fn maybe_reload(&mut self, now: u64) {
        let in_flight = self
            .cmd
            .fifo
            .iter()
            .any(|(r, _)| matches!(r, Req::Propose(_) | Req::Refresh(_) | Req::Register));
        if self.reloading
            && !in_flight
            && !self.cmd.fifo.iter().any(|(r, _)| matches!(r, Req::Load(_)))
        {
            for (i, s) in scripts::ALL.iter().enumerate() {
                self.send(Link::Cmd, Req::Load(i), &["SCRIPT", "LOAD", s.source], now);
            }
        }
    }

    fn on_resolve_reply(&mut self, msg_id: Box<str>, frame: &Frame, now: u64) {
        let Some(pos) = self.fenced.iter().position(|f| f.msg_id == msg_id) else {
            return; // read back from the stream meanwhile
        };
        let seq = match frame {
            Frame::Null => None,
            Frame::BulkString(_) => Some(as_int(frame).map_or(0, |s| s.max(0) as u64)),
            _ => {
                // Asked again on the next connection.
                return self.drop_link(Link::Cmd, now, "unexpected reply to a de-dup read");
            }
        };
        self.fenced.remove(pos);
        self.events.push_back(match seq {
            Some(seq) => Event::Accepted { msg_id, seq },
            None => fenced_refusal(msg_id),
        });
        if self.fenced.is_empty() {
            self.set_up(now, "");
        }
    }

    fn on_propose_reply(&mut self, msg_id: Box<str>, frame: Frame, code: &str, now: u64) {
        let Some(pos) = self.pending.iter().position(|p| p.msg_id == msg_id) else {
            return;
        };
        if self.pending[pos].internal && !matches!(code, "NOSCRIPT" | "FENCED" | "EPOCH") {
            // A reap: its node_down arrives through the tail; a refusal (ALIVE) means the
            // lease is back, so the peer is checked again later.
            if let Some(Pending {
                proposal: Proposal::Reap { node, incarnation },
                ..
            }) = self.pending.remove(pos)
            {
                if !matches!(frame, Frame::Array(_)) {
                    self.peers.reap_failed(&node, &incarnation);
                }
            }
            return;
        }
        match (&frame, code) {
            (Frame::Array(v), _) => {
                let seq = v.get(2).and_then(as_int).map_or(0, |s| s.max(0) as u64);
                self.pending.remove(pos);
                self.events.push_back(Event::Accepted { msg_id, seq });
            }
            (_, "NOSCRIPT") => {
                self.pending[pos].sent = false;
                self.start_reload(now);
            }
            (_, "FENCED") => self.lose_lease(now),
            (_, "EPOCH") => {
                self.pending[pos].sent = false;
                self.drop_link(Link::Cmd, now, "the cluster's epoch changed");
            }
            (Frame::Error(e), _) => {
                self.pending.remove(pos);
                let detail = e.split_once(' ').map_or("", |(_, d)| d);
                self.events.push_back(Event::Refused {
                    msg_id,
                    code: code.into(),
                    detail: detail.into(),
                });
            }
            _ => self.drop_link(Link::Cmd, now, "unexpected reply to a script"),
        }
        if self.reloading {
            self.maybe_reload(now);
        }
    }

    fn on_xread(&mut self, frame: Frame, now: u64) {
        match frame {
            Frame::Null => {}
            Frame::Array(streams) => {
                for stream in streams {
                    let Frame::Array(mut kv) = stream else {
                        return self.drop_link(Link::Tail, now, "unexpected XREAD reply");
                    };
                    let Some(Frame::Array(entries)) = kv.pop() else {
                        return self.drop_link(Link::Tail, now, "unexpected XREAD reply");
                    };
                    for item in entries {
                        self.on_stream_item(&item);
                    }
                }
            }
            Frame::Error(e) => {
                return self.drop_link(Link::Tail, now, &format!("XREAD failed: {e}"));
            }
            _ => return self.drop_link(Link::Tail, now, "unexpected XREAD reply"),
        }
        if self.hs.done {
            self.xread(now);
        }
        // The stream may have settled the last fenced proposal.
        self.set_up(now, "");
    }

    /// One of this node's proposals read back from the stream is sequenced, whether or not
    /// its script's answer arrived (Redis may stop, or the link drop, between running the
    /// script and answering it): it is no longer pending, so a lease lost afterwards does
    /// not refuse a line its users already saw.
    fn sequenced(&mut self, e: &Entry) {
        if *e.node != *self.cfg.node_id {
            return;
        }
        if let Some(pos) = self.fenced.iter().position(|f| f.msg_id == e.msg_id) {
            self.fenced.remove(pos);
            self.events.push_back(Event::Accepted {
                msg_id: e.msg_id.clone(),
                seq: e.seq,
            });
            return;
        }
        let Some(pos) = self.pending.iter().position(|p| p.msg_id == e.msg_id) else {
            return;
        };
        if let Some(p) = self.pending.remove(pos) {
            if !p.internal {
                self.events.push_back(Event::Accepted {
                    msg_id: p.msg_id,
                    seq: e.seq,
                });
            }
        }
    }

    fn on_stream_item(&mut self, item: &Frame) {
        let seq = match item {
            Frame::Array(parts) => parts
                .first()
                .and_then(as_bytes)
                .and_then(|id| parse_stream_id(id).ok()),
            _ => None,
        };
        let Some(seq) = seq else {
            return; // not `[0-<seq>, fields]`: nothing can be applied or skipped in order
        };
        if seq <= self.last_applied {
            return;
        }
        if seq > self.last_applied + 1 {
            self.events.push_back(Event::Gap {
                from: self.last_applied + 1,
                to: seq - 1,
            });
        }
        self.last_applied = seq;
        match Entry::from_frame(item) {
            Ok(e) => {
                self.last_msg_id = Some(e.msg_id.clone());
                self.peers.observe(&e);
                self.sequenced(&e);
                self.events.push_back(Event::Apply(e));
            }
            Err(error) => {
                self.last_msg_id = None;
                self.events.push_back(Event::BadEntry { seq, error });
            }
        }
    }
}

/// The refusal of a proposal that Redis never sequenced and never will: its incarnation lost
/// its lease.
fn fenced_refusal(msg_id: Box<str>) -> Event {
    Event::Refused {
        msg_id,
        code: "FENCED".into(),
        detail: "this node lost its lease before this was sequenced".into(),
    }
}

#[cfg(test)]
mod tests;
