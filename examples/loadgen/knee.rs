//! The knee search.

use crate::gen::Gen;
use mio::Events;
use serde_json::{json, Value};

impl Gen {
    /// The median knee of earlier runs for this target, tags and size (`--knee-hints`).
    pub fn knee_hint(&self, size: usize) -> Option<f64> {
        let text = std::fs::read_to_string(self.o.knee_hints.as_deref()?).ok()?;
        let mut knees: Vec<f64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| {
                v["scenario"] == "knee"
                    && v["target"] == self.o.target.as_str()
                    && v["size"] == size
                    && self
                        .o
                        .tags
                        .iter()
                        .all(|(k, t)| k == "rep" || v[k] == t.as_str())
            })
            .filter_map(|v| v["knee_dps"].as_f64())
            .filter(|&k| k > 0.0)
            .collect();
        knees.sort_by(f64::total_cmp);
        knees.get(knees.len() / 2).copied()
    }

    pub fn knee(&mut self, events: &mut Events, size: usize) -> Value {
        // Hints are deliveries/s; the search runs in the unit of the rates.
        let unit = if self.o.msgs { self.per_msg() } else { 1.0 };
        let hint = self.knee_hint(size).map(|k| k / unit);
        let (mut rate, factor, max_bisect) = match hint {
            Some(k) => (k, 1.25, 2),
            None => (
                self.o.knee_start,
                self.o.knee_factor.max(1.1),
                self.o.knee_bisect,
            ),
        };
        let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
        let mut best: Option<Value> = None;
        let mut steps = Vec::new();
        let mut bisections = 0;
        let mut fail_saturated = false;
        // Up to 3 extra steps, halving, while no step has passed yet.
        for i in 0..self.o.knee_steps + 3 {
            if self.aborted || (i >= self.o.knee_steps && lo.is_some()) {
                break;
            }
            let r = self.run_step(events, "knee", rate, self.o.step_s);
            let ok = r["ok"].as_bool().unwrap_or(false);
            let delivered = r["delivered_per_s"].as_f64().unwrap_or(0.0);
            if ok {
                if best
                    .as_ref()
                    .is_none_or(|b| delivered > b["delivered_per_s"].as_f64().unwrap_or(0.0))
                {
                    best = Some(r.clone());
                }
                lo = Some(lo.map_or(rate, |l: f64| l.max(rate)));
            } else {
                hi = Some(hi.map_or(rate, |h: f64| h.min(rate)));
                fail_saturated = r["gen_saturated"].as_bool().unwrap_or(false);
            }
            let clean = r["complete"].as_bool().unwrap_or(false) && r["disconnects"] == 0;
            steps.push(r);
            if !clean {
                break;
            }
            rate = match (lo, hi) {
                (Some(l), None) => l * factor,
                (None, Some(h)) if i + 1 >= self.o.knee_steps => h / 2.0,
                (None, Some(h)) => h / factor,
                (Some(l), Some(h)) => {
                    if bisections >= max_bisect || h / l < 1.08 {
                        break;
                    }
                    bisections += 1;
                    (l * h).sqrt()
                }
                (None, None) => break,
            };
            if rate * unit < 1000.0 {
                break;
            }
        }
        let knee = best
            .as_ref()
            .and_then(|b| b["delivered_per_s"].as_f64())
            .unwrap_or(0.0);
        self.knee_dps = (knee > 0.0).then_some(knee);
        let lowest = steps
            .iter()
            .filter_map(|r| r["offered_dps"].as_f64())
            .fold(f64::INFINITY, f64::min);
        let best_p99 = steps
            .iter()
            .filter_map(|r| r["p99_ms"].as_f64())
            .fold(f64::INFINITY, f64::min);
        json!({
            "knee_dps": knee,
            "lowest_offered_dps": lowest.is_finite().then_some(lowest),
            "lowest_p99_ms": best_p99.is_finite().then_some(best_p99),
            "search_started_at": hint.map_or("default", |_| "hint"),
            "knee_step": best,
            "first_failing_offered_dps": hi,
            "limited_by_generator": fail_saturated,
            "steps": steps,
        })
    }
}
