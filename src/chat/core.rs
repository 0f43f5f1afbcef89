//! [`ChatCore`]: sessions, nicknames, channels and commands.

use super::command::{is_valid_channel, parse_command, Command};
use super::event::{Event, EventKind, Member, Members, Presence};
use super::history::{Entry, EntryKind, History};
use super::nick::Nick;
use super::presence::{summary, PresenceConfig, PresenceNotices};
use super::strings as s;
use super::{BadInput, ClientId, CloseReason, Now, Outbox, Transport};
use crate::record::Record;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;

mod action;
mod away;
mod cluster;
mod ignore;
mod info;
pub(super) mod moderation;
mod rename;
mod replay;
mod topic;

use action::Speech;

/// Settings of the core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Time allowed to choose a nickname, in milliseconds.
    pub nick_timeout_ms: u64,
    /// Entries kept per channel (`history_size`).
    pub history_size: usize,
    /// Channels whose history is kept (`history_channels`).
    pub history_channels: usize,
    /// Entries replayed on `/join` (`history_on_join`; 0: none).
    pub history_on_join: usize,
}

impl Default for CoreConfig {
    /// The config file's defaults.
    fn default() -> CoreConfig {
        CoreConfig {
            nick_timeout_ms: 60_000,
            history_size: 200,
            history_channels: 1000,
            history_on_join: 20,
        }
    }
}

/// Counts for `/status` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections known to the core (with or without a nickname).
    pub sessions: usize,
    /// Users with a nickname.
    pub users: usize,
    /// Channels with at least one member.
    pub channels: usize,
}

/// Why an announcement was not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnnounceError {
    /// No identified user is online (or none in that channel).
    NoUsers,
    /// The channel does not exist.
    UnknownChannel,
    /// The channel name is not valid.
    InvalidChannel,
    /// The announcement could not be written to the log, so it was not sent.
    LogFailed,
    /// Cluster mode: the link to Redis is down, so nothing can be sent.
    ClusterDown,
}

type ChannelKey = u32;

/// Session slots added at a time when the table is full.
const GROWTH_STEP: usize = 1024;

struct Session {
    gen: u32,
    transport: Transport,
    peer: SocketAddr,
    /// When the session started, monotonic ms (for `/whois`, REST users).
    connected_ms: u64,
    /// When the user last sent a line, monotonic ms (idle time).
    active_ms: u64,
    /// The away message, when the user is marked away.
    away: Option<Box<str>>,
    /// Whether the user is a server operator (`/oper`).
    operator: bool,
    nick: Option<Nick>,
    channel: Option<ChannelKey>,
    /// The users this user ignores, by connection, so that an ignore follows the person
    /// through renames; boxed, since most users ignore nobody.
    #[allow(clippy::box_collection)]
    ignores: Option<Box<Vec<ClientId>>>,
}

struct Channel {
    name: Box<str>,
    members: Vec<ClientId>,
    /// Cluster mode: the members connected to other nodes (empty in one process).
    remote: Vec<Nick>,
    /// The channel's topic (`/topic`).
    topic: Option<Box<str>>,
}

/// The chat state machine. See the module docs of [`crate::chat`].
pub struct ChatCore {
    config: CoreConfig,
    /// Indexed by `ClientId::key`; the generation is checked on every access.
    sessions: Vec<Option<Session>>,
    session_count: usize,
    /// Lower-cased nickname → user.
    nicks: HashMap<Nick, ClientId>,
    channels: slab::Slab<Channel>,
    /// Lower-cased channel name → channel.
    channel_index: HashMap<Box<str>, ChannelKey>,
    nick_deadlines: BinaryHeap<Reverse<(u64, ClientId)>>,
    kitchen_cache: (i64, i32, String),
    /// Per-channel history rings.
    history: History,
    /// Topics of channels that have no members now (emptied, or known from the log).
    topics: topic::DormantTopics,
    /// The message of the day (`/motd`), if the config sets one.
    motd: Option<Box<str>>,
    /// Join and leave notices of big channels, counted for a summary.
    presence: PresenceNotices,
    /// Operators, bans and mutes.
    moderation: moderation::Moderation,
    /// Cluster mode's state; `None` in one process.
    cluster: Option<Box<cluster::Cluster>>,
}

fn lower(s: &str) -> Box<str> {
    s.to_ascii_lowercase().into_boxed_str()
}

impl ChatCore {
    /// A core with no users.
    pub fn new(config: CoreConfig) -> Self {
        ChatCore {
            history: History::new(config.history_size, config.history_channels),
            config,
            sessions: Vec::new(),
            session_count: 0,
            nicks: HashMap::new(),
            channels: slab::Slab::new(),
            channel_index: HashMap::new(),
            nick_deadlines: BinaryHeap::new(),
            kitchen_cache: (i64::MIN, 0, String::new()),
            topics: topic::DormantTopics::default(),
            motd: None,
            presence: PresenceNotices::new(PresenceConfig::default()),
            moderation: Default::default(),
            cluster: None,
        }
    }

    /// When join and leave notices of big channels are coalesced (default: above 500
    /// members, one summary per 10 seconds).
    pub fn set_presence(&mut self, config: PresenceConfig) {
        self.presence = PresenceNotices::new(config);
    }

    /// Counts of sessions, users and channels.
    pub fn stats(&self) -> Stats {
        Stats {
            sessions: self.session_count,
            users: self.nicks.len(),
            channels: self.channels.len(),
        }
    }

    /// The nickname of a connection, if it has chosen one and its session is open.
    pub fn nick_of(&self, id: ClientId) -> Option<&str> {
        self.session(id)
            .and_then(|s| s.nick.as_ref().map(Nick::as_str))
    }

    /// The names of all channels with members, sorted.
    pub fn channel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .channels
            .iter()
            .map(|(_, c)| c.name.to_string())
            .collect();
        names.sort();
        names
    }

    /// The earliest deadline (a nickname's, or a presence summary's; monotonic ms), for the
    /// shell's poll timeout.
    pub fn next_deadline(&self) -> Option<u64> {
        let nick = self.nick_deadlines.peek().map(|Reverse((t, _))| *t);
        nick.into_iter()
            .chain(self.presence.next_deadline())
            .chain(self.moderation.next_deadline())
            .min()
    }

    fn session(&self, id: ClientId) -> Option<&Session> {
        match self.sessions.get(id.key as usize) {
            Some(Some(s)) if s.gen == id.gen => Some(s),
            _ => None,
        }
    }

    fn session_mut(&mut self, id: ClientId) -> Option<&mut Session> {
        match self.sessions.get_mut(id.key as usize) {
            Some(Some(s)) if s.gen == id.gen => Some(s),
            _ => None,
        }
    }

    fn kitchen(&mut self, now: Now) -> &str {
        let minute = now.unix_ms.div_euclid(60_000);
        if self.kitchen_cache.0 != minute || self.kitchen_cache.1 != now.utc_offset_s {
            self.kitchen_cache = (
                minute,
                now.utc_offset_s,
                crate::timefmt::kitchen(now.unix_ms, now.utc_offset_s),
            );
        }
        &self.kitchen_cache.2
    }

    /// A new connection: log it, greet it and start its nickname deadline.
    pub fn handle_connect(
        &mut self,
        now: Now,
        id: ClientId,
        transport: Transport,
        peer: SocketAddr,
        out: &mut impl Outbox,
    ) {
        let idx = id.key as usize;
        if self.sessions.len() <= idx {
            // Grow in steps rather than doubling: with tens of thousands of users, a doubled
            // table would leave a third of it unused on average.
            let more = (idx + 1 - self.sessions.len()).max(GROWTH_STEP);
            self.sessions.reserve_exact(more);
            self.sessions.resize_with(idx + 1, || None);
        }
        if let Some(old_gen) = self.sessions[idx].as_ref().map(|s| s.gen) {
            // The shell reused a slot without reporting the old connection gone.
            let old = ClientId {
                key: id.key,
                gen: old_gen,
            };
            self.end_session(now, old, CloseReason::IoError, out);
        }
        let _ = out.log(
            now,
            &Record::Connect {
                conn: u64::from(id.gen),
                transport: Cow::Borrowed(transport.as_str()),
                peer: Cow::Owned(peer.to_string()),
            },
        );
        self.sessions[idx] = Some(Session {
            gen: id.gen,
            transport,
            peer,
            connected_ms: now.mono_ms,
            active_ms: now.mono_ms,
            away: None,
            operator: false,
            nick: None,
            channel: None,
            ignores: None,
        });
        self.session_count += 1;
        self.nick_deadlines.push(Reverse((
            now.mono_ms.saturating_add(self.config.nick_timeout_ms),
            id,
        )));
        out.send(id, &s::welcome(self.cluster_users()));
    }

    /// The connection is gone (EOF, error, timeout, close): free its nickname, leave its
    /// channel, tell the channel and log the close with `reason`. Unknown ids and sessions
    /// the core already ended (quit, nickname timeout, shutdown) are ignored.
    pub fn handle_disconnect(
        &mut self,
        now: Now,
        id: ClientId,
        reason: CloseReason,
        out: &mut impl Outbox,
    ) {
        self.end_session(now, id, reason, out);
    }

    /// Closes connections whose nickname deadline passed; sends the presence summaries due.
    pub fn handle_tick(&mut self, now: Now, out: &mut impl Outbox) {
        while let Some(due) = self.presence.take_due(now.mono_ms) {
            let kitchen = self.kitchen(now).to_owned();
            if let Some(channel) = self.channels.get(due.channel as usize) {
                let msg = summary(&kitchen, due.joined, due.left, &channel.name);
                out.send_many(&channel.members, &msg);
            }
        }
        while let Some(Reverse((deadline, id))) = self.nick_deadlines.peek().copied() {
            if deadline > now.mono_ms {
                break;
            }
            self.nick_deadlines.pop();
            if matches!(self.session(id), Some(sess) if sess.nick.is_none()) {
                out.send(id, s::NICK_TIMEOUT);
                out.close(id, CloseReason::NickTimeout);
                self.end_session(now, id, CloseReason::NickTimeout, out);
            }
        }
        self.expire_moderation(now, out);
    }

    /// Input the framer rejected: tell the user.
    pub fn handle_bad_input(
        &mut self,
        now: Now,
        id: ClientId,
        bad: BadInput,
        out: &mut impl Outbox,
    ) {
        let Some(sess) = self.session(id) else { return };
        let text = match bad {
            BadInput::InvalidUtf8 => Cow::Borrowed(s::INVALID_UTF8),
            BadInput::TooLong { max } => Cow::Owned(s::too_long(max)),
            BadInput::Binary => Cow::Borrowed(s::BINARY),
        };
        let nick = sess.nick.as_ref().map(|n| Cow::Borrowed(n.as_str()));
        let _ = out.log(
            now,
            &Record::Error {
                conn: Some(u64::from(id.gen)),
                nick,
                error: Cow::Borrowed(match bad {
                    BadInput::InvalidUtf8 => "input rejected: invalid UTF-8",
                    BadInput::TooLong { .. } => "input rejected: line too long",
                    BadInput::Binary => "input rejected: binary message",
                }),
            },
        );
        out.send(id, &text);
    }

    /// One line of input (already UTF-8 checked, cleaned of control characters and trimmed).
    pub fn handle_line(&mut self, now: Now, id: ClientId, line: &str, out: &mut impl Outbox) {
        let Some(sess) = self.session_mut(id) else {
            return;
        };
        if line.is_empty() {
            return;
        }
        sess.active_ms = now.mono_ms;
        let identified = sess.nick.is_some();
        let waits = self.cluster.is_some() && (self.claiming(id).is_some() || self.is_waiting(id));
        if waits && !super::command::is_quit(line) {
            // Cluster mode: its nickname claim, join, topic or away change is on its way;
            // the line waits for it, so that a user's lines are answered in order.
            self.hold_line(id, line, out);
            return;
        }
        if !identified {
            self.identify(now, id, line, out);
            return;
        }
        if self.moderation_line(now, id, line, out) {
            return;
        }
        match parse_command(line) {
            None => self.chat(now, id, line, out),
            Some(Ok(cmd)) => self.command(now, id, cmd, out),
            Some(Err(err)) => {
                let text = s::command_error(&err);
                self.log_error(now, id, &text, out);
                out.send(id, &text);
            }
        }
    }

    fn identify(&mut self, now: Now, id: ClientId, line: &str, out: &mut impl Outbox) {
        match parse_command(line) {
            Some(Ok(Command::Quit)) => {
                out.send(id, s::GOOD_BYE_ANON);
                out.close(id, CloseReason::Quit);
                self.end_session(now, id, CloseReason::Quit, out);
                return;
            }
            Some(Ok(Command::Help)) => {
                out.send(id, &s::help());
                return;
            }
            Some(_) => {
                out.send(id, s::NICK_FIRST);
                return;
            }
            None => {}
        }
        let Some(nick) = Nick::new(line.strip_prefix('@').unwrap_or(line)) else {
            out.send(id, s::NICK_INVALID);
            return;
        };
        let key = nick.lower();
        if self.nicks.contains_key(&key) || self.nick_in_cluster(&key) {
            out.send(id, s::NICK_TAKEN);
            return;
        }
        if self.is_nick_banned(now, &nick) {
            out.send(id, super::moderation_text::NICK_BANNED);
            return;
        }
        if self.clustered() {
            self.propose_claim(now, id, nick, None, out);
            return;
        }
        self.nicks.insert(key, id);
        if let Some(sess) = self.session_mut(id) {
            sess.nick = Some(nick);
        }
        let nick = nick.as_str();
        let _ = out.log(
            now,
            &Record::Nick {
                conn: u64::from(id.gen),
                nick: Cow::Borrowed(nick),
            },
        );
        out.send(id, &s::thanks(nick));
        if let Some(motd) = &self.motd {
            out.send(id, motd);
        }
    }

    fn chat(&mut self, now: Now, id: ClientId, text: &str, out: &mut impl Outbox) {
        let Some(sess) = self.session(id) else { return };
        let Some(ch) = sess.channel else {
            out.send(id, s::NOT_IN_CHANNEL);
            return;
        };
        let Some(nick) = sess.nick else {
            return;
        };
        self.say(now, Some(id), ch, &nick, text, Speech::Chat, out);
    }

    fn command(&mut self, now: Now, id: ClientId, cmd: Command<'_>, out: &mut impl Outbox) {
        let Some(nick) = self.session(id).and_then(|s| s.nick) else {
            return;
        };
        match cmd {
            Command::Help => {
                log_command(now, &nick, "/help", out);
                out.send(id, &s::help());
            }
            Command::List => {
                let ch = self.session(id).and_then(|s| s.channel);
                match ch.and_then(|c| self.channels.get(c as usize)) {
                    None => {
                        self.log_error(now, id, s::LIST_NOT_IN_CHANNEL, out);
                        out.send(id, s::LIST_NOT_IN_CHANNEL);
                    }
                    Some(channel) => {
                        let mut text = String::from(s::LIST_HEADER);
                        let mut members = self.members(&channel.members);
                        if self.cluster.is_some() {
                            // The same answer on every node: sorted, not in join order.
                            for r in &channel.remote {
                                members.push(Member {
                                    nick: r.as_str(),
                                    away: self.remote_away(r),
                                });
                            }
                            members.sort_by_key(|m| m.nick.to_ascii_lowercase());
                        }
                        for member in &members {
                            text.push('\n');
                            text.push_str(&s::list_member(member.nick, member.away));
                        }
                        log_command(now, &nick, "/list", out);
                        let event = Event {
                            line: &text,
                            kind: EventKind::Members {
                                channel: &channel.name,
                                members: Members::Listed(&members),
                            },
                        };
                        out.publish(&[id], &event);
                    }
                }
            }
            Command::Join(name) => self.join(now, id, &nick, name, None, out),
            Command::JoinSince(name, seq) => self.join(now, id, &nick, name, Some(seq), out),
            Command::History(n) => self.history_command(now, id, &nick, n, out),
            Command::Msg { to, text } => self.private(now, id, &nick, to, text, out),
            Command::Ignore(target) => self.ignore(now, id, &nick, target, out),
            Command::Quit => {
                log_command(now, &nick, "/quit", out);
                out.send(id, &s::good_bye(&nick));
                out.close(id, CloseReason::Quit);
                self.end_session(now, id, CloseReason::Quit, out);
            }
            Command::Nick(new) => self.rename(now, id, nick, new, out),
            Command::Me(action) => self.action(now, id, &nick, action, out),
            Command::Topic(None) => self.show_topic(now, id, &nick, out),
            Command::Topic(Some(text)) => self.set_topic(now, id, &nick, text, out),
            Command::Away(message) => self.set_away(now, id, &nick, message, out),
            Command::Back => self.back(now, id, &nick, out),
            Command::Whois(target) => self.whois(now, id, &nick, target, out),
            Command::Channels => self.list_channels(now, id, &nick, out),
            Command::Unignore(target) => self.unignore(now, id, &nick, target, out),
            Command::Motd => {
                log_command(now, &nick, "/motd", out);
                out.send(id, self.motd.as_deref().unwrap_or(s::NO_MOTD));
            }
        }
    }

    fn join(
        &mut self,
        now: Now,
        id: ClientId,
        nick: &str,
        name: &str,
        since: Option<u64>,
        out: &mut impl Outbox,
    ) {
        debug_assert!(is_valid_channel(name));
        let key = lower(name);
        let current = self.session(id).and_then(|s| s.channel);
        let target = self.channel_index.get(&key).copied();
        if current.is_some() && current == target {
            let shown = self
                .channels
                .get(current.unwrap_or_default() as usize)
                .map_or(name, |c| &c.name);
            let text = s::already_in(shown);
            self.log_error(now, id, &text, out);
            out.send(id, &text);
            return;
        }
        if self.clustered() {
            self.remember_since(id, since);
            let body = crate::cluster::entry::Body::Join {
                channel: name.into(),
                nick: nick.into(),
            };
            let p = crate::cluster::broker::Proposal::Append(body);
            self.propose(now, id, p, out);
            return;
        }
        self.leave_channel(now, id, nick, out);
        let ch = self.open_channel(name);
        let Some(channel) = self.channels.get_mut(ch as usize) else {
            return;
        };
        let others = channel.members.len() + channel.remote.len();
        channel.members.push(id);
        let shown: Box<str> = channel.name.clone();
        let topic = channel.topic.as_deref().map(|t| s::topic_of(&shown, t));
        if let Some(sess) = self.session_mut(id) {
            sess.channel = Some(ch);
        }
        let seq = out
            .log(
                now,
                &Record::Join {
                    nick: Cow::Borrowed(nick),
                    channel: Cow::Borrowed(&shown),
                },
            )
            .unwrap_or(0);
        // A user put back in its channel after its node re-registered is not greeted again.
        let quiet = self.is_rejoining(id);
        if let (Some(channel), false) = (self.channels.get(ch as usize), quiet) {
            // Listed only for a JSON client: a text joiner needs the count alone, and
            // building the list per join would make a join storm quadratic.
            let list = || {
                let mut all = self.members(&channel.members);
                all.extend(channel.remote.iter().map(|r| Member {
                    nick: r.as_str(),
                    away: self.remote_away(r),
                }));
                all
            };
            let event = Event {
                line: &s::others_in_channel(others),
                kind: EventKind::Members {
                    channel: &shown,
                    members: Members::Lazy(&list),
                },
            };
            out.publish(&[id], &event);
        }
        if !quiet {
            if let Some(topic) = topic {
                out.send(id, &topic);
            }
            self.replay_on_join(now, id, &shown, since, out);
        }
        let kitchen = self.kitchen(now).to_owned();
        let msg = s::joined(&kitchen, nick, &shown);
        if let Some(channel) = self.channels.get(ch as usize) {
            let event = Event {
                line: &msg,
                kind: EventKind::Join(Presence {
                    seq,
                    ts_ms: now.unix_ms,
                    channel: &shown,
                    nick,
                }),
            };
            let members = channel.members.len() + channel.remote.len();
            if self.presence.note(ch, members, true, now.mono_ms) {
                // The others get it in the next summary.
                out.publish(&[id], &event);
            } else {
                out.publish(&channel.members, &event);
            }
        }
    }

    /// The channel called `name` (any case), made if needed.
    fn open_channel(&mut self, name: &str) -> ChannelKey {
        let key = lower(name);
        if let Some(ch) = self.channel_index.get(&key) {
            return *ch;
        }
        // A channel made again keeps the spelling its history remembers.
        let shown = self.history.ring(name).map_or(name, |r| &r.name);
        let topic = self.topics.take(&key);
        let ch = self.channels.insert(Channel {
            name: shown.into(),
            members: Vec::new(),
            remote: Vec::new(),
            topic,
        }) as ChannelKey;
        self.channel_index.insert(key, ch);
        ch
    }

    /// The members of a channel as `members` events list them.
    fn members(&self, ids: &[ClientId]) -> Vec<Member<'_>> {
        ids.iter()
            .filter_map(|m| {
                let sess = self.session(*m)?;
                Some(Member {
                    nick: sess.nick.as_ref()?.as_str(),
                    away: sess.away.is_some(),
                })
            })
            .collect()
    }

    fn private(
        &mut self,
        now: Now,
        id: ClientId,
        nick: &str,
        to: &str,
        text: &str,
        out: &mut impl Outbox,
    ) {
        let target = Nick::new(to).and_then(|n| self.nicks.get(&n.lower()).copied());
        if target.is_none() && self.clustered() {
            if let Some(remote) = self.remote_user(to).map(|o| o.nick) {
                self.propose_private(now, id, nick, &remote, text, out);
                return;
            }
        }
        let Some(target) = target else {
            let error = s::not_connected(to);
            self.log_error(now, id, &error, out);
            out.send(id, &error);
            return;
        };
        let to_nick: Box<str> = self.nick_of(target).unwrap_or(to).into();
        if self.ignores(target, id) {
            let error = s::ignored_you(&to_nick);
            self.log_error(now, id, &error, out);
            out.send(id, &error);
            return;
        }
        if self.clustered() {
            self.propose_private(now, id, nick, &to_nick, text, out);
            return;
        }
        let record = Record::Private {
            from: Cow::Borrowed(nick),
            to: Cow::Borrowed(&to_nick),
            text: Cow::Borrowed(text),
        };
        let Ok(seq) = out.log(now, &record) else {
            out.send(id, s::NOT_LOGGED);
            return;
        };
        let kitchen = self.kitchen(now).to_owned();
        let kind = EventKind::Private {
            seq,
            ts_ms: now.unix_ms,
            from: nick,
            to: &to_nick,
            text,
        };
        let line = s::private_from(&kitchen, nick, text);
        out.publish(&[target], &Event { line: &line, kind });
        let line = s::private_to(&kitchen, &to_nick, text);
        out.publish(&[id], &Event { line: &line, kind });
        if let Some(away) = self.session(target).and_then(|t| t.away.as_deref()) {
            out.send(id, &s::is_away(&to_nick, away));
        }
    }

    fn propose_private(
        &mut self,
        now: Now,
        id: ClientId,
        from: &str,
        to: &str,
        text: &str,
        out: &mut impl Outbox,
    ) {
        let body = crate::cluster::entry::Body::Private {
            from: from.into(),
            to: to.into(),
            text: text.into(),
        };
        self.propose(now, id, crate::cluster::broker::Proposal::Append(body), out);
    }

    /// An administrator's announcement to every identified user, or to one channel's members.
    /// Returns the recipients' nicknames.
    pub fn announce(
        &mut self,
        now: Now,
        text: &str,
        channel: Option<&str>,
        out: &mut impl Outbox,
    ) -> Result<Vec<String>, AnnounceError> {
        if self.cluster.is_some() {
            return self.announce_cluster(text, channel);
        }
        let recipients: Vec<ClientId> = match channel {
            Some(name) => {
                if !is_valid_channel(name) {
                    return Err(AnnounceError::InvalidChannel);
                }
                let ch = self
                    .channel_index
                    .get(&lower(name))
                    .and_then(|c| self.channels.get(*c as usize))
                    .ok_or(AnnounceError::UnknownChannel)?;
                ch.members.clone()
            }
            None => {
                let mut all: Vec<ClientId> = self.nicks.values().copied().collect();
                all.sort_unstable();
                all
            }
        };
        if recipients.is_empty() {
            return Err(AnnounceError::NoUsers);
        }
        let shown = channel.map(|name| {
            self.channel_index
                .get(&lower(name))
                .and_then(|c| self.channels.get(*c as usize))
                .map_or(name.to_string(), |c| c.name.to_string())
        });
        let count = recipients.len();
        self.log_and_publish_announcement(now, text, shown.as_deref(), &recipients, count, out)
            .map_err(|_| AnnounceError::LogFailed)?;
        Ok(recipients
            .iter()
            .filter_map(|r| self.nick_of(*r).map(|n| format!("@{n}")))
            .collect())
    }

    /// Cluster mode: the announcement is proposed; the answer names every user it will reach
    /// in the cluster as it is now.
    fn announce_cluster(
        &mut self,
        text: &str,
        channel: Option<&str>,
    ) -> Result<Vec<String>, AnnounceError> {
        use crate::cluster::entry::Body;
        let up = self.cluster.as_ref().is_some_and(|c| c.link_up);
        let (mut names, body) = match channel {
            Some(name) => {
                if !is_valid_channel(name) {
                    return Err(AnnounceError::InvalidChannel);
                }
                let ch = self
                    .channel_index
                    .get(&lower(name))
                    .and_then(|c| self.channels.get(*c as usize))
                    .ok_or(AnnounceError::UnknownChannel)?;
                let mut names: Vec<String> = ch
                    .members
                    .iter()
                    .filter_map(|m| self.nick_of(*m).map(str::to_string))
                    .collect();
                names.extend(ch.remote.iter().map(|r| r.to_string()));
                let body = Body::ChannelAnnouncement {
                    channel: ch.name.clone(),
                    text: text.into(),
                };
                (names, body)
            }
            None => {
                let names = match &self.cluster {
                    Some(c) => c.owners.values().map(|o| o.nick.to_string()).collect(),
                    None => Vec::new(),
                };
                (names, Body::Announcement { text: text.into() })
            }
        };
        if names.is_empty() {
            return Err(AnnounceError::NoUsers);
        }
        if !up {
            return Err(AnnounceError::ClusterDown);
        }
        if let Some(c) = self.cluster.as_mut() {
            let p = crate::cluster::broker::Proposal::Append(body);
            c.proposals.push((None, p));
        }
        names.sort_by_key(|n| n.to_ascii_lowercase());
        Ok(names.into_iter().map(|n| format!("@{n}")).collect())
    }

    /// The server is stopping: tell every connection and close it. Everyone leaves at once,
    /// so nobody is told who left before them.
    pub fn handle_shutdown(&mut self, now: Now, out: &mut impl Outbox) {
        let ids: Vec<ClientId> = self
            .sessions
            .iter()
            .enumerate()
            .filter_map(|(key, s)| {
                s.as_ref().map(|s| ClientId {
                    key: key as u32,
                    gen: s.gen,
                })
            })
            .collect();
        out.send_many(&ids, s::SHUTDOWN);
        self.release_all_for_shutdown();
        for &id in &ids {
            out.close(id, CloseReason::Shutdown);
            if let Some(sess) = self
                .sessions
                .get_mut(id.key as usize)
                .and_then(Option::take)
            {
                log_close(now, id, &sess, CloseReason::Shutdown, out);
            }
        }
        self.session_count = 0;
        self.nicks.clear();
        self.channels.clear();
        self.channel_index.clear();
        self.nick_deadlines.clear();
        self.presence.clear();
    }

    /// Logs an announcement (to `count` users: the channel `shown`, or everyone), sends it to
    /// this node's `recipients` and keeps it in the channel's history. `Err`: the log refused
    /// it, and nobody got it.
    fn log_and_publish_announcement(
        &mut self,
        now: Now,
        text: &str,
        shown: Option<&str>,
        recipients: &[ClientId],
        count: usize,
        out: &mut impl Outbox,
    ) -> Result<u64, super::LogFailed> {
        let record = Record::Announcement {
            text: Cow::Borrowed(text),
            channel: shown.map(Cow::Borrowed),
            recipients: count as u64,
        };
        let seq = out.log(now, &record)?;
        let event = Event {
            line: &s::announcement(text),
            kind: EventKind::Announcement {
                seq,
                ts_ms: now.unix_ms,
                channel: shown,
                text,
            },
        };
        out.publish(recipients, &event);
        if let (Some(channel), true) = (shown, self.keeps_history()) {
            let entry = Entry::new(EntryKind::Announcement, seq, now.unix_ms, "", text);
            self.history.push(channel, entry);
        }
        Ok(seq)
    }

    fn leave_channel(&mut self, now: Now, id: ClientId, nick: &str, out: &mut impl Outbox) {
        let Some(ch) = self.session_mut(id).and_then(|s| s.channel.take()) else {
            return;
        };
        let Some(channel) = self.channels.get_mut(ch as usize) else {
            return;
        };
        channel.members.retain(|m| *m != id);
        let notice = self.moderation.leave_notice.take();
        self.log_and_tell_leave(now, ch, nick, notice, out);
    }

    /// Logs `nick`'s leave of channel `ch` (already out of its member lists) and tells the
    /// channel's members here (`notice`, or the usual `left channel` line), unless the
    /// channel is now empty (dropped) or big enough for the leave to wait for a summary.
    fn log_and_tell_leave(
        &mut self,
        now: Now,
        ch: ChannelKey,
        nick: &str,
        notice: Option<String>,
        out: &mut impl Outbox,
    ) {
        let Some(channel) = self.channels.get(ch as usize) else {
            return;
        };
        let name: Box<str> = channel.name.clone();
        let members = channel.members.len() + channel.remote.len();
        let seq = out
            .log(
                now,
                &Record::Leave {
                    nick: Cow::Borrowed(nick),
                    channel: Cow::Borrowed(&name),
                },
            )
            .unwrap_or(0);
        if members == 0 {
            self.drop_channel(ch);
            return;
        }
        if self.presence.note(ch, members, false, now.mono_ms) {
            return; // told in the next summary
        }
        let kitchen = self.kitchen(now).to_owned();
        let msg = notice.unwrap_or_else(|| s::left(&kitchen, nick, &name));
        if let Some(channel) = self.channels.get(ch as usize) {
            let event = Event {
                line: &msg,
                kind: EventKind::Leave(Presence {
                    seq,
                    ts_ms: now.unix_ms,
                    channel: &name,
                    nick,
                }),
            };
            out.publish(&channel.members, &event);
        }
    }

    /// Ends a session: its channel is told, its nickname is free at once, and its close is
    /// logged with `reason`. The connection itself may still be flushing its last lines.
    fn end_session(&mut self, now: Now, id: ClientId, reason: CloseReason, out: &mut impl Outbox) {
        let Some(nick) = self.session(id).map(|s| s.nick) else {
            return;
        };
        if let Some(nick) = nick {
            if self.cluster.is_some() {
                self.depart(id, nick, reason.as_str());
            } else {
                self.leave_channel(now, id, &nick, out);
                self.nicks.remove(&nick.lower());
            }
        }
        let Some(sess) = self
            .sessions
            .get_mut(id.key as usize)
            .and_then(Option::take)
        else {
            return;
        };
        self.session_count -= 1;
        self.moderation.forget(id);
        if self.cluster.is_some() {
            self.forget_held(id);
        }
        log_close(now, id, &sess, reason, out);
    }

    fn log_error(&self, now: Now, id: ClientId, error: &str, out: &mut impl Outbox) {
        let _ = out.log(
            now,
            &Record::Error {
                conn: Some(u64::from(id.gen)),
                nick: self.nick_of(id).map(Cow::Borrowed),
                error: Cow::Borrowed(error),
            },
        );
    }
}

impl ChatCore {
    /// The channel the user `id` is in.
    fn channel_of(&self, id: ClientId) -> Option<ChannelKey> {
        self.session(id).and_then(|s| s.channel)
    }

    /// The online user called `nick` (any case).
    fn find_user(&self, nick: &str) -> Option<ClientId> {
        Nick::new(nick).and_then(|n| self.nicks.get(&n.lower()).copied())
    }

    /// A command failed: log the error and tell the user.
    fn refuse(&self, now: Now, id: ClientId, error: &str, out: &mut impl Outbox) {
        self.log_error(now, id, error, out);
        out.send(id, error);
    }
}

fn log_close(now: Now, id: ClientId, sess: &Session, reason: CloseReason, out: &mut impl Outbox) {
    let _ = out.log(
        now,
        &Record::Close {
            conn: u64::from(id.gen),
            peer: Cow::Owned(sess.peer.to_string()),
            nick: sess.nick.as_ref().map(|n| Cow::Borrowed(n.as_str())),
            reason: Cow::Borrowed(reason.as_str()),
        },
    );
}

fn log_command(now: Now, nick: &str, command: &str, out: &mut impl Outbox) {
    let _ = out.log(
        now,
        &Record::Command {
            nick: Cow::Borrowed(nick),
            command: Cow::Borrowed(command),
        },
    );
}
