//! The output queue of one connection: shared byte chunks, written with one vectored write.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// Bytes shared by every recipient of one message (encoded once per protocol).
pub type Chunk = Rc<[u8]>;

/// At most this many chunks go into one `writev`.
const MAX_SLICES: usize = 32;

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
/// pass) allocates nothing; a second chunk moves the rest into a boxed deque, which is freed
/// again when the queue drains. An idle connection's queue owns no heap memory.
#[derive(Default)]
pub struct OutQueue {
    first: Option<Chunk>,
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<Chunk>>>,
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
    pub fn push(&mut self, chunk: Chunk) {
        if chunk.is_empty() {
            return;
        }
        self.queued = self
            .queued
            .saturating_add(u32::try_from(chunk.len()).unwrap_or(u32::MAX));
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.rest
                .get_or_insert_with(Default::default)
                .push_back(chunk);
        }
    }

    /// Drops everything queued and releases the memory.
    pub fn clear(&mut self) {
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
                    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                    slices[0] = IoSlice::new(front);
                    let mut n = 1;
                    let mut bytes = front.len();
                    for chunk in rest.iter().take(MAX_SLICES - 1) {
                        if total + bytes >= budget {
                            break;
                        }
                        slices[n] = IoSlice::new(chunk);
                        n += 1;
                        bytes += chunk.len();
                    }
                    w.write_vectored(&slices[..n])
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
                self.rest = None;
            }
        }
    }
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
