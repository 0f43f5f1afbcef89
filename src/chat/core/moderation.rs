//! Moderation in the core (§14): operators and `/oper`, kicks, bans, mutes and their expiry,
//! and the queries the shell and the REST API ask (is this address banned, who is online).
//!
//! A child module of `core`, so it reaches the sessions and channels directly; the state it
//! adds lives in [`Moderation`]. Everything here is pure: the state file is written by the
//! shell from [`ChatCore::take_moderation_state`], and the time comes in every call.
//!
//! `/oper` passwords are checked with argon2, which costs milliseconds of CPU. Attempts are
//! queued and the shell calls [`ChatCore::handle_oper_check`] once per loop pass, after the
//! pass's output is written, so a burst of attempts delays other users by at most one
//! verification, never by the whole burst.

use super::super::banlist::{self, Ban, BanList, BanTarget, StoredBan};
use super::super::command::talks_to_others;
use super::super::duration::{format_until, looks_like_duration, parse_duration};
use super::super::moderation_text as t;
use super::super::nick::Nick;
use super::super::{ClientId, CloseReason, Now, Outbox};
use super::ChatCore;
use crate::record::Record;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// `/oper` failures on one connection that close it.
pub const MAX_OPER_FAILURES: u8 = 5;
/// `/oper` attempts waiting for their check, server-wide; more are told to try again.
const MAX_PENDING_OPER: usize = 64;
/// Time from the start of one `/oper` check to the start of the next, server-wide. A check
/// takes about 25 ms of CPU with the recommended argon2 parameters, so checks take at most a
/// quarter of the loop's time however many attempts arrive, and a password can be guessed at
/// most 10 times a second.
pub const OPER_CHECK_INTERVAL_MS: u64 = 100;

/// A configured operator: name and argon2 PHC hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// The name given to `/oper`.
    pub name: String,
    /// `$argon2id$...`
    pub password_hash: String,
}

/// Who does a moderation act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// An operator's connection.
    Oper(ClientId),
    /// The REST token holder.
    Api,
}

/// Why a moderation act was not done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModError {
    /// No user of that nickname is online.
    UnknownNick(String),
    /// Not `@nick`, an address or a CIDR range.
    InvalidTarget(String),
    /// `/unban` of something not banned.
    NotBanned(String),
    /// `/unmute` of someone not muted.
    NotMuted(String),
    /// An operator acting on itself (`kick`, `ban`, `mute`).
    SelfTarget(&'static str),
    /// Cluster mode: the link to Redis is down, so the act cannot reach the other nodes.
    ClusterDown,
}

/// A ban as listed by `/bans` and the REST API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BanInfo {
    /// `@nick`, an address or a CIDR range.
    pub target: String,
    /// For a ban by nickname, the address banned with it.
    pub address: Option<String>,
    /// End (RFC 3339), `None` when permanent.
    pub until: Option<String>,
    /// `@op` or `api`.
    pub by: String,
    /// The reason, if any.
    pub reason: Option<String>,
    #[serde(skip)]
    until_ms: Option<i64>,
}

/// A user as listed by the REST API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub nick: String,
    pub channel: Option<String>,
    pub transport: &'static str,
    pub address: String,
    pub connected_at: String,
    pub idle_s: u64,
    pub away: Option<String>,
    pub operator: bool,
    pub muted: bool,
    /// End of the mute (RFC 3339); `None` when not muted or muted permanently.
    pub muted_until: Option<String>,
}

/// A channel as listed by the REST API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelInfo {
    pub name: String,
    pub members: Vec<String>,
    pub topic: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredMute {
    nick: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until_ms: Option<i64>,
    by: String,
}

/// The state file: bans and mutes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredState {
    version: u32,
    bans: Vec<StoredBan>,
    mutes: Vec<StoredMute>,
}

struct Mute {
    nick: Nick,
    until_ms: Option<i64>,
    by: Box<str>,
}

struct OperAttempt {
    id: ClientId,
    name: String,
    password: String,
}

/// Moderation state of the core.
#[derive(Default)]
pub(super) struct Moderation {
    operators: Vec<Operator>,
    bans: BanList,
    /// Lower-cased nickname → mute.
    mutes: HashMap<Nick, Mute>,
    failures: HashMap<ClientId, u8>,
    pending: VecDeque<OperAttempt>,
    /// No `/oper` check before this moment (monotonic ms).
    next_check_ms: u64,
    /// The bans or mutes changed since the state was last taken.
    dirty: bool,
    /// The time of the latest call, to turn wall-clock ends into loop deadlines.
    last_now: Option<Now>,
    /// The notice a channel gets instead of `left channel` when a member is kicked.
    pub(super) leave_notice: Option<String>,
}

impl Moderation {
    /// The next moment (monotonic ms) the core has moderation work: a queued `/oper` check
    /// (now) or the end of a ban or mute.
    pub(super) fn next_deadline(&self) -> Option<u64> {
        let now = self.last_now?;
        if !self.pending.is_empty() {
            return Some(now.mono_ms.max(self.next_check_ms));
        }
        let mute_end = self.mutes.values().filter_map(|m| m.until_ms).min();
        let end = [self.bans.next_end(), mute_end]
            .into_iter()
            .flatten()
            .min()?;
        let wait = u64::try_from(end.saturating_sub(now.unix_ms)).unwrap_or(0);
        Some(now.mono_ms.saturating_add(wait))
    }

    /// Forgets a closed connection, and its `/oper` attempt if still queued (a closed
    /// connection's attempt would cost a check slot for nothing).
    pub(super) fn forget(&mut self, id: ClientId) {
        self.failures.remove(&id);
        self.pending.retain(|a| a.id != id);
    }

    /// A user renamed with `/nick`: a mute on the old nickname moves to the new one, so a
    /// muted user cannot talk again by renaming. When the new nickname is muted as well, the
    /// longer mute stays (a permanent one outlasts any timed one).
    pub(super) fn renamed(&mut self, old: &Nick, new: Nick) {
        let Some(mut mute) = self.mutes.remove(&old.lower()) else {
            return;
        };
        self.dirty = true;
        mute.nick = new;
        match self.mutes.get_mut(&new.lower()) {
            Some(kept) if outlasts(kept.until_ms, mute.until_ms) => kept.nick = new,
            Some(kept) => *kept = mute,
            None => {
                self.mutes.insert(new.lower(), mute);
            }
        }
    }

    fn mute_of(&self, nick: &Nick, now: Now) -> Option<&Mute> {
        self.mutes
            .get(&nick.lower())
            .filter(|m| m.until_ms.is_none_or(|t| t > now.unix_ms))
    }
}

/// Whether a mute ending at `a` lasts at least as long as one ending at `b` (`None`:
/// permanent).
fn outlasts(a: Option<i64>, b: Option<i64>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a >= b,
    }
}

fn actor_name(core: &ChatCore, actor: Actor) -> String {
    if let Some(name) = core.replicated_actor() {
        return name.to_string();
    }
    match actor {
        Actor::Api => "api".to_string(),
        Actor::Oper(id) => format!("@{}", core.nick_of(id).unwrap_or("?")),
    }
}

fn until_of(now: Now, duration_ms: Option<u64>) -> Option<i64> {
    duration_ms.map(|d| {
        now.unix_ms
            .saturating_add(i64::try_from(d).unwrap_or(i64::MAX))
    })
}

/// Splits off the first whitespace-separated word; the rest has its leading whitespace removed.
fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// The moderation commands (the ones only operators may use, and `/oper`).
const OPER_COMMANDS: [&str; 6] = ["/kick", "/ban", "/unban", "/bans", "/mute", "/unmute"];

impl ChatCore {
    /// Sets the operators (from the config).
    pub fn set_operators(&mut self, operators: Vec<Operator>) {
        self.moderation.operators = operators;
    }

    /// Loads the state file's text; bans and mutes that have ended are dropped (and the
    /// state marked changed, so the file is rewritten without them). Returns how many were
    /// dropped. An error describes what is wrong with the text.
    pub fn load_moderation_state(&mut self, now: Now, text: &str) -> Result<usize, String> {
        let stored: StoredState = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if stored.version != 1 {
            return Err(format!("unknown version {}", stored.version));
        }
        let mut bans = BanList::default();
        for b in &stored.bans {
            bans.insert(Ban::try_from(b)?);
        }
        let mut mutes = HashMap::new();
        for m in &stored.mutes {
            let nick =
                Nick::new(&m.nick).ok_or_else(|| format!("invalid muted nickname {:?}", m.nick))?;
            mutes.insert(
                nick.lower(),
                Mute {
                    nick,
                    until_ms: m.until_ms,
                    by: m.by.as_str().into(),
                },
            );
        }
        let before = bans.len() + mutes.len();
        bans.take_expired(now.unix_ms);
        mutes.retain(|_, m| m.until_ms.is_none_or(|t| t > now.unix_ms));
        let dropped = before - bans.len() - mutes.len();
        let m = &mut self.moderation;
        m.bans = bans;
        m.mutes = mutes;
        m.dirty = dropped > 0;
        m.last_now = Some(now);
        Ok(dropped)
    }

    /// The bans and mutes as the state file's text, when they changed since the last call.
    pub fn take_moderation_state(&mut self) -> Option<String> {
        let m = &mut self.moderation;
        if !m.dirty {
            return None;
        }
        m.dirty = false;
        let mut mutes: Vec<StoredMute> = m
            .mutes
            .values()
            .map(|x| StoredMute {
                nick: x.nick.to_string(),
                until_ms: x.until_ms,
                by: x.by.to_string(),
            })
            .collect();
        mutes.sort_by(|a, b| a.nick.cmp(&b.nick));
        let state = StoredState {
            version: 1,
            bans: m.bans.iter().map(StoredBan::from).collect(),
            mutes,
        };
        serde_json::to_string_pretty(&state).ok().map(|mut s| {
            s.push('\n');
            s
        })
    }

    /// Whether a ban in force refuses connections from this address (asked at accept).
    pub fn is_address_banned(&self, now: Now, ip: IpAddr) -> bool {
        self.moderation.bans.find_ip(ip, now.unix_ms).is_some()
    }

    /// Whether a ban in force names this nickname (asked when a nickname is chosen, and by
    /// `/nick`). An invalid nickname is never banned.
    pub fn is_nick_banned(&self, now: Now, nick: &str) -> bool {
        Nick::new(nick).is_some_and(|n| self.moderation.bans.nick_banned(&n, now.unix_ms))
    }

    /// Whether this connection's user is a server operator.
    pub fn is_operator(&self, id: ClientId) -> bool {
        self.session(id).is_some_and(|s| s.operator)
    }

    /// The moderation part of `handle_line` for a user with a nickname: the moderation
    /// commands, and refusing what a muted user says to others (chat, `/msg`, `/me`,
    /// `/topic text`). True when the line was
    /// handled here.
    pub(super) fn moderation_line(
        &mut self,
        now: Now,
        id: ClientId,
        line: &str,
        out: &mut impl Outbox,
    ) -> bool {
        self.moderation.last_now = Some(now);
        let (cmd, rest) = word(line);
        if cmd == "/oper" {
            self.oper_command(now, id, rest, out);
            return true;
        }
        if OPER_COMMANDS.contains(&cmd) {
            if !self.is_operator(id) {
                self.refuse(now, id, &t::needs_oper(cmd), out);
            } else {
                self.oper_only_command(now, id, cmd, rest, out);
            }
            return true;
        }
        // Chat's hot path: with nobody muted, one length check.
        if !self.moderation.mutes.is_empty() && talks_to_others(line) {
            let nick = self.session(id).and_then(|s| s.nick);
            if let Some(mute) = nick.and_then(|n| self.moderation.mute_of(&n, now)) {
                let text = t::you_are_muted(mute.until_ms);
                self.refuse(now, id, &text, out);
                return true;
            }
        }
        false
    }

    fn oper_command(&mut self, now: Now, id: ClientId, rest: &str, out: &mut impl Outbox) {
        let (name, password) = word(rest);
        let password = password.trim();
        if name.is_empty() || password.is_empty() {
            self.refuse(now, id, t::OPER_NEEDS_ARGS, out);
            return;
        }
        if self.moderation.pending.iter().any(|a| a.id == id) {
            out.send(id, t::OPER_PENDING);
            return;
        }
        if self.moderation.pending.len() >= MAX_PENDING_OPER {
            out.send(id, t::OPER_BUSY);
            return;
        }
        self.moderation.pending.push_back(OperAttempt {
            id,
            name: name.to_string(),
            password: password.to_string(),
        });
    }

    /// Checks one queued `/oper` attempt. The shell calls it once per loop pass, after it
    /// has written that pass's output, so the check delays nobody's chat by more than itself.
    pub fn handle_oper_check(&mut self, now: Now, out: &mut impl Outbox) {
        self.moderation.last_now = Some(now);
        if now.mono_ms < self.moderation.next_check_ms {
            return;
        }
        // An attempt whose connection is gone is dropped without spending the check's slot.
        let (attempt, nick) = loop {
            let Some(attempt) = self.moderation.pending.pop_front() else {
                return;
            };
            if let Some(nick) = self.session(attempt.id).and_then(|s| s.nick) {
                break (attempt, nick);
            }
        };
        self.moderation.next_check_ms = now.mono_ms + OPER_CHECK_INTERVAL_MS;
        let ops = &self.moderation.operators;
        let ok = match ops.iter().find(|o| o.name == attempt.name) {
            Some(op) => verify_password(&op.password_hash, &attempt.password),
            None => {
                // Spend the same time as for a real name, so names cannot be probed by timing.
                if let Some(first) = ops.first() {
                    verify_password(&first.password_hash, &attempt.password);
                }
                false
            }
        };
        let id = attempt.id;
        let _ = out.log(
            now,
            &Record::Oper {
                conn: u64::from(id.gen),
                nick: Cow::Borrowed(&nick),
                name: Cow::Borrowed(&attempt.name),
                ok,
            },
        );
        if ok {
            self.moderation.failures.remove(&id);
            if let Some(sess) = self.session_mut(id) {
                sess.operator = true;
            }
            out.send(id, t::OPER_OK);
            return;
        }
        let failures = self.moderation.failures.entry(id).or_insert(0);
        *failures += 1;
        let close = *failures >= MAX_OPER_FAILURES;
        out.send(id, t::OPER_FAILED);
        if close {
            out.close(id, CloseReason::Refused);
            self.end_session(now, id, CloseReason::Refused, out);
        }
    }

    fn oper_only_command(
        &mut self,
        now: Now,
        id: ClientId,
        cmd: &str,
        rest: &str,
        out: &mut impl Outbox,
    ) {
        let actor = Actor::Oper(id);
        let nick_arg = |rest: &str| {
            let (w, more) = word(rest);
            w.strip_prefix('@')
                .filter(|n| !n.is_empty())
                .map(|n| (n.to_string(), more.to_string()))
        };
        let result: Result<String, String> = match cmd {
            "/kick" => match nick_arg(rest) {
                None => Err(t::needs_nick("/kick", " [reason]")),
                Some((nick, reason)) => self
                    .kick(now, actor, &nick, non_empty(&reason), out)
                    .map(|n| t::kick_done(&n))
                    .map_err(|e| error_text(&e)),
            },
            "/ban" => {
                let (target, more) = word(rest);
                if target.is_empty() {
                    Err(t::needs_target("/ban", " [duration] [reason]"))
                } else {
                    let (maybe, after) = word(more);
                    let parsed = if looks_like_duration(maybe) {
                        parse_duration(maybe)
                            .map(|d| (Some(d), after))
                            .ok_or_else(|| t::invalid_duration(maybe))
                    } else {
                        Ok((None, more))
                    };
                    parsed.and_then(|(duration, reason)| {
                        self.ban(now, actor, target, duration, non_empty(reason), out)
                            .map(|b| t::banned(&b.target, b.until_ms))
                            .map_err(|e| error_text(&e))
                    })
                }
            }
            "/unban" => {
                let (target, _) = word(rest);
                if target.is_empty() {
                    Err(t::needs_target("/unban", ""))
                } else {
                    self.unban(now, actor, target, out)
                        .map(|shown| t::unbanned(&shown))
                        .map_err(|e| error_text(&e))
                }
            }
            "/bans" => {
                let bans = self.bans(now);
                if bans.is_empty() {
                    Ok(t::NO_BANS.to_string())
                } else {
                    let mut text = String::from(t::BANS_HEADER);
                    for b in bans {
                        text.push('\n');
                        text.push_str(&t::ban_line(
                            &b.target,
                            b.until_ms,
                            &b.by,
                            b.reason.as_deref(),
                        ));
                    }
                    Ok(text)
                }
            }
            "/mute" => match nick_arg(rest) {
                None => Err(t::needs_nick("/mute", " [duration]")),
                Some((nick, more)) => {
                    let (d, _) = word(&more);
                    let duration = if d.is_empty() {
                        Ok(None)
                    } else {
                        parse_duration(d)
                            .map(Some)
                            .ok_or_else(|| t::invalid_duration(d))
                    };
                    duration.and_then(|duration| {
                        self.mute(now, actor, &nick, duration, out)
                            .map(|(shown, until)| t::is_muted(&shown, until))
                            .map_err(|e| error_text(&e))
                    })
                }
            },
            "/unmute" => match nick_arg(rest) {
                None => Err(t::needs_nick("/unmute", "")),
                Some((nick, _)) => self
                    .unmute(now, actor, &nick, out)
                    .map(|shown| t::unmuted(&shown))
                    .map_err(|e| error_text(&e)),
            },
            _ => return,
        };
        match result {
            Ok(text) => out.send(id, &text),
            Err(text) => self.refuse(now, id, &text, out),
        }
    }

    /// Closes a user's connection on an operator's behalf: the user is told who did it and
    /// why, and its channel sees `was kicked by` instead of `left channel`.
    fn remove_user(
        &mut self,
        now: Now,
        victim: ClientId,
        by: &str,
        reason: Option<&str>,
        out: &mut impl Outbox,
    ) {
        let nick = self.session(victim).and_then(|s| s.nick);
        match nick {
            Some(nick) => {
                out.send(victim, &t::kicked_you(by, reason));
                let kitchen = self.kitchen(now).to_owned();
                self.moderation.leave_notice = Some(t::was_kicked(&kitchen, &nick, by, reason));
            }
            None => out.send(victim, t::BANNED_HERE),
        }
        out.close(victim, CloseReason::Kicked);
        self.end_session(now, victim, CloseReason::Kicked, out);
        self.moderation.leave_notice = None;
    }

    /// Kicks the user `nick` (without `@`). Returns the nickname as the user spells it.
    pub fn kick(
        &mut self,
        now: Now,
        actor: Actor,
        nick: &str,
        reason: Option<&str>,
        out: &mut impl Outbox,
    ) -> Result<String, ModError> {
        self.moderation.last_now = Some(now);
        self.mod_link_check()?;
        let Some(victim) = self.find_user(nick) else {
            // A user on another node: its node kicks it when the act comes back.
            let shown = self
                .remote_user(nick)
                .filter(|_| self.clustered())
                .map(|o| o.nick.to_string())
                .ok_or_else(|| ModError::UnknownNick(nick.to_string()))?;
            let by = actor_name(self, actor);
            let target = format!("@{shown}");
            audit(
                now,
                Act {
                    actor: &by,
                    action: "kick",
                    target: &target,
                    until_ms: None,
                    reason,
                },
                out,
            );
            self.replicate_mod(&by, "kick", &target, None, reason);
            return Ok(shown);
        };
        if actor == Actor::Oper(victim) {
            return Err(ModError::SelfTarget("kick"));
        }
        let shown = self.nick_of(victim).unwrap_or(nick).to_string();
        let by = actor_name(self, actor);
        self.replicate_mod(&by, "kick", &format!("@{shown}"), None, reason);
        audit(
            now,
            Act {
                actor: &by,
                action: "kick",
                target: &format!("@{shown}"),
                until_ms: None,
                reason,
            },
            out,
        );
        self.remove_user(now, victim, &by, reason, out);
        Ok(shown)
    }

    /// Bans `@nick` (that nickname and, when online, that user's address; the user is
    /// kicked), an address or a CIDR range (every matching connection is closed).
    pub fn ban(
        &mut self,
        now: Now,
        actor: Actor,
        target: &str,
        duration_ms: Option<u64>,
        reason: Option<&str>,
        out: &mut impl Outbox,
    ) -> Result<BanInfo, ModError> {
        self.moderation.last_now = Some(now);
        self.mod_link_check()?;
        let parsed =
            banlist::parse_target(target).ok_or_else(|| ModError::InvalidTarget(target.into()))?;
        let mut ban = Ban {
            target: parsed,
            addr: None,
            until_ms: until_of(now, duration_ms),
            by: actor_name(self, actor).into(),
            reason: reason.map(Into::into),
        };
        if let BanTarget::Nick(n) = parsed {
            if let Some(victim) = self.find_user(&n) {
                ban.addr = self.session(victim).map(|s| banlist::host_net(s.peer.ip()));
            }
        }
        // Every connection the ban covers: the named user, and every address match.
        let victims: Vec<ClientId> = self
            .sessions
            .iter()
            .enumerate()
            .filter_map(|(key, s)| {
                let s = s.as_ref()?;
                let by_nick = matches!(
                    (parsed, s.nick),
                    (BanTarget::Nick(b), Some(n)) if b.lower() == n.lower()
                );
                let by_addr = matches!(parsed, BanTarget::Net(_)) && ban.matches_ip(s.peer.ip());
                (by_nick || by_addr).then_some(ClientId {
                    key: key as u32,
                    gen: s.gen,
                })
            })
            .collect();
        if matches!(actor, Actor::Oper(me) if victims.contains(&me)) {
            return Err(ModError::SelfTarget("ban"));
        }
        let info = ban_info(&ban);
        audit(
            now,
            Act {
                actor: &ban.by,
                action: "ban",
                target: &info.target,
                until_ms: ban.until_ms,
                reason,
            },
            out,
        );
        let by = ban.by.clone();
        self.replicate_mod(&by, "ban", &info.target, ban.until_ms, reason);
        self.moderation.bans.insert(ban);
        self.moderation.dirty = true;
        for victim in victims {
            self.remove_user(now, victim, &by, reason, out);
        }
        Ok(info)
    }

    /// Lifts the ban on a target. Returns the target as listed.
    pub fn unban(
        &mut self,
        now: Now,
        actor: Actor,
        target: &str,
        out: &mut impl Outbox,
    ) -> Result<String, ModError> {
        self.moderation.last_now = Some(now);
        let parsed =
            banlist::parse_target(target).ok_or_else(|| ModError::InvalidTarget(target.into()))?;
        let shown = parsed.to_string();
        self.mod_link_check()?;
        if !self.moderation.bans.remove(&parsed) {
            return Err(ModError::NotBanned(shown));
        }
        self.moderation.dirty = true;
        let by = actor_name(self, actor);
        self.replicate_mod(&by, "unban", &shown, None, None);
        audit(
            now,
            Act {
                actor: &by,
                action: "unban",
                target: &shown,
                until_ms: None,
                reason: None,
            },
            out,
        );
        Ok(shown)
    }

    /// The bans in force, oldest first.
    pub fn bans(&self, now: Now) -> Vec<BanInfo> {
        self.moderation
            .bans
            .iter()
            .filter(|b| b.until_ms.is_none_or(|t| t > now.unix_ms))
            .map(ban_info)
            .collect()
    }

    /// Mutes the online user `nick`. Returns the nickname as spelt and the end.
    pub fn mute(
        &mut self,
        now: Now,
        actor: Actor,
        nick: &str,
        duration_ms: Option<u64>,
        out: &mut impl Outbox,
    ) -> Result<(String, Option<i64>), ModError> {
        self.moderation.last_now = Some(now);
        self.mod_link_check()?;
        let victim = self.find_user(nick);
        if victim.is_some() && victim.map(Actor::Oper) == Some(actor) {
            return Err(ModError::SelfTarget("mute"));
        }
        let local = victim.and_then(|v| self.session(v)).and_then(|s| s.nick);
        // A user on another node is muted here too (every node checks its own users).
        let remote = || {
            self.remote_user(nick)
                .filter(|_| self.cluster.is_some())
                .map(|o| o.nick)
        };
        let Some(shown) = local.or_else(remote) else {
            return Err(ModError::UnknownNick(nick.to_string()));
        };
        let until_ms = until_of(now, duration_ms);
        let by = actor_name(self, actor);
        self.replicate_mod(&by, "mute", &format!("@{shown}"), until_ms, None);
        audit(
            now,
            Act {
                actor: &by,
                action: "mute",
                target: &format!("@{shown}"),
                until_ms,
                reason: None,
            },
            out,
        );
        self.moderation.mutes.insert(
            shown.lower(),
            Mute {
                nick: shown,
                until_ms,
                by: by.into(),
            },
        );
        self.moderation.dirty = true;
        if let Some(victim) = victim {
            out.send(victim, &t::you_are_muted(until_ms));
        }
        Ok((shown.to_string(), until_ms))
    }

    /// Lifts a mute. Returns the nickname as spelt.
    pub fn unmute(
        &mut self,
        now: Now,
        actor: Actor,
        nick: &str,
        out: &mut impl Outbox,
    ) -> Result<String, ModError> {
        self.moderation.last_now = Some(now);
        self.mod_link_check()?;
        let key = Nick::new(nick).map(|n| n.lower());
        let mute = key
            .and_then(|k| self.moderation.mutes.remove(&k))
            .ok_or_else(|| ModError::NotMuted(nick.to_string()))?;
        self.moderation.dirty = true;
        let by = actor_name(self, actor);
        let shown = mute.nick.to_string();
        self.replicate_mod(&by, "unmute", &format!("@{shown}"), None, None);
        audit(
            now,
            Act {
                actor: &by,
                action: "unmute",
                target: &format!("@{shown}"),
                until_ms: None,
                reason: None,
            },
            out,
        );
        if let Some(id) = self.find_user(&shown) {
            out.send(id, t::YOU_ARE_UNMUTED);
        }
        Ok(shown)
    }

    /// Ends the bans and mutes whose time is up (called from `handle_tick`).
    pub(super) fn expire_moderation(&mut self, now: Now, out: &mut impl Outbox) {
        self.moderation.last_now = Some(now);
        let mute_due = self
            .moderation
            .mutes
            .values()
            .any(|m| m.until_ms.is_some_and(|t| t <= now.unix_ms));
        let ban_due = self
            .moderation
            .bans
            .next_end()
            .is_some_and(|t| t <= now.unix_ms);
        if !mute_due && !ban_due {
            return;
        }
        for ban in self.moderation.bans.take_expired(now.unix_ms) {
            let target = ban.target.to_string();
            audit(
                now,
                Act {
                    actor: "server",
                    action: "unban",
                    target: &target,
                    until_ms: None,
                    reason: Some("expired"),
                },
                out,
            );
        }
        let ended: Vec<Nick> = self
            .moderation
            .mutes
            .iter()
            .filter(|(_, m)| m.until_ms.is_some_and(|t| t <= now.unix_ms))
            .map(|(k, _)| *k)
            .collect();
        for key in ended {
            let Some(mute) = self.moderation.mutes.remove(&key) else {
                continue;
            };
            let target = format!("@{}", mute.nick);
            audit(
                now,
                Act {
                    actor: "server",
                    action: "unmute",
                    target: &target,
                    until_ms: None,
                    reason: Some("expired"),
                },
                out,
            );
            if let Some(id) = self.find_user(&mute.nick) {
                out.send(id, t::YOU_ARE_UNMUTED);
            }
        }
        self.moderation.dirty = true;
    }

    /// Every user with a nickname, sorted by nickname (for the REST API).
    pub fn users(&self, now: Now) -> Vec<UserInfo> {
        let mut users: Vec<UserInfo> = self
            .sessions
            .iter()
            .filter_map(|s| s.as_ref())
            .filter_map(|s| {
                let nick = s.nick?;
                let mute = self.moderation.mute_of(&nick, now);
                Some(UserInfo {
                    nick: nick.to_string(),
                    channel: s
                        .channel
                        .and_then(|c| self.channels.get(c as usize))
                        .map(|c| c.name.to_string()),
                    transport: s.transport.as_str(),
                    address: banlist::canonical(s.peer.ip()).to_string(),
                    connected_at: crate::timefmt::rfc3339_ms(wall_of(now, s.connected_ms)),
                    idle_s: now.mono_ms.saturating_sub(s.active_ms) / 1000,
                    away: s.away.as_deref().map(str::to_string),
                    operator: s.operator,
                    muted: mute.is_some(),
                    muted_until: mute.and_then(|m| m.until_ms).map(format_until),
                })
            })
            .collect();
        if let Some(c) = &self.cluster {
            // Users of the other nodes: what this node knows of them.
            for o in c.owners.values().filter(|o| o.local.is_none()) {
                let mute = self.moderation.mute_of(&o.nick, now);
                users.push(UserInfo {
                    nick: o.nick.to_string(),
                    channel: (o.channel)
                        .and_then(|c| self.channels.get(c as usize))
                        .map(|c| c.name.to_string()),
                    transport: o.transport,
                    address: String::new(),
                    connected_at: crate::timefmt::rfc3339_ms(wall_of(now, o.since_ms)),
                    idle_s: now.mono_ms.saturating_sub(o.active_ms) / 1000,
                    away: o.away.as_deref().map(str::to_string),
                    operator: false,
                    muted: mute.is_some(),
                    muted_until: mute.and_then(|m| m.until_ms).map(format_until),
                });
            }
        }
        users.sort_by_key(|u| u.nick.to_ascii_lowercase());
        users
    }

    /// Every channel with its members, sorted by name (for the REST API).
    pub fn channel_list(&self) -> Vec<ChannelInfo> {
        let mut list: Vec<ChannelInfo> = self
            .channels
            .iter()
            .map(|(_, c)| ChannelInfo {
                name: c.name.to_string(),
                members: c
                    .members
                    .iter()
                    .filter_map(|m| self.nick_of(*m).map(str::to_string))
                    .chain(c.remote.iter().map(|r| r.to_string()))
                    .collect(),
                topic: c.topic.as_deref().map(str::to_string),
            })
            .collect();
        list.sort_by_key(|c| c.name.to_ascii_lowercase());
        if self.cluster.is_some() {
            // The same answer on every node: members sorted, not in join order.
            for c in &mut list {
                c.members.sort_by_key(|m| m.to_ascii_lowercase());
            }
        }
        list
    }
}

/// One moderation act, for its log record.
struct Act<'a> {
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    until_ms: Option<i64>,
    reason: Option<&'a str>,
}

fn audit(now: Now, act: Act<'_>, out: &mut impl Outbox) {
    let until = act.until_ms.map(format_until);
    let _ = out.log(
        now,
        &Record::Moderation {
            actor: Cow::Borrowed(act.actor),
            action: Cow::Borrowed(act.action),
            target: Cow::Borrowed(act.target),
            until: until.as_deref().map(Cow::Borrowed),
            reason: act.reason.map(Cow::Borrowed),
        },
    );
}

/// A monotonic moment as wall-clock ms, using the current time as the reference.
fn wall_of(now: Now, mono_ms: u64) -> i64 {
    let ago = i64::try_from(now.mono_ms.saturating_sub(mono_ms)).unwrap_or(0);
    now.unix_ms.saturating_sub(ago)
}

fn ban_info(b: &Ban) -> BanInfo {
    BanInfo {
        target: b.target.to_string(),
        address: b.addr.map(|a| BanTarget::Net(a).to_string()),
        until: b.until_ms.map(format_until),
        by: b.by.to_string(),
        reason: b.reason.as_deref().map(str::to_string),
        until_ms: b.until_ms,
    }
}

/// The notice for a failed moderation command.
pub fn error_text(e: &ModError) -> String {
    match e {
        ModError::UnknownNick(n) => super::s::not_connected(n),
        ModError::InvalidTarget(x) => t::invalid_target(x),
        ModError::NotBanned(x) => t::not_banned(x),
        ModError::NotMuted(n) => t::not_muted(n),
        ModError::SelfTarget(action) => t::cannot_self(action),
        ModError::ClusterDown => super::s::CLUSTER_DOWN.to_string(),
    }
}

/// Checks a password against an argon2 PHC string (the parameters come from the string).
pub fn verify_password(phc: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// Whether a string is an argon2 PHC hash this server can check (config validation).
pub fn is_valid_hash(phc: &str) -> bool {
    phc.starts_with("$argon2") && argon2::password_hash::phc::PasswordHash::new(phc).is_ok()
}

/// Hashes a password as an argon2id PHC string with a random salt (`--hash-password`).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}
