//! The output queue of one connection: shared byte chunks, written with one vectored write.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

/// Bytes shared by every recipient of one message (encoded once per protocol).
pub type Chunk = Rc<[u8]>;

/// At most this many chunks go into one `writev`.
const MAX_SLICES: usize = 64;

/// What a write attempt achieved.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Written {
    /// Bytes written.
    pub bytes: usize,
    /// The socket said `WouldBlock`: wait for a writable edge.
    pub blocked: bool,
}

/// Queued output: chunks not yet written, and how far the first one has been written.
#[derive(Default)]
pub struct OutQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
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
        self.chunks.push_back(chunk);
    }

    /// Drops everything queued and releases the memory.
    pub fn clear(&mut self) {
        *self = OutQueue::default();
    }

    /// Writes queued chunks with vectored writes until the queue is empty, the socket would
    /// block, or `budget` bytes were written.
    pub fn write_to(&mut self, w: &mut impl Write, budget: usize) -> io::Result<Written> {
        let mut total = 0;
        while !self.is_empty() && total < budget {
            let mut slices: [IoSlice<'_>; MAX_SLICES] = [IoSlice::new(&[]); MAX_SLICES];
            let mut n = 0;
            let mut bytes = 0;
            for (i, chunk) in self.chunks.iter().enumerate().take(MAX_SLICES) {
                let part = if i == 0 {
                    chunk.get(self.head as usize..).unwrap_or(&[])
                } else {
                    chunk
                };
                slices[n] = IoSlice::new(part);
                n += 1;
                bytes += part.len();
                if total + bytes >= budget {
                    break;
                }
            }
            match w.write_vectored(&slices[..n]) {
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
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.len() - self.head as usize;
            if n >= left {
                n -= left;
                self.head = 0;
                self.chunks.pop_front();
            } else {
                self.head += n as u32;
                n = 0;
            }
        }
        if self.chunks.is_empty() {
            // An idle connection keeps no queue allocation (10,000s of them add up).
            self.chunks = VecDeque::new();
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
