//! `/ignore @nick` and `/unignore @nick`. A user's ignores are kept by connection, so they
//! follow the ignored person through renames, and a rename of the ignoring user keeps them.

use super::{log_command, ChatCore};
use crate::chat::nick::Nick;
use crate::chat::strings as s;
use crate::chat::{ClientId, Now, Outbox};

impl ChatCore {
    /// Whether the user `who` ignores the user `whom`.
    pub(super) fn ignores(&self, who: ClientId, whom: ClientId) -> bool {
        self.session(who)
            .and_then(|s| s.ignores.as_ref())
            .is_some_and(|list| list.contains(&whom))
    }

    /// The online user `target` names (any case), when it is not `id` itself; otherwise the
    /// error is sent and `None` returned.
    fn ignore_target(
        &mut self,
        now: Now,
        id: ClientId,
        target: &str,
        out: &mut impl Outbox,
    ) -> Option<ClientId> {
        let Some(them) = self.find_user(target) else {
            self.refuse(now, id, &s::not_connected(target), out);
            return None;
        };
        if them == id {
            self.refuse(now, id, s::IGNORE_SELF, out);
            return None;
        }
        Some(them)
    }

    /// `/ignore @target`.
    pub(super) fn ignore(
        &mut self,
        now: Now,
        id: ClientId,
        nick: &Nick,
        target: &str,
        out: &mut impl Outbox,
    ) {
        let Some(them) = self.ignore_target(now, id, target, out) else {
            return;
        };
        let mut list = self
            .session_mut(id)
            .and_then(|s| s.ignores.take())
            .unwrap_or_default();
        // Users who left are gone for good (a connection is never reused): forget them.
        list.retain(|c| self.session(*c).is_some());
        let added = !list.contains(&them);
        if added {
            list.push(them);
        }
        if let Some(sess) = self.session_mut(id) {
            sess.ignores = Some(list);
        }
        if !added {
            out.send(id, &s::already_ignored(target));
            return;
        }
        log_command(now, nick, &format!("/ignore @{target}"), out);
        out.send(id, &s::now_ignored(target));
    }

    /// `/unignore @target`.
    pub(super) fn unignore(
        &mut self,
        now: Now,
        id: ClientId,
        nick: &Nick,
        target: &str,
        out: &mut impl Outbox,
    ) {
        let Some(them) = self.ignore_target(now, id, target, out) else {
            return;
        };
        let removed = self
            .session_mut(id)
            .and_then(|s| s.ignores.as_mut())
            .and_then(|list| {
                let at = list.iter().position(|i| *i == them)?;
                list.swap_remove(at);
                Some(())
            });
        if removed.is_none() {
            self.refuse(now, id, &s::not_ignored(target), out);
            return;
        }
        if let Some(sess) = self.session_mut(id) {
            if sess.ignores.as_ref().is_some_and(|l| l.is_empty()) {
                sess.ignores = None;
            }
        }
        log_command(now, nick, &format!("/unignore @{target}"), out);
        out.send(id, &s::no_longer_ignored(target));
    }
}
