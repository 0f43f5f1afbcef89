//! Turns the load generator's JSON lines (written by `scripts/bench.sh`) into `BENCHMARKS.md`:
//! medians over the repetitions, one table per question.
//!
//! `bench_report --results results.jsonl --meta meta.txt --out BENCHMARKS.md`

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

const TARGETS: [(&str, &str); 5] = [
    ("chat-server", "chat-server"),
    ("mio", "ceiling: minimal mio server"),
    ("tokio-ct", "tokio current_thread"),
    ("tokio-mt2", "tokio multi-thread, 2 workers"),
    ("peer", "PEER_BIN"),
];

struct Data {
    recs: Vec<Value>,
    meta: BTreeMap<String, String>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// 1234567 → "1.23 M", 45678 → "45.7 k".
fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} ms")
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

fn size_label(n: usize) -> String {
    if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

impl Data {
    fn meta(&self, k: &str) -> &str {
        self.meta.get(k).map_or("?", String::as_str)
    }

    fn list(&self, k: &str) -> Vec<usize> {
        self.meta(k)
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    }

    fn targets(&self) -> Vec<(&'static str, &'static str)> {
        TARGETS
            .iter()
            .copied()
            .filter(|(t, _)| self.recs.iter().any(|r| r["target"] == *t))
            .collect()
    }

    fn find<'a>(
        &'a self,
        target: &'a str,
        run: &'a str,
        scenario: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.recs
            .iter()
            .filter(move |r| r["target"] == target && r["run"] == run && r["scenario"] == scenario)
    }

    /// Median of `f` over the records, with the number of values.
    fn med(
        &self,
        target: &str,
        run: &str,
        scenario: &str,
        keep: impl Fn(&Value) -> bool,
        f: impl Fn(&Value) -> Option<f64>,
    ) -> (Option<f64>, usize) {
        let v: Vec<f64> = self
            .find(target, run, scenario)
            .filter(|r| keep(r))
            .filter_map(&f)
            .collect();
        let n = v.len();
        (median(v), n)
    }

    fn knee(&self, target: &str, run: &str, size: usize) -> (Option<f64>, usize) {
        self.med(
            target,
            run,
            "knee",
            |r| r["size"] == size,
            |r| num(&r["knee_dps"]).filter(|&k| k > 0.0),
        )
    }

    fn fixed(
        &self,
        target: &str,
        run: &str,
        size: usize,
        load: f64,
        f: impl Fn(&Value) -> Option<f64>,
    ) -> (Option<f64>, usize) {
        self.med(
            target,
            run,
            "fixed",
            |r| r["size"] == size && num(&r["offered_dps"]) == Some(load),
            f,
        )
    }

    fn idle(&self, target: &str, run: &str, size: usize) -> (Option<f64>, usize) {
        self.med(
            target,
            run,
            "setup",
            |r| r["size"] == size && r["ok"] == true,
            |r| num(&r["rss_bytes_per_conn"]),
        )
    }
}

fn cell(v: (Option<f64>, usize), fmt: impl Fn(f64) -> String, reps: usize) -> String {
    match v {
        (Some(x), n) if n < reps => format!("{} (n={n})", fmt(x)),
        (Some(x), _) => fmt(x),
        (None, _) => "–".into(),
    }
}

fn report(d: &Data) -> String {
    let mut s = String::new();
    let reps: usize = d.meta("reps").parse().unwrap_or(1);
    let sizes = d.list("sizes");
    let loads: Vec<f64> = d.list("fixed_loads").iter().map(|&x| x as f64).collect();
    let extra_at: usize = d.meta("extra_at").parse().unwrap_or(0);
    let extra_load: f64 = d.meta("extra_load").parse().unwrap_or(0.0);
    let ch_fixed: f64 = d.meta("channels_fixed").parse().unwrap_or(0.0);
    let quick = d.meta("mode") == "quick";
    let targets = d.targets();
    let ch_sizes: Vec<usize> = {
        let mut v: Vec<usize> = d
            .recs
            .iter()
            .filter(|r| {
                r["scenario"] == "setup" && (r["run"] == "channels" || r["run"] == "idle-ws")
            })
            .filter_map(|r| r["size"].as_u64().map(|x| x as usize))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let max_ch = ch_sizes.last().copied().unwrap_or(0);

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

    // SPEC §9 summary.
    let spec_size = if sizes.contains(&5000) {
        5000
    } else {
        extra_at
    };
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

    // Knee table.
    let _ = writeln!(
        s,
        "\n## Knee: deliveries/s with p99 ≤ 100 ms and zero loss\n\nOne channel with all \
         clients (mixed telnet/WebSocket for chat-server), and the many-small-channels run \
         ({}). In brackets: p99 at the knee step. `≥`: no step failed (the search ran out of steps \
         before finding the knee), so the knee is at least this.\n",
        d.meta("channels_run")
    );
    let mut head = String::from("| target |");
    let mut line = String::from("|---|");
    for &n in &sizes {
        let _ = write!(head, " {} clients |", size_label(n));
        line.push_str("---|");
    }
    let _ = writeln!(
        s,
        "{head} many channels ({}) |\n{line}---|",
        size_label(max_ch)
    );
    for (t, label) in &targets {
        let _ = write!(s, "| {label} |");
        let mut runs: Vec<(&str, usize)> = sizes.iter().map(|&n| ("mixed", n)).collect();
        runs.push(("channels", max_ch));
        for (run, n) in runs {
            let knee = d.knee(t, run, n);
            let p99 = d.med(
                t,
                run,
                "knee",
                |r| r["size"] == n,
                |r| num(&r["knee_step"]["p99_ms"]),
            );
            let gen = d
                .find(t, run, "knee")
                .filter(|r| r["size"] == n)
                .any(|r| r["limited_by_generator"] == true);
            let none = d
                .find(t, run, "knee")
                .filter(|r| r["size"] == n)
                .all(|r| num(&r["knee_dps"]).unwrap_or(0.0) <= 0.0);
            let tried = d.find(t, run, "knee").any(|r| r["size"] == n);
            if tried && none {
                // No step passed: say how low the search went and the best p99 it saw.
                let low = d.med(
                    t,
                    run,
                    "knee",
                    |r| r["size"] == n,
                    |r| num(&r["lowest_offered_dps"]),
                );
                let bp = d.med(
                    t,
                    run,
                    "knee",
                    |r| r["size"] == n,
                    |r| num(&r["lowest_p99_ms"]),
                );
                let _ = write!(
                    s,
                    " none: p99 > 100 ms down to {}/s (best p99 {}) |",
                    low.0.map_or("?".into(), rate),
                    bp.0.map_or("?".into(), ms)
                );
                continue;
            }
            // No step failed: the search ran out of steps, the knee is at least this.
            let open = d
                .find(t, run, "knee")
                .filter(|r| r["size"] == n)
                .all(|r| r["first_failing_offered_dps"].is_null());
            let c = cell(knee, rate, reps);
            let p = p99.0.map_or(String::new(), |p| format!(" ({})", ms(p)));
            let ge = if open { "≥ " } else { "" };
            let _ = write!(s, " {ge}{c}/s{p}{} |", if gen { " †" } else { "" });
        }
        s.push('\n');
    }

    // p99 at fixed loads, CPU per delivery.
    let _ = writeln!(
        s,
        "\n## p99 latency at fixed offered loads\n\nOne channel; offered deliveries/s. Each \
         cell: p99 (delivered/s); loss is noted when not zero.\n"
    );
    let mut head = String::from("| target | clients |");
    let mut line = String::from("|---|---|");
    for &l in &loads {
        let _ = write!(head, " {}/s |", rate(l));
        line.push_str("---|");
    }
    let _ = writeln!(s, "{head}\n{line}");
    for (t, label) in &targets {
        for &n in &sizes {
            let _ = write!(s, "| {label} | {} |", size_label(n));
            for &l in &loads {
                let p99 = d.fixed(t, "mixed", n, l, |r| num(&r["p99_ms"]));
                let del = d.fixed(t, "mixed", n, l, |r| num(&r["delivered_per_s"]));
                let loss = d.fixed(t, "mixed", n, l, |r| num(&r["loss"]));
                let gen = d
                    .find(t, "mixed", "fixed")
                    .filter(|r| r["size"] == n && num(&r["offered_dps"]) == Some(l))
                    .any(|r| r["gen_saturated"] == true);
                let mut c = cell(p99, ms, reps);
                if let Some(x) = del.0 {
                    let _ = write!(c, " ({}/s)", rate(x));
                }
                if let Some(x) = loss.0.filter(|&x| x > 0.0) {
                    let _ = write!(c, ", loss {x:.0}");
                }
                if gen {
                    c.push_str(" †");
                }
                let _ = write!(s, " {c} |");
            }
            s.push('\n');
        }
    }
    let _ = writeln!(
        s,
        "\n## Server CPU per delivery\n\nMicroseconds of server CPU (user + system, which \
         includes the kernel's loopback TCP work) per delivered message, at the fixed loads \
         above and at the knee step.\n"
    );
    let mut head = String::from("| target | clients |");
    let mut line = String::from("|---|---|");
    for &l in &loads {
        let _ = write!(head, " at {}/s |", rate(l));
        line.push_str("---|");
    }
    let _ = writeln!(s, "{head} at the knee |\n{line}---|");
    for (t, label) in &targets {
        for &n in &sizes {
            let _ = write!(s, "| {label} | {} |", size_label(n));
            for &l in &loads {
                let v = d.fixed(t, "mixed", n, l, |r| num(&r["server_cpu_us_per_delivery"]));
                let _ = write!(s, " {} |", cell(v, |x| format!("{x:.2} µs"), reps));
            }
            let v = d.med(
                t,
                "mixed",
                "knee",
                |r| r["size"] == n,
                |r| num(&r["knee_step"]["server_cpu_us_per_delivery"]),
            );
            let _ = writeln!(s, " {} |", cell(v, |x| format!("{x:.2} µs"), reps));
        }
    }

    // Idle RSS.
    let _ = writeln!(
        s,
        "\n## Idle RSS per connection\n\nBytes of server RSS per connected, identified, \
         joined and idle client (channels of 10). WebSocket: chat-server only.\n"
    );
    let mut head = String::from("| target | transport |");
    let mut line = String::from("|---|---|");
    for &n in &ch_sizes {
        let _ = write!(head, " {} |", size_label(n));
        line.push_str("---|");
    }
    let _ = writeln!(s, "{head}\n{line}");
    for (t, label) in &targets {
        for (run, transport) in [("channels", "telnet"), ("idle-ws", "WebSocket")] {
            if d.find(t, run, "setup").next().is_none() {
                continue;
            }
            let _ = write!(s, "| {label} | {transport} |");
            for &n in &ch_sizes {
                let _ = write!(
                    s,
                    " {} |",
                    cell(d.idle(t, run, n), |b| format!("{b:.0} B"), reps)
                );
            }
            s.push('\n');
        }
    }

    // Ratios.
    let _ = writeln!(
        s,
        "\n## chat-server relative to the ceiling and to tokio\n\nRatio = chat-server ÷ other. \
         For throughput (knee) higher is better; for RSS, CPU and latency lower is better.\n"
    );
    let others: Vec<(&str, &str)> = targets
        .iter()
        .copied()
        .filter(|(t, _)| *t != "chat-server")
        .collect();
    let mut head = String::from("| metric | chat-server |");
    let mut line = String::from("|---|---|");
    for (_, label) in &others {
        let _ = write!(head, " {label} | ratio |");
        line.push_str("---|---|");
    }
    let _ = writeln!(s, "{head}\n{line}");
    type Metric<'a> = (
        String,
        Box<dyn Fn(&str) -> Option<f64> + 'a>,
        fn(f64) -> String,
    );
    let mut metrics: Vec<Metric<'_>> = Vec::new();
    for &n in &sizes {
        metrics.push((
            format!("knee, {} clients one channel", size_label(n)),
            Box::new(move |t: &str| d.knee(t, "mixed", n).0),
            |x| format!("{}/s", rate(x)),
        ));
    }
    metrics.push((
        format!("knee, many channels ({})", size_label(max_ch)),
        Box::new(move |t: &str| d.knee(t, "channels", max_ch).0),
        |x| format!("{}/s", rate(x)),
    ));
    if let Some(&l) = loads.last() {
        metrics.push((
            format!("p99 at {}/s, {} clients", rate(l), size_label(spec_size)),
            Box::new(move |t: &str| d.fixed(t, "mixed", spec_size, l, |r| num(&r["p99_ms"])).0),
            ms,
        ));
        metrics.push((
            format!(
                "CPU per delivery at {}/s, {} clients",
                rate(l),
                size_label(spec_size)
            ),
            Box::new(move |t: &str| {
                d.fixed(t, "mixed", spec_size, l, |r| {
                    num(&r["server_cpu_us_per_delivery"])
                })
                .0
            }),
            |x| format!("{x:.2} µs"),
        ));
    }
    metrics.push((
        format!("idle RSS per telnet connection ({})", size_label(max_ch)),
        Box::new(move |t: &str| d.idle(t, "channels", max_ch).0),
        |x| format!("{x:.0} B"),
    ));
    for (name, f, fmt) in &metrics {
        let cs = f("chat-server");
        let _ = write!(s, "| {name} | {} |", cs.map_or("–".into(), fmt));
        for (t, _) in &others {
            let o = f(t);
            let _ = write!(s, " {} | {} |", o.map_or("–".into(), fmt), ratio(cs, o));
        }
        s.push('\n');
    }

    // Scenarios.
    let _ = writeln!(s, "\n## Scenarios\n");
    let _ = writeln!(
        s,
        "### Many small channels\n\n{} (telnet), one sender per channel. p99 and CPU at \
         {}/s offered.\n",
        d.meta("channels_run"),
        rate(ch_fixed)
    );
    let _ = writeln!(
        s,
        "| target | knee | p99 at {}/s | delivered/s | CPU per delivery |\n|---|---|---|---|---|",
        rate(ch_fixed)
    );
    for (t, label) in &targets {
        let knee = d.knee(t, "channels", max_ch);
        let f = |g: &dyn Fn(&Value) -> Option<f64>| d.fixed(t, "channels", max_ch, ch_fixed, g);
        let _ = writeln!(
            s,
            "| {label} | {}/s | {} | {}/s | {} |",
            cell(knee, rate, reps),
            cell(f(&|r| num(&r["p99_ms"])), ms, reps),
            cell(f(&|r| num(&r["delivered_per_s"])), rate, reps),
            cell(
                f(&|r| num(&r["server_cpu_us_per_delivery"])),
                |x| format!("{x:.2} µs"),
                reps
            )
        );
    }

    let base_p99 = |t: &str| d.fixed(t, "mixed", extra_at, extra_load, |r| num(&r["p99_ms"]));
    let _ = writeln!(
        s,
        "\n### Stalled readers\n\n{} clients in one channel at {}/s offered; 1 % of them stop \
         reading for the phase (their sockets have a 4 KiB receive buffer). The others' p99 is \
         compared with the fixed-load step at the same load without stalled readers (when that \
         load is one of the fixed loads). Afterwards the stalled clients read again, to see \
         whether the server closed them.\n",
        size_label(extra_at),
        rate(extra_load)
    );
    let _ = writeln!(
        s,
        "| target | stalled | others' p99 | p99 without | loss (others) | server RSS growth | bound (stalled × 256 KiB) | closed by server |\n|---|---|---|---|---|---|---|---|"
    );
    for (t, label) in &targets {
        let f = |g: &dyn Fn(&Value) -> Option<f64>| d.med(t, "mixed", "stalled", |_| true, g);
        let n = f(&|r| num(&r["stalled_clients"]));
        if n.0.is_none() {
            continue;
        }
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} | {} | {} |",
            cell(n, |x| format!("{x:.0}"), reps),
            cell(f(&|r| num(&r["step"]["p99_ms"])), ms, reps),
            cell(base_p99(t), ms, reps),
            cell(f(&|r| num(&r["step"]["loss"])), |x| format!("{x:.0}"), reps),
            cell(
                f(&|r| num(&r["rss_growth_kib"])),
                |x| format!("{x:.0} KiB"),
                reps
            ),
            n.0.map_or("–".into(), |x| format!("{:.0} KiB", x * 256.0)),
            cell(
                f(&|r| num(&r["closed_by_server"])),
                |x| format!("{x:.0}"),
                reps
            ),
        );
    }

    let _ = writeln!(
        s,
        "\n### Connection churn\n\nDuring a {}/s step with {} clients in the channel, extra \
         telnet clients connect, identify and `/quit` (then half-close) at the rate below.\n",
        rate(extra_load),
        size_label(extra_at)
    );
    let _ = writeln!(
        s,
        "| target | cycles/s | ok | failed | cycle p50 | cycle p99 | chat p99 during | chat loss |\n|---|---|---|---|---|---|---|---|"
    );
    for (t, label) in &targets {
        let f = |g: &dyn Fn(&Value) -> Option<f64>| d.med(t, "mixed", "churn", |_| true, g);
        let ok = f(&|r| num(&r["cycles_ok"]));
        if ok.0.is_none() {
            continue;
        }
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} | {} | {} |",
            cell(f(&|r| num(&r["rate_per_s"])), |x| format!("{x:.0}"), reps),
            cell(ok, |x| format!("{x:.0}"), reps),
            cell(
                f(&|r| num(&r["cycles_failed"])),
                |x| format!("{x:.0}"),
                reps
            ),
            cell(f(&|r| num(&r["cycle_p50_ms"])), ms, reps),
            cell(f(&|r| num(&r["cycle_p99_ms"])), ms, reps),
            cell(f(&|r| num(&r["step"]["p99_ms"])), ms, reps),
            cell(f(&|r| num(&r["step"]["loss"])), |x| format!("{x:.0}"), reps),
        );
    }

    let _ = writeln!(
        s,
        "\n### REST log query during fan-out (chat-server)\n\n`GET /v1/api/message?pattern=…` \
         with the admin token, every 100 ms (at most 4 at once), during a {}/s step with {} \
         clients.\n",
        rate(extra_load),
        size_label(extra_at)
    );
    let _ = writeln!(
        s,
        "| queries | responses by status | slowest query | chat p99 during | chat p99 without | chat loss |\n|---|---|---|---|---|---|"
    );
    for r in d.find("chat-server", "mixed", "rest") {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r["queries"],
            r["statuses"],
            num(&r["max_query_ms"]).map_or("–".into(), ms),
            num(&r["step"]["p99_ms"]).map_or("–".into(), ms),
            cell(base_p99("chat-server"), ms, reps),
            r["step"]["loss"]
        );
    }

    let _ = writeln!(
        s,
        "\n## Setup cost\n\nSeconds to connect, identify and join the clients added at each \
         size (one channel: every join is announced to every member, so joining N clients \
         sends N²/2 messages).\n"
    );
    let _ = writeln!(
        s,
        "| target | run | size | seconds | retried connects |\n|---|---|---|---|---|"
    );
    for (t, label) in &targets {
        for run in ["mixed", "channels", "idle-ws"] {
            let mut ns: Vec<usize> = d
                .find(t, run, "setup")
                .filter_map(|r| r["size"].as_u64().map(|x| x as usize))
                .collect();
            ns.sort_unstable();
            ns.dedup();
            for n in ns {
                let g = d.med(t, run, "setup", |r| r["size"] == n, |r| num(&r["grow_s"]));
                let rt = d.med(t, run, "setup", |r| r["size"] == n, |r| num(&r["retried"]));
                let _ = writeln!(
                    s,
                    "| {label} | {run} | {} | {} | {} |",
                    size_label(n),
                    cell(g, |x| format!("{x:.1}"), reps),
                    cell(rt, |x| format!("{x:.0}"), reps)
                );
            }
        }
    }

    // Flags.
    let _ = writeln!(s, "\n## Flags\n");
    let mut any = false;
    for r in &d.recs {
        let steps: Vec<&Value> = match r["scenario"].as_str() {
            Some("knee") => r["steps"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            Some("fixed") => vec![r],
            Some("stalled" | "rest" | "churn") => vec![&r["step"]],
            _ => Vec::new(),
        };
        let sat = steps
            .iter()
            .filter(|st| st["gen_saturated"] == true)
            .count();
        if sat > 0 {
            any = true;
            let _ = writeln!(
                s,
                "- † generator saturated in {sat} step(s): {} / {} / {} at {} clients, rep {}",
                r["target"].as_str().unwrap_or("?"),
                r["run"].as_str().unwrap_or("?"),
                r["scenario"].as_str().unwrap_or("?"),
                r["size"],
                r["rep"].as_str().unwrap_or("?")
            );
        }
        if r["scenario"] == "skipped" {
            any = true;
            let _ = writeln!(
                s,
                "- skipped for the time budget: {} / {} rep {} ({} s left, about {} s needed)",
                r["target"].as_str().unwrap_or("?"),
                r["run"].as_str().unwrap_or("?"),
                r["rep"].as_str().unwrap_or("?"),
                r["left_s"],
                r["estimate_s"]
            );
        }
        if r["scenario"] == "setup" && r["ok"] == false {
            any = true;
            let _ = writeln!(
                s,
                "- setup failed: {} / {} at {} clients, rep {}: {} joined, errors {}",
                r["target"].as_str().unwrap_or("?"),
                r["run"].as_str().unwrap_or("?"),
                r["size"],
                r["rep"].as_str().unwrap_or("?"),
                r["joined"],
                r["errors"]
            );
        }
        if r["scenario"] == "end"
            && (r["aborted"] == true || r["disconnects"].as_u64().unwrap_or(0) > 0)
        {
            any = true;
            let _ = writeln!(
                s,
                "- {} / {} rep {}: {}{} client disconnects, errors {}",
                r["target"].as_str().unwrap_or("?"),
                r["run"].as_str().unwrap_or("?"),
                r["rep"].as_str().unwrap_or("?"),
                if r["aborted"] == true {
                    "stopped at its time limit; "
                } else {
                    ""
                },
                r["disconnects"],
                r["errors"]
            );
        }
    }
    if !any {
        let _ = writeln!(
            s,
            "None: no generator saturation, skipped run, failed setup or disconnect."
        );
    }
    let _ = writeln!(
        s,
        "\nRaw results (one JSON object per scenario) are kept under `target/bench/` by the run."
    );
    s
}

fn main() {
    let mut args = pico_args::Arguments::from_env();
    let get = |args: &mut pico_args::Arguments, k: &'static str| -> String {
        args.value_from_str(k).unwrap_or_else(|e| {
            eprintln!("bench_report: {k}: {e}");
            std::process::exit(2)
        })
    };
    let results = get(&mut args, "--results");
    let meta_path = get(&mut args, "--meta");
    let out = get(&mut args, "--out");
    let text = std::fs::read_to_string(&results).unwrap_or_default();
    let recs: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let meta = std::fs::read_to_string(&meta_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let report = report(&Data { recs, meta });
    if let Err(e) = std::fs::write(&out, report) {
        eprintln!("bench_report: writing {out}: {e}");
        std::process::exit(1);
    }
}
