//! The server falling behind: when the memory held by the output queued on connections that
//! are not pushing back (the server's own backlog, see `output.rs`: each shared chunk once,
//! plus a pointer per queue entry) is still above `backlog_high_bytes` after
//! a loop pass has written all that the sockets take, chat input pauses until the backlog is
//! below half of it. Within a pass, before its writes, reading stops at the watermark too (so
//! RSS stays within idle + `backlog_high_bytes` + the stalled readers' caps, SPEC §10); the
//! pause that starts then ends at the end of the pass when its writes brought the backlog
//! below half. Counted in memory (each shared chunk once), 16 MiB holds ~420 messages of
//! 70 bytes to 5,000 readers per pass; counted as bytes times recipients it held 48, which
//! cut every `writev` short and the fan-out knee with it. Paused chat lines wait in their
//! connection's line backlog, whose socket is then not read (TCP pushes back on the sender;
//! nothing is dropped); when the pause ends they go to the core round-robin, one line per
//! connection per turn, so no sender starves and each sender's order is kept.

use super::start::Server;
use super::timers::TimerKind;
use crate::chat::ClientId;
use log::warn;
use std::collections::VecDeque;

/// How often at most a pause is reported on stderr.
const WARN_EVERY_MS: u64 = 30_000;

/// The pause state.
#[derive(Default)]
pub(super) struct Overload {
    /// Chat input is paused.
    paused: bool,
    /// Connections with held lines, in turn order.
    held: VecDeque<ClientId>,
    /// Pauses since start-up.
    pub pauses: u64,
    warned_ms: Option<u64>,
}

impl Overload {
    /// Whether chat input is paused (without starting a pause).
    pub(super) fn paused(&self) -> bool {
        self.paused
    }

    /// True when held lines can go to the core now (the loop must not sleep).
    pub(super) fn busy(&self) -> bool {
        !self.paused && !self.held.is_empty()
    }
}

/// Whether a backlog of `backlog` bytes starts a pause with the watermark `high`, during a
/// pass (before its writes) or after them.
fn pause_starts(backlog: usize, high: usize) -> bool {
    backlog > high
}

/// Held lines handed to the core per pass at least (more when more connections hold lines:
/// each gets at least one turn). The watermark usually ends a pass's turns first; this bounds
/// a pass when the lines go to readers that all push back (and so add nothing to the backlog).
const RESUME_TURNS: usize = 1024;

/// Turns a pass gives held connections: every one at least one, and `RESUME_TURNS` at least.
fn resume_turns(held: usize) -> usize {
    held.max(RESUME_TURNS)
}

/// What one turn of a held connection did.
enum Turn {
    /// It has more lines: back in the queue.
    More,
    /// Done, closed, or waiting for its rate limit: out of the queue.
    Out,
}

impl Server {
    /// True while chat input is paused; starts a pause when the backlog is above the high
    /// watermark before the pass's writes (see the module docs).
    pub(super) fn input_paused(&mut self) -> bool {
        if !self.overload.paused && pause_starts(self.io.backlog, self.settings.backlog_high) {
            self.start_pause();
        }
        self.overload.paused
    }

    /// Starts a pause (and says so on stderr, at most every `WARN_EVERY_MS`).
    fn start_pause(&mut self) {
        let overload = &mut self.overload;
        overload.paused = true;
        overload.pauses += 1;
        let now = self.io.now.mono_ms;
        if overload.warned_ms.is_none_or(|t| now >= t + WARN_EVERY_MS) {
            overload.warned_ms = Some(now);
            warn!(
                "the server is behind ({} bytes queued to readers that keep up): chat input \
                 paused until half of that is written ({} pauses so far)",
                self.io.backlog, overload.pauses
            );
        }
    }

    /// At the end of a pass, after its writes: a pause starts when the backlog is still above
    /// the watermark, and ends once it is below half of it.
    pub(super) fn check_backlog(&mut self) {
        let (backlog, high) = (self.io.backlog, self.settings.backlog_high);
        if self.overload.paused {
            if backlog <= high / 2 {
                self.overload.paused = false;
            }
        } else if pause_starts(backlog, high) {
            self.start_pause();
        }
    }

    /// Queues a connection whose lines wait in its backlog for its turns after the pause.
    pub(super) fn hold(&mut self, id: ClientId) {
        let Some(conn) = self.io.conn_mut(id) else {
            return;
        };
        if conn.backlog.is_some() && !conn.held {
            conn.held = true;
            self.overload.held.push_back(id);
        }
    }

    /// Hands held lines to the core, one per connection per turn, round-robin, until input
    /// pauses again, no line is held, or the pass has given `resume_turns` turns. Handing
    /// over only one turn per connection per pass would cost a whole pass (a poll and a
    /// flush of every reader) per line of a lone sender: far below what reading gives.
    pub(super) fn resume_held(&mut self) {
        let mut turns = resume_turns(self.overload.held.len());
        while turns > 0 && !self.input_paused() {
            turns -= 1;
            let Some(id) = self.overload.held.pop_front() else {
                break;
            };
            if let Turn::More = self.held_turn(id) {
                self.overload.held.push_back(id);
            }
        }
    }

    /// One turn of a held connection: its next line to the core, within its rate limit.
    fn held_turn(&mut self, id: ClientId) -> Turn {
        let now = self.now();
        let Some(conn) = self.io.conn_mut(id) else {
            return Turn::Out;
        };
        if !conn.is_open() {
            conn.held = false;
            return Turn::Out;
        }
        self.settings.refill(conn, now.mono_ms);
        if conn.tokens < 1.0 {
            // Over its own rate: the rate limit's timer takes it from here.
            conn.held = false;
            let at_ms = now.mono_ms + self.settings.token_wait_ms(conn.tokens);
            self.io.timers.arm(id, at_ms, TimerKind::RateResume);
            return Turn::Out;
        }
        let Some(line) = conn.backlog.as_mut().and_then(|b| b.lines.pop_front()) else {
            let close = conn.backlog.take().and_then(|b| b.close);
            conn.held = false;
            self.backlog_drained(id, close);
            return Turn::Out;
        };
        conn.tokens -= 1.0;
        let more = conn.backlog.as_ref().is_some_and(|b| !b.lines.is_empty());
        let mut close = None;
        if !more {
            close = conn.backlog.take().and_then(|b| b.close);
            conn.held = false;
        }
        self.io.metrics.messages_in += 1;
        self.core.handle_line(now, id, &line, &mut self.io);
        if more {
            Turn::More
        } else {
            self.backlog_drained(id, close);
            Turn::Out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{pause_starts, resume_turns, RESUME_TURNS};

    #[test]
    fn a_pause_starts_above_the_watermark() {
        let high = 16 << 20;
        assert!(!pause_starts(high, high));
        assert!(pause_starts(high + 1, high));
        assert!(!pause_starts(usize::MAX - 1, usize::MAX - 1));
    }

    #[test]
    fn a_pass_gives_every_held_connection_a_turn_and_a_lone_sender_many() {
        // A lone sender gets many turns per pass, not one line per poll and flush.
        assert_eq!(resume_turns(1), RESUME_TURNS);
        assert!(resume_turns(0) > 1);
        // Many held connections: each one turn at least.
        assert_eq!(resume_turns(RESUME_TURNS * 3), RESUME_TURNS * 3);
    }
}
