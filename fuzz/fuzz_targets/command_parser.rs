//! The command parser and the chat core: arbitrary text into `parse_command`, and the same
//! input as a session script (see [`fuzz_support::run_script`]: clients connecting, naming
//! themselves, sending lines, ticks, announcements, failing log writes, shutdown) through a
//! `ChatCore` with a checking `Outbox`.
//!
//! Invariants: `parse_command` never panics and its result matches the line (exact command
//! word, arguments taken from the line, valid channel names); every text the core sends is
//! non-empty, at most 4 KiB, free of control characters other than `'\n'` between lines and
//! TAB, encodes correctly for telnet and WebSocket, and goes only to connected clients that
//! the core has not closed; chat, private and announcement texts are sent only after their
//! log record was written, never when it failed; nicknames and channels stay valid and
//! unique; counts match; shutdown leaves nothing behind.
#![no_main]

use fuzz_support::{check_parse_command, run_script};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_parse_command(&text);
    for line in text.lines() {
        check_parse_command(line);
    }
    run_script(data);
});
