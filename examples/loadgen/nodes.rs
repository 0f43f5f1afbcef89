//! Several server nodes: per-node figures, the cross-node order check around a step, and the
//! Redis samples (see `order.rs` and `redis.rs`).

use crate::conn::{Role, St};
use crate::gen::Gen;
use crate::order::{check_channel, Totals};
use crate::redis::{sample, Sample};
use crate::step::Window;
use serde_json::{json, Value};

impl Gen {
    pub fn redis_sample(&self) -> Option<Sample> {
        let addr = self.o.redis?;
        let s = sample(addr, self.o.redis_password.as_deref());
        if s.is_none() {
            eprintln!(
                "[{}] redis at {addr} did not answer a sample",
                self.o.target
            );
        }
        s
    }

    /// Members whose deliveries count: joined and reading.
    fn measured_members(&self) -> impl Iterator<Item = usize> + '_ {
        self.conns
            .iter()
            .filter(|(_, c)| c.role == Role::Member && c.st == St::Joined && !c.stalled)
            .map(|(k, _)| k)
    }

    /// Before a step: room in every member's id list for every message of its channel
    /// (so recording never reallocates during the step).
    pub fn reserve_order(&mut self) {
        if !self.sh.order_check {
            return;
        }
        let total = self.sh.sched.as_ref().map_or(0, |s| s.total) as usize;
        let per_channel = total / self.sh.channels.max(1) + 1;
        let room = per_channel + per_channel / 8 + 16;
        let keys: Vec<usize> = self.measured_members().collect();
        for k in keys {
            if let Some(c) = self.conns.get_mut(k) {
                c.order.clear();
                c.order.reserve(room);
            }
        }
    }

    /// After step `idx`: every channel's members against its reference order; totals and
    /// per node. Frees the id lists.
    pub fn check_order(&mut self, idx: u32) -> (Totals, Vec<Totals>) {
        let mut by_channel: Vec<Vec<usize>> = vec![Vec::new(); self.sh.channels];
        for k in self.measured_members() {
            let ch = self.conns[k].channel as usize;
            if let Some(v) = by_channel.get_mut(ch) {
                v.push(k);
            }
        }
        let mut total = Totals::default();
        let mut per_node = vec![Totals::default(); self.sh.nodes];
        let step = &self.sh.steps[idx as usize];
        for (ch, keys) in by_channel.iter().enumerate() {
            let seqs: Vec<&[u64]> = keys
                .iter()
                .map(|&k| self.conns[k].order.as_slice())
                .collect();
            let sent = step.sent_by_channel.get(ch).copied().unwrap_or(0);
            for (&k, (c, missing)) in keys.iter().zip(check_channel(&seqs, sent)) {
                total.add(&c, missing);
                if let Some(n) = per_node.get_mut(usize::from(self.conns[k].node)) {
                    n.add(&c, missing);
                }
            }
        }
        for (_, c) in self.conns.iter_mut() {
            c.order = Vec::new();
        }
        (total, per_node)
    }

    /// Adds the per-node figures, the order check and the Redis figures to a step's report.
    pub fn add_cluster_fields(&self, v: &mut Value, idx: u32, w: &Window, span: f64) {
        let Some(m) = v.as_object_mut() else {
            return;
        };
        let s = &self.sh.steps[idx as usize];
        let order_per_node = w.order.as_ref().map(|(_, n)| n.as_slice());
        if let Some((t, _)) = &w.order {
            eprintln!(
                "    order check: {} members, {} out of order ({} violations), {} missing, {} unchecked",
                t.members, t.out_of_order, t.violations, t.missing, t.unchecked
            );
            m.insert("order".into(), totals_json(t));
        }
        if let Some(r) = &w.redis {
            m.insert("redis".into(), r.clone());
        }
        m.insert("nodes_count".into(), json!(self.sh.nodes));
        if s.by_node.is_empty() {
            return;
        }
        let nodes: Vec<Value> = s
            .by_node
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let q = |p: f64| n.hist.value_at_quantile(p) as f64 / 1000.0;
                let addr = crate::opts::Opts::addr_for(&self.o.telnet, i)
                    .or_else(|| crate::opts::Opts::addr_for(&self.o.ws, i));
                let cpu = w.node_cpu_s.get(i).copied().flatten();
                json!({
                    "node": i,
                    "addr": addr.map(|a| a.to_string()),
                    "delivered": n.received,
                    "delivered_per_s": (n.received as f64 / span).round(),
                    "p50_ms": (n.received > 0).then(|| q(0.5)),
                    "p99_ms": (n.received > 0).then(|| q(0.99)),
                    "max_ms": n.hist.max() as f64 / 1000.0,
                    "server_cpu_s": cpu,
                    "server_cpu_pct": cpu.map(|c| c / w.wall_s * 100.0),
                    "order": order_per_node.and_then(|o| o.get(i)).map(totals_json),
                })
            })
            .collect();
        for n in &nodes {
            eprintln!(
                "    node {} ({}): delivered {}/s p99 {} ms{}",
                n["node"],
                n["addr"].as_str().unwrap_or("-"),
                n["delivered_per_s"],
                n["p99_ms"],
                if n["order"].is_null() {
                    String::new()
                } else {
                    format!(
                        ", order violations {}, missing {}",
                        n["order"]["violations"], n["order"]["missing"]
                    )
                }
            );
        }
        m.insert("nodes".into(), Value::Array(nodes));
    }
}

fn totals_json(t: &Totals) -> Value {
    json!({
        "members": t.members,
        "members_out_of_order": t.out_of_order,
        "violations": t.violations,
        "unchecked": t.unchecked,
        "missing": t.missing,
    })
}
