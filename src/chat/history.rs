//! Per-channel history (SPEC §12): a ring of the last `history_size` entries of each channel
//! (chat, action, channel announcement, topic change), at most `history_channels` rings, the
//! least recently active dropped first. Rings outlive an empty channel.
//!
//! An entry is compact: its sequence number, its time and one allocation holding the kind,
//! the nickname and the text. The live line is rendered from it on demand, so a replay shows
//! exactly what the channel saw, with the original time.

use super::strings as s;
use crate::timefmt;
use std::collections::{HashMap, VecDeque};

/// What an entry is. New kinds slot in with one variant, one tag byte and one render arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A chat line: `<K>-@nick: text`.
    Chat,
    /// `/me`: `<K>-* @nick text`.
    Action,
    /// A REST announcement to the channel: `Public Server Announcement: text` (no nick).
    Announcement,
    /// A topic change: `<K>-@nick set the topic of #c: text`.
    Topic,
}

impl EntryKind {
    fn tag(self) -> char {
        match self {
            EntryKind::Chat => 'c',
            EntryKind::Action => 'a',
            EntryKind::Announcement => 'n',
            EntryKind::Topic => 't',
        }
    }

    fn from_tag(tag: u8) -> EntryKind {
        match tag {
            b'a' => EntryKind::Action,
            b'n' => EntryKind::Announcement,
            b't' => EntryKind::Topic,
            _ => EntryKind::Chat,
        }
    }

    /// The record `kind` and the JSON event `type` of this entry.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Chat => "chat",
            EntryKind::Action => "action",
            EntryKind::Announcement => "announcement",
            EntryKind::Topic => "topic",
        }
    }
}

/// Nicknames longer than this (only possible in a hand-edited log) are cut to it.
const MAX_NICK_BYTES: usize = 127;

/// One remembered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The log record's sequence number.
    pub seq: u64,
    /// The log record's time, Unix milliseconds.
    pub ts_ms: i64,
    /// The kind's tag, the nickname's length (both one ASCII byte), the nickname, the text.
    data: Box<str>,
}

impl Entry {
    /// A new entry; one allocation.
    pub fn new(kind: EntryKind, seq: u64, ts_ms: i64, nick: &str, text: &str) -> Entry {
        let mut cut = nick.len().min(MAX_NICK_BYTES);
        while !nick.is_char_boundary(cut) {
            cut -= 1;
        }
        let nick = &nick[..cut];
        let mut data = String::with_capacity(2 + nick.len() + text.len());
        data.push(kind.tag());
        data.push(char::from(cut as u8));
        data.push_str(nick);
        data.push_str(text);
        Entry {
            seq,
            ts_ms,
            data: data.into_boxed_str(),
        }
    }

    /// The entry's kind.
    pub fn kind(&self) -> EntryKind {
        EntryKind::from_tag(self.data.as_bytes().first().copied().unwrap_or(b'c'))
    }

    fn nick_end(&self) -> usize {
        2 + usize::from(self.data.as_bytes().get(1).copied().unwrap_or(0))
    }

    /// Who said it (empty for announcements).
    pub fn nick(&self) -> &str {
        self.data.get(2..self.nick_end()).unwrap_or_default()
    }

    /// The text (the topic, for a topic change).
    pub fn text(&self) -> &str {
        self.data.get(self.nick_end()..).unwrap_or_default()
    }

    /// The live line as the channel saw it, at its original time (local offset
    /// `utc_offset_s`), prefixed by the date (`Jan 2 `) when it is not from the day of
    /// `today_ms`.
    pub fn render(&self, channel: &str, today_ms: i64, utc_offset_s: i32) -> String {
        let mut time = String::new();
        if timefmt::local_day(self.ts_ms, utc_offset_s)
            != timefmt::local_day(today_ms, utc_offset_s)
        {
            time.push_str(&timefmt::month_day(self.ts_ms, utc_offset_s));
            time.push(' ');
        }
        time.push_str(&timefmt::kitchen(self.ts_ms, utc_offset_s));
        match self.kind() {
            EntryKind::Chat => s::chat(&time, self.nick(), self.text()),
            EntryKind::Action => s::action(&time, self.nick(), self.text()),
            EntryKind::Announcement => s::announcement(self.text()),
            EntryKind::Topic => s::topic_set(&time, self.nick(), channel, self.text()),
        }
    }
}

/// One channel's ring.
#[derive(Debug)]
pub struct Ring {
    /// The channel's name as last written (with `#`).
    pub name: Box<str>,
    entries: VecDeque<Entry>,
    /// Every entry of this channel with `seq >= known_from` is in the ring (or was never
    /// written); older ones may have been dropped.
    known_from: u64,
}

impl Ring {
    /// The newest `n` entries, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .skip(self.entries.len().saturating_sub(n))
    }

    /// Entries with `seq > after`, oldest first, and whether that is every such entry.
    pub fn since(&self, after: u64) -> (impl Iterator<Item = &Entry>, bool) {
        let start = self.entries.partition_point(|e| e.seq <= after);
        (
            self.entries.iter().skip(start),
            self.known_from <= after.saturating_add(1),
        )
    }

    /// Entries with `seq < before`, the newest `n` of them, oldest first.
    pub fn before(&self, before: u64, n: usize) -> impl Iterator<Item = &Entry> {
        let end = self.entries.partition_point(|e| e.seq < before);
        self.entries.range(end.saturating_sub(n)..end)
    }

    /// How many entries the ring holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the ring holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn last_seq(&self) -> u64 {
        self.entries.back().map_or(0, |e| e.seq)
    }
}

/// All channels' rings.
#[derive(Debug)]
pub struct History {
    size: usize,
    max_channels: usize,
    /// Lower-cased channel name → ring.
    rings: HashMap<Box<str>, Ring>,
    /// A ring made now may have missed entries before this seq: entries before the start-up
    /// scan window, and those of rings dropped to make room.
    known_from: u64,
}

impl History {
    /// Rings of `size` entries, at most `max_channels` of them (both at least 1).
    pub fn new(size: usize, max_channels: usize) -> History {
        History {
            size: size.max(1),
            max_channels: max_channels.max(1),
            rings: HashMap::new(),
            known_from: 0,
        }
    }

    /// Entries per ring.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The start-up scan began at the record with this seq: older entries are unknown.
    pub fn scan_started_at(&mut self, seq: u64) {
        self.known_from = self.known_from.max(seq);
        for ring in self.rings.values_mut() {
            ring.known_from = ring.known_from.max(seq);
        }
    }

    /// The ring of `channel` (any case), if it has one.
    pub fn ring(&self, channel: &str) -> Option<&Ring> {
        lowered(channel, |key| self.rings.get(key))
    }

    /// Whether entries after `after` in `channel` are all known (see [`Ring::since`]) for a
    /// channel without a ring.
    pub fn complete_without_ring(&self, after: u64) -> bool {
        self.known_from <= after.saturating_add(1)
    }

    /// Remembers one message of `channel`.
    pub fn push(&mut self, channel: &str, entry: Entry) {
        let size = self.size;
        let known = lowered(channel, |key| self.rings.contains_key(key));
        if !known {
            if self.rings.len() >= self.max_channels {
                self.drop_least_active();
            }
            let ring = Ring {
                name: channel.into(),
                entries: VecDeque::new(),
                known_from: self.known_from,
            };
            self.rings
                .insert(channel.to_ascii_lowercase().into_boxed_str(), ring);
        }
        let Some(ring) = lowered(channel, |key| self.rings.get_mut(key)) else {
            return;
        };
        if *ring.name != *channel {
            ring.name = channel.into();
        }
        if ring.entries.len() >= size {
            if let Some(old) = ring.entries.pop_front() {
                ring.known_from = ring.known_from.max(old.seq.saturating_add(1));
            }
        } else if ring.entries.len() == ring.entries.capacity() {
            // Grow by doubling, but never past the ring's size.
            let want = (ring.entries.len() * 2).max(4).min(size);
            ring.entries.reserve_exact(want - ring.entries.len());
        }
        ring.entries.push_back(entry);
    }

    fn drop_least_active(&mut self) {
        let Some(key) = self
            .rings
            .iter()
            .min_by_key(|(_, r)| r.last_seq())
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        if let Some(ring) = self.rings.remove(&key) {
            self.known_from = self.known_from.max(ring.last_seq().saturating_add(1));
        }
    }

    /// How many rings are kept.
    pub fn channels(&self) -> usize {
        self.rings.len()
    }
}

/// Calls `f` with `channel` in lower case, without allocating for a name of a usual length.
fn lowered<R>(channel: &str, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 64];
    match buf.get_mut(..channel.len()) {
        Some(key) => {
            key.copy_from_slice(channel.as_bytes());
            key.make_ascii_lowercase();
            // Lower-casing ASCII letters keeps UTF-8 valid.
            f(std::str::from_utf8(key).unwrap_or_default())
        }
        None => f(&channel.to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-27 15:04:05 UTC.
    const T: i64 = 1_795_791_845_000;

    fn chat(seq: u64, text: &str) -> Entry {
        Entry::new(EntryKind::Chat, seq, T, "alice", text)
    }

    #[test]
    fn an_entry_is_one_allocation_and_renders_its_live_line() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
        let e = Entry::new(EntryKind::Chat, 7, T, "alice", "hi there");
        assert_eq!(
            (e.kind(), e.nick(), e.text()),
            (EntryKind::Chat, "alice", "hi there")
        );
        assert_eq!(e.render("#g", T, 0), "3:04PM-@alice: hi there");
        assert_eq!(
            e.render("#g", T + 86_400_000, 0),
            "Nov 27 3:04PM-@alice: hi there"
        );
        let a = Entry::new(EntryKind::Action, 8, T, "bob", "waves");
        assert_eq!(a.render("#g", T, 3600), "4:04PM-* @bob waves");
        let n = Entry::new(EntryKind::Announcement, 9, T, "", "maintenance");
        assert_eq!(n.nick(), "");
        assert_eq!(
            n.render("#g", T, 0),
            "Public Server Announcement: maintenance"
        );
        let t = Entry::new(EntryKind::Topic, 10, T, "bob", "Rust only");
        assert_eq!(
            t.render("#g", T, 0),
            "3:04PM-@bob set the topic of #g: Rust only"
        );
    }

    #[test]
    fn the_oldest_entry_leaves_a_full_ring() {
        let mut h = History::new(3, 10);
        for seq in 1..=5 {
            h.push("#G", chat(seq, &format!("m{seq}")));
        }
        let ring = h.ring("#g").unwrap();
        let texts: Vec<&str> = ring.last(10).map(Entry::text).collect();
        assert_eq!(texts, ["m3", "m4", "m5"]);
        assert_eq!(ring.last(2).map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert!(
            ring.entries.capacity() <= 4,
            "a ring never grows past its size"
        );
        let (since, complete) = ring.since(3);
        assert_eq!(since.map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert!(complete);
        let (since, complete) = ring.since(1);
        assert_eq!(since.count(), 3);
        assert!(!complete, "seq 2 left the ring");
        assert_eq!(ring.before(5, 1).map(|e| e.seq).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn the_least_recently_active_ring_is_dropped_first() {
        let mut h = History::new(5, 2);
        h.push("#a", chat(1, "a"));
        h.push("#b", chat(2, "b"));
        h.push("#a", chat(3, "a again"));
        h.push("#c", chat(4, "c"));
        assert_eq!(h.channels(), 2);
        assert!(h.ring("#b").is_none());
        assert!(h.ring("#a").is_some() && h.ring("#c").is_some());
        // #b comes back without knowing what it lost.
        assert!(!h.complete_without_ring(0));
        h.push("#b", chat(5, "b again"));
        assert!(h.ring("#a").is_none(), "#a (last active at 3) made room");
        let b = h.ring("#b").unwrap();
        assert!(!b.since(0).1 && !b.since(2).1);
        assert!(b.since(3).1);
    }

    #[test]
    fn a_scan_window_makes_older_entries_unknown() {
        let mut h = History::new(5, 5);
        h.scan_started_at(100);
        h.push("#a", chat(120, "x"));
        assert!(!h.ring("#a").unwrap().since(50).1);
        assert!(h.ring("#a").unwrap().since(99).1);
    }
}
