//! `/me action`: an action shown to the user's channel.

use super::ChatCore;
use crate::chat::strings as s;
use crate::chat::{ClientId, Now, Outbox};
use crate::record::Record;
use std::borrow::Cow;

impl ChatCore {
    /// `/me action`: logged like a chat message (refused when it cannot be), then shown to
    /// every member of the user's channel, the user included.
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
        if out.log(now, &record).is_err() {
            out.send(id, s::NOT_LOGGED);
            return;
        }
        let kitchen = self.kitchen(now).to_owned();
        let msg = s::action(&kitchen, nick, text);
        if let Some(channel) = self.channels.get(ch as usize) {
            out.send_many(&channel.members, &msg);
        }
    }
}
