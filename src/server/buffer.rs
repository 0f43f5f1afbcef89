//! The output queue of one connection: shared byte chunks, written with one vectored write.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// Bytes shared by every recipient of one message (encoded once per protocol).
pub type Chunk = Rc<[u8]>;

/// At most this many chunks go into one `writev` (Linux's `IOV_MAX`). Near the fan-out knee
/// a connection has tens to hundreds of messages queued per loop pass; a smaller cap splits
/// them into several `writev`s, and on loopback each one costs a TCP segment and a wake-up of
/// the reader: with 32, a pass of 41 messages took two `writev`s per connection (see
/// `docs/PROFILING.md`, "The fan-out knee").
const MAX_SLICES: usize = 1024;
/// The `iovec` array sizes below `MAX_SLICES`: the array is filled for every write, so a
/// short queue uses a short one.
const SMALL_SLICES: usize = 16;
const MID_SLICES: usize = 128;

/// The overflow deques that drained queues gave back, kept for the next queues that need
/// one: under load every recipient gets several chunks per loop pass, and allocating,
/// growing and freeing a deque for each of them every pass was a quarter of the server's
/// instructions per delivery. Bounded: a deque larger than [`SPARE_SLOTS_MAX`] slots is
/// freed, the kept ones hold at most [`SPARE_SLOTS_TOTAL`] slots in all, and once a second
/// [`end_pass`] frees those beyond the most that one pass of the second before took, so the
/// pool follows the load down (a server that falls silent keeps its spares, at most 2 MiB,
/// until its next loop pass). The server is single-threaded: one pool per thread, no locking.
type Rest = Box<VecDeque<Chunk>>;

/// The largest deque (in chunk slots) worth keeping.
const SPARE_SLOTS_MAX: usize = 1024;
/// Slots kept in all (16 bytes each: 2 MiB).
const SPARE_SLOTS_TOTAL: usize = 128 * 1024;
/// How often the pool is trimmed to the recent need.
const SPARE_TRIM_MS: u64 = 1000;

struct Spares {
    deques: Vec<Rest>,
    /// Slots held by `deques`.
    slots: usize,
    /// Deques taken since the last [`end_pass`].
    taken: usize,
    /// The most deques one pass took since the last trim.
    peak: usize,
    /// When the pool is trimmed next.
    trim_at_ms: u64,
}

thread_local! {
    static SPARES: RefCell<Spares> = const {
        RefCell::new(Spares {
            deques: Vec::new(),
            slots: 0,
            taken: 0,
            peak: 0,
            trim_at_ms: 0,
        })
    };
}

/// An empty overflow deque: a spare one if there is one.
fn take_spare() -> Rest {
    SPARES
        .try_with(|s| {
            let mut s = s.borrow_mut();
            s.taken += 1;
            let d = s.deques.pop()?;
            s.slots -= d.capacity();
            Some(d)
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps a drained overflow deque for the next queue that needs one, within the bounds.
fn give_spare(mut d: Rest) {
    d.clear();
    let cap = d.capacity();
    if cap > SPARE_SLOTS_MAX {
        return;
    }
    let _ = SPARES.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.slots + cap <= SPARE_SLOTS_TOTAL {
            s.slots += cap;
            s.deques.push(d);
        }
    });
}

/// Ends a loop pass (`now_ms`: the pass's monotonic time). Once a second, frees the spare
/// deques beyond the most that one pass took in that second.
pub fn end_pass(now_ms: u64) {
    let _ = SPARES.try_with(|s| {
        let mut s = s.borrow_mut();
        s.peak = s.peak.max(s.taken);
        s.taken = 0;
        if now_ms < s.trim_at_ms {
            return;
        }
        s.trim_at_ms = now_ms + SPARE_TRIM_MS;
        let keep = std::mem::take(&mut s.peak);
        if s.deques.len() > keep {
            let freed: usize = s.deques[keep..].iter().map(|d| d.capacity()).sum();
            s.slots -= freed;
            s.deques.truncate(keep);
            if keep == 0 {
                s.deques = Vec::new();
            }
        }
    });
}

/// What a write attempt achieved.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Written {
    /// Bytes written.
    pub bytes: usize,
    /// The socket said `WouldBlock`: wait for a writable edge.
    pub blocked: bool,
}

/// Queued output: chunks not yet written, and how far the first one has been written.
///
/// The first chunk is held inline, so the common case (one message per connection per loop
/// pass) allocates nothing; a second chunk moves the rest into a boxed deque, which goes
/// back to a bounded pool of spares when the queue drains (see [`end_pass`]). An idle
/// connection's queue owns no heap memory.
#[derive(Default)]
pub struct OutQueue {
    first: Option<Chunk>,
    #[allow(clippy::box_collection)]
    rest: Option<Rest>,
    /// Bytes of the first chunk already written.
    head: u32,
    /// Unwritten bytes in the queue (32 bits keep idle connections small; the output caps and
    /// the HTTP dispatch keep it far below 4 GiB).
    queued: u32,
}

impl OutQueue {
    /// Unwritten bytes.
    pub fn len(&self) -> usize {
        self.queued as usize
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Appends a chunk (empty chunks are ignored).
    #[inline]
    pub fn push(&mut self, chunk: Chunk) {
        if chunk.is_empty() {
            return;
        }
        let n = chunk.len().min(u32::MAX as usize) as u32;
        self.queued = self.queued.saturating_add(n);
        if self.first.is_none() {
            self.first = Some(chunk);
        } else if let Some(rest) = &mut self.rest {
            rest.push_back(chunk);
        } else {
            self.start_rest(chunk);
        }
    }

    /// The second chunk: the overflow deque, a spare one if there is one.
    #[cold]
    #[inline(never)]
    fn start_rest(&mut self, chunk: Chunk) {
        self.rest.get_or_insert_with(take_spare).push_back(chunk);
    }

    /// Drops everything queued and releases the memory.
    pub fn clear(&mut self) {
        if let Some(rest) = self.rest.take() {
            give_spare(rest);
        }
        *self = OutQueue::default();
    }

    /// Writes queued chunks until the queue is empty, the socket would block, or `budget`
    /// bytes were written: one `write` for a single chunk, vectored writes for several.
    pub fn write_to(&mut self, w: &mut impl Write, budget: usize) -> io::Result<Written> {
        let mut total = 0;
        while total < budget {
            let Some(first) = &self.first else { break };
            let front = first.get(self.head as usize..).unwrap_or(&[]);
            let result = match self.rest.as_deref() {
                None => w.write(front),
                Some(rest) => {
                    let room = budget - total;
                    if rest.len() < SMALL_SLICES {
                        write_slices::<SMALL_SLICES>(w, front, rest, room)
                    } else if rest.len() < MID_SLICES {
                        write_slices::<MID_SLICES>(w, front, rest, room)
                    } else {
                        write_slices::<MAX_SLICES>(w, front, rest, room)
                    }
                }
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    total += written;
                    self.consume(written);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Written {
                        bytes: total,
                        blocked: true,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Written {
            bytes: total,
            blocked: false,
        })
    }

    fn consume(&mut self, mut n: usize) {
        self.queued = self.queued.saturating_sub(n as u32);
        while n > 0 {
            let Some(first) = &self.first else { break };
            let left = first.len() - self.head as usize;
            if n < left {
                self.head += n as u32;
                return;
            }
            n -= left;
            self.head = 0;
            self.first = self.rest.as_mut().and_then(|r| r.pop_front());
            if self.rest.as_ref().is_some_and(|r| r.is_empty()) {
                if let Some(rest) = self.rest.take() {
                    give_spare(rest);
                }
            }
        }
    }
}

/// One vectored write of `front` and then the chunks of `rest`, at most `N` slices, stopping
/// at the first chunk that starts at or after `room` bytes.
#[inline]
fn write_slices<const N: usize>(
    w: &mut impl Write,
    front: &[u8],
    rest: &VecDeque<Chunk>,
    room: usize,
) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); N];
    slices[0] = IoSlice::new(front);
    let mut n = 1;
    let mut bytes = front.len();
    for chunk in rest.iter().take(N - 1) {
        if bytes >= room {
            break;
        }
        slices[n] = IoSlice::new(chunk);
        n += 1;
        bytes += chunk.len();
    }
    w.write_vectored(&slices[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that accepts at most `cap` bytes per call and `room` bytes in all.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        room: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                for &byte in b.iter() {
                    if n == self.cap || self.room == 0 {
                        return Ok(n);
                    }
                    self.got.push(byte);
                    n += 1;
                    self.room -= 1;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn chunk(s: &str) -> Chunk {
        Rc::from(s.as_bytes())
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut q = OutQueue::default();
        for s in ["hello ", "world", "", "!\r\n"] {
            q.push(chunk(s));
        }
        assert_eq!(q.len(), 14);
        let mut w = Trickle {
            got: Vec::new(),
            cap: 4,
            room: 9,
        };
        let r = q.write_to(&mut w, 1 << 16).unwrap();
        assert_eq!(
            r,
            Written {
                bytes: 9,
                blocked: true
            }
        );
        assert_eq!(q.len(), 5);
        w.room = 100;
        let r = q.write_to(&mut w, 1 << 16).unwrap();
        assert_eq!(
            r,
            Written {
                bytes: 5,
                blocked: false
            }
        );
        assert_eq!(w.got, b"hello world!\r\n");
        assert!(q.is_empty());
    }

    #[test]
    fn budget_limits_one_call() {
        let mut q = OutQueue::default();
        let c = chunk(&"x".repeat(1000));
        for _ in 0..100 {
            q.push(c.clone());
        }
        let mut w = Trickle {
            got: Vec::new(),
            cap: usize::MAX,
            room: usize::MAX,
        };
        let r = q.write_to(&mut w, 10_000).unwrap();
        assert!(!r.blocked);
        assert!(r.bytes >= 10_000 && r.bytes < 11_000, "{}", r.bytes);
        assert_eq!(q.len(), 100_000 - r.bytes);
    }

    /// A writer that takes everything and counts its calls.
    #[derive(Default)]
    struct Counting {
        got: usize,
        calls: usize,
    }

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            let n = bufs.iter().map(|b| b.len()).sum();
            self.got += n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_long_queue_goes_out_in_one_vectored_write_per_iov_max_chunks() {
        let c = chunk(&"x".repeat(70));
        for (queued, calls) in [
            (1, 1),
            (15, 1),
            (16, 1),
            (127, 1),
            (128, 1),
            (1024, 1),
            (1025, 2),
        ] {
            let mut q = OutQueue::default();
            for _ in 0..queued {
                q.push(c.clone());
            }
            let mut w = Counting::default();
            let r = q.write_to(&mut w, 1 << 20).unwrap();
            assert_eq!((r.bytes, w.got), (70 * queued, 70 * queued));
            assert_eq!(w.calls, calls, "{queued} chunks");
            assert!(q.is_empty());
        }
    }

    /// Spare deques held by this thread's pool.
    fn spares() -> usize {
        SPARES.with(|s| s.borrow().deques.len())
    }

    #[test]
    fn a_drained_queue_gives_its_deque_back_and_the_pool_follows_the_load_down() {
        let mut sink = Trickle {
            got: Vec::new(),
            cap: usize::MAX,
            room: usize::MAX,
        };
        let mut queues: Vec<OutQueue> = (0..3).map(|_| OutQueue::default()).collect();
        let before = spares();
        for q in &mut queues {
            for s in ["a", "b", "c"] {
                q.push(chunk(s));
            }
            assert!(q.rest.is_some());
        }
        for q in &mut queues {
            q.write_to(&mut sink, 1 << 16).unwrap();
            assert!(
                q.is_empty() && q.rest.is_none(),
                "a drained queue holds no deque"
            );
        }
        assert_eq!(spares(), before + 3);
        assert_eq!(sink.got, b"abcabcabc");
        // The next pass takes the spares instead of allocating.
        end_pass(1);
        for q in &mut queues {
            q.push(chunk("x"));
            q.push(chunk("y"));
        }
        assert_eq!(spares(), before);
        queues[0].clear();
        assert_eq!(spares(), before + 1, "a cleared queue gives its deque back");
        for q in &mut queues {
            q.write_to(&mut sink, 1 << 16).unwrap();
        }
        assert_eq!(spares(), before + 3);
        // A second in which no pass took a deque: all freed.
        end_pass(2_000);
        end_pass(4_000);
        assert_eq!(spares(), 0);
    }

    #[test]
    fn shared_chunk_is_not_copied() {
        let c = chunk("shared");
        let mut a = OutQueue::default();
        let mut b = OutQueue::default();
        a.push(c.clone());
        b.push(c.clone());
        assert_eq!(Rc::strong_count(&c), 3);
        a.clear();
        assert_eq!(Rc::strong_count(&c), 2);
    }
}
