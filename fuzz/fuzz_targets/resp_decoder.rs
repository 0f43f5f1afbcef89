//! RESP2 reply decoding (the cluster link's reader): arbitrary bytes, split at
//! fuzzer-chosen points.
//!
//! Input: a control byte (bits 0–1: `max_reply` of 8 MiB, 64, 1 or 300; bits 2–3:
//! `max_depth` of 8, 0, 1 or 3), a cut seed, then the bytes from the server.
//!
//! Invariants (`resp_checks::check_resp`): no panic; the same frames and outcome whole,
//! byte by byte, at every split point and at the cuts; the waiting input within the reply
//! cap; the decoder's heap within its bound; every frame re-encodes no larger and decodes
//! back to itself.
#![no_main]

#[path = "../src/resp_checks.rs"]
mod resp_checks;

use chat_server::proto::resp::RespLimits;
use fuzz_support::{control, cuts_from_seed, live_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cfg, seed, payload) = control(data);
    let limits = RespLimits {
        max_reply: [8 << 20, 64, 1, 300][usize::from(cfg & 3)],
        max_depth: [8, 0, 1, 3][usize::from((cfg >> 2) & 3)],
    };
    resp_checks::check_resp(
        payload,
        &limits,
        &cuts_from_seed(seed, payload.len()),
        live_bytes,
    );
});
