//! `/topic`: a channel's topic is kept while the channel has members; when it empties, the
//! topic waits (a bounded number of them) for the channel to be joined again. Topics are
//! rebuilt from the log at start-up, so they survive restarts.

use super::{log_command, lower, ChatCore};
use crate::chat::command::is_valid_channel;
use crate::chat::event::{Event, EventKind};
use crate::chat::history::{Entry, EntryKind};
use crate::chat::strings as s;
use crate::chat::{ClientId, Now, Outbox};
use crate::record::Record;
use std::borrow::Cow;
use std::collections::HashMap;

/// The longest topic, in bytes.
pub const MAX_TOPIC_BYTES: usize = 300;

/// The most topics kept for channels without members; the oldest set goes first.
const MAX_DORMANT: usize = 1000;

/// Topics of channels that have no members now, by lower-cased channel name.
#[derive(Default)]
pub(in crate::chat) struct DormantTopics {
    /// Lower-cased channel name → (when it was kept, the topic).
    map: HashMap<Box<str>, (u64, Box<str>)>,
    clock: u64,
}

impl DormantTopics {
    /// Keeps `topic` for the channel `key` (lower-cased), evicting the oldest when full.
    pub(super) fn keep(&mut self, key: Box<str>, topic: Box<str>) {
        self.clock += 1;
        if self.map.len() >= MAX_DORMANT && !self.map.contains_key(&key) {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.map.remove(&oldest);
            }
        }
        self.map.insert(key, (self.clock, topic));
    }

    /// The kept topic of the channel `key` (lower-cased), removed from here.
    pub(super) fn take(&mut self, key: &str) -> Option<Box<str>> {
        self.map.remove(key).map(|(_, topic)| topic)
    }

    /// How many topics are kept.
    #[cfg(test)]
    pub(in crate::chat) fn len(&self) -> usize {
        self.map.len()
    }
}

impl ChatCore {
    /// `/topic`: shows the topic of the user's channel.
    pub(super) fn show_topic(&mut self, now: Now, id: ClientId, nick: &str, out: &mut impl Outbox) {
        let Some(channel) = self
            .channel_of(id)
            .and_then(|c| self.channels.get(c as usize))
        else {
            self.refuse(now, id, s::NOT_IN_CHANNEL, out);
            return;
        };
        let text = match &channel.topic {
            Some(topic) => s::topic_of(&channel.name, topic),
            None => s::no_topic(&channel.name),
        };
        log_command(now, nick, "/topic", out);
        out.send(id, &text);
    }

    /// `/topic text`: sets the topic of the user's channel, tells its members and keeps the
    /// change in the channel's history.
    pub(super) fn set_topic(
        &mut self,
        now: Now,
        id: ClientId,
        nick: &str,
        topic: &str,
        out: &mut impl Outbox,
    ) {
        let Some(ch) = self.channel_of(id) else {
            self.refuse(now, id, s::NOT_IN_CHANNEL, out);
            return;
        };
        if topic.len() > MAX_TOPIC_BYTES {
            self.refuse(now, id, &s::topic_too_long(MAX_TOPIC_BYTES), out);
            return;
        }
        if self.clustered() {
            let Some(channel) = self.channels.get(ch as usize) else {
                return;
            };
            let body = crate::cluster::entry::Body::Topic {
                channel: channel.name.clone(),
                nick: nick.into(),
                topic: topic.into(),
            };
            self.propose(now, id, crate::cluster::broker::Proposal::Append(body), out);
            return;
        }
        self.topic_apply(now, Some(id), ch, nick, topic, out);
    }

    /// Sets the topic of channel `ch` (checked, or sequenced): logged, told, remembered.
    pub(super) fn topic_apply(
        &mut self,
        now: Now,
        id: Option<ClientId>,
        ch: super::ChannelKey,
        nick: &str,
        topic: &str,
        out: &mut impl Outbox,
    ) {
        let Some(channel) = self.channels.get(ch as usize) else {
            return;
        };
        let name = channel.name.clone();
        let record = Record::Topic {
            nick: Cow::Borrowed(nick),
            channel: Cow::Borrowed(&name),
            topic: Cow::Borrowed(topic),
        };
        let Ok(seq) = out.log(now, &record) else {
            if let Some(id) = id {
                out.send(id, s::NOT_LOGGED);
            }
            return;
        };
        let kitchen = self.kitchen(now).to_owned();
        let msg = s::topic_set(&kitchen, nick, &name, topic);
        if let Some(channel) = self.channels.get_mut(ch as usize) {
            channel.topic = Some(topic.into());
            let event = Event {
                line: &msg,
                kind: EventKind::Topic {
                    seq,
                    ts_ms: now.unix_ms,
                    channel: &name,
                    nick,
                    topic,
                },
            };
            out.publish(&channel.members, &event);
        }
        if self.keeps_history() {
            let entry = Entry::new(EntryKind::Topic, seq, now.unix_ms, nick, topic);
            self.history.push(&name, entry);
        }
    }

    /// A topic read back from the log at start-up.
    pub(super) fn restore_topic(&mut self, channel: &str, topic: &str) {
        if !is_valid_channel(channel) || topic.len() > MAX_TOPIC_BYTES {
            return;
        }
        let key = lower(channel);
        match self.channel_index.get(&key) {
            Some(&ch) => {
                if let Some(c) = self.channels.get_mut(ch as usize) {
                    c.topic = Some(topic.into());
                }
            }
            None => self.topics.keep(key, topic.into()),
        }
    }
}

#[cfg(test)]
impl ChatCore {
    /// How many topics of channels without members are kept.
    pub(in crate::chat) fn dormant_topics(&self) -> usize {
        self.topics.len()
    }
}
