//! `BENCHMARKS-cluster.md` (`bench_report --cluster`, written by `scripts/bench-cluster.sh`):
//! the cluster's fixed-load steps against the single-process baseline's in the same run.

use crate::data::{median, ms, num, rate, Data};
use serde_json::Value;
use std::fmt::Write;

/// The p99 the cluster may add to the single process's at the same load (CLUSTER.md, Load).
const P99_OVERHEAD_MS: f64 = 5.0;

fn steps<'a>(d: &'a Data, target: &'a str) -> Vec<&'a Value> {
    d.recs
        .iter()
        .filter(|r| r["target"] == target && r["scenario"] == "fixed")
        .collect()
}

/// Median over the steps of `f`.
fn med(steps: &[&Value], f: impl Fn(&Value) -> Option<f64>) -> Option<f64> {
    median(steps.iter().filter_map(|r| f(r)).collect())
}

/// Sum over the steps of an integer field.
fn sum(steps: &[&Value], f: impl Fn(&Value) -> &Value) -> Option<u64> {
    let v: Vec<u64> = steps.iter().filter_map(|r| f(r).as_u64()).collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or_else(|| "–".into(), f)
}

fn count(x: Option<u64>) -> String {
    x.map_or_else(|| "–".into(), |n| n.to_string())
}

fn pct(x: f64) -> String {
    format!("{x:.0} %")
}

/// What the correctness checks found in one target's steps: (violations, members out of
/// order, missing, loss + gaps + duplicates, disconnects).
struct Checks {
    violations: Option<u64>,
    out_of_order: Option<u64>,
    missing: Option<u64>,
    loss: Option<u64>,
    disconnects: Option<u64>,
}

impl Checks {
    fn of(steps: &[&Value]) -> Checks {
        let loss = [
            sum(steps, |r| &r["loss"]),
            sum(steps, |r| &r["gaps"]),
            sum(steps, |r| &r["dups_or_reordered"]),
        ];
        Checks {
            violations: sum(steps, |r| &r["order"]["violations"]),
            out_of_order: sum(steps, |r| &r["order"]["members_out_of_order"]),
            missing: sum(steps, |r| &r["order"]["missing"]),
            loss: loss.iter().copied().sum(),
            disconnects: sum(steps, |r| &r["disconnects"]),
        }
    }

    fn pass(&self) -> bool {
        [self.violations, self.missing, self.loss, self.disconnects]
            .iter()
            .all(|x| *x == Some(0))
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**MISSED**"
    }
}

fn header(d: &Data, s: &mut String) {
    let _ = writeln!(
        s,
        "# Cluster benchmark\n\nWritten by `{}` (`make bench-cluster`) from one run; rerun it to refresh. Do not edit by hand.\n",
        d.meta("command").trim()
    );
    let _ = writeln!(s, "## Machine and run\n\n| | |\n|---|---|");
    let rows = [
        ("date", "date"),
        ("command", "command"),
        ("commit", "commit"),
        ("CPUs (nproc)", "nproc"),
        ("CPU model", "model"),
        ("kernel", "kernel"),
        ("memory", "memory"),
        ("nodes", "nodes"),
        ("pinning", "pinning"),
        ("clients", "clients"),
        ("offered load (deliveries/s)", "load"),
        ("rounds × steps × seconds (per target)", "steps"),
        ("lease (ms)", "lease_ms"),
        ("Redis", "redis_version"),
        ("Redis configuration", "redis_conf"),
        ("Redis memory after the cluster run", "redis_info_memory"),
        ("stream length after the cluster run", "redis_stream_len"),
        ("load average before", "load_start"),
        ("load average after", "load_end"),
        ("busiest processes at the start (ps %CPU)", "busy_start"),
        ("time used (s, after the build)", "elapsed_s"),
    ];
    for (label, key) in rows {
        let mut v = d.meta(key).to_owned();
        if key == "steps" {
            v = format!(
                "{} × {} × {}",
                d.meta("rounds"),
                d.meta("steps"),
                d.meta("step_s")
            );
        }
        if matches!(key, "command" | "commit") {
            v = format!("`{}`", v.trim());
        }
        let _ = writeln!(s, "| {label} | {v} |");
    }
    for (k, v) in d.meta.iter().filter(|(k, _)| k.starts_with("skipped_")) {
        let _ = writeln!(s, "| {} | skipped ({v}) |", k.replace('_', " "));
    }
    let nproc: f64 = d.meta("nproc").parse().unwrap_or(1.0);
    let load: f64 = d
        .meta("load_start")
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0);
    if load >= 0.5 * nproc {
        let _ = writeln!(
            s,
            "\n> **The machine was busy** (load average {load:.1} before the run, on {nproc} CPUs): other processes competed for the CPUs, so latencies are upper bounds. The cluster and the single process ran one after the other in the same conditions; compare them with each other."
        );
    }
    let _ = writeln!(
        s,
        "\n## How it is measured\n\n\
`scripts/bench-cluster.sh` starts its own `redis-server` (loopback, a free port, a temporary directory, the configuration above) and {n} chat-server node(s) with a `cluster` section pointing at it, waits until every node's `GET /healthz` answers 200, and runs `examples/loadgen/` against all of them: members are spread round-robin over the nodes within each channel (the senders too), joined, and checked with a barrier message sent on one node that every member on every node must receive — so the run only starts when the nodes share one chat. The generator then publishes 64-byte messages open loop at the offered rate in fixed steps, each followed by a drain, and measures latency from each message's scheduled send time. The same load runs against one single-process server (no `cluster` section) on the first node's CPU: the baseline. Each round starts both afresh and runs them one after the other, the cluster first in odd rounds and second in even ones, so both meet the same background load.\n\n\
* **Order**: every message carries (sender, sequence number); each member records the ids it received, in order. After each step the members of a channel are compared with a reference member: a *violation* is a consecutive pair of messages a member received in the opposite order to the reference. Zero violations means every two members of a channel saw the messages they both received in one order, whichever node they are on.\n\
* **Loss**: messages published in a member's channel that it never received by the end of the drain (and the generator's per-sender gap and duplicate checks).\n\
* **Redis**: its CPU (utime + stime from `/proc/PID/stat`, PID from `INFO server`) and the entries appended (the `{{chat}}:seq` counter) and `EVALSHA` calls (`INFO commandstats`) between the start of a step and the end of its drain.\n\
* Figures are medians over the steps; counts are sums.\n",
        n = d.meta("nodes"),
    );
}

fn result(d: &Data, s: &mut String) {
    let cl = steps(d, "cluster");
    let single = steps(d, "single");
    let cluster_status = d.meta("cluster_status");
    let base_status = d.meta("baseline_status");
    let _ = writeln!(s, "## Result\n");
    if cluster_status != "ok" {
        let _ = writeln!(
            s,
            "> **The cluster run did not complete**: {cluster_status}.\n"
        );
    }
    if base_status != "ok" {
        let _ = writeln!(
            s,
            "> **The single-process run did not complete**: {base_status}.\n"
        );
    }
    let (cc, sc) = (Checks::of(&cl), Checks::of(&single));
    let p99 = |v: &[&Value]| med(v, |r| num(&r["p99_ms"]));
    let (cp99, sp99) = (p99(&cl), p99(&single));
    let overhead = cp99.zip(sp99).map(|(c, b)| c - b);
    let offered: f64 = d.meta("load").parse().unwrap_or(0.0);
    let _ = writeln!(
        s,
        "| | cluster ({} nodes) | single process | target | verdict |\n|---|---|---|---|---|",
        d.meta("nodes")
    );
    let order_cell = |c: &Checks, v: &[&Value]| {
        format!(
            "{} ({} of {} members out of order)",
            count(c.violations),
            count(c.out_of_order),
            count(v.first().and_then(|r| r["order"]["members"].as_u64()))
        )
    };
    let run_ok = cluster_status == "ok" && !cl.is_empty();
    let _ = writeln!(
        s,
        "| cross-node order violations | {} | {} | 0 | {} |",
        order_cell(&cc, &cl),
        order_cell(&sc, &single),
        if run_ok {
            verdict(cc.violations == Some(0))
        } else {
            "pending"
        }
    );
    let loss_ok = cc.missing == Some(0) && cc.loss == Some(0) && cc.disconnects == Some(0);
    let _ = writeln!(
        s,
        "| loss: missing deliveries / expected − delivered, gaps, duplicates / disconnects | {} / {} / {} | {} / {} / {} | 0 | {} |",
        count(cc.missing),
        count(cc.loss),
        count(cc.disconnects),
        count(sc.missing),
        count(sc.loss),
        count(sc.disconnects),
        if run_ok { verdict(loss_ok) } else { "pending" }
    );
    let dps = |v: &[&Value]| med(v, |r| num(&r["delivered_per_s"]));
    let _ = writeln!(
        s,
        "| delivered/s | {} | {} | {} offered | |",
        opt(dps(&cl), rate),
        opt(dps(&single), rate),
        rate(offered)
    );
    let _ = writeln!(
        s,
        "| p50 | {} | {} | | |",
        opt(med(&cl, |r| num(&r["p50_ms"])), ms),
        opt(med(&single, |r| num(&r["p50_ms"])), ms)
    );
    let _ = writeln!(
        s,
        "| p99 | {} | {} | ≤ single + {P99_OVERHEAD_MS:.0} ms | {} |",
        opt(cp99, ms),
        opt(sp99, ms),
        match overhead {
            Some(o) => format!("{} ({o:+.2} ms)", verdict(o <= P99_OVERHEAD_MS)),
            None => "pending".into(),
        }
    );
    let per_round = round_overheads(&cl, &single);
    if !per_round.is_empty() {
        let _ = writeln!(
            s,
            "| p99 overhead per round (cluster − single, each the median of the round's steps) | {} | | | |",
            per_round.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "| max latency | {} | {} | | |",
        opt(med(&cl, |r| num(&r["max_ms"])), ms),
        opt(med(&single, |r| num(&r["max_ms"])), ms)
    );
    let _ = writeln!(
        s,
        "| server CPU (all nodes, % of one CPU) | {} | {} | | |",
        opt(med(&cl, |r| num(&r["server_cpu_pct"])), pct),
        opt(med(&single, |r| num(&r["server_cpu_pct"])), pct)
    );
    let _ = writeln!(
        s,
        "| Redis CPU (% of one CPU) | {} | – | | |",
        opt(med(&cl, |r| num(&r["redis"]["cpu_pct"])), pct)
    );
    let _ = writeln!(
        s,
        "| Redis appends/s (EVALSHA/s) | {} ({}) | – | | |",
        opt(med(&cl, |r| num(&r["redis"]["appends_per_s"])), rate),
        opt(med(&cl, |r| num(&r["redis"]["evalsha_per_s"])), rate)
    );
    let _ = writeln!(
        s,
        "| generator CPU | {} | {} | | |",
        opt(med(&cl, |r| num(&r["gen_cpu_pct"])), pct),
        opt(med(&single, |r| num(&r["gen_cpu_pct"])), pct)
    );
    let pass = run_ok && cc.pass() && base_status == "ok" && sc.pass();
    let _ = writeln!(
        s,
        "\n<!-- checks: {} -->\n",
        if pass { "pass" } else { "fail" }
    );
    if cl
        .iter()
        .chain(single.iter())
        .any(|r| r["gen_saturated"] == true)
    {
        let _ = writeln!(
            s,
            "> A step saturated the load generator (≥ 90 % of its CPU): its latency is partly the generator's.\n"
        );
    }
}

/// Per round in which both ran: "r1 +0.52 ms".
fn round_overheads(cl: &[&Value], single: &[&Value]) -> Vec<String> {
    let mut rounds: Vec<&str> = cl.iter().filter_map(|r| r["round"].as_str()).collect();
    rounds.dedup();
    rounds
        .iter()
        .filter_map(|round| {
            let of = |v: &[&Value]| {
                let v: Vec<&Value> = v.iter().copied().filter(|r| r["round"] == *round).collect();
                med(&v, |r| num(&r["p99_ms"]))
            };
            let (c, b) = (of(cl)?, of(single)?);
            Some(format!("r{round} {:+.2} ms", c - b))
        })
        .collect()
}

fn per_node(d: &Data, s: &mut String) {
    let cl = steps(d, "cluster");
    let n = cl
        .iter()
        .filter_map(|r| r["nodes"].as_array().map(Vec::len))
        .max()
        .unwrap_or(0);
    if n == 0 {
        return;
    }
    let _ = writeln!(
        s,
        "## Per node (cluster)\n\n| node | delivered/s | p50 | p99 | max | server CPU | members | out of order | missing |\n|---|---|---|---|---|---|---|---|---|"
    );
    for i in 0..n {
        let node = |r: &Value| r["nodes"][i].clone();
        let f = |k: &str| med(&cl, |r| num(&node(r)[k]));
        let sum_order = |k: &str| {
            let v: Vec<u64> = cl
                .iter()
                .filter_map(|r| node(r)["order"][k].as_u64())
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<u64>())
        };
        let members = cl
            .first()
            .and_then(|r| node(r)["order"]["members"].as_u64());
        let _ = writeln!(
            s,
            "| n{} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            opt(f("delivered_per_s"), rate),
            opt(f("p50_ms"), ms),
            opt(f("p99_ms"), ms),
            opt(f("max_ms"), ms),
            opt(f("server_cpu_pct"), pct),
            count(members),
            count(sum_order("members_out_of_order")),
            count(sum_order("missing")),
        );
    }
    let _ = writeln!(s);
}

fn step_table(d: &Data, s: &mut String) {
    let _ = writeln!(
        s,
        "## Steps\n\n| target | round | step | offered/s | delivered/s | p99 | loss | order violations | missing | Redis CPU | appends/s |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for target in ["cluster", "single"] {
        let mut i = 0;
        let mut round = String::new();
        for r in steps(d, target) {
            let this = r["round"].as_str().unwrap_or("?").to_owned();
            if this != round {
                round = this;
                i = 0;
            }
            i += 1;
            let _ = writeln!(
                s,
                "| {target} | {round} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                i,
                opt(num(&r["offered_dps"]), rate),
                opt(num(&r["delivered_per_s"]), rate),
                opt(num(&r["p99_ms"]), ms),
                count(r["loss"].as_u64()),
                count(r["order"]["violations"].as_u64()),
                count(r["order"]["missing"].as_u64()),
                opt(num(&r["redis"]["cpu_pct"]), pct),
                opt(num(&r["redis"]["appends_per_s"]), rate),
            );
        }
    }
}

/// The whole of `BENCHMARKS-cluster.md`.
pub fn report(d: &Data) -> String {
    let mut s = String::new();
    header(d, &mut s);
    result(d, &mut s);
    per_node(d, &mut s);
    step_table(d, &mut s);
    s
}
