//! The cluster link in the loop (SPEC §15): the broker's two Redis connections are entries
//! of the same slab, registered in the same poll, connected without blocking. Each pass
//! hands the core's proposals to the broker, runs the broker's deadlines, handles its
//! events (an applied entry is logged with its `cseq` and origin, then delivered by the
//! core) and writes its output, before the clients' end-of-pass flush.

use super::io::Entry;
use super::start::{token, Server};
use crate::chat::{ClientId, CloseReason, LogFailed, Now, Outbox};
use crate::cluster::broker::{Broker, BrokerConfig, Event, Link, Proposal, ProposeError};
use crate::cluster::config::ClusterConfig;
use crate::record::Record;
use crate::rest::ClusterSnapshot;
use mio::net::TcpStream;
use mio::Interest;
use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// The generation in the poll token of a Redis connection (client connections count up
/// from 1 and never reach it).
pub(super) const REDIS_GEN: u32 = u32::MAX;

/// One of the two Redis connections, in the slab.
pub struct RedisConn {
    link: Link,
    stream: TcpStream,
    /// The non-blocking connect has completed.
    connected: bool,
}

/// The broker and what the loop keeps beside it.
pub(super) struct ClusterLink {
    broker: Broker,
    addr: SocketAddr,
    node_id: Box<str>,
    keys: [Option<usize>; 2],
    /// Proposals awaiting their acknowledgement: who asked, what, when (mono ms).
    pending: HashMap<Box<str>, (Option<ClientId>, Proposal, u64)>,
    lease_held: bool,
    /// The highest seq the stream is known to hold (acknowledgements and applied entries).
    head_seq: u64,
    append_rtt_ms: f64,
    read_buf: Vec<u8>,
    /// After a restart: the epoch this node's log was in and the last `cseq` it logged.
    /// Entries up to it are applied again (to learn the cluster's state) without being
    /// logged, delivered or remembered twice; a different epoch cancels it.
    replay: Option<(Box<str>, u64)>,
    /// The epoch of the last `cluster_epoch` record this process logged.
    logged_epoch: Option<Box<str>>,
}

/// An outbox that drops everything: entries this node applied before a restart are applied
/// again through it.
struct Silent;

impl Outbox for Silent {
    fn log(&mut self, _now: Now, _record: &Record<'_>) -> Result<u64, LogFailed> {
        Ok(0)
    }
    fn send(&mut self, _to: ClientId, _text: &str) {}
    fn send_many(&mut self, _to: &[ClientId], _text: &str) {}
    fn close(&mut self, _id: ClientId, _reason: CloseReason) {}
}

fn idx(link: Link) -> usize {
    match link {
        Link::Cmd => 0,
        Link::Tail => 1,
    }
}

/// A random 128-bit id in hex, from the standard library's per-process random hash keys
/// and the clock (incarnations and epoch seeds need to be unique, not secret).
fn random_id() -> String {
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        h.write_usize(i);
        *part = h.finish();
    }
    format!("{:016x}{:016x}", parts[0], parts[1])
}

impl ClusterLink {
    pub(super) fn new(
        cfg: &ClusterConfig,
        resume: Option<(String, u64)>,
    ) -> io::Result<ClusterLink> {
        let addr = cfg
            .redis_addr()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let broker = Broker::new(
            BrokerConfig::from_cluster(cfg),
            &random_id(),
            &random_id(),
            None,
        );
        Ok(ClusterLink {
            broker,
            addr,
            node_id: cfg.node_id.as_str().into(),
            keys: [None, None],
            pending: HashMap::new(),
            lease_held: false,
            head_seq: 0,
            append_rtt_ms: 0.0,
            read_buf: vec![0; 64 * 1024],
            replay: resume
                .filter(|(_, upto)| *upto > 0)
                .map(|(epoch, upto)| (epoch.into(), upto)),
            logged_epoch: None,
        })
    }

    pub(super) fn status(&self) -> ClusterSnapshot {
        let applied = self.broker.last_applied();
        ClusterSnapshot {
            node_id: self.node_id.to_string(),
            link_up: self.broker.is_up(),
            applied_seq: applied,
            lag: self.head_seq.saturating_sub(applied),
            lease_held: self.lease_held,
            append_rtt_ms: self.append_rtt_ms,
        }
    }

    /// Nothing of this node's left to send: the link is down, or every proposal was
    /// acknowledged.
    pub(super) fn settled(&self) -> bool {
        !self.broker.is_up() || self.broker.pending() == 0
    }

    pub(super) fn next_deadline(&self) -> u64 {
        self.broker.next_deadline()
    }
}

impl Server {
    /// Readiness on a Redis connection: completes its connect, reads what it can, writes
    /// what is queued.
    pub(super) fn redis_ready(&mut self, key: usize) {
        let now = self.io.now.mono_ms;
        let Some(mut cl) = self.cluster.take() else {
            return;
        };
        let Some(Entry::Redis(rc)) = self.io.slab.get_mut(key) else {
            self.cluster = Some(cl);
            return;
        };
        let link = rc.link;
        let mut failed = false;
        if !rc.connected {
            match (rc.stream.take_error(), rc.stream.peer_addr()) {
                (Ok(None), Ok(_)) => {
                    rc.connected = true;
                    cl.broker.connected(link, now);
                }
                (Ok(None), Err(e)) if e.kind() == io::ErrorKind::NotConnected => {}
                _ => failed = true,
            }
        }
        if rc.connected && !failed {
            loop {
                match rc.stream.read(&mut cl.read_buf) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(n) => cl.broker.received(link, &cl.read_buf[..n], now),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
        if failed {
            self.close_redis(&mut cl, link);
            cl.broker.disconnected(link, now);
        }
        self.cluster = Some(cl);
    }

    fn close_redis(&mut self, cl: &mut ClusterLink, link: Link) {
        if let Some(key) = cl.keys[idx(link)].take() {
            if let Some(Entry::Redis(_)) = self.io.slab.get(key) {
                if let Entry::Redis(mut rc) = self.io.slab.remove(key) {
                    let _ = self.poll.registry().deregister(&mut rc.stream);
                }
            }
        }
    }

    fn open_redis(&mut self, cl: &mut ClusterLink, link: Link) -> io::Result<()> {
        self.close_redis(cl, link);
        let mut stream = TcpStream::connect(cl.addr)?;
        let _ = stream.set_nodelay(true);
        let entry = self.io.slab.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut stream,
            token(key, REDIS_GEN),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Entry::Redis(Box::new(RedisConn {
            link,
            stream,
            connected: false,
        })));
        cl.keys[idx(link)] = Some(key);
        Ok(())
    }

    /// One pass of the cluster link: proposals in, deadlines, events, output out.
    pub(super) fn cluster_pass(&mut self) {
        let Some(mut cl) = self.cluster.take() else {
            return;
        };
        let now = self.io.now;
        if now.mono_ms >= cl.broker.next_deadline() {
            cl.broker.tick(now.mono_ms);
        }
        // Events can make proposals (re-registrations, releases) and proposals events.
        for _ in 0..64 {
            let mut busy = self.hand_proposals(&mut cl, now);
            while let Some(ev) = cl.broker.poll_event() {
                busy = true;
                self.cluster_event(&mut cl, ev, now);
            }
            if !busy {
                break;
            }
        }
        self.write_redis(&mut cl, now.mono_ms);
        self.cluster = Some(cl);
    }

    fn hand_proposals(&mut self, cl: &mut ClusterLink, now: Now) -> bool {
        if !self.core.has_proposals() {
            return false;
        }
        for (id, p) in self.core.take_proposals() {
            match cl.broker.propose(p.clone(), now.mono_ms) {
                Ok(msg_id) => {
                    cl.pending.insert(msg_id, (id, p, now.mono_ms));
                }
                Err(ProposeError::Down | ProposeError::Overloaded) => {
                    self.core.cluster_refused(now, id, &p, "DOWN", &mut self.io);
                    self.core.cluster_run_held(now, &mut self.io);
                }
            }
        }
        true
    }

    fn write_redis(&mut self, cl: &mut ClusterLink, now_ms: u64) {
        for link in [Link::Cmd, Link::Tail] {
            let Some(key) = cl.keys[idx(link)] else {
                continue;
            };
            let Some(Entry::Redis(rc)) = self.io.slab.get_mut(key) else {
                continue;
            };
            if !rc.connected {
                continue;
            }
            let mut failed = false;
            while !cl.broker.output(link).is_empty() {
                match rc.stream.write(cl.broker.output(link)) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(n) => cl.broker.consume_output(link, n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                self.close_redis(cl, link);
                cl.broker.disconnected(link, now_ms);
            }
        }
    }

    fn cluster_event(&mut self, cl: &mut ClusterLink, ev: Event, now: Now) {
        match ev {
            Event::Connect(link) => {
                if let Err(e) = self.open_redis(cl, link) {
                    log::warn!("cluster: cannot connect to Redis at {}: {e}", cl.addr);
                    cl.broker.disconnected(link, now.mono_ms);
                }
            }
            Event::Close(link) => self.close_redis(cl, link),
            Event::Up { epoch } => {
                log::info!("cluster: link to Redis up (epoch {epoch})");
                if cl.replay.as_ref().is_some_and(|(e, _)| *e != epoch) {
                    cl.replay = None;
                }
                if cl.logged_epoch.as_deref() != Some(&*epoch) {
                    let record = Record::ClusterEpoch {
                        epoch: Cow::Borrowed(&epoch),
                    };
                    let _ = self.io.log(now, &record);
                    cl.logged_epoch = Some(epoch);
                }
                cl.lease_held = true;
                self.core.cluster_link(true);
            }
            Event::Down { why } => {
                log::warn!("cluster: link to Redis down: {why}");
                self.core.cluster_link(false);
            }
            Event::Apply(entry) => {
                cl.head_seq = cl.head_seq.max(entry.seq);
                if let Some((_, upto)) = cl.replay {
                    if entry.seq <= upto {
                        // Already logged and delivered before this node restarted.
                        self.core.set_replaying(true);
                        self.core.cluster_apply(now, &entry, &mut Silent);
                        self.core.set_replaying(false);
                        return;
                    }
                    cl.replay = None;
                }
                self.io.log.set_origin(Some((entry.seq, &entry.node)));
                // Redis's clock stamps the entry: every node shows and logs the same time.
                let at = Now {
                    unix_ms: i64::try_from(entry.ts_ms).unwrap_or(now.unix_ms),
                    ..now
                };
                self.core.cluster_apply(at, &entry, &mut self.io);
                self.io.log.set_origin(None);
                self.core.cluster_run_held(now, &mut self.io);
            }
            Event::BadEntry { seq, error } => {
                log::warn!("cluster: stream entry {seq} skipped: {error}");
            }
            Event::Gap { from, to } => {
                log::warn!(
                    "cluster: entries {from} to {to} were trimmed before this node read them"
                );
                self.core.cluster_gap(now, from, to, &mut self.io);
            }
            Event::EpochChanged { old, new, last_seq } => {
                cl.replay = None;
                log::warn!(
                    "cluster: Redis lost its data (epoch {old} → {new}, last applied {last_seq})"
                );
                cl.head_seq = 0;
                self.core
                    .cluster_epoch_changed(now, &old, &new, last_seq, &mut self.io);
            }
            Event::Accepted { msg_id, seq } => {
                cl.head_seq = cl.head_seq.max(seq);
                if let Some((_, _, at)) = cl.pending.remove(&msg_id) {
                    cl.append_rtt_ms = now.mono_ms.saturating_sub(at) as f64;
                }
            }
            Event::Refused {
                msg_id,
                code,
                detail,
            } => {
                if let Some((id, p, _)) = cl.pending.remove(&msg_id) {
                    log::debug!("cluster: proposal {msg_id} refused: {code} {detail}");
                    self.core.cluster_refused(now, id, &p, &code, &mut self.io);
                    self.core.cluster_run_held(now, &mut self.io);
                }
            }
            Event::LeaseLost => {
                log::warn!("cluster: this node lost its lease; registering as a new incarnation");
                cl.lease_held = false;
                self.core.cluster_lease_lost();
                cl.broker.reincarnate(&random_id(), now.mono_ms);
            }
        }
    }
}
