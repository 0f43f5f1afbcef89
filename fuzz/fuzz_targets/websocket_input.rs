//! WebSocket input: arbitrary bytes from a client, split at fuzzer-chosen points, into the
//! frame decoder with a small message limit.
//!
//! Input: a control byte (bits 0–1: `max_message` of 16, 125, 4096 or 0), a cut seed, then
//! the bytes from the client.
//!
//! Invariants ([`fuzz_support::check_ws`]): no panic; the same events whole, byte by byte
//! and at the cuts; texts valid UTF-8 and at most the limit; pings at most 125 bytes; close
//! or failure last, failure codes only 1002, 1003, 1007, 1009, and nothing out of a dead
//! decoder; the decoder's heap bounded and zero when idle; every text's `clean_line` output
//! free of control characters.
#![no_main]

use fuzz_support::{check_clean_line, check_ws, control, cuts_from_seed, WsOut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cfg, seed, payload) = control(data);
    let max = [16, 125, 4096, 0][usize::from(cfg & 3)];
    for event in check_ws(payload, max, &cuts_from_seed(seed, payload.len())) {
        if let WsOut::Text(text) = event {
            check_clean_line(text.as_bytes());
        }
    }
});
