//! Invariants of the RESP2 reply decoder (`chat_server::proto::resp`), shared by the
//! `resp_decoder` fuzz target and `tests/resp_properties.rs` (both include this file by
//! path; it depends only on the library and on the heap counter handed in).
//!
//! For any bytes: no panic; the same frames and the same final outcome (error, or the same
//! bytes left waiting) whether the input arrives whole, byte by byte, at every single split
//! point (inputs up to [`EVERY_SPLIT_MAX`] bytes) or at the given cuts; the waiting input never
//! exceeds the reply cap; the decoder's own heap stays within a few words per allowed nesting
//! level; every frame re-encodes to at most the bytes it came from and decodes back to itself.

use chat_server::proto::resp::{encode_frame, Frame, RespDecoder, RespError, RespLimits};

/// Inputs up to this many bytes are also checked at every single split point.
pub const EVERY_SPLIT_MAX: usize = 512;

/// What feeding a whole input produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RespOutcome {
    pub frames: Vec<Frame>,
    pub error: Option<RespError>,
    /// Bytes of an incomplete reply still waiting (none after an error).
    pub waiting: Vec<u8>,
}

/// Heap the decoder may hold between calls: its stack of open-array counters.
pub fn resp_heap_bound(limits: &RespLimits) -> isize {
    (2 * limits.max_depth * std::mem::size_of::<u64>() + 64) as isize
}

/// Feeds `chunks` one by one into a fresh decoder over a growing buffer, checking the
/// bounds after every chunk. `live` reads the live heap bytes (or returns 0).
pub fn feed_resp(chunks: &[&[u8]], limits: &RespLimits, live: fn() -> isize) -> RespOutcome {
    let mut decoder = RespDecoder::new(*limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        let mut used = 0;
        loop {
            let before = live();
            let step = decoder.decode(&buf[used..]);
            match step {
                Ok(Some((frame, n))) => {
                    assert!(n > 0 && n <= limits.max_reply, "frame of {n} bytes");
                    check_frame(&frame, &buf[used..used + n], limits);
                    let held = live() - before - frame_heap(&frame);
                    assert!(
                        held <= resp_heap_bound(limits),
                        "decoder grew by {held} bytes while decoding a frame"
                    );
                    frames.push(frame);
                    used += n;
                }
                Ok(None) => {
                    let held = live() - before;
                    assert!(
                        held <= resp_heap_bound(limits),
                        "decoder grew by {held} bytes while waiting"
                    );
                    break;
                }
                Err(e) => {
                    // Fail-stop: the same error again, whatever comes next.
                    assert_eq!(decoder.decode(b"+OK\r\n").as_ref(), Err(&e));
                    return RespOutcome {
                        frames,
                        error: Some(e),
                        waiting: Vec::new(),
                    };
                }
            }
        }
        buf.drain(..used);
        assert!(
            buf.len() <= limits.max_reply,
            "{} bytes waiting with a cap of {}",
            buf.len(),
            limits.max_reply
        );
    }
    RespOutcome {
        frames,
        error: None,
        waiting: buf,
    }
}

/// The whole check: every chunking gives the outcome of the whole input.
pub fn check_resp(
    data: &[u8],
    limits: &RespLimits,
    cuts: &[usize],
    live: fn() -> isize,
) -> RespOutcome {
    let whole = feed_resp(&[data], limits, live);
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(feed_resp(&bytes, limits, live), whole, "byte by byte");
    let at_cuts = split_at(data, cuts);
    assert_eq!(feed_resp(&at_cuts, limits, live), whole, "at cuts {cuts:?}");
    if data.len() <= EVERY_SPLIT_MAX {
        for i in 0..=data.len() {
            let (a, b) = data.split_at(i);
            assert_eq!(
                feed_resp(&[a, b], limits, live),
                whole,
                "split at {i} of {}",
                data.len()
            );
        }
    }
    whole
}

/// A decoded frame re-encodes to no more than its input and decodes back to itself.
fn check_frame(frame: &Frame, input: &[u8], limits: &RespLimits) {
    let mut again = Vec::new();
    encode_frame(&mut again, frame);
    assert!(
        again.len() <= input.len(),
        "re-encoded to {} bytes from {}",
        again.len(),
        input.len()
    );
    let mut d = RespDecoder::new(*limits);
    match d.decode(&again) {
        Ok(Some((back, n))) => {
            assert_eq!(n, again.len());
            assert_eq!(&back, frame);
        }
        other => panic!("re-encoded frame does not decode: {other:?}"),
    }
}

/// Heap bytes a frame owns (capacity, so the decoder's own growth can be told apart).
fn frame_heap(frame: &Frame) -> isize {
    let n = match frame {
        Frame::SimpleString(b) | Frame::BulkString(b) => b.capacity(),
        Frame::Error(s) => s.capacity(),
        Frame::Array(items) => {
            items.capacity() * std::mem::size_of::<Frame>()
                + items.iter().map(|f| frame_heap(f) as usize).sum::<usize>()
        }
        Frame::Integer(_) | Frame::Null => 0,
    };
    n as isize
}

/// Splits `data` at `cuts` (each taken modulo `data.len() + 1`, then sorted).
pub fn split_at<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(&data[start..cut]);
        start = cut;
    }
    chunks.push(&data[start..]);
    chunks
}
