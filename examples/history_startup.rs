//! Start-up time with a large chat log (SPEC §12: listening within 100 ms even on a 1 GiB
//! log): writes a log of the given size, then starts the release binary on it and on an empty
//! log, several times each, and reports the time from spawning the process to its `websocket
//! listening` line (the last listener it announces), and the ratio of the two.
//!
//! `sh scripts/history-startup.sh` builds and runs it; by hand:
//! `cargo run --release --example history_startup -- [LOG_MIB] [RUNS]`

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Writes `mib` MiB of chat records with increasing `seq`, spread over 200 channels.
fn write_log(path: &Path, mib: u64) -> std::io::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let (mut seq, mut written) = (0u64, 0u64);
    let text = "x".repeat(60);
    while written < mib << 20 {
        seq += 1;
        let line = format!(
            "{{\"ts\":\"2026-11-27T15:04:05.123Z\",\"seq\":{seq},\"kind\":\"chat\",\"nick\":\"user{}\",\"channel\":\"#c{}\",\"text\":\"{text} {seq}\"}}\n",
            seq % 97,
            seq % 200
        );
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    out.flush()?;
    Ok(written)
}

/// Milliseconds from spawning the server on `log` to its last listening line; stops it.
fn time_to_listening(bin: &Path, dir: &Path, log: &Path) -> Duration {
    let config = dir.join("config.json");
    let json = format!(
        "{{\"ip\":\"127.0.0.1\",\"telnet_port\":0,\"rest_port\":0,\"websocket_port\":0,\"log_file\":{:?},\"admin_token\":\"startup-bench-token-0123\"}}",
        log.display().to_string()
    );
    std::fs::write(&config, json).expect("write the config");
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let stderr = child.stderr.take().expect("stderr");
    let mut elapsed = None;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if line.contains("websocket listening on") {
            elapsed = Some(start.elapsed());
            break;
        }
    }
    // Our own child, by its handle.
    let _ = child.kill();
    let _ = child.wait();
    elapsed.expect("the server never said it was listening")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let (mib, runs) = (arg(1, 1024), arg(2, 5).max(1));
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/chat-server");
    assert!(bin.is_file(), "build it first: cargo build --release");
    let dir = std::env::temp_dir().join(format!("chat-startup-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let big = dir.join("big.log");
    let empty = dir.join("empty.log");
    let bytes = write_log(&big, mib).expect("write the big log");
    std::fs::write(&empty, b"").expect("write the empty log");
    let mut base = Vec::new();
    let mut large = Vec::new();
    for _ in 0..runs {
        base.push(time_to_listening(&bin, &dir, &empty));
        large.push(time_to_listening(&bin, &dir, &big));
    }
    let (b, l) = (median(base), median(large));
    println!(
        "log of {:.0} MiB, {runs} runs each, median time from spawn to listening:",
        bytes as f64 / 1048576.0
    );
    println!("  empty log: {:.1} ms", b.as_secs_f64() * 1e3);
    println!(
        "  large log: {:.1} ms (history rebuilt from its last 4 MiB)",
        l.as_secs_f64() * 1e3
    );
    println!(
        "  ratio large / empty: {:.2}",
        l.as_secs_f64() / b.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
