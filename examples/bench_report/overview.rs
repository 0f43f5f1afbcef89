//! The opening sections: title, machine, method, and the SPEC §9 summary.

use crate::data::*;
use crate::Ctx;
use std::fmt::Write as _;

/// Title, and the quick-mode note.
pub fn header(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let reps = c.reps;
    let quick = c.quick;
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Written by `{}` (`make bench`) from one run; rerun it to refresh. Do not edit by hand.\n",
        d.meta("command")
    );
    if quick {
        let _ = writeln!(
            s,
            "**Quick mode**: smaller client counts ({} in one channel, {} in the many-channels \
             run), shorter steps, {} repetition(s). The full run (`scripts/bench.sh`) uses \
             1k / 5k / 10k and 3 repetitions.\n",
            d.meta("sizes"),
            d.meta("channels_run"),
            reps
        );
    }
}

/// The machine and the run's parameters, and a warning when the machine was busy.
pub fn machine(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let _ = writeln!(s, "## Machine and run\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    for (k, label) in [
        ("date", "date"),
        ("command", "command"),
        ("commit", "commit"),
        ("nproc", "CPUs (nproc)"),
        ("model", "CPU model"),
        ("kernel", "kernel"),
        ("memory", "memory"),
        ("pinning", "pinning"),
        ("load_start", "load average before"),
        ("load_end", "load average after"),
        ("fd_limit", "open-file limit"),
        ("reps", "repetitions"),
        ("budget_s", "time budget (s, after the build)"),
        ("elapsed_s", "time used (s, after the build)"),
        ("build_s", "build (s)"),
        ("peer_bin", "PEER_BIN"),
    ] {
        let v = d.meta(k);
        let v = if k == "command" {
            format!("`{v}`")
        } else {
            v.to_owned()
        };
        let _ = writeln!(s, "| {label} | {v} |");
    }
    let load: f64 = d
        .meta("load_start")
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0);
    if load > 1.0 {
        let _ = writeln!(
            s,
            "\n> **The machine was busy** (load average {load:.1} before the run, on {} CPUs): \
             other processes competed for the CPUs, so latencies and knees below are lower \
             bounds of what the servers do on an idle machine. Compare the targets with each \
             other (each target ran in the same conditions, in rotated order), not with figures \
             from a quiet machine.",
            d.meta("nproc")
        );
    }
}

/// How it is measured.
pub fn method(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let _ = writeln!(s, "\n## How it is measured\n");
    let _ = writeln!(
        s,
        "`examples/loadgen/` (one thread, mio) opens the clients over loopback from \
         127.0.0.2–127.0.0.9, identifies them (`u<i>`), joins them, checks with a barrier \
         message that every client is in its channel, then publishes 64-byte messages open loop \
         at a fixed offered rate (`b<sender>:<step>:<seq>:<scheduled ns>:` + padding). Latency \
         is measured per recipient from the message's *scheduled* send time, in an HDR \
         histogram; loss, gaps and duplicates/reordering are checked per (sender, recipient). \
         A *delivery* is one message arriving at one client. Server CPU (utime + stime) and RSS \
         come from `/proc/PID`. A step whose generator used ≥ 90 % of its CPU is flagged \
         (†): that figure is limited by the generator, not by the server.\n\n\
         * **knee**: the highest delivered rate with p99 ≤ 100 ms and zero loss, found by \
           doubling the offered load and then bisecting; steps of {step} s, each followed by a drain \
           until every expected delivery arrived.\n\
         * **mixed**: for chat-server half telnet and half WebSocket clients; the baselines \
           speak telnet only, so their rows are telnet-only (WebSocket figures exist for \
           chat-server only).\n\
         * **idle RSS per connection**: (server RSS with N connected, identified, joined, \
           idle clients − RSS before the first client) / N, in channels of 10.\n\
         * Targets: `chat-server` (release build, JSON Lines log written before each send), \
           `examples/baseline_mio.rs` (the ceiling: same telnet subset, no log), \
           `examples/baseline_tokio.rs` (task per connection, mpsc per client, broadcast per \
           channel) as `current_thread` and as a 2-worker runtime (pinned to the same one CPU \
           as the others).\n\
         * Medians over the repetitions; `(n=…)` marks a cell with fewer values than \
           repetitions (the rest did not fit the time budget or failed).\n",
        step = d.meta("step_s")
    );
}

/// chat-server against the SPEC §9 targets.
pub fn spec9_targets(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let quick = c.quick;
    let max_ch = c.max_ch;
    let spec_size = c.spec_size;
    let cs_knee = d.knee("chat-server", "mixed", spec_size).0;
    let mio_knee = d.knee("mio", "mixed", spec_size).0;
    let tel_max = d.idle("chat-server", "channels", max_ch).0;
    let ws_max = d.idle("chat-server", "idle-ws", max_ch).0;
    let _ = writeln!(s, "## chat-server against the SPEC §9 targets\n");
    let _ = writeln!(s, "| target | measured | verdict |\n|---|---|---|");
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let _ = writeln!(
        s,
        "| ≥ 1,000,000 deliveries/s to 5,000 mixed clients, p99 ≤ 100 ms, zero loss | knee {} at {} clients | {} |",
        cs_knee.map_or("–".into(), rate),
        spec_size,
        if spec_size == 5000 { verdict(cs_knee.map(|k| k >= 1e6)) } else { "not measured (quick mode has no 5k)" }
    );
    let _ = writeln!(
        s,
        "| ≥ 80 % of the ceiling's knee (same run) | {} of {} = {} | {} |",
        cs_knee.map_or("–".into(), rate),
        mio_knee.map_or("–".into(), rate),
        ratio(cs_knee, mio_knee),
        if quick {
            "indicative only (quick mode)"
        } else {
            verdict(cs_knee.zip(mio_knee).map(|(a, b)| a >= 0.8 * b))
        }
    );
    let _ = writeln!(
        s,
        "| 10,000 idle telnet connections ≤ 5 MiB (≤ 0.5 KiB each) | {} per connection at {} | {} |",
        tel_max.map_or("–".into(), |b| format!("{b:.0} B")),
        size_label(max_ch),
        if max_ch < 10_000 {
            "indicative only (fewer than 10k connections)"
        } else {
            verdict(tel_max.map(|b| b <= 512.0))
        }
    );
    let _ = writeln!(
        s,
        "| 10,000 idle WebSocket connections ≤ 16 MiB (≤ 1.6 KiB each) | {} per connection at {} | {} |",
        ws_max.map_or("–".into(), |b| format!("{b:.0} B")),
        size_label(max_ch),
        if max_ch < 10_000 {
            "indicative only (fewer than 10k connections)"
        } else {
            verdict(ws_max.map(|b| b <= 1638.4))
        }
    );
    let idle_kib: Option<f64> = d.meta("idle_rss_kib").parse().ok();
    let _ = writeln!(
        s,
        "| idle process ≤ 4 MiB RSS | {} | {} |",
        idle_kib.map_or("–".into(), |k| format!("{:.1} MiB", k / 1024.0)),
        verdict(idle_kib.map(|k| k <= 4096.0))
    );
    let stalled = d
        .find("chat-server", "mixed", "stalled")
        .filter_map(|r| {
            let growth = num(&r["rss_growth_kib"])?;
            let n = num(&r["stalled_clients"])?;
            Some(growth <= n * 256.0 + 2048.0)
        })
        .collect::<Vec<_>>();
    let _ = writeln!(
        s,
        "| stalled readers: RSS bounded by the per-connection caps | {} of {} runs within stalled × 256 KiB + 2 MiB | {} |",
        stalled.iter().filter(|&&b| b).count(),
        stalled.len(),
        verdict(if stalled.is_empty() { None } else { Some(stalled.iter().all(|&b| b)) })
    );
    let bytes: f64 = d.meta("binary_bytes").parse().unwrap_or(0.0);
    let _ = writeln!(
        s,
        "| release binary size (stripped, assets included) | {:.2} MiB | reported |",
        bytes / 1048576.0
    );
}
