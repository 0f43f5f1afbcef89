//! A cluster entry: one state change in the shared stream, and its stream fields.
//!
//! A node proposes a [`Body`]; the appending script adds the origin (`n` node, `i`
//! incarnation, `m` msg_id, `ts` Redis's clock in ms) and gives it the stream id `0-<seq>`.
//! Field names are short because every entry is stored once per retained position and read
//! by every node. `k` is the kind; the other fields depend on it:
//!
//! | `k` | fields | written by |
//! |---|---|---|
//! | `msg` / `act` | `ch`, `nick`, `text` | append |
//! | `pm` | `from`, `to`, `text` | append |
//! | `ann` | `text` | append (REST broadcast) |
//! | `annc` | `ch`, `text` | append (REST broadcast to one channel) |
//! | `join` | `ch`, `nick` | append |
//! | `part` | `ch`, `nick`, `reason` | append |
//! | `quit` | `nick`, `reason` | append |
//! | `topic` | `ch`, `nick`, `topic` | append |
//! | `mod` | `actor`, `action`, `target`, `until` (ms, or ""), `reason` | append |
//! | `nick` | `nick` (as typed), `conn`, `old` (casefolded, or "") | nick_claim |
//! | `unnick` | `nick` (casefolded), `conn`, `reason` | nick_release |
//! | `away` | `nick`, `msg` (the away message; "" when back) | append |
//! | `node_up` | — | register |
//! | `node_down` | `node`, `inc` (the dead incarnation) | reap |

use crate::proto::resp::Frame;
use std::fmt;

/// One applied entry: position, origin and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Dense position in the stream, from 1; the stream id is `0-<seq>`.
    pub seq: u64,
    /// The node and incarnation whose (fenced) script appended it.
    pub node: Box<str>,
    pub incarnation: Box<str>,
    /// `node/incarnation/counter`; the de-duplication key.
    pub msg_id: Box<str>,
    /// Redis's clock when it was appended, ms since the Unix epoch.
    pub ts_ms: u64,
    pub body: Body,
}

/// What an entry says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Line {
        channel: Box<str>,
        nick: Box<str>,
        text: Box<str>,
    },
    Action {
        channel: Box<str>,
        nick: Box<str>,
        text: Box<str>,
    },
    Private {
        from: Box<str>,
        to: Box<str>,
        text: Box<str>,
    },
    Announcement {
        text: Box<str>,
    },
    /// A REST announcement to one channel's members.
    ChannelAnnouncement {
        channel: Box<str>,
        text: Box<str>,
    },
    Join {
        channel: Box<str>,
        nick: Box<str>,
    },
    Part {
        channel: Box<str>,
        nick: Box<str>,
        reason: Box<str>,
    },
    Quit {
        nick: Box<str>,
        reason: Box<str>,
    },
    Topic {
        channel: Box<str>,
        nick: Box<str>,
        topic: Box<str>,
    },
    /// A moderation act (SPEC §14): kick, ban, unban, mute, unmute.
    Moderation {
        actor: Box<str>,
        action: Box<str>,
        target: Box<str>,
        until_ms: Option<u64>,
        reason: Box<str>,
    },
    /// A nick claimed (and `old`, casefolded, released with it) by connection `conn`.
    Nick {
        nick: Box<str>,
        conn: Box<str>,
        old: Option<Box<str>>,
    },
    /// A casefolded nick released by its owner.
    Unnick {
        nick: Box<str>,
        conn: Box<str>,
        reason: Box<str>,
    },
    /// `/away` (with its message) or `/back` (None).
    Away {
        nick: Box<str>,
        message: Option<Box<str>>,
    },
    NodeUp,
    NodeDown {
        node: Box<str>,
        incarnation: Box<str>,
    },
}

/// Why stream fields are not an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    BadId(String),
    Missing(&'static str),
    NotUtf8(&'static str),
    UnknownKind(String),
    BadNumber(&'static str),
    Shape(&'static str),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::BadId(id) => write!(f, "stream id {id:?} is not 0-<seq>"),
            EntryError::Missing(k) => write!(f, "field {k:?} missing"),
            EntryError::NotUtf8(k) => write!(f, "field {k:?} is not UTF-8"),
            EntryError::UnknownKind(k) => write!(f, "unknown entry kind {k:?}"),
            EntryError::BadNumber(k) => write!(f, "field {k:?} is not a number"),
            EntryError::Shape(what) => write!(f, "stream reply: {what}"),
        }
    }
}

impl std::error::Error for EntryError {}

impl Body {
    /// The kind, as stored in `k`.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Line { .. } => "msg",
            Body::Action { .. } => "act",
            Body::Private { .. } => "pm",
            Body::Announcement { .. } => "ann",
            Body::ChannelAnnouncement { .. } => "annc",
            Body::Join { .. } => "join",
            Body::Part { .. } => "part",
            Body::Quit { .. } => "quit",
            Body::Topic { .. } => "topic",
            Body::Moderation { .. } => "mod",
            Body::Nick { .. } => "nick",
            Body::Unnick { .. } => "unnick",
            Body::Away { .. } => "away",
            Body::NodeUp => "node_up",
            Body::NodeDown { .. } => "node_down",
        }
    }

    /// The field/value pairs the append script stores (kind first), origin excluded.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let s = |v: &str| v.to_string();
        let mut out = vec![("k", self.kind().to_string())];
        match self {
            Body::Line {
                channel,
                nick,
                text,
            }
            | Body::Action {
                channel,
                nick,
                text,
            } => out.extend([("ch", s(channel)), ("nick", s(nick)), ("text", s(text))]),
            Body::Private { from, to, text } => {
                out.extend([("from", s(from)), ("to", s(to)), ("text", s(text))])
            }
            Body::Announcement { text } => out.push(("text", s(text))),
            Body::ChannelAnnouncement { channel, text } => {
                out.extend([("ch", s(channel)), ("text", s(text))])
            }
            Body::Join { channel, nick } => out.extend([("ch", s(channel)), ("nick", s(nick))]),
            Body::Part {
                channel,
                nick,
                reason,
            } => out.extend([("ch", s(channel)), ("nick", s(nick)), ("reason", s(reason))]),
            Body::Quit { nick, reason } => out.extend([("nick", s(nick)), ("reason", s(reason))]),
            Body::Topic {
                channel,
                nick,
                topic,
            } => out.extend([("ch", s(channel)), ("nick", s(nick)), ("topic", s(topic))]),
            Body::Moderation {
                actor,
                action,
                target,
                until_ms,
                reason,
            } => out.extend([
                ("actor", s(actor)),
                ("action", s(action)),
                ("target", s(target)),
                ("until", until_ms.map(|u| u.to_string()).unwrap_or_default()),
                ("reason", s(reason)),
            ]),
            Body::Nick { nick, conn, old } => out.extend([
                ("nick", s(nick)),
                ("conn", s(conn)),
                ("old", old.as_deref().map(s).unwrap_or_default()),
            ]),
            Body::Unnick { nick, conn, reason } => {
                out.extend([("nick", s(nick)), ("conn", s(conn)), ("reason", s(reason))])
            }
            Body::Away { nick, message } => out.extend([
                ("nick", s(nick)),
                ("msg", message.as_deref().map(s).unwrap_or_default()),
            ]),
            Body::NodeUp => {}
            Body::NodeDown { node, incarnation } => {
                out.extend([("node", s(node)), ("inc", s(incarnation))])
            }
        }
        out
    }

    fn from_fields(f: &Fields<'_>) -> Result<Body, EntryError> {
        let kind = f.get("k")?;
        Ok(match &*kind {
            "msg" => Body::Line {
                channel: f.get("ch")?,
                nick: f.get("nick")?,
                text: f.get("text")?,
            },
            "act" => Body::Action {
                channel: f.get("ch")?,
                nick: f.get("nick")?,
                text: f.get("text")?,
            },
            "pm" => Body::Private {
                from: f.get("from")?,
                to: f.get("to")?,
                text: f.get("text")?,
            },
            "ann" => Body::Announcement {
                text: f.get("text")?,
            },
            "annc" => Body::ChannelAnnouncement {
                channel: f.get("ch")?,
                text: f.get("text")?,
            },
            "join" => Body::Join {
                channel: f.get("ch")?,
                nick: f.get("nick")?,
            },
            "part" => Body::Part {
                channel: f.get("ch")?,
                nick: f.get("nick")?,
                reason: f.get("reason")?,
            },
            "quit" => Body::Quit {
                nick: f.get("nick")?,
                reason: f.get("reason")?,
            },
            "topic" => Body::Topic {
                channel: f.get("ch")?,
                nick: f.get("nick")?,
                topic: f.get("topic")?,
            },
            "mod" => Body::Moderation {
                actor: f.get("actor")?,
                action: f.get("action")?,
                target: f.get("target")?,
                until_ms: match &*f.get("until")? {
                    "" => None,
                    n => Some(n.parse().map_err(|_| EntryError::BadNumber("until"))?),
                },
                reason: f.get("reason")?,
            },
            "nick" => Body::Nick {
                nick: f.get("nick")?,
                conn: f.get("conn")?,
                old: Some(f.get("old")?).filter(|o| !o.is_empty()),
            },
            "unnick" => Body::Unnick {
                nick: f.get("nick")?,
                conn: f.get("conn")?,
                reason: f.get("reason")?,
            },
            "away" => Body::Away {
                nick: f.get("nick")?,
                message: Some(f.get("msg")?).filter(|m| !m.is_empty()),
            },
            "node_up" => Body::NodeUp,
            "node_down" => Body::NodeDown {
                node: f.get("node")?,
                incarnation: f.get("inc")?,
            },
            other => return Err(EntryError::UnknownKind(other.to_string())),
        })
    }
}

/// The seq of a stream id `0-<seq>`.
pub fn parse_stream_id(id: &[u8]) -> Result<u64, EntryError> {
    std::str::from_utf8(id)
        .ok()
        .and_then(|s| s.strip_prefix("0-"))
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&seq| seq > 0)
        .ok_or_else(|| EntryError::BadId(String::from_utf8_lossy(id).into_owned()))
}

/// Field/value pairs of one stream entry, looked up by name.
struct Fields<'a>(&'a [(&'a [u8], &'a [u8])]);

impl Fields<'_> {
    fn get(&self, key: &'static str) -> Result<Box<str>, EntryError> {
        let (_, v) = self
            .0
            .iter()
            .find(|(k, _)| *k == key.as_bytes())
            .ok_or(EntryError::Missing(key))?;
        std::str::from_utf8(v)
            .map(Into::into)
            .map_err(|_| EntryError::NotUtf8(key))
    }
}

impl Entry {
    /// An entry from its stream id and field/value pairs.
    pub fn from_stream(id: &[u8], pairs: &[(&[u8], &[u8])]) -> Result<Entry, EntryError> {
        let seq = parse_stream_id(id)?;
        let f = Fields(pairs);
        Ok(Entry {
            seq,
            node: f.get("n")?,
            incarnation: f.get("i")?,
            msg_id: f.get("m")?,
            ts_ms: f
                .get("ts")?
                .parse()
                .map_err(|_| EntryError::BadNumber("ts"))?,
            body: Body::from_fields(&f)?,
        })
    }

    /// An entry from one element of an `XRANGE` / `XREAD` reply: `[id, [f, v, f, v, ...]]`.
    pub fn from_frame(frame: &Frame) -> Result<Entry, EntryError> {
        let Frame::Array(parts) = frame else {
            return Err(EntryError::Shape("entry is not an array"));
        };
        let [Frame::BulkString(id), Frame::Array(kv)] = parts.as_slice() else {
            return Err(EntryError::Shape("entry is not [id, fields]"));
        };
        if kv.len() % 2 != 0 {
            return Err(EntryError::Shape("odd number of field values"));
        }
        let mut pairs = Vec::with_capacity(kv.len() / 2);
        for pair in kv.chunks_exact(2) {
            match pair {
                [Frame::BulkString(k), Frame::BulkString(v)] => pairs.push((&k[..], &v[..])),
                _ => return Err(EntryError::Shape("field or value is not a string")),
            }
        }
        Entry::from_stream(id, &pairs)
    }

    /// The stream fields as Redis stores them (origin first, as the script writes them).
    pub fn stream_fields(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("n", self.node.to_string()),
            ("i", self.incarnation.to_string()),
            ("m", self.msg_id.to_string()),
            ("ts", self.ts_ms.to_string()),
        ];
        out.extend(self.body.fields());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(s: &str) -> Box<str> {
        s.into()
    }

    fn samples() -> Vec<Body> {
        vec![
            Body::Line {
                channel: b("#x"),
                nick: b("bob"),
                text: b("hi ünïcode"),
            },
            Body::Action {
                channel: b("#x"),
                nick: b("bob"),
                text: b(""),
            },
            Body::Private {
                from: b("a"),
                to: b("b"),
                text: b("psst"),
            },
            Body::Announcement {
                text: b("down at 5"),
            },
            Body::ChannelAnnouncement {
                channel: b("#x"),
                text: b("down at 5"),
            },
            Body::Away {
                nick: b("bob"),
                message: Some(b("lunch")),
            },
            Body::Away {
                nick: b("bob"),
                message: None,
            },
            Body::Join {
                channel: b("#x"),
                nick: b("bob"),
            },
            Body::Part {
                channel: b("#x"),
                nick: b("bob"),
                reason: b("bye"),
            },
            Body::Quit {
                nick: b("bob"),
                reason: b("node failure"),
            },
            Body::Topic {
                channel: b("#x"),
                nick: b("bob"),
                topic: b("t"),
            },
            Body::Moderation {
                actor: b("@op"),
                action: b("ban"),
                target: b("10.0.0.0/8"),
                until_ms: Some(1_700_000_000_000),
                reason: b("spam"),
            },
            Body::Moderation {
                actor: b("api"),
                action: b("mute"),
                target: b("bob"),
                until_ms: None,
                reason: b(""),
            },
            Body::Nick {
                nick: b("Bob"),
                conn: b("17"),
                old: None,
            },
            Body::Nick {
                nick: b("Rob"),
                conn: b("17"),
                old: Some(b("bob")),
            },
            Body::Unnick {
                nick: b("rob"),
                conn: b("17"),
                reason: b("quit"),
            },
            Body::NodeUp,
            Body::NodeDown {
                node: b("n2"),
                incarnation: b("abc"),
            },
        ]
    }

    fn round_trip(e: &Entry) -> Result<Entry, EntryError> {
        let id = format!("0-{}", e.seq);
        let fields = e.stream_fields();
        let pairs: Vec<(&[u8], &[u8])> = fields
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        Entry::from_stream(id.as_bytes(), &pairs)
    }

    #[test]
    fn every_kind_round_trips_through_stream_fields() {
        for (n, body) in samples().into_iter().enumerate() {
            let e = Entry {
                seq: n as u64 + 1,
                node: b("n1"),
                incarnation: b("0123abcd"),
                msg_id: b("n1/0123abcd/9"),
                ts_ms: 1_733_450_000_123,
                body,
            };
            assert_eq!(round_trip(&e), Ok(e.clone()));
        }
    }

    #[test]
    fn round_trips_through_a_stream_reply_frame() {
        let e = Entry {
            seq: 42,
            node: b("n1"),
            incarnation: b("i"),
            msg_id: b("n1/i/1"),
            ts_ms: 5,
            body: samples().remove(0),
        };
        let kv = e
            .stream_fields()
            .into_iter()
            .flat_map(|(k, v)| [Frame::BulkString(k.into()), Frame::BulkString(v.into())])
            .collect();
        let frame = Frame::Array(vec![Frame::BulkString(b"0-42".to_vec()), Frame::Array(kv)]);
        assert_eq!(Entry::from_frame(&frame), Ok(e));
    }

    #[test]
    fn bad_entries_are_errors_not_panics() {
        assert_eq!(
            parse_stream_id(b"0-0"),
            Err(EntryError::BadId("0-0".into()))
        );
        assert!(parse_stream_id(b"1-5").is_err());
        assert!(parse_stream_id(b"0-x").is_err());
        assert_eq!(parse_stream_id(b"0-18446744073709551615"), Ok(u64::MAX));
        let base: Vec<(&[u8], &[u8])> =
            vec![(b"n", b"n1"), (b"i", b"i"), (b"m", b""), (b"ts", b"1")];
        let with = |extra: &[(&'static [u8], &'static [u8])]| {
            let mut p = base.clone();
            p.extend_from_slice(extra);
            Entry::from_stream(b"0-1", &p)
        };
        assert_eq!(with(&[]), Err(EntryError::Missing("k")));
        assert_eq!(
            with(&[(b"k", b"zap")]),
            Err(EntryError::UnknownKind("zap".into()))
        );
        assert_eq!(with(&[(b"k", b"msg")]), Err(EntryError::Missing("ch")));
        assert_eq!(
            with(&[(b"k", b"ann"), (b"text", b"\xff")]),
            Err(EntryError::NotUtf8("text"))
        );
        assert!(Entry::from_frame(&Frame::Null).is_err());
        assert!(Entry::from_frame(&Frame::Array(vec![
            Frame::BulkString(b"0-1".to_vec()),
            Frame::Array(vec![Frame::BulkString(b"k".to_vec())])
        ]))
        .is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn any_text_round_trips(seq in 1u64.., ch in ".{0,8}", nick in ".{0,8}", text in ".{0,40}", until in proptest::option::of(any::<u64>())) {
            for body in [
                Body::Line { channel: ch.clone().into(), nick: nick.clone().into(), text: text.clone().into() },
                Body::Moderation { actor: nick.clone().into(), action: ch.clone().into(), target: text.clone().into(), until_ms: until, reason: ch.clone().into() },
                Body::Nick { nick: nick.clone().into(), conn: ch.clone().into(), old: (!text.is_empty()).then(|| text.clone().into()) },
            ] {
                let e = Entry { seq, node: b("n"), incarnation: b("i"), msg_id: nick.clone().into(), ts_ms: seq, body };
                prop_assert_eq!(round_trip(&e), Ok(e.clone()));
            }
        }
    }
}
