//! RESP2, the Redis wire protocol: commands to bytes and replies from bytes, sans-IO.
//!
//! The cluster link (SPEC §15) talks to Redis over two sockets of the ordinary event loop;
//! this module never touches them. [`encode_command`] appends a command (an array of bulk
//! strings) to the caller's output buffer; [`RespDecoder`] takes complete replies off the
//! front of the caller's input buffer. The frames themselves are built and written by the
//! `redis-protocol` crate ([`redis_protocol::resp2`]).
//!
//! The decoder adds what a long-lived connection needs around the crate's one-shot decode:
//!
//! - **Bounded.** A reply larger than [`RespLimits::max_reply`] bytes, or nested deeper than
//!   [`RespLimits::max_depth`] arrays, is an error as soon as that is known (a bulk string
//!   or array header announcing too much is refused before its body arrives). The decoder
//!   itself holds a few words plus a stack of at most `max_depth` counters; the crate's
//!   frame for a complete reply is proportional to that reply's bytes.
//! - **Linear.** A large reply arriving in many reads is scanned once: the decoder
//!   remembers how far it got (complete items, open arrays) and resumes there, and hands the
//!   crate only a complete reply, so nothing is re-parsed per read.
//! - **Split-invariant.** The frames are the same however the input is cut into reads.
//! - **Fail-stop.** After an error the stream is out of step; the decoder keeps returning
//!   that error, and the caller drops the connection.
//!
//! The scan is slightly stricter than the crate: a bulk string must end in CR LF.

use redis_protocol::resp2::decode::decode as crate_decode;
use redis_protocol::resp2::encode::{encode as crate_encode, encode_borrowed};
pub use redis_protocol::resp2::types::OwnedFrame as Frame;
use redis_protocol::resp2::types::{BorrowedFrame, Resp2Frame};
use std::fmt;

/// Limits of one connection's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespLimits {
    /// Largest accepted reply in bytes, headers included.
    pub max_reply: usize,
    /// Deepest accepted nesting of arrays (a flat array has depth 1).
    pub max_depth: usize,
}

impl Default for RespLimits {
    /// 8 MiB and 8 levels: an `XREAD` of a few thousand chat entries is far below both
    /// (the deepest reply the cluster reads, `XREAD`, nests 4 arrays).
    fn default() -> Self {
        RespLimits {
            max_reply: 8 << 20,
            max_depth: 8,
        }
    }
}

/// Why the input cannot be decoded; the connection must be dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// The reply is, or announces itself as, larger than `max_reply`.
    TooLarge { limit: usize },
    /// Arrays nest deeper than `max_depth`.
    TooDeep { limit: usize },
    /// Not RESP2 (with the byte offset in the reply and what was wrong).
    Malformed { at: usize, what: &'static str },
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::TooLarge { limit } => write!(f, "reply larger than {limit} bytes"),
            RespError::TooDeep { limit } => write!(f, "reply nests deeper than {limit} arrays"),
            RespError::Malformed { at, what } => write!(f, "malformed reply at byte {at}: {what}"),
        }
    }
}

impl std::error::Error for RespError {}

/// Appends one command, an array of bulk strings, to `out`.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    let parts: Vec<BorrowedFrame<'_>> = args
        .iter()
        .map(|a| BorrowedFrame::BulkString(a.as_ref()))
        .collect();
    let frame = BorrowedFrame::Array(&parts);
    let start = out.len();
    out.resize(start + frame.encode_len(false), 0);
    // The slice is exactly `encode_len` bytes, so the crate cannot report BufferTooSmall;
    // should it fail anyway, leave `out` as it was rather than half a command.
    if encode_borrowed(&mut out[start..], &frame, false).is_err() {
        out.truncate(start);
    }
}

/// Appends any frame to `out` (replies in tests, fixtures and the fuzz target).
pub fn encode_frame(out: &mut Vec<u8>, frame: &Frame) {
    let start = out.len();
    out.resize(start + frame.encode_len(false), 0);
    if crate_encode(&mut out[start..], frame, false).is_err() {
        out.truncate(start);
    }
}

/// A streaming RESP2 reply decoder over a caller-owned buffer; see the module docs.
#[derive(Debug, Clone)]
pub struct RespDecoder {
    limits: RespLimits,
    /// Start of the first item of the current reply not yet scanned completely.
    pos: usize,
    /// Where to resume looking for the CR LF that ends the line at `pos`.
    line_from: usize,
    /// Elements still to come in each open array, innermost last.
    open: Vec<u64>,
    /// Set once the input could not be decoded.
    failed: Option<RespError>,
}

impl RespDecoder {
    pub fn new(limits: RespLimits) -> Self {
        RespDecoder {
            limits,
            pos: 0,
            line_from: 0,
            open: Vec::new(),
            failed: None,
        }
    }

    pub fn limits(&self) -> RespLimits {
        self.limits
    }

    /// Whether part of a reply has been scanned and more bytes are awaited.
    pub fn is_mid_reply(&self) -> bool {
        self.pos > 0 || !self.open.is_empty() || self.line_from > 0
    }

    /// Forgets any partial reply and error (for a new connection).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.line_from = 0;
        self.open.clear();
        self.failed = None;
    }

    /// Decodes the reply at the start of `input`: `Ok(Some((frame, used)))` when it is
    /// complete (`used` bytes), `Ok(None)` when more bytes are needed. Between calls the
    /// caller may only append to `input`; after a frame it passes the bytes after `used`.
    pub fn decode(&mut self, input: &[u8]) -> Result<Option<(Frame, usize)>, RespError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.scan(input) {
            Ok(None) => Ok(None),
            Ok(Some(end)) => {
                self.reset();
                match crate_decode(&input[..end]) {
                    Ok(Some((frame, used))) if used == end => Ok(Some((frame, end))),
                    Ok(_) => Err(self.fail(RespError::Malformed {
                        at: 0,
                        what: "reply the codec does not accept",
                    })),
                    Err(_) => Err(self.fail(RespError::Malformed {
                        at: 0,
                        what: "reply the codec does not accept (an error text not UTF-8?)",
                    })),
                }
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Takes every complete reply off the front of `buf` into `out`, compacting `buf` once.
    /// On an error the replies decoded before it are in `out`.
    pub fn drain(&mut self, buf: &mut Vec<u8>, out: &mut Vec<Frame>) -> Result<(), RespError> {
        let mut used = 0;
        let result = loop {
            match self.decode(&buf[used..]) {
                Ok(Some((frame, n))) => {
                    out.push(frame);
                    used += n;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        buf.drain(..used);
        result
    }

    fn fail(&mut self, e: RespError) -> RespError {
        self.failed = Some(e.clone());
        e
    }

    /// Advances over complete items; `Some(end)` once the reply ends at `end`.
    fn scan(&mut self, input: &[u8]) -> Result<Option<usize>, RespError> {
        let max = self.limits.max_reply;
        loop {
            let pos = self.pos;
            let Some(kind) = input.get(pos).copied() else {
                return Ok(None);
            };
            let search_from = self.line_from.max(pos + 1);
            let Some(cr) = find_crlf(input, search_from) else {
                // Resume at the last byte: it may be the CR of a CR LF split by the read.
                self.line_from = input.len().saturating_sub(1).max(pos + 1);
                if input.len() > max {
                    return Err(RespError::TooLarge { limit: max });
                }
                return Ok(None);
            };
            let line = &input[pos + 1..cr];
            let mut next = cr + 2;
            if next > max {
                return Err(RespError::TooLarge { limit: max });
            }
            let mut opens_array = false;
            match kind {
                b'+' | b'-' => {}
                b':' => {
                    parse_int::<i64>(line, pos)?;
                }
                b'$' => {
                    let n = parse_int::<isize>(line, pos)?;
                    if n >= 0 {
                        let len = n.unsigned_abs();
                        let end = next.saturating_add(len).saturating_add(2);
                        if end > max {
                            return Err(RespError::TooLarge { limit: max });
                        }
                        if input.len() < end {
                            self.line_from = cr;
                            return Ok(None);
                        }
                        if &input[end - 2..end] != b"\r\n" {
                            return Err(RespError::Malformed {
                                at: end - 2,
                                what: "bulk string not followed by CR LF",
                            });
                        }
                        next = end;
                    } else if n != -1 {
                        return Err(RespError::Malformed {
                            at: pos,
                            what: "negative bulk string length",
                        });
                    }
                }
                b'*' => {
                    let n = parse_int::<isize>(line, pos)?;
                    if n > 0 {
                        // Every element takes at least 3 bytes ("+\r\n").
                        let len = n.unsigned_abs() as u64;
                        if len.saturating_mul(3) > (max - next) as u64 {
                            return Err(RespError::TooLarge { limit: max });
                        }
                        if self.open.len() >= self.limits.max_depth {
                            return Err(RespError::TooDeep {
                                limit: self.limits.max_depth,
                            });
                        }
                        self.open.push(len);
                        opens_array = true;
                    } else if n < -1 {
                        return Err(RespError::Malformed {
                            at: pos,
                            what: "negative array length",
                        });
                    }
                }
                _ => {
                    return Err(RespError::Malformed {
                        at: pos,
                        what: "unknown type byte",
                    })
                }
            }
            self.pos = next;
            self.line_from = next;
            if opens_array {
                continue;
            }
            // One item complete: close every array it completes.
            while let Some(left) = self.open.last_mut() {
                *left -= 1;
                if *left > 0 {
                    break;
                }
                self.open.pop();
            }
            if self.open.is_empty() {
                return Ok(Some(next));
            }
        }
    }
}

impl Default for RespDecoder {
    fn default() -> Self {
        RespDecoder::new(RespLimits::default())
    }
}

/// The index of the first CR LF at or after `from`.
fn find_crlf(input: &[u8], from: usize) -> Option<usize> {
    let rest = input.get(from..)?;
    let mut at = 0;
    while let Some(i) = rest[at..].iter().position(|&b| b == b'\r') {
        let cr = at + i;
        if rest.get(cr + 1) == Some(&b'\n') {
            return Some(from + cr);
        }
        at = cr + 1;
    }
    None
}

/// Parses a header or integer line the way the crate does (UTF-8, then `str::parse`).
fn parse_int<T: std::str::FromStr>(line: &[u8], at: usize) -> Result<T, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<T>().ok())
        .ok_or(RespError::Malformed {
            at,
            what: "not a decimal integer",
        })
}

/// The text of a reply that should be a bulk or simple string.
pub fn as_bytes(frame: &Frame) -> Option<&[u8]> {
    match frame {
        Frame::BulkString(b) | Frame::SimpleString(b) => Some(b),
        _ => None,
    }
}

/// An integer reply, or a string reply holding a decimal integer.
pub fn as_int(frame: &Frame) -> Option<i64> {
    match frame {
        Frame::Integer(i) => Some(*i),
        Frame::BulkString(b) | Frame::SimpleString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(limits: RespLimits, input: &[u8]) -> Result<Vec<Frame>, RespError> {
        let mut d = RespDecoder::new(limits);
        let mut buf = input.to_vec();
        let mut out = Vec::new();
        d.drain(&mut buf, &mut out).map(|()| out)
    }

    #[test]
    fn encodes_a_command_as_an_array_of_bulk_strings() {
        let mut out = b"x".to_vec();
        encode_command(&mut out, &["SET", "k", ""]);
        assert_eq!(out, b"x*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn decodes_every_kind_and_leaves_a_partial_reply() {
        let input = b"+OK\r\n-ERR no\r\n:-7\r\n$3\r\na\r\n\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n*1\r\n:1\r\n$1\r\nz\r\n$5\r\nab";
        let mut d = RespDecoder::default();
        let mut buf = input.to_vec();
        let mut out = Vec::new();
        d.drain(&mut buf, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                Frame::SimpleString(b"OK".to_vec()),
                Frame::Error("ERR no".into()),
                Frame::Integer(-7),
                Frame::BulkString(b"a\r\n".to_vec()),
                Frame::Null,
                Frame::Null,
                Frame::Array(vec![]),
                Frame::Array(vec![
                    Frame::Array(vec![Frame::Integer(1)]),
                    Frame::BulkString(b"z".to_vec())
                ]),
            ]
        );
        assert_eq!(buf, b"$5\r\nab");
        assert!(d.is_mid_reply());
        buf.extend_from_slice(b"cde\r\n");
        d.drain(&mut buf, &mut out).unwrap();
        assert_eq!(out.last(), Some(&Frame::BulkString(b"abcde".to_vec())));
        assert!(buf.is_empty());
        assert!(!d.is_mid_reply());
    }

    #[test]
    fn refuses_too_large_before_the_body_arrives() {
        let limits = RespLimits {
            max_reply: 64,
            max_depth: 4,
        };
        assert_eq!(
            all(limits, b"$100\r\n"),
            Err(RespError::TooLarge { limit: 64 })
        );
        assert_eq!(
            all(limits, b"*30\r\n"),
            Err(RespError::TooLarge { limit: 64 })
        );
        assert_eq!(
            all(limits, &[b'+'; 65]),
            Err(RespError::TooLarge { limit: 64 })
        );
        // Exactly at the limit is fine.
        let mut at_limit = b"$57\r\n".to_vec();
        at_limit.extend_from_slice(&[b'a'; 57]);
        at_limit.extend_from_slice(b"\r\n");
        assert_eq!(at_limit.len(), 64);
        assert!(all(limits, &at_limit).is_ok());
        let mut over = b"$58\r\n".to_vec();
        over.extend_from_slice(&[b'a'; 58]);
        over.extend_from_slice(b"\r\n");
        assert_eq!(all(limits, &over), Err(RespError::TooLarge { limit: 64 }));
    }

    #[test]
    fn refuses_deep_nesting_and_garbage_and_stays_failed() {
        let limits = RespLimits {
            max_reply: 1 << 20,
            max_depth: 3,
        };
        assert!(all(limits, b"*1\r\n*1\r\n*1\r\n:1\r\n").is_ok());
        assert_eq!(
            all(limits, b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
            Err(RespError::TooDeep { limit: 3 })
        );
        for bad in [
            &b"?\r\n"[..],
            b":x\r\n",
            b"$-2\r\n",
            b"*-5\r\n",
            b"$1\r\nabc",
            b"-\xff\r\n",
        ] {
            let mut d = RespDecoder::new(limits);
            let e = d.decode(bad).unwrap_err();
            assert_eq!(d.decode(b"+OK\r\n"), Err(e), "{bad:?}");
        }
    }

    #[test]
    fn helpers_read_strings_and_integers() {
        assert_eq!(as_int(&Frame::BulkString(b"42".to_vec())), Some(42));
        assert_eq!(as_int(&Frame::Integer(-1)), Some(-1));
        assert_eq!(as_int(&Frame::Null), None);
        assert_eq!(
            as_bytes(&Frame::SimpleString(b"OK".to_vec())),
            Some(&b"OK"[..])
        );
    }

    #[test]
    fn encode_frame_round_trips() {
        let frame = Frame::Array(vec![
            Frame::Integer(5),
            Frame::Null,
            Frame::Error("NOSCRIPT x".into()),
            Frame::SimpleString(b"s".to_vec()),
            Frame::BulkString(b"\x00\r\n".to_vec()),
        ]);
        let mut out = Vec::new();
        encode_frame(&mut out, &frame);
        assert_eq!(all(RespLimits::default(), &out), Ok(vec![frame]));
    }
}
