//! Cluster mode (SPEC §15): every state change is proposed to the shared stream and happens
//! when its entry comes back, on every node in the same order ("propose → sequencer →
//! apply"). In one process the sequencer is the process itself: the command handlers apply
//! at once. In a cluster the same handlers stop where the state would change and push a
//! proposal for the shell to hand to the broker; [`ChatCore::cluster_apply`] runs them
//! (with `applying` set) when the entry is read back from the stream. The sender sees its own
//! line only then: there is no local-first delivery.
//!
//! Users on other nodes ("remote users") stay out of the local delivery lists: a channel's
//! `members` are this node's connections, its `remote` list the other users' nicknames.
//! Every node applies every entry, so each one knows the whole cluster's membership and
//! answers `/list`, `/channels`, `/whois` and REST users locally.

use super::action::Speech;
use super::{lower, ChannelKey, ChatCore};
use crate::chat::command::is_valid_channel;
use crate::chat::event::{Event, EventKind, Presence};
use crate::chat::nick::Nick;
use crate::chat::strings as s;
use crate::chat::{ClientId, Now, Outbox, Transport};
use crate::cluster::broker::Proposal;
use crate::cluster::entry::{Body, Entry};
use crate::record::Record;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::HashMap;

/// Who holds a nickname in the cluster.
pub(super) struct Owner {
    /// As typed.
    pub(super) nick: Nick,
    pub(super) node: Box<str>,
    pub(super) inc: Box<str>,
    /// The connection id on its node (`key.gen` on this one).
    pub(super) conn: Box<str>,
    /// This node's connection, while it is open.
    pub(super) local: Option<ClientId>,
    /// The channel of a user that is not one of this node's open connections.
    pub(super) channel: Option<ChannelKey>,
    /// How the user is connected (`telnet`, `websocket`), from its connection id.
    pub(super) transport: &'static str,
    /// When its nickname was registered here, and when it last spoke (monotonic ms).
    pub(super) since_ms: u64,
    pub(super) active_ms: u64,
    /// Its away message.
    pub(super) away: Option<Box<str>>,
}

/// The core's cluster state (absent in one process).
pub(super) struct Cluster {
    /// This node's id (`cluster.node_id`).
    pub(super) node: Box<str>,
    /// Whether the broker accepts proposals.
    pub(super) link_up: bool,
    /// While an entry is applied: the handlers change the state instead of proposing.
    pub(super) applying: bool,
    /// Proposals for the shell to hand to the broker, with the connection that asked.
    pub(super) proposals: Vec<(Option<ClientId>, Proposal)>,
    /// Every nickname in the cluster, by its lower-cased form (this node's users too).
    pub(super) owners: HashMap<Nick, Owner>,
    /// Nickname releases to propose once the link is up again.
    to_release: Vec<Proposal>,
    /// Re-register every local user (nick, then channel) once the link is up again: after
    /// an epoch change or a lost lease.
    reregister: bool,
    /// Local users to put back in a channel once their nickname is registered again.
    rejoin: HashMap<ClientId, Box<str>>,
    /// The seq of the last entry applied.
    pub(super) applied_seq: u64,
    /// Lines a user sent while its nickname claim was on its way, handled once it is answered.
    held: HashMap<ClientId, Vec<Box<str>>>,
    /// Users whose held lines can be handled now.
    ready: Vec<ClientId>,
    /// Local users whose re-registration join is on its way (not greeted again).
    rejoins: Vec<ClientId>,
    /// The local user whose re-registration join is being applied.
    rejoining: Option<ClientId>,
    /// While another node's moderation act is applied here: who did it.
    mod_actor: Option<Box<str>>,
    /// `/join #c since SEQ` on its way: the seq, for the replay when it is applied.
    since: HashMap<ClientId, u64>,
    /// Entries logged before a restart are being applied again.
    replaying: bool,
    /// Joins, topic and away changes of each user on their way to the stream.
    waiting: HashMap<ClientId, u32>,
    /// The nickname each local user claimed, until the claim comes back (kept here, not in
    /// the session, so that one process's sessions do not grow for it).
    claiming: HashMap<ClientId, Nick>,
}

/// Lines held per user while its nickname claim is answered; more are refused with a notice.
const MAX_HELD: usize = 64;

/// Whether a user's next lines wait for this proposal (a join, topic or away change: the
/// answers to the lines after it depend on it).
fn awaited(p: &Proposal) -> bool {
    matches!(
        p,
        Proposal::Append(Body::Join { .. } | Body::Topic { .. } | Body::Away { .. })
    )
}

/// A moderation entry's fields.
struct ModAct<'a> {
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    until_ms: Option<u64>,
    reason: &'a str,
}

/// The connection id a node puts in its nick claims: `key.gen.t` (telnet) or `key.gen.w`
/// (WebSocket), so that every node's `/whois` can say how the user is connected.
fn conn_id(id: ClientId, transport: Transport) -> String {
    let t = match transport {
        Transport::Telnet => 't',
        Transport::WebSocket => 'w',
    };
    format!("{}.{}.{t}", id.key, id.gen)
}

fn parse_conn(conn: &str) -> Option<ClientId> {
    let mut parts = conn.split('.');
    Some(ClientId {
        key: parts.next()?.parse().ok()?,
        gen: parts.next()?.parse().ok()?,
    })
}

fn transport_of(conn: &str) -> &'static str {
    match conn.rsplit('.').next() {
        Some("w") => Transport::WebSocket.as_str(),
        _ => Transport::Telnet.as_str(),
    }
}

impl ChatCore {
    /// Cluster mode: state changes become proposals (see [`ChatCore::take_proposals`]) and
    /// happen when [`ChatCore::cluster_apply`] is called with their entries. `node` is this
    /// node's id, as the entries name their origin.
    pub fn enable_cluster(&mut self, node: &str) {
        self.cluster = Some(Box::new(Cluster {
            node: node.into(),
            link_up: false,
            applying: false,
            proposals: Vec::new(),
            owners: HashMap::new(),
            to_release: Vec::new(),
            reregister: false,
            rejoin: HashMap::new(),
            applied_seq: 0,
            held: HashMap::new(),
            ready: Vec::new(),
            rejoins: Vec::new(),
            rejoining: None,
            mod_actor: None,
            since: HashMap::new(),
            replaying: false,
            waiting: HashMap::new(),
            claiming: HashMap::new(),
        }));
    }

    /// Whether this core runs in cluster mode.
    pub fn is_clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// Whether proposals wait for [`ChatCore::take_proposals`].
    pub fn has_proposals(&self) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| !c.proposals.is_empty())
    }

    /// The proposals made since the last call, in order, with the connection that asked.
    pub fn take_proposals(&mut self) -> Vec<(Option<ClientId>, Proposal)> {
        self.cluster
            .as_mut()
            .map(|c| std::mem::take(&mut c.proposals))
            .unwrap_or_default()
    }

    /// Users with a nickname in the whole cluster (this node's alone in one process).
    pub fn cluster_users(&self) -> usize {
        match &self.cluster {
            Some(c) => c.owners.len(),
            None => self.nicks.len(),
        }
    }

    /// The seq of the last stream entry applied (0 in one process).
    pub fn applied_seq(&self) -> u64 {
        self.cluster.as_ref().map_or(0, |c| c.applied_seq)
    }

    /// Whether a command handler must propose rather than change the state.
    #[inline]
    pub(super) fn clustered(&self) -> bool {
        matches!(&self.cluster, Some(c) if !c.applying)
    }

    /// Hands a user's state change to the sequencer, or refuses it with SPEC §15's notice
    /// while the link is down.
    pub(super) fn propose(&mut self, now: Now, id: ClientId, p: Proposal, out: &mut impl Outbox) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if c.link_up {
            if awaited(&p) {
                *c.waiting.entry(id).or_default() += 1;
            }
            c.proposals.push((Some(id), p));
        } else {
            self.refuse(now, id, s::CLUSTER_DOWN, out);
        }
    }

    /// Whether a state change of `id` that its next lines wait for is on its way.
    pub(super) fn is_waiting(&self, id: ClientId) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.waiting.contains_key(&id))
    }

    /// One awaited state change of `id` came back (applied or refused): once none is left,
    /// its held lines go on.
    fn done_waiting(&mut self, id: ClientId) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Some(n) = c.waiting.get_mut(&id) else {
            return;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            c.waiting.remove(&id);
            if c.held.contains_key(&id) {
                c.ready.push(id);
            }
        }
    }

    /// A state change of the node itself (a nickname release): queued while the link is down.
    fn propose_internal(&mut self, p: Proposal) {
        if let Some(c) = self.cluster.as_mut() {
            if c.link_up {
                c.proposals.push((None, p));
            } else {
                c.to_release.push(p);
            }
        }
    }

    pub(super) fn hold_line(&mut self, id: ClientId, line: &str, out: &mut impl Outbox) {
        if let Some(c) = self.cluster.as_mut() {
            let held = c.held.entry(id).or_default();
            if held.len() < MAX_HELD {
                held.push(line.into());
            } else {
                out.send(id, s::CLUSTER_BUSY);
            }
        }
    }

    /// The claim of `id` was answered: the lines it sent meanwhile are handled by the next
    /// [`ChatCore::cluster_run_held`] (outside the entry's application, so that their own
    /// records are not taken for the entry's).
    fn release_held(&mut self, _now: Now, id: ClientId, _out: &mut impl Outbox) {
        if let Some(c) = self.cluster.as_mut() {
            if c.held.contains_key(&id) {
                c.ready.push(id);
            }
        }
    }

    /// Handles the lines held while nickname claims were answered (call after each applied
    /// entry or refusal).
    pub fn cluster_run_held(&mut self, now: Now, out: &mut impl Outbox) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if c.ready.is_empty() {
            return;
        }
        for id in std::mem::take(&mut c.ready) {
            let lines = self.cluster.as_mut().and_then(|c| c.held.remove(&id));
            for (i, line) in lines.iter().flatten().enumerate() {
                if self.claiming(id).is_some() {
                    // Claiming again (a held nickname or /nick): the rest waits once more.
                    if let (Some(c), Some(lines)) = (self.cluster.as_mut(), &lines) {
                        c.held.insert(id, lines[i..].to_vec());
                    }
                    break;
                }
                self.handle_line(now, id, line, out);
            }
        }
    }

    /// A session ended: its held lines go with it.
    pub(super) fn forget_held(&mut self, id: ClientId) {
        if let Some(c) = self.cluster.as_mut() {
            c.held.remove(&id);
            c.since.remove(&id);
            c.waiting.remove(&id);
            c.claiming.remove(&id);
            c.rejoins.retain(|r| *r != id);
        }
    }

    /// The nickname `id` claimed and is waiting for.
    pub(super) fn claiming(&self, id: ClientId) -> Option<Nick> {
        self.cluster.as_ref()?.claiming.get(&id).copied()
    }

    /// Records (`Some`) or ends (`None`) the nickname claim of `id`.
    fn set_claiming(&mut self, id: ClientId, nick: Option<Nick>) -> Option<Nick> {
        let c = self.cluster.as_mut()?;
        match nick {
            Some(n) => c.claiming.insert(id, n),
            None => c.claiming.remove(&id),
        }
    }

    /// Another node's user (or this node's departed one) called `nick`, any case.
    pub(super) fn remote_user(&self, nick: &str) -> Option<&Owner> {
        let key = Nick::new(nick)?.lower();
        self.cluster
            .as_ref()?
            .owners
            .get(&key)
            .filter(|o| o.local.is_none())
    }

    /// Whether `nick` (any case) is held anywhere in the cluster.
    pub(super) fn nick_in_cluster(&self, key: &Nick) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.owners.contains_key(key))
    }

    /// The broker's link went up or down. Up: queued releases and re-registrations go out.
    pub fn cluster_link(&mut self, up: bool) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.link_up = up;
        if !up {
            return;
        }
        let released = std::mem::take(&mut c.to_release);
        c.proposals.extend(released.into_iter().map(|p| (None, p)));
        if !std::mem::take(&mut c.reregister) {
            return;
        }
        let mut users: Vec<(ClientId, Nick, Transport)> = self
            .sessions
            .iter()
            .enumerate()
            .filter_map(|(key, sess)| {
                let sess = sess.as_ref()?;
                Some((
                    ClientId {
                        key: key as u32,
                        gen: sess.gen,
                    },
                    sess.nick?,
                    sess.transport,
                ))
            })
            .collect();
        users.sort_unstable_by_key(|(id, _, _)| *id);
        if let Some(c) = self.cluster.as_mut() {
            for (id, nick, transport) in users {
                c.proposals.push((
                    Some(id),
                    Proposal::ClaimNick {
                        folded: nick.lower().as_str().into(),
                        nick: nick.as_str().into(),
                        conn: conn_id(id, transport).into(),
                        old: None,
                    },
                ));
            }
        }
    }

    /// This node lost its lease: once it is up again with a new incarnation, its users'
    /// nicknames are claimed again (and their channels joined again).
    pub fn cluster_lease_lost(&mut self) {
        if let Some(c) = self.cluster.as_mut() {
            c.reregister = true;
        }
    }

    /// The sequencer refused a proposal (`code`: the script's, or `DOWN` when the broker
    /// could not take it).
    pub fn cluster_refused(
        &mut self,
        now: Now,
        id: Option<ClientId>,
        proposal: &Proposal,
        code: &str,
        out: &mut impl Outbox,
    ) {
        match proposal {
            Proposal::ReleaseNick { .. } => {
                if code == "DOWN" {
                    if let Some(c) = self.cluster.as_mut() {
                        c.to_release.push(proposal.clone());
                    }
                }
            }
            Proposal::ClaimNick { nick, old, .. } => {
                let Some(id) = id else { return };
                let Some(sess_nick) = self.session(id).map(|s| s.nick) else {
                    return;
                };
                let claimed = self.set_claiming(id, None);
                let reclaim = claimed.is_none() && sess_nick.is_some_and(|n| *n == **nick);
                if code != "TAKEN" {
                    if claimed.is_some() {
                        self.refuse(now, id, s::CLUSTER_DOWN, out);
                    }
                } else if reclaim {
                    self.lose_nick(now, id, out);
                } else if old.is_some() {
                    self.refuse(now, id, s::RENAME_TAKEN, out);
                } else {
                    out.send(id, s::NICK_TAKEN);
                }
                self.release_held(now, id, out);
            }
            _ => {
                if let Some(id) = id {
                    if let Some(c) = self.cluster.as_mut() {
                        c.rejoins.retain(|r| *r != id);
                    }
                    self.refuse(now, id, s::CLUSTER_DOWN, out);
                    if awaited(proposal) {
                        self.done_waiting(id);
                    }
                }
            }
        }
    }

    /// A local user whose nickname the cluster gave to someone else: out of its channel,
    /// told, and back to choosing a nickname.
    fn lose_nick(&mut self, now: Now, id: ClientId, out: &mut impl Outbox) {
        let Some(nick) = self.session(id).and_then(|s| s.nick) else {
            return;
        };
        self.leave_channel(now, id, &nick, out);
        let key = nick.lower();
        if self.nicks.get(&key) == Some(&id) {
            self.nicks.remove(&key);
        }
        if let Some(c) = self.cluster.as_mut() {
            c.rejoin.remove(&id);
            if c.owners.get(&key).is_some_and(|o| o.local == Some(id)) {
                c.owners.remove(&key);
            }
        }
        if let Some(sess) = self.session_mut(id) {
            sess.nick = None;
        }
        out.send(id, &s::cluster_nick_lost(&nick));
        let deadline = now.mono_ms.saturating_add(self.config.nick_timeout_ms);
        self.nick_deadlines.push(Reverse((deadline, id)));
    }

    /// Entries `from..=to` were trimmed before this node read them: logged, every local
    /// user told.
    pub fn cluster_gap(&mut self, now: Now, from: u64, to: u64, out: &mut impl Outbox) {
        let _ = out.log(now, &Record::Gap { from, to });
        let ids = self.local_users();
        out.send_many(&ids, &s::cluster_gap(from, to));
    }

    /// Redis lost its data: logged, every local user told; the other nodes' users are
    /// forgotten and every node registers its live users again in the new history.
    pub fn cluster_epoch_changed(
        &mut self,
        now: Now,
        old: &str,
        new: &str,
        last_seq: u64,
        out: &mut impl Outbox,
    ) {
        let _ = out.log(
            now,
            &Record::EpochChange {
                old: Cow::Borrowed(old),
                new: Cow::Borrowed(new),
                last_seq,
            },
        );
        let ids = self.local_users();
        out.send_many(&ids, s::CLUSTER_EPOCH_CHANGE);
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.applied_seq = 0;
        c.reregister = true;
        c.to_release.clear();
        c.owners.retain(|_, o| o.local.is_some());
        let mut emptied = Vec::new();
        for (key, channel) in self.channels.iter_mut() {
            channel.remote.clear();
            if channel.members.is_empty() {
                emptied.push(key as ChannelKey);
            }
        }
        for ch in emptied {
            self.drop_channel(ch);
        }
    }

    /// Every local connection with a nickname, in id order.
    fn local_users(&self) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = self.nicks.values().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// A channel nobody is in any more: gone (its topic is kept dormant).
    pub(super) fn drop_channel(&mut self, ch: ChannelKey) {
        if !self.channels.contains(ch as usize) {
            return;
        }
        let channel = self.channels.remove(ch as usize);
        let key = lower(&channel.name);
        self.channel_index.remove(&key);
        self.presence.forget(ch);
        if let Some(topic) = channel.topic {
            self.topics.keep(key, topic);
        }
    }

    /// The next entry of the shared stream: logged (the shell marks the records with its
    /// `cseq` and origin), then delivered to this node's users.
    pub fn cluster_apply(&mut self, now: Now, entry: &Entry, out: &mut impl Outbox) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.applied_seq = entry.seq;
        c.applying = true;
        match &entry.body {
            Body::Line {
                channel,
                nick,
                text,
            } => self.apply_say(now, channel, nick, text, Speech::Chat, out),
            Body::Action {
                channel,
                nick,
                text,
            } => self.apply_say(now, channel, nick, text, Speech::Action, out),
            Body::Private { from, to, text } => self.apply_private(now, from, to, text, out),
            Body::Announcement { text } => self.apply_announcement(now, None, text, out),
            Body::ChannelAnnouncement { channel, text } => {
                self.apply_announcement(now, Some(channel), text, out)
            }
            Body::Join { channel, nick } => self.apply_join(now, channel, nick, out),
            Body::Away { nick, message } => self.apply_away(now, nick, message.as_deref(), out),
            Body::Topic {
                channel,
                nick,
                topic,
            } => {
                if let Some(ch) = self.channel_index.get(&lower(channel)).copied() {
                    self.topic_apply(now, None, ch, nick, topic, out);
                }
                if let Some(id) = self.local_of(nick) {
                    self.done_waiting(id);
                }
            }
            Body::Nick { nick, conn, old } => {
                self.apply_nick(now, entry, nick, conn, old.as_deref(), out)
            }
            Body::Unnick { nick, conn, .. } => {
                let key = Nick::new(nick).map(|n| n.lower());
                let owned = key.filter(|k| {
                    self.cluster.as_ref().is_some_and(|c| {
                        c.owners.get(k).is_some_and(|o| {
                            o.local.is_none() && o.node == entry.node && *o.conn == **conn
                        })
                    })
                });
                if let Some(key) = owned {
                    self.leave_remote(now, key, out);
                    if let Some(c) = self.cluster.as_mut() {
                        c.owners.remove(&key);
                    }
                }
            }
            Body::NodeDown { node, incarnation } => {
                self.apply_node_down(now, node, incarnation, out)
            }
            Body::Moderation {
                actor,
                action,
                target,
                until_ms,
                reason,
            } => {
                let act = ModAct {
                    actor,
                    action,
                    target,
                    until_ms: *until_ms,
                    reason,
                };
                self.apply_moderation(now, entry, act, out)
            }
            // Not proposed by this version (a leave is a join elsewhere or a nickname
            // release).
            Body::Part { .. } | Body::Quit { .. } | Body::NodeUp => {}
        }
        if let Some(c) = self.cluster.as_mut() {
            c.applying = false;
        }
    }

    fn apply_away(&mut self, now: Now, nick: &str, message: Option<&str>, out: &mut impl Outbox) {
        let Some(key) = Nick::new(nick).map(|n| n.lower()) else {
            return;
        };
        let Some(o) = self.cluster.as_mut().and_then(|c| c.owners.get_mut(&key)) else {
            return;
        };
        match o.local {
            Some(id) => {
                match message {
                    Some(m) => self.set_away(now, id, nick, Some(m), out),
                    None => self.back(now, id, nick, out),
                }
                self.done_waiting(id);
            }
            None => {
                o.away = message.map(Into::into);
                let _ = out.log(
                    now,
                    &Record::Away {
                        nick: Cow::Borrowed(nick),
                        message: message.map(Cow::Borrowed),
                    },
                );
            }
        }
    }

    /// A remote user spoke: no longer idle.
    fn touch(&mut self, now: Now, nick: &str) {
        let Some(key) = Nick::new(nick).map(|n| n.lower()) else {
            return;
        };
        if let Some(o) = self.cluster.as_mut().and_then(|c| c.owners.get_mut(&key)) {
            o.active_ms = now.mono_ms;
        }
    }

    /// `/join #c since SEQ` proposed: the seq waits for the join's entry.
    pub(super) fn remember_since(&mut self, id: ClientId, since: Option<u64>) {
        if let (Some(c), Some(seq)) = (self.cluster.as_mut(), since) {
            c.since.insert(id, seq);
        }
    }

    /// The server is stopping: every local user's nickname is released, so that the other
    /// nodes see them leave at once rather than when this node's lease runs out.
    pub(super) fn release_all_for_shutdown(&mut self) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if !c.link_up {
            return;
        }
        let mut mine: Vec<(Nick, Box<str>)> = c
            .owners
            .iter()
            .filter(|(_, o)| *o.node == *c.node)
            .map(|(k, o)| (*k, o.conn.clone()))
            .collect();
        mine.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (key, conn) in mine {
            c.proposals.push((
                None,
                Proposal::ReleaseNick {
                    folded: key.as_str().into(),
                    conn,
                    reason: "shutdown".into(),
                },
            ));
        }
    }

    /// While another node's moderation act is applied: its actor's name.
    pub(super) fn replicated_actor(&self) -> Option<&str> {
        self.cluster.as_ref()?.mod_actor.as_deref()
    }

    /// Cluster mode: a moderation act needs the link, to reach every node.
    pub(super) fn mod_link_check(&self) -> Result<(), crate::chat::ModError> {
        match &self.cluster {
            Some(c) if !c.applying && !c.link_up => Err(crate::chat::ModError::ClusterDown),
            _ => Ok(()),
        }
    }

    /// Cluster mode: a moderation act done here is proposed, so that every node does it too.
    pub(super) fn replicate_mod(
        &mut self,
        actor: &str,
        action: &str,
        target: &str,
        until_ms: Option<i64>,
        reason: Option<&str>,
    ) {
        if !self.clustered() {
            return;
        }
        if let Some(c) = self.cluster.as_mut() {
            let body = Body::Moderation {
                actor: actor.into(),
                action: action.into(),
                target: target.into(),
                until_ms: until_ms.and_then(|u| u64::try_from(u).ok()),
                reason: reason.unwrap_or("").into(),
            };
            c.proposals.push((None, Proposal::Append(body)));
        }
    }

    /// Another node's moderation act, done here too (its origin did it when it was typed, and
    /// logs it again here with its place in the stream).
    fn apply_moderation(
        &mut self,
        now: Now,
        entry: &Entry,
        act: ModAct<'_>,
        out: &mut impl Outbox,
    ) {
        use crate::chat::Actor;
        let mine = self
            .cluster
            .as_ref()
            .is_some_and(|c| *c.node == *entry.node);
        let reason = Some(act.reason).filter(|r| !r.is_empty());
        let until = act.until_ms.and_then(|u| i64::try_from(u).ok());
        if mine {
            let _ = out.log(
                now,
                &Record::Moderation {
                    actor: Cow::Borrowed(act.actor),
                    action: Cow::Borrowed(act.action),
                    target: Cow::Borrowed(act.target),
                    until: until.map(|u| Cow::Owned(crate::chat::duration::format_until(u))),
                    reason: reason.map(Cow::Borrowed),
                },
            );
            return;
        }
        if let Some(c) = self.cluster.as_mut() {
            c.mod_actor = Some(act.actor.into());
        }
        let nick = act.target.strip_prefix('@').unwrap_or(act.target);
        let duration = until.map(|u| u64::try_from(u - now.unix_ms).unwrap_or(1).max(1));
        let logged = match act.action {
            "kick" => self.kick(now, Actor::Api, nick, reason, out).is_ok(),
            "ban" => self
                .ban(now, Actor::Api, act.target, duration, reason, out)
                .is_ok(),
            "unban" => self.unban(now, Actor::Api, act.target, out).is_ok(),
            "mute" => self.mute(now, Actor::Api, nick, duration, out).is_ok(),
            "unmute" => self.unmute(now, Actor::Api, nick, out).is_ok(),
            _ => false,
        };
        if !logged {
            // Nothing to do here (the user is elsewhere, already unbanned, ...): the record
            // alone, as on every node.
            let _ = out.log(
                now,
                &Record::Moderation {
                    actor: Cow::Borrowed(act.actor),
                    action: Cow::Borrowed(act.action),
                    target: Cow::Borrowed(act.target),
                    until: until.map(|u| Cow::Owned(crate::chat::duration::format_until(u))),
                    reason: reason.map(Cow::Borrowed),
                },
            );
        }
        if let Some(c) = self.cluster.as_mut() {
            c.mod_actor = None;
        }
    }

    /// While entries this node logged before a restart are applied again: nothing is
    /// remembered in the history rings (they were rebuilt from the log).
    pub fn set_replaying(&mut self, on: bool) {
        if let Some(c) = self.cluster.as_mut() {
            c.replaying = on;
        }
    }

    /// Whether history rings take what is applied now.
    pub(super) fn keeps_history(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| !c.replaying)
    }

    /// Whether `id` is being put back in its channel after its node registered again.
    pub(super) fn is_rejoining(&self, id: ClientId) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.rejoining == Some(id))
    }

    /// Whether the user `nick` on another node is away (for `/list`).
    pub(super) fn remote_away(&self, nick: &Nick) -> bool {
        self.cluster
            .as_ref()
            .and_then(|c| c.owners.get(&nick.lower()))
            .is_some_and(|o| o.away.is_some())
    }

    fn apply_say(
        &mut self,
        now: Now,
        channel: &str,
        nick: &str,
        text: &str,
        speech: Speech,
        out: &mut impl Outbox,
    ) {
        self.touch(now, nick);
        if let Some(ch) = self.channel_index.get(&lower(channel)).copied() {
            self.say(now, None, ch, nick, text, speech, out);
        }
    }

    fn local_of(&self, nick: &str) -> Option<ClientId> {
        let key = Nick::new(nick)?.lower();
        self.cluster.as_ref()?.owners.get(&key)?.local
    }

    fn apply_private(&mut self, now: Now, from: &str, to: &str, text: &str, out: &mut impl Outbox) {
        self.touch(now, from);
        let record = Record::Private {
            from: Cow::Borrowed(from),
            to: Cow::Borrowed(to),
            text: Cow::Borrowed(text),
        };
        let Ok(seq) = out.log(now, &record) else {
            return;
        };
        let kitchen = self.kitchen(now).to_owned();
        let kind = EventKind::Private {
            seq,
            ts_ms: now.unix_ms,
            from,
            to,
            text,
        };
        let (target, sender) = (self.local_of(to), self.local_of(from));
        let from_line = s::private_from(&kitchen, from, text);
        let to_line = s::private_to(&kitchen, to, text);
        if let Some(target) = target {
            let line = &from_line;
            out.publish(&[target], &Event { line, kind });
        }
        if let Some(sender) = sender {
            let line = &to_line;
            out.publish(&[sender], &Event { line, kind });
            let away = match target {
                Some(t) => self.session(t).and_then(|t| t.away.clone()),
                None => Nick::new(to)
                    .and_then(|n| self.cluster.as_ref()?.owners.get(&n.lower()))
                    .and_then(|o| o.away.clone()),
            };
            if let Some(away) = away {
                out.send(sender, &s::is_away(to, &away));
            }
        }
    }

    fn apply_announcement(
        &mut self,
        now: Now,
        channel: Option<&str>,
        text: &str,
        out: &mut impl Outbox,
    ) {
        let (recipients, count, shown) = match channel {
            Some(name) => {
                let Some(ch) = self
                    .channel_index
                    .get(&lower(name))
                    .and_then(|c| self.channels.get(*c as usize))
                else {
                    return;
                };
                let count = ch.members.len() + ch.remote.len();
                (ch.members.clone(), count, Some(ch.name.clone()))
            }
            None => (self.local_users(), self.cluster_users(), None),
        };
        let _ =
            self.log_and_publish_announcement(now, text, shown.as_deref(), &recipients, count, out);
    }

    fn apply_join(&mut self, now: Now, channel: &str, nick: &str, out: &mut impl Outbox) {
        let Some(n) = Nick::new(nick) else { return };
        let key = n.lower();
        if !is_valid_channel(channel) {
            return;
        }
        let Some(owner) = self.cluster.as_ref().and_then(|c| c.owners.get(&key)) else {
            return;
        };
        let (local, remote_ch) = (owner.local, owner.channel);
        let target = self.channel_index.get(&lower(channel)).copied();
        let current = match local {
            Some(id) => self.channel_of(id),
            None => remote_ch,
        };
        // A re-registration's join (after a re-claim) is not awaited by the user's lines; the
        // user's own `/join` is.
        let rejoin = local.is_some_and(|id| {
            self.cluster.as_mut().is_some_and(|c| {
                let found = c.rejoins.iter().position(|r| *r == id);
                found.map(|i| c.rejoins.swap_remove(i)).is_some()
            })
        });
        if current.is_some() && current == target {
            // Already there (a re-registration): the record alone, as on every node.
            if let (Some(id), false) = (local, rejoin) {
                self.done_waiting(id);
            }
            if let Some(c) = target.and_then(|t| self.channels.get(t as usize)) {
                let record = Record::Join {
                    nick: Cow::Borrowed(&n),
                    channel: Cow::Borrowed(&c.name),
                };
                let _ = out.log(now, &record);
            }
            return;
        }
        if let Some(id) = local {
            if let (Some(c), true) = (self.cluster.as_mut(), rejoin) {
                c.rejoining = Some(id);
            }
            let since = self.cluster.as_mut().and_then(|c| c.since.remove(&id));
            self.join(now, id, &n, channel, since, out);
            if let Some(c) = self.cluster.as_mut() {
                c.rejoining = None;
            }
            if !rejoin {
                self.done_waiting(id);
            }
            return;
        }
        self.leave_remote(now, key, out);
        let ch = self.open_channel(channel);
        let Some(chan) = self.channels.get_mut(ch as usize) else {
            return;
        };
        chan.remote.push(n);
        let shown = chan.name.clone();
        let members = chan.members.len() + chan.remote.len();
        if let Some(o) = self.cluster.as_mut().and_then(|c| c.owners.get_mut(&key)) {
            o.channel = Some(ch);
        }
        let seq = out
            .log(
                now,
                &Record::Join {
                    nick: Cow::Borrowed(&n),
                    channel: Cow::Borrowed(&shown),
                },
            )
            .unwrap_or(0);
        if self.presence.note(ch, members, true, now.mono_ms) {
            return;
        }
        let kitchen = self.kitchen(now).to_owned();
        let msg = s::joined(&kitchen, &n, &shown);
        if let Some(chan) = self.channels.get(ch as usize) {
            let event = Event {
                line: &msg,
                kind: EventKind::Join(Presence {
                    seq,
                    ts_ms: now.unix_ms,
                    channel: &shown,
                    nick: &n,
                }),
            };
            out.publish(&chan.members, &event);
        }
    }

    /// A user that is not one of this node's open connections leaves its channel: logged,
    /// and its local members see the usual leave notice.
    pub(super) fn leave_remote(&mut self, now: Now, key: Nick, out: &mut impl Outbox) {
        let Some(o) = self.cluster.as_mut().and_then(|c| c.owners.get_mut(&key)) else {
            return;
        };
        let Some(ch) = o.channel.take() else { return };
        let nick = o.nick;
        let Some(chan) = self.channels.get_mut(ch as usize) else {
            return;
        };
        chan.remote.retain(|r| r.lower() != key);
        self.log_and_tell_leave(now, ch, &nick, None, out);
    }

    /// A `nick` entry: a nickname claimed (`old` None) or a rename (`old` the released one,
    /// lower-cased).
    fn apply_nick(
        &mut self,
        now: Now,
        entry: &Entry,
        nick: &str,
        conn: &str,
        old: Option<&str>,
        out: &mut impl Outbox,
    ) {
        let Some(new) = Nick::new(nick) else { return };
        let key = new.lower();
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        let me = *entry.node == *c.node;
        let same_owner = |o: &Owner| o.node == entry.node && *o.conn == *conn;
        if let Some(old_key) = old.and_then(Nick::new).map(|n| n.lower()) {
            if !c.owners.get(&old_key).is_some_and(same_owner) {
                return;
            }
            if c.owners.get(&key).is_some_and(|o| !same_owner(o)) {
                self.displace(now, key, out);
            }
            let Some(mut owner) = self
                .cluster
                .as_mut()
                .and_then(|c| c.owners.remove(&old_key))
            else {
                return;
            };
            let was = owner.nick;
            owner.nick = new;
            owner.inc = entry.incarnation.clone();
            let (local, ch) = (owner.local, owner.channel);
            if let Some(c) = self.cluster.as_mut() {
                c.owners.insert(key, owner);
            }
            match local {
                Some(id) => {
                    self.set_claiming(id, None);
                    self.do_rename(now, id, was, new, out);
                    self.release_held(now, id, out);
                }
                None => self.rename_remote(now, ch, was, new, out),
            }
            return;
        }
        if let Some(prev) = c.owners.get(&key) {
            if same_owner(prev) {
                // Registered again (new incarnation, or a new history).
                let local = prev.local;
                if let Some(o) = self.cluster.as_mut().and_then(|c| c.owners.get_mut(&key)) {
                    o.inc = entry.incarnation.clone();
                }
                let gen = local.map_or(0, |id| id.gen);
                self.log_nick(now, gen, &new, out);
                if let Some(id) = local {
                    self.rejoin_after_claim(id);
                }
                return;
            }
            self.displace(now, key, out);
        }
        let local = me.then(|| parse_conn(conn)).flatten().filter(|id| {
            self.claiming(*id) == Some(new)
                || self.session(*id).is_some_and(|s| s.nick == Some(new))
        });
        if let Some(c) = self.cluster.as_mut() {
            c.owners.insert(
                key,
                Owner {
                    nick: new,
                    node: entry.node.clone(),
                    inc: entry.incarnation.clone(),
                    conn: conn.into(),
                    local,
                    channel: None,
                    transport: transport_of(conn),
                    since_ms: now.mono_ms,
                    active_ms: now.mono_ms,
                    away: None,
                },
            );
        }
        let Some(id) = local else {
            self.log_nick(now, 0, &new, out);
            if me {
                // Its connection closed before the claim came back: let the name go.
                self.propose_internal(Proposal::ReleaseNick {
                    folded: key.as_str().into(),
                    conn: conn.into(),
                    reason: "gone".into(),
                });
            }
            return;
        };
        self.set_claiming(id, None);
        let Some(sess) = self.session_mut(id) else {
            return;
        };
        let returning = sess.nick.is_some();
        sess.nick = Some(new);
        self.nicks.insert(key, id);
        self.log_nick(now, id.gen, &new, out);
        if returning {
            self.rejoin_after_claim(id);
        } else {
            out.send(id, &s::thanks(&new));
            if let Some(motd) = &self.motd {
                out.send(id, motd);
            }
        }
        self.release_held(now, id, out);
    }

    fn log_nick(&self, now: Now, gen: u32, nick: &str, out: &mut impl Outbox) {
        let _ = out.log(
            now,
            &Record::Nick {
                conn: u64::from(gen),
                nick: Cow::Borrowed(nick),
            },
        );
    }

    /// After a local user's nickname was registered again: its channel too.
    fn rejoin_after_claim(&mut self, id: ClientId) {
        let current = self
            .channel_of(id)
            .and_then(|c| self.channels.get(c as usize))
            .map(|c| c.name.clone());
        let Some(nick) = self.session(id).and_then(|s| s.nick) else {
            return;
        };
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Some(channel) = current.or_else(|| c.rejoin.remove(&id)) else {
            return;
        };
        let p = Proposal::Append(Body::Join {
            channel,
            nick: nick.as_str().into(),
        });
        if c.link_up {
            c.proposals.push((Some(id), p));
            c.rejoins.push(id);
        }
    }

    /// The holder of `key` loses it to a newer claim (its node's lease had expired).
    fn displace(&mut self, now: Now, key: Nick, out: &mut impl Outbox) {
        let local = match self.cluster.as_ref().and_then(|c| c.owners.get(&key)) {
            Some(o) => o.local,
            None => return,
        };
        match local {
            Some(id) => self.lose_nick(now, id, out),
            None => {
                self.leave_remote(now, key, out);
                if let Some(c) = self.cluster.as_mut() {
                    c.owners.remove(&key);
                }
            }
        }
    }

    fn rename_remote(
        &mut self,
        now: Now,
        ch: Option<ChannelKey>,
        old: Nick,
        new: Nick,
        out: &mut impl Outbox,
    ) {
        let seq = out
            .log(
                now,
                &Record::NickChange {
                    conn: 0,
                    old: Cow::Borrowed(&old),
                    new: Cow::Borrowed(&new),
                },
            )
            .unwrap_or(0);
        self.moderation.renamed(&old, new);
        let Some(chan) = ch.and_then(|c| self.channels.get_mut(c as usize)) else {
            return;
        };
        for r in chan.remote.iter_mut() {
            if r.lower() == old.lower() {
                *r = new;
            }
        }
        let kitchen = self.kitchen(now).to_owned();
        let line = s::renamed(&kitchen, &old, &new);
        if let Some(chan) = ch.and_then(|c| self.channels.get(c as usize)) {
            let kind = EventKind::Nick {
                seq,
                ts_ms: now.unix_ms,
                old: &old,
                new: &new,
            };
            out.publish(&chan.members, &Event { line: &line, kind });
        }
    }

    fn apply_node_down(&mut self, now: Now, node: &str, inc: &str, out: &mut impl Outbox) {
        let _ = out.log(
            now,
            &Record::NodeDown {
                failed_node: Cow::Borrowed(node),
                incarnation: Cow::Borrowed(inc),
            },
        );
        let Some(c) = self.cluster.as_ref() else {
            return;
        };
        let mut gone: Vec<(Nick, Option<ClientId>)> = c
            .owners
            .iter()
            .filter(|(_, o)| &*o.node == node && &*o.inc == inc)
            .map(|(k, o)| (*k, o.local))
            .collect();
        gone.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (key, local) in gone {
            match local {
                None => self.leave_remote(now, key, out),
                Some(id) => {
                    // This node was declared dead while it was cut off: its users are
                    // out everywhere; they come back when it registers again.
                    let channel = self
                        .channel_of(id)
                        .and_then(|c| self.channels.get(c as usize))
                        .map(|c| c.name.clone());
                    if let Some(nick) = self.session(id).and_then(|s| s.nick) {
                        self.leave_channel(now, id, &nick, out);
                    }
                    self.nicks.remove(&key);
                    if let (Some(c), Some(channel)) = (self.cluster.as_mut(), channel) {
                        c.rejoin.insert(id, channel);
                    }
                }
            }
            if let Some(c) = self.cluster.as_mut() {
                c.owners.remove(&key);
            }
        }
    }

    /// A local user's session ends in cluster mode: it stays in its channel, as a user of
    /// no open connection, until its nickname release comes back from the stream.
    pub(super) fn depart(&mut self, id: ClientId, nick: Nick, reason: &str) {
        let key = nick.lower();
        let ch = self.session_mut(id).and_then(|s| s.channel.take());
        if self.nicks.get(&key) == Some(&id) {
            self.nicks.remove(&key);
        }
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.rejoin.remove(&id);
        let Some(owner) = c.owners.get_mut(&key).filter(|o| o.local == Some(id)) else {
            // Not registered (its nickname was lost): it just goes.
            if let Some(ch) = ch {
                self.silent_leave(id, ch);
            }
            return;
        };
        owner.local = None;
        owner.channel = ch;
        let conn = owner.conn.clone();
        if let Some(chan) = ch.and_then(|c| self.channels.get_mut(c as usize)) {
            chan.members.retain(|m| *m != id);
            chan.remote.push(nick);
        }
        self.propose_internal(Proposal::ReleaseNick {
            folded: key.as_str().into(),
            conn,
            reason: reason.into(),
        });
    }

    fn silent_leave(&mut self, id: ClientId, ch: ChannelKey) {
        if let Some(chan) = self.channels.get_mut(ch as usize) {
            chan.members.retain(|m| *m != id);
            if chan.members.is_empty() && chan.remote.is_empty() {
                self.drop_channel(ch);
            }
        }
    }

    /// A nickname claim for connection `id` (a first nickname, or a rename from `old`).
    pub(super) fn propose_claim(
        &mut self,
        now: Now,
        id: ClientId,
        new: Nick,
        old: Option<Nick>,
        out: &mut impl Outbox,
    ) {
        if self.claiming(id).is_some() {
            return; // one claim at a time; its answer comes back soon
        }
        let up = self.cluster.as_ref().is_some_and(|c| c.link_up);
        if up && self.session(id).is_some() {
            self.set_claiming(id, Some(new));
        }
        let Some(transport) = self.session(id).map(|s| s.transport) else {
            return;
        };
        let p = Proposal::ClaimNick {
            folded: new.lower().as_str().into(),
            nick: new.as_str().into(),
            conn: conn_id(id, transport).into(),
            old: old.map(|o| o.lower().as_str().into()),
        };
        self.propose(now, id, p, out);
    }
}
