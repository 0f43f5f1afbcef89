//! Telnet framing: arbitrary bytes, split at fuzzer-chosen points.
//!
//! Input: a control byte (bits 0–1: `max_line` of 512, 0, 8 or 64; bits 2–3: `max_input` of
//! 4096, `max_line`, 16 or 300), a cut seed, then the bytes from the client.
//!
//! Invariants ([`fuzz_support::check_telnet`]): no panic; the same events whole, byte by byte
//! and at the cuts; every line at most `max_line` bytes with no CR/LF; only refusals (or the
//! TIMING-MARK answer) as replies; nothing after an overflow; the decoder's heap bounded by
//! `max_line` and zero when idle; every line's `clean_line` output free of control
//! characters, trimmed, idempotent, and given back by the telnet encoding.
#![no_main]

use chat_server::proto::telnet::TelnetLimits;
use fuzz_support::{check_telnet, control, cuts_from_seed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cfg, seed, payload) = control(data);
    let max_line = [512, 0, 8, 64][usize::from(cfg & 3)];
    let max_input = [4096, max_line, 16, 300][usize::from((cfg >> 2) & 3)];
    let limits = TelnetLimits {
        max_line,
        max_input,
    };
    check_telnet(payload, &limits, &cuts_from_seed(seed, payload.len()));
});
