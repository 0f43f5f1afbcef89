//! The overload step: twice the knee load, then the knee load, and how the server comes back.

use crate::gen::Gen;
use crate::stats::{Sched, Slots};
use mio::Events;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Width of the time slots that latency and receipts are grouped in.
const SLOT_MS: u64 = 250;

impl Gen {
    /// Offers `2 × dps` deliveries/s for `--overload-s`, then `dps` for `--recover-s`, as one
    /// step (loss, gaps and duplicates are checked across the switch). Reports disconnects,
    /// loss, the delivered rate during each part, and how long after the overload ended the
    /// server was back to normal service.
    ///
    /// An open-loop generator that queues what the server does not take would measure its own
    /// queue: after twice the knee for 10 s it holds seconds of messages (in its buffers and
    /// the kernel's), which every later message of the same sender waits behind (each
    /// sender's order is kept), so the latency after the overload stays high for as long as
    /// that queue takes to drain at the server's spare capacity over the knee, however
    /// quickly the server itself recovers. So in this step a message is shed (offered, not
    /// sent, counted as `shed`; loss counts only messages sent) when its sender already has
    /// as many messages on their way (sent, not yet echoed back to the sender, which is in
    /// the channel too) as it sends in `--p99-ms` at the knee rate: it could not be
    /// delivered in time anyway. Recovered: from the first 250 ms slot (by scheduled send
    /// time) after which every slot has its p99 under `--p99-ms` and no message shed.
    pub fn overload(&mut self, events: &mut Events, dps: f64) -> Value {
        let over_s = self.o.overload_s.max(0.25);
        let after_s = self.o.recover_s.max(0.25);
        let per_msg = self.per_msg();
        let (rate_hi, rate) = ((2.0 * dps / per_msg).max(0.1), (dps / per_msg).max(0.1));
        let idx = self.begin_step("overload", 2.0 * dps, rate_hi);
        // Messages per sender in `--p99-ms` at the knee rate.
        let window = rate / self.sh.senders as f64 * self.o.p99_ms / 1000.0;
        self.sh.steps[idx as usize].shed_window =
            window.ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
        let start = Instant::now() + Duration::from_millis(5);
        let first = (rate_hi * over_s).round().max(1.0) as u64;
        self.sh.sched = Some(Sched {
            step: idx,
            start,
            interval_ns: 1e9 / rate_hi,
            first,
            then_interval_ns: 1e9 / rate,
            total: first + (rate * after_s).round().max(1.0) as u64,
            next_j: 0,
        });
        let slot_ns = SLOT_MS * 1_000_000;
        let over_slots = ((over_s * 1e9) / slot_ns as f64).ceil() as usize;
        let after_slots = ((after_s * 1e9) / slot_ns as f64).ceil() as usize;
        let origin_ns = start.duration_since(self.sh.base).as_nanos() as u64;
        self.sh.steps[idx as usize].slots =
            Some(Slots::new(origin_ns, slot_ns, over_slots + after_slots));
        let w = self.measure(events, idx, start, over_s + after_s);
        let step = self.report(idx, &w);

        let s = &self.sh.steps[idx as usize];
        let Some(slots) = s.slots.as_ref() else {
            return step;
        };
        let slot_s = SLOT_MS as f64 / 1000.0;
        let arrived = |from: usize, to: usize| slots.by_arrival[from..to].iter().sum::<u64>();
        let over_dps = arrived(0, over_slots) as f64 / (over_slots as f64 * slot_s);
        let after_dps =
            arrived(over_slots, over_slots + after_slots) as f64 / (after_slots as f64 * slot_s);
        // p99 of the messages scheduled in each slot after the overload (None: no deliveries).
        let p99s: Vec<Option<f64>> = slots.by_sched[over_slots..]
            .iter()
            .map(|h| (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0))
            .collect();
        let limit = self.o.p99_ms;
        let shed_after = &slots.shed_by_sched[over_slots..];
        let shed_over: u64 = slots.shed_by_sched[..over_slots].iter().sum();
        let shed_after_total: u64 = shed_after.iter().sum();
        // The first slot from which every slot with deliveries is under the limit and none
        // shed a message, provided some slot after it has deliveries.
        let recovered_at = (0..p99s.len()).find(|&i| {
            p99s[i..].iter().all(|p| p.is_none_or(|p| p <= limit))
                && shed_after[i..].iter().all(|&n| n == 0)
                && p99s[i..].iter().any(Option::is_some)
        });
        let recovery_s = recovered_at.map(|i| i as f64 * slot_s);
        eprintln!(
            "  [{}] overload: {:.0}/s for {over_s} s then {:.0}/s: delivered {:.0}/s then {:.0}/s, {} disconnects, loss {}, shed {shed_over} then {shed_after_total}, back to p99 under {limit} ms with nothing shed {}",
            self.o.target,
            2.0 * dps,
            dps,
            over_dps,
            after_dps,
            s.disconnects,
            step["loss"],
            recovery_s.map_or("never".into(), |r| format!("{r:.2} s after the overload")),
        );
        json!({
            "knee_dps": dps,
            "overload_dps": 2.0 * dps,
            "overload_s": over_s,
            "recover_s": after_s,
            "disconnects": s.disconnects,
            "loss": step["loss"],
            "delivered_per_s_overload": over_dps.round(),
            "delivered_per_s_after": after_dps.round(),
            "delivered_ratio_to_knee": if dps > 0.0 { json!(over_dps / dps) } else { Value::Null },
            "p99_recovery_s": recovery_s,
            "shed_overload": shed_over,
            "shed_after": shed_after_total,
            "shed_by_slot_after": shed_after,
            "slot_ms": SLOT_MS,
            "p99_ms_by_slot_after": p99s,
            "step": step,
        })
    }
}
