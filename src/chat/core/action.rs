//! `/me action`: an action shown to the user's channel.

use super::ChatCore;
use crate::chat::event::{Event, EventKind, Said};
use crate::chat::history::{Entry, EntryKind};
use crate::chat::strings as s;
use crate::chat::{ClientId, Now, Outbox};
use crate::record::Record;
use std::borrow::Cow;

impl ChatCore {
    /// `/me action`: logged like a chat message (refused when it cannot be), then shown to
    /// every member of the user's channel, the user included, and kept in its history.
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
        let Some(channel) = self.channels.get(ch as usize) else {
            return;
        };
        let record = Record::Action {
            nick: Cow::Borrowed(nick),
            channel: Cow::Borrowed(&channel.name),
            text: Cow::Borrowed(text),
        };
        let Ok(seq) = out.log(now, &record) else {
            out.send(id, s::NOT_LOGGED);
            return;
        };
        let kitchen = self.kitchen(now).to_owned();
        let msg = s::action(&kitchen, nick, text);
        if let Some(channel) = self.channels.get(ch as usize) {
            let event = Event {
                line: &msg,
                kind: EventKind::Action(Said {
                    seq,
                    ts_ms: now.unix_ms,
                    channel: &channel.name,
                    nick,
                    text,
                }),
            };
            out.publish(&channel.members, &event);
            let entry = Entry::new(EntryKind::Action, seq, now.unix_ms, nick, text);
            self.history.push(&channel.name, entry);
        }
    }
}
