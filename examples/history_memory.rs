//! Memory of the chat history (SPEC §12): the process's resident set before and after filling
//! 1,000 channels' rings with 200 entries of 100-byte messages each, through the same path
//! the start-up rebuild uses (`ChatCore::restore`).
//!
//! `cargo run --release --example history_memory [CHANNELS] [ENTRIES] [TEXT_BYTES]`

use chat_server::chat::{ChatCore, CoreConfig};
use chat_server::record::Record;
use std::borrow::Cow;

/// The resident set size in KiB, from `/proc/self/status` (0 where there is none).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (channels, entries, text_bytes) = (arg(1, 1000), arg(2, 200), arg(3, 100));
    let mut core = ChatCore::new(CoreConfig {
        history_size: entries,
        history_channels: channels,
        ..CoreConfig::default()
    });
    let names: Vec<String> = (0..channels).map(|c| format!("#channel-{c}")).collect();
    let before = rss_kib();
    let mut seq = 0u64;
    for round in 0..entries {
        for name in &names {
            seq += 1;
            let mut text = format!("message {round} in {name} ");
            while text.len() < text_bytes {
                text.push('x');
            }
            text.truncate(text_bytes);
            let record = Record::Chat {
                nick: Cow::Borrowed("someone"),
                channel: Cow::Borrowed(name),
                text: Cow::Owned(text),
            };
            core.restore(seq, 1_795_791_845_000 + seq as i64, &record);
        }
    }
    let after = rss_kib();
    let held: usize = names
        .iter()
        .filter_map(|n| core.history_of(n))
        .map(|r| r.len())
        .sum();
    let per_entry = (after.saturating_sub(before) * 1024) as f64 / held.max(1) as f64;
    println!(
        "{channels} channels x {entries} entries of {text_bytes}-byte messages ({held} entries held)"
    );
    println!(
        "RSS before {before} KiB, after {after} KiB: +{:.1} MiB, {per_entry:.0} bytes per entry",
        after.saturating_sub(before) as f64 / 1024.0
    );
}
