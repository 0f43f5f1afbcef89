//! The SPEC §10 summary and the stress sections: overload, a join storm into one channel, and
//! the log search under chat load.

use crate::data::*;
use crate::Ctx;
use serde_json::Value;
use std::fmt::Write as _;

/// "met" / "**missed**" / "not measured".
fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// Median of `f` over chat-server's records of `run`/`scenario`.
fn cs(c: &Ctx<'_>, run: &str, scenario: &str, f: impl Fn(&Value) -> Option<f64>) -> Option<f64> {
    c.d.med("chat-server", run, scenario, |_| true, f).0
}

/// Search speed in MB/s (10^6 bytes) from the median query time.
fn search_mb_s(c: &Ctx<'_>) -> Option<f64> {
    let bytes: f64 = c.d.meta("search_log_bytes").parse().ok()?;
    let ms = cs(c, "search", "rest", |r| num(&r["median_query_ms"]))?;
    (ms > 0.0).then(|| bytes / 1e6 / (ms / 1000.0))
}

/// chat-server against the SPEC §10 targets and the fan-out targets, from this run.
pub fn spec10_targets(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let _ = writeln!(
        s,
        "\n## chat-server against the SPEC §10 and fan-out targets\n\n\
         | target | measured | verdict |\n|---|---|---|"
    );
    for n in [1000, 5000] {
        let measured = c.sizes.contains(&n);
        let k = d.knee("chat-server", "mixed", n).0;
        for (other, label, min) in [
            ("mio", "the minimal mio server", 0.9),
            ("tokio-ct", "tokio current_thread", 1.0),
        ] {
            let o = d.knee(other, "mixed", n).0;
            let ok = k.zip(o).map(|(a, b)| a >= min * b);
            let _ = writeln!(
                s,
                "| knee at {} clients ≥ {min} × {label}'s (same run) | {} of {} = {} | {} |",
                size_label(n),
                k.map_or("–".into(), |x| format!("{}/s", rate(x))),
                o.map_or("–".into(), |x| format!("{}/s", rate(x))),
                ratio(k, o),
                if !measured {
                    "not measured (size not in this run)"
                } else if c.quick {
                    "indicative only (quick mode)"
                } else {
                    verdict(ok)
                }
            );
        }
    }
    let f = |g: &dyn Fn(&Value) -> Option<f64>| cs(c, "overload", "overload", g);
    let disc = f(&|r| num(&r["disconnects"]));
    let loss = f(&|r| num(&r["loss"]));
    let share = f(&|r| num(&r["delivered_ratio_to_knee"]));
    let rec = f(&|r| num(&r["p99_recovery_s"]));
    let tried = d
        .find("chat-server", "overload", "overload")
        .next()
        .is_some();
    let _ = writeln!(
        s,
        "| overload (2 × knee for {} s): 0 disconnects, 0 loss | {} disconnects, loss {} | {} |",
        d.meta("overload_s"),
        disc.map_or("–".into(), |x| format!("{x:.0}")),
        loss.map_or("–".into(), |x| format!("{x:.0}")),
        verdict(disc.zip(loss).map(|(a, b)| a == 0.0 && b == 0.0))
    );
    let _ = writeln!(
        s,
        "| overload: delivered ≥ 90 % of the knee | {} | {} |",
        share.map_or("–".into(), |x| format!("{:.0} %", x * 100.0)),
        verdict(share.map(|x| x >= 0.9))
    );
    let _ = writeln!(
        s,
        "| overload: p99 back under 100 ms, nothing shed, ≤ 5 s after it | {} | {} |",
        rec.map_or(
            if tried { "never".into() } else { "–".into() },
            |x| format!("{x:.2} s")
        ),
        verdict(if tried {
            Some(rec.is_some_and(|x| x <= 5.0))
        } else {
            None
        })
    );
    let tel = d.idle("chat-server", "channels", c.max_ch).0;
    let _ = writeln!(
        s,
        "| idle RSS per telnet connection ≤ 0.5 KiB ({}) | {} | {} |",
        size_label(c.max_ch),
        tel.map_or("–".into(), |b| format!("{b:.0} B")),
        verdict(tel.map(|b| b <= 512.0))
    );
    let join_n = cs(c, "join", "setup", |r| num(&r["joined"]));
    let join_s = cs(c, "join", "setup", |r| num(&r["grow_s"]));
    let join_cpu = cs(c, "join", "setup", |r| num(&r["grow_server_cpu_s"]));
    let _ = writeln!(
        s,
        "| {} clients join one channel | {}, server CPU {} | reported |",
        d.meta("join_clients"),
        join_s.map_or("–".into(), |x| format!("{x:.1} s")),
        join_cpu.map_or("–".into(), |x| format!("{x:.1} s")),
    );
    if join_n.is_some_and(|n| n.to_string() != d.meta("join_clients")) {
        let _ = writeln!(
            s,
            "| (join storm: clients that joined) | {} | |",
            join_n.map_or("–".into(), |x| format!("{x:.0}"))
        );
    }
    let mb = search_mb_s(c);
    let p99_with = cs(c, "search", "rest", |r| num(&r["step"]["p99_ms"]));
    let p99_without = cs(c, "search", "fixed", |r| num(&r["p99_ms"]));
    let _ = writeln!(
        s,
        "| log search ≥ 300 MB/s through a {} MiB log | {} | {} |",
        d.meta("search_log_mib"),
        mb.map_or("–".into(), |x| format!("{x:.0} MB/s")),
        verdict(mb.map(|x| x >= 300.0))
    );
    let _ = writeln!(
        s,
        "| chat p99 during the search ≤ 1.5 × without | {} with, {} without = {} | {} |",
        p99_with.map_or("–".into(), ms),
        p99_without.map_or("–".into(), ms),
        ratio(p99_with, p99_without),
        verdict(p99_with.zip(p99_without).map(|(a, b)| a <= 1.5 * b))
    );
}

/// Overload: twice the knee, then the knee, per target.
pub fn overload(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let _ = writeln!(
        s,
        "\n### Overload\n\n{} in one channel (mixed telnet/WebSocket for chat-server): a knee \
         search, then one step offering twice that knee, then the knee again. Delivered/s is \
         counted by arrival time in each part. The generator does not queue what the server \
         does not take: in this step a message is shed (offered, not sent: *shed*; loss \
         counts only messages sent) when its sender already has as many messages on their way \
         (sent, not yet echoed back to the sender, a member of the channel too) as it sends in \
         100 ms at the knee rate, since it could not arrive in time anyway. Otherwise the \
         generator's own queue (seconds of messages after 10 s at twice the knee, which every \
         later message of that sender waits behind) would be measured instead of the server. \
         The recovery time is how long after the overload ended the p99 of the messages sent \
         (by scheduled send time, in {} ms slots) came back under 100 ms with no message shed, \
         and stayed there (\"never\": it did not within the step).\n",
        d.meta("overload"),
        250
    );
    let _ = writeln!(
        s,
        "| target | knee | offered in overload | delivered/s in overload | share of the knee | delivered/s after | disconnects | loss | shed in overload / after | p99 back under 100 ms after |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for (t, label) in &c.targets {
        for r in d.find(t, "overload", "overload") {
            if r["skipped"].is_string() {
                let _ = writeln!(
                    s,
                    "| {label} | no knee found | – | – | – | – | – | – | – | – |"
                );
                continue;
            }
            let _ = writeln!(
                s,
                "| {label} | {}/s | {}/s | {}/s | {} | {}/s | {} | {} | {} | {} |",
                num(&r["knee_dps"]).map_or("–".into(), rate),
                num(&r["overload_dps"]).map_or("–".into(), rate),
                num(&r["delivered_per_s_overload"]).map_or("–".into(), rate),
                num(&r["delivered_ratio_to_knee"])
                    .map_or("–".into(), |x| format!("{:.0} %", x * 100.0)),
                num(&r["delivered_per_s_after"]).map_or("–".into(), rate),
                r["disconnects"],
                r["loss"],
                shed(r),
                num(&r["p99_recovery_s"]).map_or("never".into(), |x| format!("{x:.2} s")),
            );
        }
    }
}

/// Messages the generator shed in the overload and after it (`–` for results from before
/// the generator shed).
fn shed(r: &Value) -> String {
    match (num(&r["shed_overload"]), num(&r["shed_after"])) {
        (Some(a), Some(b)) => format!("{a:.0} / {b:.0}"),
        _ => "–".into(),
    }
}

/// Many clients joining one channel.
pub fn join_storm(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let _ = writeln!(
        s,
        "\n### Join storm (chat-server)\n\n{} telnet clients connect, identify and join one \
         channel (as fast as the server takes them, at most 200 connecting at once). Every \
         join is announced to the channel's members unless presence notices are coalesced \
         (SPEC §10).\n",
        d.meta("join_clients")
    );
    let _ = writeln!(
        s,
        "| joined | failed | seconds until all joined | server CPU meanwhile | server RSS after |\n|---|---|---|---|---|"
    );
    for r in d.find("chat-server", "join", "setup") {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r["joined"],
            r["failed"],
            num(&r["grow_s"]).map_or("–".into(), |x| format!("{x:.1} s")),
            num(&r["grow_server_cpu_s"]).map_or("–".into(), |x| format!("{x:.1} s")),
            num(&r["server_rss_kib"]).map_or("–".into(), |x| format!("{:.1} MiB", x / 1024.0)),
        );
    }
}

/// The log search under chat load.
pub fn search_speed(c: &Ctx<'_>, s: &mut String) {
    let d = c.d;
    let _ = writeln!(
        s,
        "\n### Log search speed under chat load (chat-server)\n\nA generated log of {} MiB; \
         {} mixed clients in one channel at {}/s offered, first without searches, then with \
         one `GET /v1/api/message?pattern=no-such-text-zz` after the other (nothing matches, \
         so each reads the whole log). MB/s = log size ÷ median query time.\n",
        d.meta("search_log_mib"),
        d.meta("search_clients"),
        d.meta("search_load").parse().map_or("?".into(), rate),
    );
    let _ = writeln!(
        s,
        "| searches answered | median query | fastest | search MB/s | chat p99 without | chat p99 during | chat loss |\n|---|---|---|---|---|---|---|"
    );
    let without = cs(c, "search", "fixed", |r| num(&r["p99_ms"]));
    for r in d.find("chat-server", "search", "rest") {
        let _ = writeln!(
            s,
            "| {} of {} | {} | {} | {} | {} | {} | {} |",
            r["answered_200"],
            r["queries"],
            num(&r["median_query_ms"]).map_or("–".into(), ms),
            num(&r["min_query_ms"]).map_or("–".into(), ms),
            search_mb_s(c).map_or("–".into(), |x| format!("{x:.0}")),
            without.map_or("–".into(), ms),
            num(&r["step"]["p99_ms"]).map_or("–".into(), ms),
            r["step"]["loss"],
        );
    }
}
