//! `/nick newnick`: renaming a user. The new name is claimed before the old one is released,
//! so a rename to a taken name changes nothing and two users can never hold one name. Ignores
//! are kept by connection, so they follow the person, not the name.

use super::ChatCore;
use crate::chat::event::{Event, EventKind};
use crate::chat::nick::Nick;
use crate::chat::strings as s;
use crate::chat::{ClientId, Now, Outbox};
use crate::record::Record;
use std::borrow::Cow;

impl ChatCore {
    /// `/nick wanted` by the user `id`, now known as `old`.
    pub(super) fn rename(
        &mut self,
        now: Now,
        id: ClientId,
        old: Nick,
        wanted: &str,
        out: &mut impl Outbox,
    ) {
        let Some(new) = Nick::new(wanted) else {
            self.refuse(now, id, s::RENAME_INVALID, out);
            return;
        };
        if new.as_str() == old.as_str() {
            self.refuse(now, id, &s::already_known_as(&old), out);
            return;
        }
        let (key, old_key) = (new.lower(), old.lower());
        // A case-only change keeps the same key, held by this user.
        if key != old_key && self.nicks.contains_key(&key) {
            self.refuse(now, id, s::RENAME_TAKEN, out);
            return;
        }
        if key != old_key && self.nick_in_cluster(&key) {
            self.refuse(now, id, s::RENAME_TAKEN, out);
            return;
        }
        if key != old_key && self.is_nick_banned(now, &new) {
            self.refuse(now, id, crate::chat::NICK_BANNED, out);
            return;
        }
        if self.clustered() {
            if key == old_key {
                self.refuse(now, id, s::CLUSTER_CASE_ONLY, out);
            } else {
                self.propose_claim(now, id, new, Some(old), out);
            }
            return;
        }
        self.do_rename(now, id, old, new, out);
    }

    /// The rename itself: `id`, known as `old`, is now `new` (checked, or sequenced).
    pub(super) fn do_rename(
        &mut self,
        now: Now,
        id: ClientId,
        old: Nick,
        new: Nick,
        out: &mut impl Outbox,
    ) {
        let (key, old_key) = (new.lower(), old.lower());
        self.nicks.insert(key, id);
        if key != old_key {
            self.nicks.remove(&old_key);
        }
        self.moderation.renamed(&old, new);
        let Some(sess) = self.session_mut(id) else {
            return;
        };
        sess.nick = Some(new);
        let channel = sess.channel;
        let seq = out
            .log(
                now,
                &Record::NickChange {
                    conn: u64::from(id.gen),
                    old: Cow::Borrowed(&old),
                    new: Cow::Borrowed(&new),
                },
            )
            .unwrap_or(0);
        let kind = EventKind::Nick {
            seq,
            ts_ms: now.unix_ms,
            old: &old,
            new: &new,
        };
        let kitchen = self.kitchen(now).to_owned();
        match channel.and_then(|c| self.channels.get(c as usize)) {
            Some(channel) => {
                let line = s::renamed(&kitchen, &old, &new);
                out.publish(&channel.members, &Event { line: &line, kind });
            }
            None => {
                let line = s::now_known_as(&new);
                out.publish(&[id], &Event { line: &line, kind });
            }
        }
    }
}
