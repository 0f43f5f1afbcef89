//! WebSocket: the frame decoder.

use super::*;
use chat_server::proto::websocket::{WsDecoder, WsEvent};

/// An owned [`WsEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsOut {
    Text(String),
    Ping(Vec<u8>),
    Pong,
    Close(u16),
    Fail(u16),
}

/// Close codes the decoder may fail with: protocol error, unsupported (binary), invalid
/// payload (bad UTF-8), too big.
pub const WS_FAIL_CODES: [u16; 4] = [1002, 1003, 1007, 1009];

/// Longest frame header: 2 bytes, 8 of extended length, 4 of mask.
pub(crate) const WS_MAX_HEADER: usize = 14;

/// Most heap a WebSocket decoder may hold after a `feed`, when the largest chunk fed so far
/// was `chunk` bytes: its buffer of an incomplete frame (header plus at most `max` payload
/// bytes) — which, once not empty, takes each whole chunk in and keeps that capacity after
/// draining it — plus a fragmented message of at most `max` bytes, with `Vec` doubling.
///
/// This is what the decoder achieves; it is looser than "at most one frame": see
/// `ws_decoder_keeps_at_most_one_frame_of_capacity` in `tests/properties.rs`.
pub fn ws_heap_bound(max: usize, chunk: usize) -> usize {
    2 * (WS_MAX_HEADER + max + chunk) + 2 * max + 64
}

/// Decodes `data` (client frames) with message limit `max`, whole, byte by byte and split at
/// `cuts`; checks that every chunking gives the same events, texts are at most `max` bytes,
/// pings at most 125, a close or failure is the last event (nothing comes out of a dead
/// decoder, even for a valid frame), failure codes are from [`WS_FAIL_CODES`], and the
/// decoder's heap stays within [`ws_heap_bound`] (none at all when idle). Returns the events.
pub fn check_ws(data: &[u8], max: usize, cuts: &[usize]) -> Vec<WsOut> {
    let counting = heap_counting();
    let mut reference: Option<Vec<WsOut>> = None;
    for (name, chunks) in chunkings(data, cuts) {
        let mut events = Vec::new();
        let mut dec = WsDecoder::new();
        for chunk in &chunks {
            dec.feed(chunk, max, |e| events.push(owned_ws(e)));
        }
        if matches!(events.last(), Some(WsOut::Close(_) | WsOut::Fail(_))) {
            let mut more = 0;
            dec.feed(&client_frame(0x81, b"hi", [1, 2, 3, 4]), max, |_| more += 1);
            assert_eq!(more, 0, "websocket: events from a closed decoder");
        }
        match &reference {
            None => reference = Some(events),
            Some(whole) => assert_eq!(
                &events, whole,
                "websocket: chunking {name} gave other events than the whole input"
            ),
        }
        if counting {
            let mut dec = WsDecoder::new();
            let base = live_bytes();
            let mut over = None;
            let mut largest = 0;
            for chunk in &chunks {
                largest = largest.max(chunk.len());
                dec.feed(chunk, max, |e| {
                    if let WsEvent::Text(t) = e {
                        if t.len() > max {
                            over = Some(t.len());
                        }
                    }
                });
                let held = live_bytes() - base;
                let bound = ws_heap_bound(max, largest) as isize;
                assert!(
                    held <= bound,
                    "websocket: decoder holds {held} heap bytes, bound {bound} (max {max}, largest chunk {largest})"
                );
                if dec.is_idle() {
                    assert_eq!(held, 0, "websocket: an idle decoder holds heap");
                }
            }
            assert_eq!(over, None, "websocket: text over max");
        }
    }
    let events = reference.unwrap_or_default();
    for (i, ev) in events.iter().enumerate() {
        match ev {
            WsOut::Text(t) => {
                assert!(
                    t.len() <= max,
                    "websocket: text of {} bytes, max {max}",
                    t.len()
                );
            }
            WsOut::Ping(p) => assert!(p.len() <= 125 && p.len() <= max),
            WsOut::Pong => {}
            WsOut::Close(_) => assert_eq!(i + 1, events.len(), "websocket: events after Close"),
            WsOut::Fail(code) => {
                assert!(WS_FAIL_CODES.contains(code), "websocket: fail code {code}");
                assert_eq!(i + 1, events.len(), "websocket: events after Fail");
            }
        }
    }
    events
}

pub(crate) fn owned_ws(e: WsEvent<'_>) -> WsOut {
    match e {
        WsEvent::Text(t) => WsOut::Text(t.to_string()),
        WsEvent::Ping(p) => WsOut::Ping(p.to_vec()),
        WsEvent::Pong => WsOut::Pong,
        WsEvent::Close(c) => WsOut::Close(c),
        WsEvent::Fail(c) => WsOut::Fail(c),
    }
}

/// A masked client frame: `first` is the FIN/RSV/opcode byte.
pub fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![first];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    out
}
