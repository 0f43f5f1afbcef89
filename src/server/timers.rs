//! Deadlines of the shell: a min-heap of (time, connection, kind). An entry for a connection
//! that has since closed (its slot reused with another generation) is skipped when it fires.

use crate::chat::ClientId;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// Check whether a connection's output stayed above the soft limit for too long.
    SoftLimit,
    /// A connection that should close after flushing has not flushed in time.
    CloseDeadline,
    /// A rate-limited connection may have earned a token: resume its input.
    RateResume,
    /// Accepting was paused after an accept error (EMFILE): try again.
    AcceptResume,
    /// An HTTP request (or the wait for one) may have run past its deadline.
    HttpDeadline,
    /// A WebSocket client may be due a ping, or past its idle timeout.
    WsKeepalive,
}

/// One deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    /// Monotonic milliseconds.
    pub at_ms: u64,
    /// Slab key.
    pub key: u32,
    /// Generation of the connection it was set for.
    pub gen: u32,
    /// Its purpose.
    pub kind: TimerKind,
}

/// The heap of deadlines.
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl Timers {
    /// Adds a deadline of `kind` at `at_ms` for the connection `id` (a listener's key with
    /// generation 0 for [`TimerKind::AcceptResume`]).
    pub fn arm(&mut self, id: ClientId, at_ms: u64, kind: TimerKind) {
        self.heap.push(Reverse(Timer {
            at_ms,
            key: id.key,
            gen: id.gen,
            kind,
        }));
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(t)| t.at_ms)
    }

    /// Removes and returns the earliest deadline if it is due at `now_ms`.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse(t)) if t.at_ms <= now_ms => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_and_only_when_due() {
        let mut t = Timers::default();
        for (at, key) in [(30, 1), (10, 2), (20, 3)] {
            t.arm(ClientId { key, gen: 1 }, at, TimerKind::SoftLimit);
        }
        assert_eq!(t.next(), Some(10));
        assert_eq!(t.pop_due(5), None);
        assert_eq!(t.pop_due(25).map(|t| t.key), Some(2));
        assert_eq!(t.pop_due(25).map(|t| t.key), Some(3));
        assert_eq!(t.pop_due(25), None);
        assert_eq!(t.next(), Some(30));
    }
}
