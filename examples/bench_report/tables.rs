//! The comparison tables: knees, p99 and CPU at fixed loads, idle RSS, ratios.

use crate::data::*;
use crate::Ctx;
use std::fmt::Write as _;

/// Knees per target and size.
pub fn knee_table(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let reps = c.reps;
    let sizes = c.sizes.clone();
    let targets = c.targets.clone();
    let max_ch = c.max_ch;
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
}

/// p99 at the fixed offered loads.
pub fn fixed_p99(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let reps = c.reps;
    let sizes = c.sizes.clone();
    let loads = c.loads.clone();
    let targets = c.targets.clone();
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
}

/// Server CPU per delivery.
pub fn cpu_per_delivery(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let reps = c.reps;
    let sizes = c.sizes.clone();
    let loads = c.loads.clone();
    let targets = c.targets.clone();
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
}

/// Idle RSS per connection.
pub fn idle_rss(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let reps = c.reps;
    let targets = c.targets.clone();
    let ch_sizes = c.ch_sizes.clone();
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
}

/// chat-server relative to the ceiling and to tokio.
pub fn ratios(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let sizes = c.sizes.clone();
    let loads = c.loads.clone();
    let targets = c.targets.clone();
    let max_ch = c.max_ch;
    let spec_size = c.spec_size;
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
}
