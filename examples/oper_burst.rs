//! How much a burst of `/oper` attempts (argon2 verifications on the single loop thread)
//! delays everybody else's chat.
//!
//! ```text
//! cargo run --release --example oper_burst -- HOST:TELNET_PORT [CHATTERS] [ATTACKERS] [SECONDS]
//! ```
//!
//! `CHATTERS` users (default 20) sit in `#bench`; each sends a line every 250 ms (inside the 5 lines/s limit) and times
//! until its own copy comes back. The run has two phases of `SECONDS` (default 5) each:
//! quiet, then with `ATTACKERS` connections (default 40) sending five wrong `/oper` lines at
//! a time as fast as the server answers, reconnecting after each fifth failure closes them.
//! It prints the chat round-trip percentiles of each phase and the `/oper` checks done.
//! The server must have an operator configured (any hash); it runs on its own.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn line_reader(stream: &TcpStream) -> BufReader<TcpStream> {
    BufReader::new(stream.try_clone().expect("clone"))
}

fn read_line(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut s = String::new();
    match r.read_line(&mut s) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(s.trim_end().to_string()),
    }
}

/// Connects and chooses `nick`; the stream and its reader.
fn sign_in(addr: SocketAddr, nick: &str) -> Option<(TcpStream, BufReader<TcpStream>)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_nodelay(true).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut r = line_reader(&s);
    read_line(&mut r)?; // welcome
    writeln!(s, "{nick}").ok()?;
    read_line(&mut r)?; // thanks
    Some((s, r))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = args
        .first()
        .and_then(|a| a.parse().ok())
        .expect("usage: oper_burst HOST:TELNET_PORT [CHATTERS] [ATTACKERS] [SECONDS]");
    let chatters: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let attackers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(40);
    let secs: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);

    // Latencies in µs, per phase (0 quiet, 1 burst).
    let samples: Arc<[Mutex<Vec<u64>>; 2]> = Arc::new([Mutex::default(), Mutex::default()]);
    let phase = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));

    let mut handles = Vec::new();
    for i in 0..chatters {
        let (samples, phase, stop) = (samples.clone(), phase.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            let nick = format!("chat{i}");
            let Some((mut s, mut r)) = sign_in(addr, &nick) else {
                eprintln!("{nick}: cannot sign in");
                return;
            };
            writeln!(s, "/join #bench").ok();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tag = format!("{nick} {n}");
                let started = Instant::now();
                let ph = phase.load(Ordering::Relaxed) as usize;
                if writeln!(s, "{tag}").is_err() {
                    return;
                }
                let want = format!("-@{nick}: {tag}");
                loop {
                    let Some(line) = read_line(&mut r) else {
                        return;
                    };
                    if line.ends_with(&want) {
                        break;
                    }
                }
                if ph == phase.load(Ordering::Relaxed) as usize && ph < 2 {
                    samples[ph]
                        .lock()
                        .unwrap()
                        .push(started.elapsed().as_micros() as u64);
                }
                n += 1;
                thread::sleep(Duration::from_millis(250));
            }
        }));
    }
    thread::sleep(Duration::from_secs(1)); // everyone joined
    samples[0].lock().unwrap().clear();
    thread::sleep(Duration::from_secs(secs));

    phase.store(1, Ordering::Relaxed);
    let burst_stop = Arc::new(AtomicBool::new(false));
    for i in 0..attackers {
        let (burst_stop, checks) = (burst_stop.clone(), checks.clone());
        handles.push(thread::spawn(move || {
            let mut round = 0;
            while !burst_stop.load(Ordering::Relaxed) {
                let Some((mut s, mut r)) = sign_in(addr, &format!("x{i}r{round}")) else {
                    return;
                };
                round += 1;
                let burst = "/oper alice wrong-password\n".repeat(5);
                if s.write_all(burst.as_bytes()).is_err() {
                    continue;
                }
                while let Some(line) = read_line(&mut r) {
                    if line == "Invalid operator credentials." {
                        checks.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    thread::sleep(Duration::from_secs(secs));
    phase.store(2, Ordering::Relaxed);
    burst_stop.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let done = checks.load(Ordering::Relaxed);
    for (name, i) in [("quiet", 0), ("during /oper burst", 1)] {
        let mut v = samples[i].lock().unwrap().clone();
        v.sort_unstable();
        println!(
            "{name:>20}: {:>6} chat round trips, p50 {:>7.2} ms, p99 {:>7.2} ms, max {:>7.2} ms",
            v.len(),
            percentile(&v, 0.50),
            percentile(&v, 0.99),
            percentile(&v, 1.0)
        );
    }
    println!(
        "/oper checks answered during the burst: {done} ({:.1}/s)",
        done as f64 / secs as f64
    );
    std::process::exit(0);
}
