//! Load generator for chat-server and the baseline servers (`examples/baseline_*.rs`).
//!
//! One thread, one mio `Poll`, like the server. It opens telnet and WebSocket clients on
//! loopback (client sockets bound to 127.0.0.2.., so 10,000 connections do not run out of
//! ephemeral ports), identifies them as `u<i>`, joins them to `#b<c>` (clients spread
//! round-robin over `--channels`), checks with a barrier message that every client is in its
//! channel, then runs phases:
//!
//! * `knee`: steps the offered load (doubling, then bisecting) to find the highest delivered
//!   messages/s with p99 ≤ `--p99-ms` and zero loss;
//! * `fixed:D`: one step at D offered deliveries/s;
//! * `stalled:D`: a share (`--stalled-share`) of the clients stop reading; the others' latency
//!   and the server's RSS are measured;
//! * `rest:D`: a REST log query (`GET /v1/api/message?pattern=...`) is repeated during the step;
//! * `churn:D`: extra telnet clients connect, identify and `/quit` at `--churn-rate`/s;
//! * `overload[:D]`: twice D (or twice the knee found before) for `--overload-s`, then D for
//!   `--recover-s`: disconnects, loss, delivered/s and when p99 came back under `--p99-ms`
//!   with nothing shed. In this step only, a message due while its sender has as many
//!   messages on their way (sent, not yet echoed back to it) as it sends in `--p99-ms` at the
//!   lower rate is shed and counted as `shed` (offered, not sent) instead of queued behind
//!   the excess.
//!
//! Senders publish open loop: message `j` of a step is due at `start + j/R` and carries that
//! scheduled time, so latency is measured from when it *should* have been sent (no
//! coordinated omission). Every delivery is checked per (sender, recipient) for loss, gaps
//! (skipped sequence numbers) and duplicates/reordering.
//!
//! Output: a human summary on stderr and one JSON object per scenario on stdout.
//! Every wait has a deadline and the whole run ends by `--max-seconds`.

mod conn;
mod gen;
mod knee;
mod nodes;
mod opts;
mod order;
mod overload;
mod phases;
mod pump;
mod recv;
mod redis;
mod setup;
mod side;
mod stats;
mod step;
mod sys;

use gen::Gen;
use mio::Events;
use opts::{parse_opts, Opts, Phase, USAGE};
use serde_json::{json, Value};
use std::io;
use std::time::{Duration, Instant};

/// Length of every chat text the senders publish.
const MSG_LEN: usize = 64;
/// The read buffer shared by all connections.
const SCRATCH: usize = 128 * 1024;
/// The WebSocket key sent in every handshake (its accept value is checked).
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn emit(target: &str, scenario: &str, common: &Value, body: Value) {
    let mut v = json!({ "target": target, "scenario": scenario });
    if let (Some(m), Some(c)) = (v.as_object_mut(), common.as_object()) {
        for (k, val) in c {
            m.insert(k.clone(), val.clone());
        }
        if let Some(b) = body.as_object() {
            for (k, val) in b {
                m.insert(k.clone(), val.clone());
            }
        } else {
            m.insert("result".into(), body);
        }
    }
    println!("{v}");
}

fn run(o: Opts) -> io::Result<i32> {
    let started = Instant::now();
    let mut g = Gen::new(o)?;
    let mut events = Events::with_capacity(4096);
    let target = g.o.target.clone();
    let mut common = json!({
        "telnet_clients": g.o.telnet_clients,
        "ws_clients": g.o.ws_clients,
        "channels": g.o.channels,
        "senders": g.sh.senders,
    });
    if let Some(m) = common.as_object_mut() {
        for (k, v) in &g.o.tags {
            m.insert(k.clone(), json!(v));
        }
    }
    let rss_before = g.rss();
    let total = g.total_clients();
    eprintln!(
        "[{target}] {} telnet + {} websocket clients, {} channel(s), {} sender(s)",
        g.o.telnet_clients, g.o.ws_clients, g.o.channels, g.sh.senders
    );
    let mut sizes: Vec<usize> = g.o.sizes.iter().copied().filter(|&n| n < total).collect();
    sizes.push(total);
    let t_connect = Instant::now();
    let mut code = 0;
    for &n in &sizes {
        if g.aborted {
            break;
        }
        let mut common = common.clone();
        if let Some(m) = common.as_object_mut() {
            m.insert("size".into(), json!(n));
        }
        g.knee_dps = None;
        if !g.setup_size(&mut events, n, &common, rss_before, t_connect) {
            code = 1;
            break;
        }
        let mut phases = if g.o.phases_at.is_empty() || g.o.phases_at.contains(&n) {
            g.o.phases.clone()
        } else {
            Vec::new()
        };
        if g.o.extra_at == Some(n) {
            phases.extend(g.o.extra_phases.iter().copied());
        }
        for p in phases {
            if g.aborted {
                break;
            }
            run_phase(&mut g, &mut events, p, n, &common);
            // A short pause between phases.
            let until = Instant::now() + Duration::from_millis(100);
            g.pump(&mut events, until, |_| false);
        }
    }
    emit(
        &target,
        "end",
        &common,
        json!({
            "aborted": g.aborted,
            "wall_s": started.elapsed().as_secs_f64(),
            "disconnects": g.sh.disconnects,
            "errors": g.sh.errors,
        }),
    );
    if g.aborted {
        eprintln!("[{target}] stopped at --max-seconds");
        return Ok(3);
    }
    Ok(code)
}

fn run_phase(g: &mut Gen, events: &mut Events, p: Phase, size: usize, common: &Value) {
    let target = g.o.target.clone();
    match p {
        Phase::Knee => {
            let v = g.knee(events, size);
            eprintln!(
                "[{target}] knee at {size}: {:.0} deliveries/s{}",
                v["knee_dps"].as_f64().unwrap_or(0.0),
                if v["limited_by_generator"].as_bool().unwrap_or(false) {
                    " (the failing step saturated the generator)"
                } else {
                    ""
                }
            );
            emit(&target, "knee", common, v);
        }
        Phase::Fixed(d) => {
            let v = g.run_step(events, "fixed", d, g.o.step_s);
            emit(&target, "fixed", common, v);
        }
        Phase::Stalled(d) => {
            let v = g.stalled(events, d);
            eprintln!(
                "[{target}] stalled: {} stalled readers, {} closed by the server, RSS +{} KiB",
                v["stalled_clients"], v["closed_by_server"], v["rss_growth_kib"]
            );
            emit(&target, "stalled", common, v);
        }
        Phase::Rest(d) => {
            let v = g.rest_phase(events, d);
            eprintln!(
                "[{target}] rest queries: {} {}",
                v["queries"], v["statuses"]
            );
            emit(&target, "rest", common, v);
        }
        Phase::Churn(d) => {
            let v = g.churn_phase(events, d);
            eprintln!(
                "[{target}] churn: {} ok, {} failed",
                v["cycles_ok"], v["cycles_failed"]
            );
            emit(&target, "churn", common, v);
        }
        Phase::Overload(d) => {
            let dps = match d {
                Some(d) => Some(g.rates(d).0),
                None => g.knee_dps,
            };
            let Some(dps) = dps else {
                eprintln!("[{target}] overload: no knee at this size to start from; skipped");
                emit(&target, "overload", common, json!({ "skipped": "no knee" }));
                return;
            };
            let v = g.overload(events, dps);
            emit(&target, "overload", common, v);
        }
    }
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(o) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}
