//! The broker's public types: its configuration, what the core proposes, what it reports.

use crate::cluster::config::ClusterConfig;
use crate::cluster::entry::{Body, Entry, EntryError};
use crate::cluster::scripts;
use crate::proto::resp::RespLimits;

/// One of the two Redis connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// Scripts, lease, handshake.
    Cmd,
    /// `XREAD BLOCK` only.
    Tail,
}

/// Timings and bounds; [`BrokerConfig::from_cluster`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub node_id: String,
    pub password: Option<String>,
    pub lease_ms: u64,
    pub stream_maxlen: u64,
    /// `XREAD BLOCK` timeout; the tail must answer within this + `reply_timeout_ms`.
    pub block_ms: u64,
    /// Entries per `XREAD`.
    pub read_count: u64,
    /// A command link with nothing in flight for this long sends `PING`.
    pub ping_every_ms: u64,
    /// The oldest request unanswered this long drops its link.
    pub reply_timeout_ms: u64,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// Bytes queued for one link past which the link is dropped.
    pub max_output: usize,
    /// Proposals awaiting their acknowledgement past which `propose` refuses.
    pub max_pending: usize,
    pub limits: RespLimits,
}

impl BrokerConfig {
    pub fn from_cluster(c: &ClusterConfig) -> BrokerConfig {
        BrokerConfig {
            node_id: c.node_id.clone(),
            password: c.redis_password.clone(),
            lease_ms: c.lease_ms,
            stream_maxlen: c.stream_maxlen,
            block_ms: 1000,
            read_count: 1000,
            ping_every_ms: 1000,
            reply_timeout_ms: 2000,
            backoff_min_ms: 100,
            backoff_max_ms: 2000,
            max_output: 8 << 20,
            max_pending: 100_000,
            limits: RespLimits::default(),
        }
    }
}

/// Where a node resumes after a restart: the last `(epoch, seq)` in its own log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub epoch: Box<str>,
    pub last_seq: u64,
    /// The msg_id of that entry, for the last-entry check (None: skip the check).
    pub last_msg_id: Option<Box<str>>,
}

/// A state change to sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    /// An ordinary entry (chat line, join, topic, moderation, ...).
    Append(Body),
    /// Claim `folded` (shown as `nick`) for connection `conn`, releasing its `old` nick.
    ClaimNick {
        folded: Box<str>,
        nick: Box<str>,
        conn: Box<str>,
        old: Option<Box<str>>,
    },
    /// Release a nick this node's connection `conn` owns.
    ReleaseNick {
        folded: Box<str>,
        conn: Box<str>,
        reason: Box<str>,
    },
    /// Declare a node's incarnation dead (its lease is gone): frees its nicks.
    Reap {
        node: Box<str>,
        incarnation: Box<str>,
    },
}

impl Proposal {
    pub(super) fn script(&self) -> usize {
        match self {
            Proposal::Append(_) => SCRIPT_APPEND,
            Proposal::ClaimNick { .. } => SCRIPT_CLAIM,
            Proposal::ReleaseNick { .. } => SCRIPT_RELEASE,
            Proposal::Reap { .. } => SCRIPT_REAP,
        }
    }

    pub(super) fn own_args(&self) -> Vec<String> {
        match self {
            Proposal::Append(body) => body
                .fields()
                .into_iter()
                .flat_map(|(k, v)| [k.to_string(), v])
                .collect(),
            Proposal::ClaimNick {
                folded,
                nick,
                conn,
                old,
            } => vec![
                folded.to_string(),
                nick.to_string(),
                conn.to_string(),
                old.as_deref().unwrap_or("").to_string(),
            ],
            Proposal::ReleaseNick {
                folded,
                conn,
                reason,
            } => vec![folded.to_string(), conn.to_string(), reason.to_string()],
            Proposal::Reap { node, incarnation } => vec![node.to_string(), incarnation.to_string()],
        }
    }
}

/// Why [`Broker::propose`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposeError {
    /// The cluster link is down: show SPEC §15's notice.
    Down,
    /// Too many proposals await their acknowledgement.
    Overloaded,
}

/// What the event loop and the chat core must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Open this link's socket, then call [`Broker::connected`] or [`Broker::disconnected`].
    Connect(Link),
    /// Close this link's socket (no [`Broker::disconnected`] needed afterwards).
    Close(Link),
    /// Both links ready: state changes are accepted.
    Up { epoch: Box<str> },
    /// The link is down: refuse state changes with SPEC §15's notice.
    Down { why: Box<str> },
    /// The next entry, in seq order, exactly once: log it, then deliver it.
    Apply(Entry),
    /// An entry at `seq` that is not a valid entry (skipped; the cursor moves on).
    BadEntry { seq: u64, error: EntryError },
    /// Entries `from..=to` were trimmed from the stream before this node read them.
    Gap { from: u64, to: u64 },
    /// Redis lost data: log `epoch_change`, tell users, rebuild membership from `Apply`.
    EpochChanged {
        old: Box<str>,
        new: Box<str>,
        last_seq: u64,
    },
    /// A proposal was sequenced at `seq` (its entry arrives through `Apply`).
    Accepted { msg_id: Box<str>, seq: u64 },
    /// A proposal was refused: `code` is the script's (TAKEN, NOTOWNER, ALIVE, ...), or
    /// FENCED / EPOCH when the lease or the epoch was lost before it was sequenced.
    Refused {
        msg_id: Box<str>,
        code: Box<str>,
        detail: Box<str>,
    },
    /// This incarnation's lease is lost (it may have been declared dead): draw a new
    /// incarnation, call [`Broker::reincarnate`], re-claim the local users' nicks.
    LeaseLost,
}

pub(super) const SCRIPT_APPEND: usize = 0;
pub(super) const SCRIPT_CLAIM: usize = 1;
pub(super) const SCRIPT_RELEASE: usize = 2;
pub(super) const SCRIPT_REFRESH: usize = 3;
pub(super) const SCRIPT_REGISTER: usize = 4;
pub(super) const SCRIPT_REAP: usize = 5;
const _: () = {
    assert!(matches!(
        scripts::ALL[SCRIPT_APPEND].name.as_bytes(),
        b"append"
    ));
    assert!(matches!(
        scripts::ALL[SCRIPT_REFRESH].name.as_bytes(),
        b"lease_refresh"
    ));
    assert!(matches!(
        scripts::ALL[SCRIPT_REGISTER].name.as_bytes(),
        b"register"
    ));
    assert!(matches!(scripts::ALL[SCRIPT_REAP].name.as_bytes(), b"reap"));
};
