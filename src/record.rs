//! The chat log's data model: one [`Record`] per event, written as one JSON object per line.
//!
//! The core produces records, the log store writes them (adding `ts` and `seq`), and the log
//! query reads them back. JSON escaping means no user input can forge or split a record.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// One event in the chat log. Serialized with a `kind` tag, e.g.
/// `{"kind":"chat","nick":"alice","channel":"#general","text":"hi"}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record<'a> {
    /// The server started listening.
    ServerStart {
        #[serde(borrow)]
        version: Cow<'a, str>,
    },
    /// The server is stopping.
    ServerStop {
        #[serde(borrow)]
        reason: Cow<'a, str>,
    },
    /// A connection was accepted.
    Connect {
        conn: u64,
        #[serde(borrow)]
        transport: Cow<'a, str>,
        #[serde(borrow)]
        peer: Cow<'a, str>,
    },
    /// A connection was closed.
    Close {
        conn: u64,
        #[serde(borrow)]
        peer: Cow<'a, str>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        nick: Option<Cow<'a, str>>,
        #[serde(borrow)]
        reason: Cow<'a, str>,
    },
    /// A connection chose its nickname.
    Nick {
        conn: u64,
        #[serde(borrow)]
        nick: Cow<'a, str>,
    },
    /// A user joined a channel.
    Join {
        #[serde(borrow)]
        nick: Cow<'a, str>,
        #[serde(borrow)]
        channel: Cow<'a, str>,
    },
    /// A user left a channel (by `/join`ing another, `/quit`, or disconnecting).
    Leave {
        #[serde(borrow)]
        nick: Cow<'a, str>,
        #[serde(borrow)]
        channel: Cow<'a, str>,
    },
    /// A command that was executed successfully.
    Command {
        #[serde(borrow)]
        nick: Cow<'a, str>,
        #[serde(borrow)]
        command: Cow<'a, str>,
    },
    /// A public message to a channel.
    Chat {
        #[serde(borrow)]
        nick: Cow<'a, str>,
        #[serde(borrow)]
        channel: Cow<'a, str>,
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    /// A private message between two users.
    Private {
        #[serde(borrow)]
        from: Cow<'a, str>,
        #[serde(borrow)]
        to: Cow<'a, str>,
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    /// An administrator's announcement (REST).
    Announcement {
        #[serde(borrow)]
        text: Cow<'a, str>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        channel: Option<Cow<'a, str>>,
        recipients: u64,
    },
    /// A user changed nickname (`/nick`).
    NickChange {
        conn: u64,
        #[serde(borrow)]
        old: Cow<'a, str>,
        #[serde(borrow)]
        new: Cow<'a, str>,
    },
    /// An action in a channel (`/me waves`).
    Action {
        #[serde(borrow)]
        nick: Cow<'a, str>,
        #[serde(borrow)]
        channel: Cow<'a, str>,
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    /// A channel's topic was set (`/topic text`).
    Topic {
        #[serde(borrow)]
        nick: Cow<'a, str>,
        #[serde(borrow)]
        channel: Cow<'a, str>,
        #[serde(borrow)]
        topic: Cow<'a, str>,
    },
    /// A user marked away (`/away`, with its message) or back (`/back`, no message).
    Away {
        #[serde(borrow)]
        nick: Cow<'a, str>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        message: Option<Cow<'a, str>>,
    },
    /// A moderation act (kick, ban, unban, mute, unmute, or an expiry), from an operator or
    /// the REST API.
    Moderation {
        /// `@nick` of the operator, `api` for the REST token holder, `server` for an expiry.
        #[serde(borrow)]
        actor: Cow<'a, str>,
        /// `kick`, `ban`, `unban`, `mute` or `unmute`.
        #[serde(borrow)]
        action: Cow<'a, str>,
        /// `@nick`, an address or a CIDR range.
        #[serde(borrow)]
        target: Cow<'a, str>,
        /// When a ban or mute ends (RFC 3339); `null` when permanent or not applicable.
        #[serde(borrow, default)]
        until: Option<Cow<'a, str>>,
        /// The reason given, if any.
        #[serde(borrow, default)]
        reason: Option<Cow<'a, str>>,
    },
    /// An `/oper` attempt (never the password).
    Oper {
        conn: u64,
        #[serde(borrow)]
        nick: Cow<'a, str>,
        /// The operator name tried.
        #[serde(borrow)]
        name: Cow<'a, str>,
        /// Whether the credentials were accepted.
        ok: bool,
    },
    /// Cluster: a node's incarnation was declared dead (its lease expired); its users left.
    /// (`failed_node`, since a record applied from the stream already has a `node`: where
    /// the entry came from.)
    NodeDown {
        #[serde(borrow)]
        failed_node: Cow<'a, str>,
        #[serde(borrow)]
        incarnation: Cow<'a, str>,
    },
    /// Cluster: this node's link came up in this Redis epoch (a node's own record: where it
    /// resumes after a restart).
    ClusterEpoch {
        #[serde(borrow)]
        epoch: Cow<'a, str>,
    },
    /// Cluster: stream entries `from..=to` were trimmed before this node read them.
    Gap { from: u64, to: u64 },
    /// Cluster: Redis lost its data; the shared history restarts in a new epoch.
    EpochChange {
        #[serde(borrow)]
        old: Cow<'a, str>,
        #[serde(borrow)]
        new: Cow<'a, str>,
        last_seq: u64,
    },
    /// An error: a failed command, rejected input, an I/O problem.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conn: Option<u64>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        nick: Option<Cow<'a, str>>,
        #[serde(borrow)]
        error: Cow<'a, str>,
    },
}

impl Record<'_> {
    /// False for the records about this process's own connections and life (connect, close,
    /// commands, errors, `/oper`, start and stop): in a cluster only the others are every
    /// node's records.
    pub fn is_shared(&self) -> bool {
        !matches!(
            self,
            Record::ServerStart { .. }
                | Record::ServerStop { .. }
                | Record::Connect { .. }
                | Record::Close { .. }
                | Record::Command { .. }
                | Record::Error { .. }
                | Record::Oper { .. }
                | Record::ClusterEpoch { .. }
        )
    }

    /// True for the records that carry a message people read: chat, action, private,
    /// announcement. These are the ones that are refused when they cannot be logged.
    pub fn is_message(&self) -> bool {
        matches!(
            self,
            Record::Chat { .. }
                | Record::Action { .. }
                | Record::Private { .. }
                | Record::Announcement { .. }
        )
    }
}
