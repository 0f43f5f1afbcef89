//! Typed chat events (SPEC §13): what the core says, with its fields and the rendered `line`
//! a text client gets. The core builds an [`Event`] once; the shell sends `line` to text
//! clients and the event's JSON object to WebSocket clients in JSON mode, so the two can
//! never disagree.

use super::history::Entry;
use crate::timefmt;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// One message, typed.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// Exactly what a text client receives (lines joined by `\n`).
    pub line: &'a str,
    /// The type and its fields.
    pub kind: EventKind<'a>,
}

/// A message said in a channel (`chat`, `action`).
#[derive(Clone, Copy, Debug)]
pub struct Said<'a> {
    /// The log record's sequence number.
    pub seq: u64,
    /// The log record's time, Unix milliseconds.
    pub ts_ms: i64,
    /// The channel, with `#`.
    pub channel: &'a str,
    /// Who said it.
    pub nick: &'a str,
    /// What was said.
    pub text: &'a str,
}

/// Someone joined or left a channel.
#[derive(Clone, Copy, Debug)]
pub struct Presence<'a> {
    /// The log record's sequence number.
    pub seq: u64,
    /// The log record's time, Unix milliseconds.
    pub ts_ms: i64,
    /// The channel, with `#`.
    pub channel: &'a str,
    /// Who.
    pub nick: &'a str,
}

/// A channel member, for `members` events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    /// The nickname.
    pub nick: &'a str,
    /// Whether the user is marked away.
    pub away: bool,
}

/// The member list of a `members` event: listed, or built only when the event is encoded
/// as JSON (a text client gets the `line` alone, so a join by a text client lists nobody).
#[derive(Clone, Copy)]
pub enum Members<'a> {
    /// The list, already built.
    Listed(&'a [Member<'a>]),
    /// Builds the list.
    Lazy(&'a dyn Fn() -> Vec<Member<'a>>),
}

impl std::fmt::Debug for Members<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Members::Listed(list) => f.debug_tuple("Listed").field(list).finish(),
            Members::Lazy(_) => f.write_str("Lazy"),
        }
    }
}

/// One entry of a `history` event: the remembered entry and its line as replayed.
#[derive(Clone, Debug)]
pub struct Replayed<'a> {
    /// The entry.
    pub entry: &'a Entry,
    /// Its line, with its original time.
    pub line: String,
}

/// The event types of SPEC §13 and their fields.
#[derive(Clone, Copy, Debug)]
pub enum EventKind<'a> {
    /// A chat line.
    Chat(Said<'a>),
    /// A `/me` action.
    Action(Said<'a>),
    /// A private message (the sender's copy and the recipient's differ only in `line`).
    Private {
        /// Sequence number.
        seq: u64,
        /// Unix milliseconds.
        ts_ms: i64,
        /// Sender.
        from: &'a str,
        /// Recipient.
        to: &'a str,
        /// Text.
        text: &'a str,
    },
    /// An administrator's announcement; `channel` is `None` when it went to everyone.
    Announcement {
        /// Sequence number.
        seq: u64,
        /// Unix milliseconds.
        ts_ms: i64,
        /// The channel it went to.
        channel: Option<&'a str>,
        /// Text.
        text: &'a str,
    },
    /// Someone joined a channel.
    Join(Presence<'a>),
    /// Someone left a channel.
    Leave(Presence<'a>),
    /// Someone changed nickname.
    Nick {
        /// Sequence number.
        seq: u64,
        /// Unix milliseconds.
        ts_ms: i64,
        /// The old nickname.
        old: &'a str,
        /// The new nickname.
        new: &'a str,
    },
    /// A channel's topic was set.
    Topic {
        /// Sequence number.
        seq: u64,
        /// Unix milliseconds.
        ts_ms: i64,
        /// Channel.
        channel: &'a str,
        /// Who set it.
        nick: &'a str,
        /// The topic.
        topic: &'a str,
    },
    /// A channel's members (to the joiner, and for `/list`).
    Members {
        /// Channel.
        channel: &'a str,
        /// Members in channel order.
        members: Members<'a>,
    },
    /// A history replay block.
    History {
        /// Channel.
        channel: &'a str,
        /// Whether every entry after the requested `since` is included.
        complete: bool,
        /// Entries, oldest first.
        entries: &'a [Replayed<'a>],
    },
    /// Anything else: greetings, errors, help.
    Notice,
}

impl<'a> Event<'a> {
    /// A `notice` event.
    pub fn notice(line: &'a str) -> Event<'a> {
        Event {
            line,
            kind: EventKind::Notice,
        }
    }

    /// The `type` field.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            EventKind::Chat(_) => "chat",
            EventKind::Action(_) => "action",
            EventKind::Private { .. } => "private",
            EventKind::Announcement { .. } => "announcement",
            EventKind::Join(_) => "join",
            EventKind::Leave(_) => "leave",
            EventKind::Nick { .. } => "nick",
            EventKind::Topic { .. } => "topic",
            EventKind::Members { .. } => "members",
            EventKind::History { .. } => "history",
            EventKind::Notice => "notice",
        }
    }

    /// Appends the event's JSON object to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serializing these types into a Vec cannot fail.
        let _ = serde_json::to_writer(out, self);
    }

    /// The event's JSON object as a string.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `ts` as RFC 3339 UTC with milliseconds.
struct Ts(i64);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&timefmt::rfc3339_ms(self.0))
    }
}

fn stamp<M: SerializeMap>(m: &mut M, seq: u64, ts_ms: i64) -> Result<(), M::Error> {
    m.serialize_entry("seq", &seq)?;
    m.serialize_entry("ts", &Ts(ts_ms))
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", self.type_name())?;
        match self.kind {
            EventKind::Chat(said) | EventKind::Action(said) => {
                stamp(&mut m, said.seq, said.ts_ms)?;
                m.serialize_entry("channel", said.channel)?;
                m.serialize_entry("nick", said.nick)?;
                m.serialize_entry("text", said.text)?;
            }
            EventKind::Private {
                seq,
                ts_ms,
                from,
                to,
                text,
            } => {
                stamp(&mut m, seq, ts_ms)?;
                m.serialize_entry("from", from)?;
                m.serialize_entry("to", to)?;
                m.serialize_entry("text", text)?;
            }
            EventKind::Announcement {
                seq,
                ts_ms,
                channel,
                text,
            } => {
                stamp(&mut m, seq, ts_ms)?;
                m.serialize_entry("channel", &channel)?;
                m.serialize_entry("text", text)?;
            }
            EventKind::Join(p) | EventKind::Leave(p) => {
                stamp(&mut m, p.seq, p.ts_ms)?;
                m.serialize_entry("channel", p.channel)?;
                m.serialize_entry("nick", p.nick)?;
            }
            EventKind::Nick {
                seq,
                ts_ms,
                old,
                new,
            } => {
                stamp(&mut m, seq, ts_ms)?;
                m.serialize_entry("old", old)?;
                m.serialize_entry("new", new)?;
            }
            EventKind::Topic {
                seq,
                ts_ms,
                channel,
                nick,
                topic,
            } => {
                stamp(&mut m, seq, ts_ms)?;
                m.serialize_entry("channel", channel)?;
                m.serialize_entry("nick", nick)?;
                m.serialize_entry("topic", topic)?;
            }
            EventKind::Members { channel, members } => {
                m.serialize_entry("channel", channel)?;
                match members {
                    Members::Listed(list) => m.serialize_entry("members", &MemberList(list))?,
                    Members::Lazy(build) => m.serialize_entry("members", &MemberList(&build()))?,
                }
            }
            EventKind::History {
                channel,
                complete,
                entries,
            } => {
                m.serialize_entry("channel", channel)?;
                m.serialize_entry("complete", &complete)?;
                m.serialize_entry("entries", &ReplayList { channel, entries })?;
            }
            EventKind::Notice => {}
        }
        m.serialize_entry("line", self.line)?;
        m.end()
    }
}

struct MemberList<'a>(&'a [Member<'a>]);

impl Serialize for MemberList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| MemberObj(*m)))
    }
}

struct MemberObj<'a>(Member<'a>);

impl Serialize for MemberObj<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("nick", self.0.nick)?;
        m.serialize_entry("away", &self.0.away)?;
        m.end()
    }
}

struct ReplayList<'a> {
    channel: &'a str,
    entries: &'a [Replayed<'a>],
}

impl Serialize for ReplayList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.entries.iter().map(|r| r.as_event(self.channel)))
    }
}

impl Replayed<'_> {
    /// The entry as the event it was when it happened (with its replayed line).
    pub fn as_event<'b>(&'b self, channel: &'b str) -> Event<'b> {
        use super::history::EntryKind;
        let e = self.entry;
        let said = Said {
            seq: e.seq,
            ts_ms: e.ts_ms,
            channel,
            nick: e.nick(),
            text: e.text(),
        };
        let kind = match e.kind() {
            EntryKind::Chat => EventKind::Chat(said),
            EntryKind::Action => EventKind::Action(said),
            EntryKind::Announcement => EventKind::Announcement {
                seq: e.seq,
                ts_ms: e.ts_ms,
                channel: Some(channel),
                text: e.text(),
            },
            EntryKind::Topic => EventKind::Topic {
                seq: e.seq,
                ts_ms: e.ts_ms,
                channel,
                nick: e.nick(),
                topic: e.text(),
            },
        };
        Event {
            line: &self.line,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Entry, EntryKind};

    /// 2026-11-27T15:04:05.123Z
    const T: i64 = 1_795_791_845_123;

    fn golden<'a>(line: &'a str, kind: EventKind<'a>, want: &str) {
        let event = Event { line, kind };
        assert_eq!(event.to_json(), want);
        let value: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(value["line"], line);
        assert_eq!(value["type"], event.type_name());
    }

    fn said(text: &str) -> Said<'_> {
        Said {
            seq: 7,
            ts_ms: T,
            channel: "#g",
            nick: "alice",
            text,
        }
    }

    #[test]
    fn golden_chat_and_action() {
        golden(
            "3:04PM-@alice: hi \"you\"",
            EventKind::Chat(said("hi \"you\"")),
            r##"{"type":"chat","seq":7,"ts":"2026-11-27T15:04:05.123Z","channel":"#g","nick":"alice","text":"hi \"you\"","line":"3:04PM-@alice: hi \"you\""}"##,
        );
        golden(
            "3:04PM-* @alice waves",
            EventKind::Action(said("waves")),
            r##"{"type":"action","seq":7,"ts":"2026-11-27T15:04:05.123Z","channel":"#g","nick":"alice","text":"waves","line":"3:04PM-* @alice waves"}"##,
        );
    }

    #[test]
    fn golden_private_and_announcement() {
        golden(
            "3:04PM - *Private from @bob: psst",
            EventKind::Private {
                seq: 8,
                ts_ms: T,
                from: "bob",
                to: "alice",
                text: "psst",
            },
            r##"{"type":"private","seq":8,"ts":"2026-11-27T15:04:05.123Z","from":"bob","to":"alice","text":"psst","line":"3:04PM - *Private from @bob: psst"}"##,
        );
        golden(
            "Public Server Announcement: noon",
            EventKind::Announcement {
                seq: 9,
                ts_ms: T,
                channel: None,
                text: "noon",
            },
            r##"{"type":"announcement","seq":9,"ts":"2026-11-27T15:04:05.123Z","channel":null,"text":"noon","line":"Public Server Announcement: noon"}"##,
        );
    }

    #[test]
    fn golden_join_leave_nick_topic() {
        let who = Presence {
            seq: 10,
            ts_ms: T,
            channel: "#g",
            nick: "bob",
        };
        golden(
            "3:04PM-@bob just joined channel #g",
            EventKind::Join(who),
            r##"{"type":"join","seq":10,"ts":"2026-11-27T15:04:05.123Z","channel":"#g","nick":"bob","line":"3:04PM-@bob just joined channel #g"}"##,
        );
        golden(
            "3:04PM-@bob left channel #g",
            EventKind::Leave(who),
            r##"{"type":"leave","seq":10,"ts":"2026-11-27T15:04:05.123Z","channel":"#g","nick":"bob","line":"3:04PM-@bob left channel #g"}"##,
        );
        golden(
            "3:04PM-@bob is now known as @rob",
            EventKind::Nick {
                seq: 11,
                ts_ms: T,
                old: "bob",
                new: "rob",
            },
            r##"{"type":"nick","seq":11,"ts":"2026-11-27T15:04:05.123Z","old":"bob","new":"rob","line":"3:04PM-@bob is now known as @rob"}"##,
        );
        golden(
            "3:04PM-@rob set the topic of #g: Rust",
            EventKind::Topic {
                seq: 12,
                ts_ms: T,
                channel: "#g",
                nick: "rob",
                topic: "Rust",
            },
            r##"{"type":"topic","seq":12,"ts":"2026-11-27T15:04:05.123Z","channel":"#g","nick":"rob","topic":"Rust","line":"3:04PM-@rob set the topic of #g: Rust"}"##,
        );
    }

    #[test]
    fn golden_members_history_notice() {
        let members = [
            Member {
                nick: "alice",
                away: false,
            },
            Member {
                nick: "bob",
                away: true,
            },
        ];
        golden(
            "There are 1 other users in this channel.",
            EventKind::Members {
                channel: "#g",
                members: Members::Listed(&members),
            },
            r##"{"type":"members","channel":"#g","members":[{"nick":"alice","away":false},{"nick":"bob","away":true}],"line":"There are 1 other users in this channel."}"##,
        );
        let build = || members.to_vec();
        golden(
            "There are 1 other users in this channel.",
            EventKind::Members {
                channel: "#g",
                members: Members::Lazy(&build),
            },
            r##"{"type":"members","channel":"#g","members":[{"nick":"alice","away":false},{"nick":"bob","away":true}],"line":"There are 1 other users in this channel."}"##,
        );
        let chat = Entry::new(EntryKind::Chat, 3, T, "alice", "hi");
        let topic = Entry::new(EntryKind::Topic, 4, T, "bob", "Rust");
        let entries = [
            Replayed {
                entry: &chat,
                line: "3:04PM-@alice: hi".into(),
            },
            Replayed {
                entry: &topic,
                line: "3:04PM-@bob set the topic of #g: Rust".into(),
            },
        ];
        golden(
            "Recent messages in #g:\n3:04PM-@alice: hi\n3:04PM-@bob set the topic of #g: Rust\nEnd of recent messages.",
            EventKind::History {
                channel: "#g",
                complete: false,
                entries: &entries,
            },
            concat!(
                r##"{"type":"history","channel":"#g","complete":false,"entries":["##,
                r##"{"type":"chat","seq":3,"ts":"2026-11-27T15:04:05.123Z","channel":"#g","nick":"alice","text":"hi","line":"3:04PM-@alice: hi"},"##,
                r##"{"type":"topic","seq":4,"ts":"2026-11-27T15:04:05.123Z","channel":"#g","nick":"bob","topic":"Rust","line":"3:04PM-@bob set the topic of #g: Rust"}],"##,
                r##""line":"Recent messages in #g:\n3:04PM-@alice: hi\n3:04PM-@bob set the topic of #g: Rust\nEnd of recent messages."}"##
            ),
        );
        golden(
            "Thanks alice, now please type /join #channel",
            EventKind::Notice,
            r##"{"type":"notice","line":"Thanks alice, now please type /join #channel"}"##,
        );
    }
}
