//! Turns the load generator's JSON lines (written by `scripts/bench.sh`) into `BENCHMARKS.md`:
//! medians over the repetitions, one table per question.
//!
//! `bench_report --results results.jsonl --meta meta.txt --out BENCHMARKS.md`
//!
//! With `--cluster`: `BENCHMARKS-cluster.md` from `scripts/bench-cluster.sh`'s results.

mod cluster;
mod data;
mod flags;
mod overview;
mod scenarios;
mod stress;
mod tables;

use data::*;
use serde_json::Value;

/// What every section needs: the results and the run's parameters.
pub struct Ctx<'a> {
    pub d: &'a Data,
    pub reps: usize,
    pub sizes: Vec<usize>,
    pub loads: Vec<f64>,
    pub extra_at: usize,
    pub extra_load: f64,
    pub ch_fixed: f64,
    pub quick: bool,
    pub targets: Vec<(&'static str, &'static str)>,
    /// Sizes of the many-channels and idle WebSocket runs, and the largest.
    pub ch_sizes: Vec<usize>,
    pub max_ch: usize,
    /// The size the SPEC targets are judged at (5k, or the extra-phase size in quick mode).
    pub spec_size: usize,
}

impl Ctx<'_> {
    fn new(d: &Data) -> Ctx<'_> {
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
        let spec_size = if sizes.contains(&5000) {
            5000
        } else {
            extra_at
        };
        Ctx {
            d,
            reps,
            sizes,
            loads,
            extra_at,
            extra_load,
            ch_fixed,
            quick,
            targets,
            ch_sizes,
            max_ch,
            spec_size,
        }
    }

    /// p99 of the fixed-load step at the extra phases' size and load (the "without" figure).
    pub fn base_p99(&self, t: &str) -> (Option<f64>, usize) {
        self.d
            .fixed(t, "mixed", self.extra_at, self.extra_load, |r| {
                num(&r["p99_ms"])
            })
    }
}

/// The whole of `BENCHMARKS.md`, one section after the other.
fn report(d: &Data) -> String {
    let c = Ctx::new(d);
    let mut s = String::new();
    let sections: [fn(&Ctx<'_>, &mut String); 19] = [
        overview::header,
        overview::machine,
        overview::method,
        overview::spec9_targets,
        stress::spec10_targets,
        tables::knee_table,
        tables::fixed_p99,
        tables::cpu_per_delivery,
        tables::idle_rss,
        tables::ratios,
        scenarios::many_channels,
        scenarios::stalled,
        scenarios::churn,
        scenarios::rest_query,
        stress::overload,
        stress::join_storm,
        stress::search_speed,
        scenarios::setup_cost,
        flags::flags,
    ];
    for section in sections {
        section(&c, &mut s);
    }
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
    let cluster = args.contains("--cluster");
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
    let d = Data { recs, meta };
    let report = if cluster {
        cluster::report(&d)
    } else {
        report(&d)
    };
    if let Err(e) = std::fs::write(&out, report) {
        eprintln!("bench_report: writing {out}: {e}");
        std::process::exit(1);
    }
}
