//! HTTP framing and routing: arbitrary bytes, split at fuzzer-chosen points, through the
//! incremental request decoder; every request through the web port's router and the REST
//! router, every response encoded.
//!
//! Input: a control byte (bits 0–1: `max_header` of 8192, 256, 64 or 1024; bits 2–3:
//! `max_body` of 16384, 0, 16 or 64), a cut seed, then the bytes from the client.
//!
//! Invariants ([`fuzz_support::check_http`], [`fuzz_support::Routes::route`]): no panic; the
//! same requests whole, byte by byte and at the cuts; error statuses only 400, 408, 411,
//! 413, 431, 505; every request's head and body within the limits, body equal to its
//! `Content-Length`; the buffer bounded while waiting; responses with known statuses, no
//! control characters in header values, a correct `Content-Length`, parseable JSON with the
//! envelope; announcements reach users free of control characters; after an upgrade, the
//! bytes behind the request decode as WebSocket frames without breaking any rule.
#![no_main]

use chat_server::proto::http::HttpLimits;
use fuzz_support::{check_http, control, cuts_from_seed, write_fixture_log, HttpOut, Routes};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The chat log that log searches read: one fixed file in the temporary directory, written
/// under a private name and renamed into place, so that concurrent fuzz jobs always read a
/// complete log and no file per process is left behind.
fn log_path() -> &'static PathBuf {
    static LOG: OnceLock<PathBuf> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = std::env::temp_dir();
        let path = dir.join("chat-server-fuzz-fixture.log");
        let fresh = dir.join(format!(
            "chat-server-fuzz-fixture.{}.tmp",
            std::process::id()
        ));
        write_fixture_log(&fresh);
        std::fs::rename(&fresh, &path).expect("move the fixture chat log into place");
        path
    })
}

fuzz_target!(|data: &[u8]| {
    let (cfg, seed, payload) = control(data);
    let limits = HttpLimits {
        max_header: [8192, 256, 64, 1024][usize::from(cfg & 3)],
        max_body: [16384, 0, 16, 64][usize::from((cfg >> 2) & 3)],
    };
    let outs = check_http(payload, &limits, &cuts_from_seed(seed, payload.len()));
    let mut routes = Routes::new(log_path());
    for out in outs.iter().take(8) {
        if let HttpOut::Request(req) = out {
            // What followed the request is only known for the last one; good enough.
            let tail = payload
                .get(payload.len().saturating_sub(64)..)
                .unwrap_or_default();
            routes.route(req, tail);
        }
    }
});
