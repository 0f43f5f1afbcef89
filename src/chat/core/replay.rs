//! History in the core (SPEC §12): the replay on `/join`, `/history`, the REST view of a
//! ring, and rebuilding the rings and topics from log records at start-up.

use super::super::event::{Event, EventKind, Replayed};
use super::super::history::{Entry, EntryKind, Ring};
use super::super::strings as s;
use super::{log_command, ChatCore};
use crate::chat::command::is_valid_channel;
use crate::chat::{ClientId, Now, Outbox};
use crate::record::Record;

/// Entries `/history` shows without a number.
const HISTORY_DEFAULT: usize = 20;

impl ChatCore {
    /// Feeds one log record read at start-up (in log order) to the core: the messages that
    /// belong in a channel's history (chat, action, channel announcement, topic change) go
    /// into its ring, and a topic change sets the channel's topic. Other records are ignored.
    pub fn restore(&mut self, seq: u64, ts_ms: i64, record: &Record<'_>) {
        let (channel, entry) = match record {
            Record::Chat {
                nick,
                channel,
                text,
            } => (channel, Entry::new(EntryKind::Chat, seq, ts_ms, nick, text)),
            Record::Action {
                nick,
                channel,
                text,
            } => (
                channel,
                Entry::new(EntryKind::Action, seq, ts_ms, nick, text),
            ),
            Record::Announcement {
                text,
                channel: Some(channel),
                ..
            } => (
                channel,
                Entry::new(EntryKind::Announcement, seq, ts_ms, "", text),
            ),
            Record::Topic {
                nick,
                channel,
                topic,
            } => {
                self.restore_topic(channel, topic);
                (
                    channel,
                    Entry::new(EntryKind::Topic, seq, ts_ms, nick, topic),
                )
            }
            _ => return,
        };
        if is_valid_channel(channel) {
            self.history.push(channel, entry);
        }
    }

    /// The start-up scan began at the record with this `seq` (not at the start of the log):
    /// entries before it are unknown, so a `since` older than it is not complete.
    pub fn restore_started_at(&mut self, seq: u64) {
        self.history.scan_started_at(seq);
    }

    /// The ring of a channel (any case), for the REST history endpoint.
    pub fn history_of(&self, channel: &str) -> Option<&Ring> {
        self.history.ring(channel)
    }

    /// Entries each ring keeps.
    pub fn history_size(&self) -> usize {
        self.history.size()
    }

    /// After `There are N other users in this channel.`: the last `history_on_join` entries,
    /// or every entry after `since`, as one block.
    pub(super) fn replay_on_join(
        &mut self,
        now: Now,
        id: ClientId,
        channel: &str,
        since: Option<u64>,
        out: &mut impl Outbox,
    ) {
        let Some(ring) = self.history.ring(channel) else {
            // Nothing remembered. After a `since`, tell the user when something may be
            // missing (the channel's older history was not kept).
            if since.is_some_and(|after| !self.history.complete_without_ring(after)) {
                let block = empty_block(channel);
                out.publish(&[id], &history_event(channel, false, &[], &block));
            }
            return;
        };
        let (entries, complete): (Vec<&Entry>, bool) = match since {
            Some(after) => {
                let (iter, complete) = ring.since(after);
                (iter.collect(), complete)
            }
            None => (ring.last(self.config.history_on_join).collect(), true),
        };
        if entries.is_empty() {
            if !complete {
                let block = empty_block(&ring.name);
                out.publish(&[id], &history_event(&ring.name, false, &[], &block));
            }
            return;
        }
        let replayed = render(&entries, &ring.name, now);
        let mut block = s::recent_header(&ring.name);
        push_lines(&mut block, &replayed);
        block.push('\n');
        block.push_str(s::RECENT_FOOTER);
        let event = history_event(&ring.name, complete, &replayed, &block);
        out.publish(&[id], &event);
    }

    /// `/history [N]`.
    pub(super) fn history_command(
        &mut self,
        now: Now,
        id: ClientId,
        nick: &str,
        n: Option<usize>,
        out: &mut impl Outbox,
    ) {
        let channel = self
            .session(id)
            .and_then(|sess| sess.channel)
            .and_then(|ch| self.channels.get(ch as usize))
            .map(|c| c.name.clone());
        let Some(channel) = channel else {
            self.log_error(now, id, s::NOT_IN_CHANNEL, out);
            out.send(id, s::NOT_IN_CHANNEL);
            return;
        };
        let n = n.unwrap_or(HISTORY_DEFAULT).min(self.history.size());
        log_command(now, nick, &format!("/history {n}"), out);
        let entries: Vec<&Entry> = self
            .history
            .ring(&channel)
            .map(|ring| ring.last(n).collect())
            .unwrap_or_default();
        if entries.is_empty() {
            let line = s::history_empty(&channel);
            out.publish(&[id], &history_event(&channel, true, &[], &line));
            return;
        }
        let replayed = render(&entries, &channel, now);
        let mut block = s::history_header(replayed.len(), &channel);
        push_lines(&mut block, &replayed);
        block.push('\n');
        block.push_str(s::HISTORY_FOOTER);
        out.publish(&[id], &history_event(&channel, true, &replayed, &block));
    }
}

fn render<'a>(entries: &[&'a Entry], channel: &str, now: Now) -> Vec<Replayed<'a>> {
    entries
        .iter()
        .map(|entry| Replayed {
            entry,
            line: entry.render(channel, now.unix_ms, now.utc_offset_s),
        })
        .collect()
}

/// A replay block with nothing in it.
fn empty_block(channel: &str) -> String {
    format!("{}\n{}", s::recent_header(channel), s::RECENT_FOOTER)
}

fn push_lines(block: &mut String, replayed: &[Replayed<'_>]) {
    for r in replayed {
        block.push('\n');
        block.push_str(&r.line);
    }
}

fn history_event<'a>(
    channel: &'a str,
    complete: bool,
    entries: &'a [Replayed<'a>],
    line: &'a str,
) -> Event<'a> {
    Event {
        line,
        kind: EventKind::History {
            channel,
            complete,
            entries,
        },
    }
}
