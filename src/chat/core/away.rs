//! `/away`, `/back` and `/whois`: who is there, since when, and whether they are listening.

use super::{log_command, ChatCore};
use crate::chat::strings as s;
use crate::chat::{ClientId, Now, Outbox};
use crate::record::Record;
use std::borrow::Cow;

/// The away message when `/away` is given none.
const DEFAULT_AWAY: &str = "away";

impl ChatCore {
    /// `/away [message]`: marks the user away (again: changes the message).
    pub(super) fn set_away(
        &mut self,
        now: Now,
        id: ClientId,
        nick: &str,
        message: Option<&str>,
        out: &mut impl Outbox,
    ) {
        let message = message.unwrap_or(DEFAULT_AWAY);
        if self.clustered() {
            let body = crate::cluster::entry::Body::Away {
                nick: nick.into(),
                message: Some(message.into()),
            };
            self.propose(now, id, crate::cluster::broker::Proposal::Append(body), out);
            return;
        }
        let Some(sess) = self.session_mut(id) else {
            return;
        };
        sess.away = Some(message.into());
        let _ = out.log(
            now,
            &Record::Away {
                nick: Cow::Borrowed(nick),
                message: Some(Cow::Borrowed(message)),
            },
        );
        out.send(id, &s::now_away(message));
    }

    /// `/back`: the user is no longer away.
    pub(super) fn back(&mut self, now: Now, id: ClientId, nick: &str, out: &mut impl Outbox) {
        if self.clustered() {
            if self.session(id).is_some_and(|s| s.away.is_none()) {
                self.refuse(now, id, s::NOT_AWAY, out);
                return;
            }
            let body = crate::cluster::entry::Body::Away {
                nick: nick.into(),
                message: None,
            };
            self.propose(now, id, crate::cluster::broker::Proposal::Append(body), out);
            return;
        }
        let was_away = self.session_mut(id).and_then(|s| s.away.take()).is_some();
        if !was_away {
            self.refuse(now, id, s::NOT_AWAY, out);
            return;
        }
        let _ = out.log(
            now,
            &Record::Away {
                nick: Cow::Borrowed(nick),
                message: None,
            },
        );
        out.send(id, s::BACK);
    }

    /// `/whois @target`: where the user is, how long connected and idle, whether away; an
    /// operator also sees the address.
    pub(super) fn whois(
        &mut self,
        now: Now,
        id: ClientId,
        nick: &str,
        target: &str,
        out: &mut impl Outbox,
    ) {
        if self.find_user(target).is_none() {
            if let Some(o) = self.remote_user(target) {
                let channel = o.channel.and_then(|c| self.channels.get(c as usize));
                let text = s::whois(&s::Whois {
                    nick: &o.nick,
                    channel: channel.map(|c| &*c.name),
                    transport: o.transport,
                    connected: &s::duration(now.mono_ms.saturating_sub(o.since_ms)),
                    idle: &s::duration(now.mono_ms.saturating_sub(o.active_ms)),
                    away: o.away.as_deref(),
                    address: None,
                });
                log_command(now, nick, &format!("/whois @{target}"), out);
                out.send(id, &text);
                return;
            }
        }
        let Some(them) = self.find_user(target).and_then(|t| self.session(t)) else {
            self.refuse(now, id, &s::not_connected(target), out);
            return;
        };
        let operator = self.session(id).is_some_and(|s| s.operator);
        let channel = them
            .channel
            .and_then(|c| self.channels.get(c as usize))
            .map(|c| &*c.name);
        let text = s::whois(&s::Whois {
            nick: them.nick.as_deref().unwrap_or(target),
            channel,
            transport: them.transport.as_str(),
            connected: &s::duration(now.mono_ms.saturating_sub(them.connected_ms)),
            idle: &s::duration(now.mono_ms.saturating_sub(them.active_ms)),
            away: them.away.as_deref(),
            address: operator.then(|| them.peer.ip().to_string()).as_deref(),
        });
        log_command(now, nick, &format!("/whois @{target}"), out);
        out.send(id, &text);
    }
}

#[cfg(test)]
impl ChatCore {
    /// Makes a user a server operator without `/oper` and its password check.
    pub(in crate::chat) fn set_operator(&mut self, id: ClientId, operator: bool) {
        if let Some(sess) = self.session_mut(id) {
            sess.operator = operator;
        }
    }
}
