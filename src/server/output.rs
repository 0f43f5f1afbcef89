//! A connection's output under the overload rules: its queue, whether its socket is pushing
//! back, and which of its queued bytes the output caps may hold against it.
//!
//! A socket pushes back when a write would block; it stops pushing back when a write takes
//! everything offered (the queue, or the per-pass budget). Only bytes queued while the socket
//! pushes back count against the caps ("judged" bytes): a reader that takes every byte it is
//! offered is never disconnected for output, however far behind the server is. The output
//! queued on connections that are not pushing back is the server's own backlog, `backlog`,
//! which the shell keeps under its watermark by pausing chat input. It counts what that output
//! costs in memory, not bytes times recipients: each queue entry (a pointer to a shared chunk)
//! and each chunk once, while any of those queues holds it (see `buffer.rs`). A 64-byte line to
//! 5,000 readers is about 40 KB of backlog, not 320 KB. (A connection that pushes back takes
//! its entries, and the chunks only it holds, out of the backlog, so a stalled reader can
//! never hold the input paused.) Pure: no sockets, so the rules are tested with fake writers,
//! and the fan-out benchmark drives this code.

use super::buffer::{Chunk, OutQueue, Written};
use std::io::{self, Write};

/// The output caps of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Disconnect at once when the judged bytes would exceed this.
    pub hard: usize,
    /// Disconnect when the judged bytes stay above this for the soft period.
    pub soft: usize,
}

/// What queuing a chunk under the caps did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Queued, and the judged bytes just went above the soft cap: start the soft timer.
    OverSoft,
    /// Not queued: the judged bytes would exceed the hard cap. The connection must close.
    OverHard,
}

/// A connection's queued output and its push-back state.
#[derive(Default)]
pub struct Output {
    queue: OutQueue,
    /// The last write would block, and no write has taken all it was offered since.
    pushed_back: bool,
    /// Bytes queued while the socket pushed back and not yet written (at the queue's end).
    judged: u32,
    /// Since when ([`super::conn::ms32`]) the judged bytes have been above the soft cap
    /// (0: they are not).
    over_soft_since: u32,
}

impl Output {
    /// Unwritten bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is waiting.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The bytes the caps judge.
    #[inline]
    pub fn judged(&self) -> usize {
        self.judged as usize
    }

    /// Whether the socket is pushing back.
    pub fn pushed_back(&self) -> bool {
        self.pushed_back
    }

    /// Since when the judged bytes have been above the soft cap; 0 when they are not.
    pub fn over_soft_since(&self) -> u32 {
        self.over_soft_since
    }

    /// Queues a chunk without the caps (an HTTP response, whose size is known).
    #[inline]
    pub fn push(&mut self, chunk: Chunk, backlog: &mut usize) {
        if self.pushed_back {
            self.judged = self.judged.saturating_add(chunk.len() as u32);
            self.queue.push(chunk, None);
        } else {
            self.queue.push(chunk, Some(backlog));
        }
    }

    /// Queues a chunk under the caps; `stamp` is the time ([`super::conn::ms32`], never 0)
    /// recorded when the judged bytes go above the soft cap.
    #[inline]
    pub fn push_capped(
        &mut self,
        chunk: Chunk,
        caps: &Caps,
        stamp: u32,
        backlog: &mut usize,
    ) -> Pushed {
        if !self.pushed_back {
            // Nothing is judged while the socket takes what it is offered.
            self.queue.push(chunk, Some(backlog));
            return Pushed::Queued;
        }
        self.push_judged(chunk, caps, stamp)
    }

    /// [`Output::push_capped`] while the socket pushes back.
    #[cold]
    fn push_judged(&mut self, chunk: Chunk, caps: &Caps, stamp: u32) -> Pushed {
        if self.judged() + chunk.len() > caps.hard {
            return Pushed::OverHard;
        }
        self.judged = self.judged.saturating_add(chunk.len() as u32);
        self.queue.push(chunk, None);
        if self.judged() > caps.soft && self.over_soft_since == 0 {
            self.over_soft_since = stamp.max(1);
            return Pushed::OverSoft;
        }
        Pushed::Queued
    }

    /// Writes what `budget` allows (see [`OutQueue::write_to`]) and updates the push-back
    /// state: a write that would block starts it (the connection's entries leave the backlog);
    /// one that takes all it was offered ends it (they are all backlog again, none judged).
    /// The judged bytes are the queue's last ones, so they are written last.
    #[inline]
    pub fn write_to(
        &mut self,
        w: &mut impl Write,
        budget: usize,
        soft: usize,
        backlog: &mut usize,
    ) -> io::Result<Written> {
        let before = self.queue.len();
        let counted = if self.pushed_back {
            None
        } else {
            Some(&mut *backlog)
        };
        let result = self.queue.write_to(w, budget, counted);
        match &result {
            // The common case: still taking everything offered (the written chunks left the
            // backlog as they went).
            Ok(w) if !w.blocked && !self.pushed_back => {}
            _ => self.after_push_back(before, &result, soft, backlog),
        }
        result
    }

    /// [`Output::write_to`]'s bookkeeping when the socket pushes back or just stopped.
    #[cold]
    fn after_push_back(
        &mut self,
        before: usize,
        result: &io::Result<Written>,
        soft: usize,
        backlog: &mut usize,
    ) {
        let was_pushed_back = self.pushed_back;
        let written = before - self.queue.len();
        let earlier = before.saturating_sub(self.judged());
        self.judged = self
            .judged
            .saturating_sub(written.saturating_sub(earlier) as u32);
        match result {
            Ok(w) if w.blocked => self.pushed_back = true,
            Ok(_) => {
                self.pushed_back = false;
                self.judged = 0;
            }
            Err(_) => {}
        }
        match (was_pushed_back, self.pushed_back) {
            (false, true) => self.queue.release_all(backlog),
            (true, false) => self.queue.hold_all(backlog),
            _ => {}
        }
        if self.judged() <= soft {
            self.over_soft_since = 0;
        }
    }

    /// Drops everything queued (the connection is closing at once).
    pub fn clear(&mut self, backlog: &mut usize) {
        let counted = if self.pushed_back {
            None
        } else {
            Some(backlog)
        };
        self.queue.clear(counted);
        *self = Output::default();
    }
}

#[cfg(test)]
mod tests {
    use super::super::buffer::{CHUNK_HEADER_BYTES, ENTRY_BYTES};
    use super::*;

    /// A fake socket: takes up to `room` bytes per call (`usize::MAX`: everything), then says
    /// `WouldBlock` once `room` is used up, until `refill`.
    struct FakeSocket {
        room: usize,
        taken: usize,
    }

    impl FakeSocket {
        fn taking_everything() -> FakeSocket {
            FakeSocket {
                room: usize::MAX,
                taken: 0,
            }
        }

        fn refusing() -> FakeSocket {
            FakeSocket { room: 0, taken: 0 }
        }
    }

    impl Write for FakeSocket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            if self.room != usize::MAX {
                self.room -= n;
            }
            self.taken += n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const CAPS: Caps = Caps {
        hard: 4096,
        soft: 1024,
    };
    const BUDGET: usize = 64 * 1024;

    fn chunk(n: usize) -> Chunk {
        Chunk::from(vec![b'x'; n])
    }

    #[test]
    fn a_socket_that_takes_everything_is_never_judged_however_much_is_queued() {
        let mut out = Output::default();
        let mut sock = FakeSocket::taking_everything();
        let mut backlog = 0;
        for round in 0..50 {
            // Far more than the hard cap between two writes: the server is behind, not the
            // reader.
            for _ in 0..100 {
                let pushed = out.push_capped(chunk(100), &CAPS, 7, &mut backlog);
                assert_eq!(pushed, Pushed::Queued, "round {round}");
            }
            assert_eq!(out.judged(), 0);
            assert_eq!(backlog, cost(100, 100));
            assert!(out.len() > CAPS.hard);
            let w = out
                .write_to(&mut sock, BUDGET, CAPS.soft, &mut backlog)
                .unwrap();
            assert!(!w.blocked);
            assert!(out.is_empty());
            assert_eq!(backlog, 0);
        }
        assert_eq!(sock.taken, 50 * 100 * 100);
        assert!(!out.pushed_back());
    }

    #[test]
    fn a_socket_that_refuses_is_judged_from_the_push_back_on_and_cut_at_the_hard_cap() {
        let mut out = Output::default();
        let mut backlog = 0;
        // Queued before any write: the server's backlog, not the reader's doing.
        for _ in 0..50 {
            assert_eq!(
                out.push_capped(chunk(100), &CAPS, 7, &mut backlog),
                Pushed::Queued
            );
        }
        let mut sock = FakeSocket::refusing();
        let w = out
            .write_to(&mut sock, BUDGET, CAPS.soft, &mut backlog)
            .unwrap();
        assert!(w.blocked && out.pushed_back());
        // A connection that pushes back is no part of the server's backlog.
        assert_eq!((out.judged(), out.len(), backlog), (0, 5000, 0));
        // Now every byte counts: over the soft cap once, then cut at the hard cap.
        let mut results = Vec::new();
        loop {
            let pushed = out.push_capped(chunk(100), &CAPS, 7, &mut backlog);
            results.push(pushed);
            if pushed == Pushed::OverHard {
                break;
            }
            assert!(results.len() < 1000, "never cut");
        }
        assert_eq!(
            results.iter().filter(|p| **p == Pushed::OverSoft).count(),
            1,
            "{results:?}"
        );
        assert_eq!(out.over_soft_since(), 7);
        assert_eq!(out.judged(), 4000, "cut when 100 more would pass 4096");
        assert_eq!(backlog, 0, "the backlog did not grow");
        out.clear(&mut backlog);
        assert_eq!((backlog, out.len(), out.judged()), (0, 0, 0));
    }

    #[test]
    fn draining_ends_the_push_back_and_the_judged_bytes_are_written_last() {
        let mut out = Output::default();
        let mut backlog = 0;
        out.push(chunk(1000), &mut backlog);
        let mut sock = FakeSocket {
            room: 600,
            taken: 0,
        };
        let w = out
            .write_to(&mut sock, BUDGET, CAPS.soft, &mut backlog)
            .unwrap();
        assert!(w.blocked);
        assert_eq!((backlog, out.judged(), out.len()), (0, 0, 400));
        let pushed = out.push_capped(chunk(2000), &CAPS, 7, &mut backlog);
        assert_eq!(pushed, Pushed::OverSoft);
        assert_eq!((backlog, out.judged()), (0, 2000));
        // Room for 1,000: the 400 earlier bytes go first, then 600 judged ones; still
        // pushing back.
        sock.room = 1000;
        let w = out
            .write_to(&mut sock, BUDGET, CAPS.soft, &mut backlog)
            .unwrap();
        assert!(w.blocked && out.pushed_back());
        assert_eq!((backlog, out.judged()), (0, 1400));
        // Room for everything: drained, nothing judged any more.
        sock.room = usize::MAX;
        let w = out
            .write_to(&mut sock, BUDGET, CAPS.soft, &mut backlog)
            .unwrap();
        assert!(!w.blocked && !out.pushed_back());
        assert_eq!((backlog, out.judged(), out.len()), (0, 0, 0));
        assert_eq!(out.over_soft_since(), 0);
    }

    #[test]
    fn a_budget_limited_write_that_was_not_refused_ends_the_push_back() {
        let mut out = Output::default();
        let mut backlog = 0;
        out.push(chunk(10), &mut backlog);
        out.write_to(&mut FakeSocket::refusing(), BUDGET, CAPS.soft, &mut backlog)
            .unwrap();
        for _ in 0..10 {
            out.push(chunk(1000), &mut backlog);
        }
        assert_eq!((backlog, out.judged()), (0, 10_000));
        let mut sock = FakeSocket::taking_everything();
        let w = out
            .write_to(&mut sock, 4000, CAPS.soft, &mut backlog)
            .unwrap();
        assert!(!w.blocked);
        assert!(!out.pushed_back());
        assert_eq!(out.judged(), 0);
        // The unwritten chunks (the first one perhaps partly written) are backlog again.
        assert_eq!(backlog, cost(out.len().div_ceil(1000), 1000));
    }

    /// The backlog that `n` distinct chunks of `size` bytes, each queued once, cost.
    fn cost(n: usize, size: usize) -> usize {
        n * (size + CHUNK_HEADER_BYTES + ENTRY_BYTES)
    }

    #[test]
    fn a_socket_that_pushes_back_moves_its_share_out_of_the_backlog() {
        let (mut fast, mut slow) = (Output::default(), Output::default());
        let mut backlog = 0;
        let shared: Vec<Chunk> = (0..10).map(|_| chunk(100)).collect();
        for c in &shared {
            fast.push_capped(c.clone(), &CAPS, 7, &mut backlog);
            slow.push_capped(c.clone(), &CAPS, 7, &mut backlog);
        }
        // Each chunk once, each entry once.
        assert_eq!(backlog, cost(10, 100) + 10 * ENTRY_BYTES);
        // The slow reader's socket pushes back: its entries leave the backlog, the chunks
        // stay (the fast reader's queue holds them too).
        slow.write_to(&mut FakeSocket::refusing(), BUDGET, CAPS.soft, &mut backlog)
            .unwrap();
        assert!(slow.pushed_back());
        assert_eq!(backlog, cost(10, 100));
        // Once the fast reader has them, nothing is left in the backlog although the slow
        // reader still holds every chunk.
        let mut sock = FakeSocket::taking_everything();
        fast.write_to(&mut sock, BUDGET, CAPS.soft, &mut backlog)
            .unwrap();
        assert_eq!((backlog, slow.len()), (0, 1000));
        // A chunk only the pushed-back queue holds never joins the backlog.
        slow.push_capped(chunk(100), &CAPS, 7, &mut backlog);
        assert_eq!(backlog, 0);
        // Its socket drains: everything it holds is backlog again until written.
        let mut sock = FakeSocket::taking_everything();
        slow.write_to(&mut sock, 500, CAPS.soft, &mut backlog)
            .unwrap();
        assert!(!slow.pushed_back());
        assert_eq!(
            backlog,
            cost(6, 100),
            "500 of 1,100 bytes written: 6 chunks left"
        );
        slow.write_to(
            &mut FakeSocket::taking_everything(),
            BUDGET,
            CAPS.soft,
            &mut backlog,
        )
        .unwrap();
        assert_eq!((backlog, slow.len()), (0, 0));
        assert!(shared.iter().all(|c| c.holders() == 0));
    }
}
