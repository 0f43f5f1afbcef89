//! The stalled-reader, REST and churn phases.

use crate::conn::{Role, St};
use crate::gen::Gen;
use crate::stats::{new_hist, ChurnRun, RestRun};
use mio::Events;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

impl Gen {
    /// Stops a share of the members reading, runs a step, then reads them again to see
    /// whether the server dropped them.
    pub fn stalled(&mut self, events: &mut Events, dps: f64) -> Value {
        let mut stalled = Vec::new();
        for i in 0..self.sh.member_keys.len() {
            if !self.is_stall_candidate(i) {
                continue;
            }
            let Some(key) = self.sh.member_keys[i] else {
                continue;
            };
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            if c.st != St::Joined || c.stalled {
                continue;
            }
            c.stalled = true;
            self.sh.live[c.channel as usize] -= 1;
            stalled.push(key);
        }
        let rss0 = self.rss();
        let step = self.run_step(events, "stalled", dps, self.o.stalled_s);
        let rss_max = self.sh.rss_max_kib;
        // Read the stalled clients again (without measuring) to see which were closed.
        for &key in &stalled {
            if let Some(c) = self.conns.get_mut(key) {
                c.draining = true;
            }
            self.read(key, true);
        }
        let until = Instant::now() + Duration::from_secs(2);
        let n = stalled.len() as u64;
        self.pump(events, until, |g| g.sh.stalled_eof >= n);
        let closed_by_server = self.sh.stalled_eof;
        // Close the rest: they are out of step with the sequence numbers.
        for &key in &stalled {
            if let Some(c) = self.conns.get(key) {
                if c.draining {
                    self.close(key, "stalled reader retired");
                }
            }
        }
        let growth = rss_max.saturating_sub(rss0.unwrap_or(rss_max));
        json!({
            "stalled_clients": n,
            "closed_by_server": closed_by_server,
            "bytes_drained_after": self.sh.drained_bytes,
            "server_rss_kib_before": rss0,
            "server_rss_kib_max": rss_max,
            "rss_growth_kib": growth,
            "rss_growth_kib_per_stalled": if n > 0 { json!(growth as f64 / n as f64) } else { Value::Null },
            "step": step,
        })
    }

    pub fn rest_phase(&mut self, events: &mut Events, dps: f64) -> Value {
        self.sh.rest = Some(RestRun {
            interval: Duration::from_millis(self.o.rest_interval_ms.max(1)),
            next_at: Some(Instant::now()),
            ..RestRun::default()
        });
        let step = self.run_step(events, "rest", dps, self.o.step_s);
        if let Some(r) = self.sh.rest.as_mut() {
            r.next_at = None;
        }
        // Queries still running finish (a slow search of a big log may take a while).
        let until = Instant::now() + Duration::from_secs(30);
        self.pump(events, until, |g| {
            g.sh.rest.as_ref().is_none_or(|r| r.inflight == 0)
        });
        let mut r = self.sh.rest.take().unwrap_or_default();
        r.ok_ms.sort_by(f64::total_cmp);
        json!({
            "queries": r.started,
            "statuses": r.statuses,
            "max_query_ms": r.max_ms,
            "answered_200": r.ok_ms.len(),
            "median_query_ms": r.ok_ms.get(r.ok_ms.len() / 2),
            "min_query_ms": r.ok_ms.first(),
            "step": step,
        })
    }

    pub fn churn_phase(&mut self, events: &mut Events, dps: f64) -> Value {
        let rate = self.o.churn_rate.max(1.0);
        self.sh.churn = Some(ChurnRun {
            interval: Duration::from_secs_f64(1.0 / rate),
            next_at: Instant::now(),
            started: 0,
            ok: 0,
            failed: 0,
            inflight: 0,
            hist: new_hist(),
        });
        let step = self.run_step(events, "churn", dps, self.o.step_s);
        if let Some(ch) = self.sh.churn.as_mut() {
            ch.next_at = Instant::now() + Duration::from_secs(3600);
        }
        let until = Instant::now() + Duration::from_secs(5);
        self.pump(events, until, |g| {
            g.sh.churn.as_ref().is_none_or(|c| c.inflight == 0)
        });
        // Close cycles that did not finish.
        let left: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.role == Role::Churn)
            .map(|(k, _)| k)
            .collect();
        for key in left {
            self.close(key, "churn cycle timed out");
        }
        let Some(ch) = self.sh.churn.take() else {
            return Value::Null;
        };
        json!({
            "rate_per_s": rate,
            "cycles_started": ch.started,
            "cycles_ok": ch.ok,
            "cycles_failed": ch.failed,
            "cycle_p50_ms": ch.hist.value_at_quantile(0.5) as f64 / 1000.0,
            "cycle_p99_ms": ch.hist.value_at_quantile(0.99) as f64 / 1000.0,
            "step": step,
        })
    }
}
