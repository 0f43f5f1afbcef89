//! The output queue of one connection: shared byte chunks, written with one vectored write,
//! and what the queued output costs in memory (the server's backlog, see `output.rs`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::mem::size_of;
use std::ops::Deref;
use std::rc::Rc;

/// Bytes shared by every recipient of one message (encoded once per protocol), with the
/// count of backlog queues (queues whose sockets are not pushing back) holding them: the
/// bytes are in the backlog once, from the first such queue to the last.
#[derive(Clone)]
pub struct Chunk(Rc<Shared>);

struct Shared {
    /// Backlog queues holding this chunk (one per queue entry).
    holders: Cell<u32>,
    bytes: Box<[u8]>,
}

/// What one queue entry costs in memory: a pointer to the shared chunk.
pub const ENTRY_BYTES: usize = size_of::<Chunk>();
/// What a chunk costs in memory besides its bytes: the reference counts and its header.
pub const CHUNK_HEADER_BYTES: usize = size_of::<Shared>() + 2 * size_of::<usize>();

impl Chunk {
    /// Whether `a` and `b` are the same shared chunk.
    pub fn ptr_eq(a: &Chunk, b: &Chunk) -> bool {
        Rc::ptr_eq(&a.0, &b.0)
    }

    /// Backlog queues holding this chunk.
    pub fn holders(&self) -> u32 {
        self.0.holders.get()
    }

    /// What the chunk costs in memory, counted once however many queues hold it.
    #[inline]
    fn cost(&self) -> usize {
        self.0.bytes.len() + CHUNK_HEADER_BYTES
    }

    /// One more backlog queue entry holds this chunk: the entry joins the backlog, and the
    /// chunk with its first holder.
    #[inline]
    fn hold(&self, backlog: &mut usize) {
        let n = self.0.holders.get();
        self.0.holders.set(n.saturating_add(1));
        *backlog += if n == 0 {
            ENTRY_BYTES + self.cost()
        } else {
            ENTRY_BYTES
        };
    }

    /// A backlog queue entry let go of this chunk (written, or its socket pushes back): the
    /// entry leaves the backlog, and the chunk with its last holder.
    #[inline]
    fn release(&self, backlog: &mut usize) {
        let n = self.0.holders.get();
        self.0.holders.set(n.saturating_sub(1));
        let cost = if n == 1 {
            ENTRY_BYTES + self.cost()
        } else {
            ENTRY_BYTES
        };
        *backlog = backlog.saturating_sub(cost);
    }
}

impl Deref for Chunk {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.0.bytes
    }
}

impl From<Box<[u8]>> for Chunk {
    fn from(bytes: Box<[u8]>) -> Chunk {
        Chunk(Rc::new(Shared {
            holders: Cell::new(0),
            bytes,
        }))
    }
}

impl From<&[u8]> for Chunk {
    fn from(bytes: &[u8]) -> Chunk {
        Chunk::from(Box::<[u8]>::from(bytes))
    }
}

impl From<Vec<u8>> for Chunk {
    fn from(bytes: Vec<u8>) -> Chunk {
        Chunk::from(bytes.into_boxed_slice())
    }
}

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

    /// Appends a chunk (empty chunks are ignored); `backlog`: the server's backlog when this
    /// queue is part of it.
    #[inline]
    pub fn push(&mut self, chunk: Chunk, backlog: Option<&mut usize>) {
        if chunk.is_empty() {
            return;
        }
        if let Some(backlog) = backlog {
            chunk.hold(backlog);
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

    /// Drops everything queued and releases the memory (and its part of `backlog`, when
    /// this queue is part of it).
    pub fn clear(&mut self, backlog: Option<&mut usize>) {
        if let Some(backlog) = backlog {
            self.release_all(backlog);
        }
        if let Some(rest) = self.rest.take() {
            give_spare(rest);
        }
        *self = OutQueue::default();
    }

    /// Every queued chunk joins `backlog` (the queue became part of it): O(queue length),
    /// once per change of its socket's push-back state.
    pub fn hold_all(&mut self, backlog: &mut usize) {
        self.chunks().for_each(|c| c.hold(backlog));
    }

    /// Every queued chunk leaves `backlog` (the queue is no longer part of it).
    pub fn release_all(&mut self, backlog: &mut usize) {
        self.chunks().for_each(|c| c.release(backlog));
    }

    fn chunks(&self) -> impl Iterator<Item = &Chunk> {
        self.first
            .iter()
            .chain(self.rest.iter().flat_map(|r| r.iter()))
    }

    /// Writes queued chunks until the queue is empty, the socket would block, or `budget`
    /// bytes were written: one `write` for a single chunk, vectored writes for several.
    /// Each chunk written leaves `backlog` when the queue is part of it.
    pub fn write_to(
        &mut self,
        w: &mut impl Write,
        budget: usize,
        mut backlog: Option<&mut usize>,
    ) -> io::Result<Written> {
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
                    self.consume(written, backlog.as_deref_mut());
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

    fn consume(&mut self, mut n: usize, mut backlog: Option<&mut usize>) {
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
            if let Some(backlog) = backlog.as_deref_mut() {
                first.release(backlog);
            }
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
        Chunk::from(s.as_bytes())
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut q = OutQueue::default();
        for s in ["hello ", "world", "", "!\r\n"] {
            q.push(chunk(s), None);
        }
        assert_eq!(q.len(), 14);
        let mut w = Trickle {
            got: Vec::new(),
            cap: 4,
            room: 9,
        };
        let r = q.write_to(&mut w, 1 << 16, None).unwrap();
        assert_eq!(
            r,
            Written {
                bytes: 9,
                blocked: true
            }
        );
        assert_eq!(q.len(), 5);
        w.room = 100;
        let r = q.write_to(&mut w, 1 << 16, None).unwrap();
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
            q.push(c.clone(), None);
        }
        let mut w = Trickle {
            got: Vec::new(),
            cap: usize::MAX,
            room: usize::MAX,
        };
        let r = q.write_to(&mut w, 10_000, None).unwrap();
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
                q.push(c.clone(), None);
            }
            let mut w = Counting::default();
            let r = q.write_to(&mut w, 1 << 20, None).unwrap();
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
                q.push(chunk(s), None);
            }
            assert!(q.rest.is_some());
        }
        for q in &mut queues {
            q.write_to(&mut sink, 1 << 16, None).unwrap();
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
            q.push(chunk("x"), None);
            q.push(chunk("y"), None);
        }
        assert_eq!(spares(), before);
        queues[0].clear(None);
        assert_eq!(spares(), before + 1, "a cleared queue gives its deque back");
        for q in &mut queues {
            q.write_to(&mut sink, 1 << 16, None).unwrap();
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
        a.push(c.clone(), None);
        b.push(c.clone(), None);
        assert_eq!(Rc::strong_count(&c.0), 3);
        a.clear(None);
        assert_eq!(Rc::strong_count(&c.0), 2);
    }

    #[test]
    fn a_chunk_shared_by_a_thousand_queues_counts_its_bytes_once_and_each_entry() {
        let c = chunk(&"x".repeat(70));
        let mut backlog = 0;
        let mut queues: Vec<OutQueue> = (0..1000).map(|_| OutQueue::default()).collect();
        for q in &mut queues {
            q.push(c.clone(), Some(&mut backlog));
        }
        assert_eq!(c.holders(), 1000);
        assert_eq!(backlog, 70 + CHUNK_HEADER_BYTES + 1000 * ENTRY_BYTES);
        // Far below bytes times recipients.
        assert!(backlog < 70 * 1000 / 4, "{backlog}");
        // A second message to the same queues: its bytes once more.
        let d = chunk(&"y".repeat(200));
        for q in &mut queues {
            q.push(d.clone(), Some(&mut backlog));
        }
        let both = 270 + 2 * CHUNK_HEADER_BYTES + 2000 * ENTRY_BYTES;
        assert_eq!(backlog, both);
        // One queue written: its entries leave, the chunks stay (999 others hold them).
        let mut sink = Counting::default();
        queues[0]
            .write_to(&mut sink, 1 << 16, Some(&mut backlog))
            .unwrap();
        assert_eq!(sink.got, 270);
        assert_eq!(backlog, both - 2 * ENTRY_BYTES);
        // A queue leaving the backlog (its socket pushes back) takes its entries out, and
        // one joining it brings them back.
        queues[1].release_all(&mut backlog);
        assert_eq!(backlog, both - 4 * ENTRY_BYTES);
        assert_eq!((c.holders(), d.holders()), (998, 998));
        queues[1].hold_all(&mut backlog);
        assert_eq!(backlog, both - 2 * ENTRY_BYTES);
    }

    #[test]
    fn the_backlog_returns_to_zero_when_everything_is_written() {
        let shared = chunk(&"s".repeat(64));
        let mut backlog = 0;
        let mut queues: Vec<OutQueue> = (0..50).map(|_| OutQueue::default()).collect();
        for (i, q) in queues.iter_mut().enumerate() {
            for n in 0..=i {
                q.push(shared.clone(), Some(&mut backlog));
                q.push(chunk(&format!("own {i} {n}")), Some(&mut backlog));
            }
        }
        assert!(backlog > 0);
        // Written in small pieces (chunks split across writes), queue by queue; one queue
        // is dropped instead.
        queues.pop().unwrap().clear(Some(&mut backlog));
        for q in &mut queues {
            let mut w = Trickle {
                got: Vec::new(),
                cap: 7,
                room: usize::MAX,
            };
            while !q.is_empty() {
                q.write_to(&mut w, 100, Some(&mut backlog)).unwrap();
            }
        }
        assert_eq!(backlog, 0);
        assert_eq!(shared.holders(), 0);
    }
}
