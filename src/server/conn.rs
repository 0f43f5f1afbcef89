//! A connection in the slab: its socket, protocol state, output queue and flags.

use super::buffer::OutQueue;
use crate::chat::{ClientId, CloseReason};
use crate::proto::telnet::TelnetDecoder;
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// The protocol a connection speaks, and that protocol's input state.
pub enum Proto {
    /// A telnet chat client.
    Telnet(TelnetDecoder),
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Reading and writing.
    Open,
    /// No more input; close once the queued output is written (or a deadline passes).
    Closing(CloseReason),
    /// Waiting to be reaped at the end of the loop pass; no more I/O.
    Dead(CloseReason),
}

/// Lines a rate-limited connection sent beyond its allowance, waiting for tokens. Bounded
/// by what one read can bring in; while it is non-empty the socket is not read.
pub type Backlog = VecDeque<Box<str>>;

/// One client connection.
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Slab key and generation.
    pub id: ClientId,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Protocol state.
    pub proto: Proto,
    /// Output not yet written.
    pub out: OutQueue,
    /// Life-cycle state.
    pub state: ConnState,
    /// In the loop's dirty list (output to write this pass).
    pub dirty: bool,
    /// In the loop's pending-read list (input left unread at the budget).
    pub read_pending: bool,
    /// The peer has sent at least one line (for the HTTP-on-telnet check).
    pub seen_line: bool,
    /// Monotonic ms since the output queue has been above the soft limit (0: it is not).
    pub over_soft_since: u64,
    /// Line tokens left (rate limit).
    pub tokens: f32,
    /// When tokens were last refilled (monotonic ms).
    pub refilled_ms: u64,
    /// Lines over the rate limit, waiting; `None` almost always.
    pub backlog: Option<Box<Backlog>>,
}

impl Conn {
    /// True while the connection still reads input.
    pub fn is_open(&self) -> bool {
        self.state == ConnState::Open
    }

    /// True once it is waiting to be reaped.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, ConnState::Dead(_))
    }
}
