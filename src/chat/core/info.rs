//! `/channels` and `/motd`: what the server has to offer.

use super::{log_command, ChatCore};
use crate::chat::strings as s;
use crate::chat::{ClientId, Now, Outbox};

/// The most channels `/channels` lists; the rest are counted.
pub(in crate::chat) const MAX_LISTED: usize = 100;

impl ChatCore {
    /// Sets the message of the day (`None`, or only blank lines: none). Line breaks may be
    /// `\n` or `\r\n`; trailing blank lines are dropped.
    pub fn set_motd(&mut self, motd: Option<&str>) {
        self.motd = motd
            .map(|m| m.replace("\r\n", "\n").replace('\r', "\n"))
            .map(|m| m.trim_end().to_owned())
            .filter(|m| !m.trim().is_empty())
            .map(String::into_boxed_str);
    }

    /// `/channels`: every channel with members, sorted by name, with counts and topics.
    pub(super) fn list_channels(
        &mut self,
        now: Now,
        id: ClientId,
        nick: &str,
        out: &mut impl Outbox,
    ) {
        let mut channels: Vec<_> = self.channels.iter().map(|(_, c)| c).collect();
        channels.sort_by_cached_key(|c| (c.name.to_ascii_lowercase(), c.name.clone()));
        let text = if channels.is_empty() {
            s::NO_CHANNELS.to_string()
        } else {
            let mut text = String::from(s::CHANNELS_HEADER);
            let more = channels.len().saturating_sub(MAX_LISTED);
            for c in channels.into_iter().take(MAX_LISTED) {
                text.push('\n');
                text.push_str(&s::channel_entry(
                    &c.name,
                    c.members.len() + c.remote.len(),
                    c.topic.as_deref(),
                ));
            }
            if more > 0 {
                text.push('\n');
                text.push_str(&s::more_channels(more));
            }
            text
        };
        log_command(now, nick, "/channels", out);
        out.send(id, &text);
    }
}
