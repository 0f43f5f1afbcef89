//! What a user says in a channel: chat text and `/me action`, logged, shown and remembered
//! the same way.

use super::{ChannelKey, ChatCore};
use crate::chat::event::{Event, EventKind, Said};
use crate::chat::history::{Entry, EntryKind};
use crate::chat::strings as s;
use crate::chat::{ClientId, Now, Outbox};
use crate::cluster::broker::Proposal;
use crate::cluster::entry::Body;
use crate::record::Record;
use std::borrow::Cow;

/// The two ways of saying something in a channel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Speech {
    /// A chat line.
    Chat,
    /// A `/me` action.
    Action,
}

impl ChatCore {
    /// `/me action`: said like a chat message (see [`ChatCore::say`]).
    pub(super) fn action(
        &mut self,
        now: Now,
        id: ClientId,
        nick: &str,
        text: &str,
        out: &mut impl Outbox,
    ) {
        let Some(ch) = self.channel_of(id) else {
            self.refuse(now, id, s::NOT_IN_CHANNEL, out);
            return;
        };
        self.say(now, Some(id), ch, nick, text, Speech::Action, out);
    }

    /// Chat text or an action in channel `ch`: logged (when it cannot be, the user is told
    /// and nobody gets it), then shown to every member of the channel, the user included,
    /// and kept in the channel's history. In a cluster, `id`'s line is proposed instead, and
    /// said (with `id` None) when its entry comes back.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn say(
        &mut self,
        now: Now,
        id: Option<ClientId>,
        ch: ChannelKey,
        nick: &str,
        text: &str,
        speech: Speech,
        out: &mut impl Outbox,
    ) {
        let Some(channel) = self.channels.get(ch as usize) else {
            return;
        };
        if let (Some(id), true) = (id, self.clustered()) {
            let (channel, nick, text) = (channel.name.clone(), nick.into(), text.into());
            let body = match speech {
                Speech::Chat => Body::Line {
                    channel,
                    nick,
                    text,
                },
                Speech::Action => Body::Action {
                    channel,
                    nick,
                    text,
                },
            };
            self.propose(now, id, Proposal::Append(body), out);
            return;
        }
        let (nick_c, channel_c, text_c) = (
            Cow::Borrowed(nick),
            Cow::Borrowed(&*channel.name),
            Cow::Borrowed(text),
        );
        let record = match speech {
            Speech::Chat => Record::Chat {
                nick: nick_c,
                channel: channel_c,
                text: text_c,
            },
            Speech::Action => Record::Action {
                nick: nick_c,
                channel: channel_c,
                text: text_c,
            },
        };
        let Ok(seq) = out.log(now, &record) else {
            if let Some(id) = id {
                out.send(id, s::NOT_LOGGED);
            }
            return;
        };
        let kitchen = self.kitchen(now).to_owned();
        let (msg, entry_kind) = match speech {
            Speech::Chat => (s::chat(&kitchen, nick, text), EntryKind::Chat),
            Speech::Action => (s::action(&kitchen, nick, text), EntryKind::Action),
        };
        if let Some(channel) = self.channels.get(ch as usize) {
            let said = Said {
                seq,
                ts_ms: now.unix_ms,
                channel: &channel.name,
                nick,
                text,
            };
            let kind = match speech {
                Speech::Chat => EventKind::Chat(said),
                Speech::Action => EventKind::Action(said),
            };
            out.publish(&channel.members, &Event { line: &msg, kind });
            if self.cluster.is_none() || self.keeps_history() {
                let entry = Entry::new(entry_kind, seq, now.unix_ms, nick, text);
                self.history.push(&channel.name, entry);
            }
        }
    }
}
