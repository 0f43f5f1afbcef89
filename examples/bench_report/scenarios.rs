//! The scenario sections: many channels, stalled readers, churn, REST queries, setup.

use crate::data::*;
use crate::Ctx;
use serde_json::Value;
use std::fmt::Write as _;

/// The many-small-channels run.
pub fn many_channels(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let reps = c.reps;
    let ch_fixed = c.ch_fixed;
    let targets = c.targets.clone();
    let max_ch = c.max_ch;
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
}

/// Stalled readers.
pub fn stalled(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let reps = c.reps;
    let extra_at = c.extra_at;
    let extra_load = c.extra_load;
    let targets = c.targets.clone();
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
            cell(c.base_p99(t), ms, reps),
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
}

/// Connection churn.
pub fn churn(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let reps = c.reps;
    let extra_at = c.extra_at;
    let extra_load = c.extra_load;
    let targets = c.targets.clone();
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
}

/// REST log queries during fan-out.
pub fn rest_query(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let reps = c.reps;
    let extra_at = c.extra_at;
    let extra_load = c.extra_load;
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
            cell(c.base_p99("chat-server"), ms, reps),
            r["step"]["loss"]
        );
    }
}

/// Seconds to connect, identify and join.
pub fn setup_cost(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let reps = c.reps;
    let targets = c.targets.clone();
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
}
