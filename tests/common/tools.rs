//! Small helpers of the robustness tests: config objects, a seeded random generator,
//! notes that show when a test passes, and the test process's own descriptor limit.

use serde_json::{json, Value};
use std::io::{self, Write};
use std::process::Command;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Rate limits that never get in the way.
pub fn fast_lines() -> Value {
    json!({"lines_burst": 1_000_000, "lines_per_s": 1_000_000.0})
}

/// Merges JSON objects (later keys win).
pub fn merge(parts: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for p in parts {
        for (k, v) in p.as_object().expect("an object") {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

pub fn all_kinds() -> [&'static str; 3] {
    ["telnet", "websocket", "rest"]
}

pub fn sleep_ms(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}

/// Prints a note that shows even when the test passes: `eprintln!` is captured by the test
/// harness, a direct write to the process's stderr is not.
pub fn loud_note(text: &str) {
    let _ = writeln!(io::stderr(), "\n*** NOTE: {text} ***\n");
}

/// A small pseudo-random generator (xorshift), seeded from the clock; the seed is printed
/// (shown with the output of a failing test).
pub struct Rng(u64);

impl Rng {
    pub fn from_clock(what: &str) -> Rng {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
        eprintln!("{what}: random seed {seed}");
        Rng(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Raises this test process's soft open-file limit to its hard limit (best effort): some
/// tests hold several hundred sockets at once.
pub fn raise_own_fd_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return;
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (Some(soft), Some(hard)) = (fields.get(3), fields.get(4)) else {
        return;
    };
    if soft.parse::<u64>().is_ok_and(|s| s >= 4096) {
        return;
    }
    let _ = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={hard}:{hard}"))
        .status();
}
