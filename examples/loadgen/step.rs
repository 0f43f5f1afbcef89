//! One open-loop load step and its report.

use crate::gen::Gen;
use crate::order::Totals;
use crate::stats::{NodeStat, Sched, Step};
use mio::Events;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What was sampled around a step (CPU and RSS of the server and of the generator).
pub struct Window {
    pub dur_s: f64,
    pub live: u64,
    pub wall_s: f64,
    pub own_cpu_s: f64,
    /// `read` calls during the step.
    pub reads: u64,
    pub server_cpu_s: Option<f64>,
    pub rss0: Option<u64>,
    pub rss1: Option<u64>,
    pub complete: bool,
    /// CPU seconds of each server process during the step (with several `--server-pid`).
    pub node_cpu_s: Vec<Option<f64>>,
    /// `--redis`: what Redis did during the step.
    pub redis: Option<Value>,
    /// `--order-check`: the order and loss check, in total and per node.
    pub order: Option<(Totals, Vec<Totals>)>,
}

impl Gen {
    /// `(deliveries/s, messages/s)` for an offered load in the unit of the phase rates
    /// (deliveries/s, or messages/s with `--msgs`).
    pub fn rates(&self, offered: f64) -> (f64, f64) {
        let per_msg = self.per_msg();
        if self.o.msgs {
            (offered * per_msg, offered.max(0.1))
        } else {
            (offered, (offered / per_msg).max(0.1))
        }
    }

    /// Starts the statistics of a new step; returns its index.
    pub fn begin_step(&mut self, label: &str, dps: f64, rate: f64) -> u32 {
        let idx = self.sh.steps.len() as u32;
        let mut step = Step::new(label, dps, rate);
        step.sent_by_channel = vec![0; self.sh.channels];
        if self.sh.nodes > 1 {
            step.by_node = (0..self.sh.nodes).map(|_| NodeStat::new()).collect();
        }
        self.sh.steps.push(step);
        idx
    }

    /// Runs one open-loop step at `offered` (deliveries/s, or messages/s with `--msgs`) for
    /// `dur_s`, then drains.
    pub fn run_step(
        &mut self,
        events: &mut Events,
        label: &str,
        offered: f64,
        dur_s: f64,
    ) -> Value {
        let (dps, rate) = self.rates(offered);
        let idx = self.begin_step(label, dps, rate);
        let start = Instant::now() + Duration::from_millis(5);
        self.sh.sched = Some(Sched::steady(idx, start, rate, dur_s));
        let w = self.measure(events, idx, start, dur_s);
        self.report(idx, &w)
    }

    /// Publishes the running schedule of step `idx` (from `start`, for `dur_s`), waits until
    /// every expected delivery arrived, and samples CPU and RSS around it.
    pub fn measure(&mut self, events: &mut Events, idx: u32, start: Instant, dur_s: f64) -> Window {
        let live = self.live_total().max(1) as u64;
        self.reserve_order();
        let redis0 = self.redis_sample();
        let mut start = start;
        if redis0.is_some() {
            // The Redis round trip may have taken the few ms before the step's start: start the
            // schedule after it, so no message is due before it can be sent.
            let at = Instant::now() + Duration::from_millis(2);
            if let Some(s) = self.sh.sched.as_mut() {
                s.start = s.start.max(at);
                start = s.start;
            }
        }
        let end = start + Duration::from_secs_f64(dur_s);
        let node_cpu0 = self.node_cpus();
        let cpu0 = self.cpu();
        let rss0 = self.rss();
        self.sh.rss_max_kib = rss0.unwrap_or(0);
        let own0 = Self::own_cpu();
        let reads0 = self.sh.reads;
        let t0 = Instant::now();
        self.pump(events, end, |_| false);
        self.sh.sched = None;
        // Drain: wait until every expected delivery arrived.
        let drain_cap = end + Duration::from_secs_f64((2.0 * dur_s).max(2.0));
        let complete = self.pump(events, drain_cap, |g| {
            let s = &g.sh.steps[idx as usize];
            s.received >= s.expected
        });
        let wall_s = t0.elapsed().as_secs_f64();
        let own_cpu_s = Self::own_cpu() - own0;
        let reads = self.sh.reads - reads0;
        let server_cpu_s = match (cpu0, self.cpu()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let rss1 = self.rss();
        let node_cpu_s = node_cpu0
            .iter()
            .zip(self.node_cpus())
            .map(|(a, b)| a.zip(b).map(|(a, b)| b - a))
            .collect();
        let redis = redis0
            .zip(self.redis_sample())
            .map(|(a, b)| crate::redis::delta(&a, &b));
        let s = &mut self.sh.steps[idx as usize];
        s.closed = true;
        if !complete {
            // Give a backlog time to clear before the next step (counted as late).
            let expected = s.expected;
            let received = s.received;
            let until = Instant::now() + Duration::from_secs(10);
            self.pump(events, until, |g| {
                received + g.sh.steps[idx as usize].late >= expected
            });
        }
        let order = self.sh.order_check.then(|| self.check_order(idx));
        Window {
            dur_s,
            live,
            wall_s,
            own_cpu_s,
            reads,
            server_cpu_s,
            rss0,
            rss1,
            complete,
            node_cpu_s,
            redis,
            order,
        }
    }

    /// The JSON report of step `idx` (and its line on stderr).
    pub fn report(&self, idx: u32, w: &Window) -> Value {
        let s = &self.sh.steps[idx as usize];
        // Deliveries per second between the first and the last receipt (so a constant
        // latency does not count against the rate; a growing one does), at least the window.
        let span = match (s.first_recv, s.last_recv) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        }
        .max(w.dur_s * 0.98)
        .max(1e-3);
        let delivered_ps = s.received as f64 / span;
        let loss = s.expected.saturating_sub(s.received);
        let q = |p: f64| s.hist.value_at_quantile(p) as f64 / 1000.0;
        let server_cpu = w.server_cpu_s;
        let own_pct = w.own_cpu_s / w.wall_s * 100.0;
        let saturated = own_pct >= 90.0;
        let per_delivery = |cpu_s: f64| (s.received > 0).then(|| cpu_s * 1e6 / s.received as f64);
        let p99 = if s.received > 0 {
            q(0.99)
        } else {
            f64::INFINITY
        };
        let in_order = w.order.as_ref().is_none_or(|(t, _)| t.violations == 0);
        let ok = p99 <= self.o.p99_ms
            && loss == 0
            && s.gaps == 0
            && s.dups == 0
            && s.disconnects == 0
            && s.sent > 0
            && in_order;
        let mut v = json!({
            "label": s.label,
            "offered_dps": s.offered_dps.round(),
            "rate_mps": (s.rate_mps * 10.0).round() / 10.0,
            "duration_s": w.dur_s,
            "live_clients": w.live,
            "sent": s.sent,
            "expected": s.expected,
            "delivered": s.received,
            "delivered_per_s": delivered_ps.round(),
            "loss": loss,
            "gaps": s.gaps,
            "dups_or_reordered": s.dups,
            "late": s.late,
            "disconnects": s.disconnects,
            "shed": s.shed,
            "p50_ms": q(0.5),
            "p90_ms": q(0.9),
            "p99_ms": if p99.is_finite() { json!(p99) } else { Value::Null },
            "p999_ms": q(0.999),
            "max_ms": s.hist.max() as f64 / 1000.0,
            "max_send_lag_ms": s.max_send_lag_us as f64 / 1000.0,
            "server_cpu_s": server_cpu,
            "server_cpu_us_per_delivery": server_cpu.and_then(per_delivery),
            "server_cpu_pct": server_cpu.map(|c| c / w.wall_s * 100.0),
            "server_rss_kib_start": w.rss0,
            "server_rss_kib_end": w.rss1,
            "server_rss_kib_max": self.sh.rss_max_kib.max(w.rss1.unwrap_or(0)),
            "gen_cpu_pct": (own_pct * 10.0).round() / 10.0,
            "gen_cpu_us_per_delivery": per_delivery(w.own_cpu_s),
            "gen_deliveries_per_read": (w.reads > 0).then(|| s.received as f64 / w.reads as f64),
            "gen_saturated": saturated,
            "complete": w.complete,
            "ok": ok,
        });
        self.add_cluster_fields(&mut v, idx, w, span);
        eprintln!(
            "  [{}] {}: offered {:.0}/s ({:.1} msg/s) delivered {:.0}/s p50 {:.2} p99 {} max {:.1} ms loss {} gaps {} dups {} disconnects {} srv-cpu {} gen-cpu {:.0}% ({} µs/delivery, {:.1} per read){}",
            self.o.target,
            s.label,
            s.offered_dps,
            s.rate_mps,
            delivered_ps,
            q(0.5),
            if p99.is_finite() { format!("{p99:.2}") } else { "-".into() },
            s.hist.max() as f64 / 1000.0,
            loss,
            s.gaps,
            s.dups,
            s.disconnects,
            server_cpu.map_or("-".into(), |c| format!("{:.0}%", c / w.wall_s * 100.0)),
            own_pct,
            per_delivery(w.own_cpu_s).map_or("-".into(), |c| format!("{c:.2}")),
            s.received as f64 / w.reads.max(1) as f64,
            if saturated { " GENERATOR SATURATED" } else { "" }
        );
        v
    }
}
