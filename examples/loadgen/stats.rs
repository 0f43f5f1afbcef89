//! Step statistics, schedules and the state the handlers share.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Statistics of one load step.
pub struct Step {
    pub label: String,
    pub offered_dps: f64,
    pub rate_mps: f64,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub gaps: u64,
    pub dups: u64,
    pub late: u64,
    pub closed: bool,
    pub hist: Histogram<u64>,
    pub first_recv: Option<Instant>,
    pub last_recv: Option<Instant>,
    pub max_send_lag_us: u64,
    pub disconnects: u64,
    /// Messages shed instead of sent (overload step only, see `Gen::overload`).
    pub shed: u64,
    /// Shed a message due while its sender has this many or more in flight (sent, not yet
    /// echoed back to the sender itself); 0: never shed, queue (every step but the overload).
    pub shed_window: u32,
    /// Per-time-slot statistics (overload step only; empty otherwise).
    pub slots: Option<Slots>,
    /// Messages published per channel.
    pub sent_by_channel: Vec<u64>,
    /// Per server node (only with several nodes): deliveries and their latency.
    pub by_node: Vec<NodeStat>,
}

/// Deliveries to the members of one server node during a step.
pub struct NodeStat {
    pub received: u64,
    pub hist: Histogram<u64>,
}

impl NodeStat {
    pub fn new() -> NodeStat {
        NodeStat {
            received: 0,
            hist: new_hist(),
        }
    }
}

/// Latency by scheduled send time and receipts by arrival time, in slots of `slot_ns`
/// counted from `origin_ns` (ns since the generator's base instant).
pub struct Slots {
    pub origin_ns: u64,
    pub slot_ns: u64,
    /// Latency of the messages scheduled in each slot.
    pub by_sched: Vec<Histogram<u64>>,
    /// Deliveries that arrived in each slot.
    pub by_arrival: Vec<u64>,
    /// Messages shed (offered, not sent) by scheduled send time.
    pub shed_by_sched: Vec<u64>,
}

impl Slots {
    pub fn new(origin_ns: u64, slot_ns: u64, slots: usize) -> Slots {
        Slots {
            origin_ns,
            slot_ns: slot_ns.max(1),
            by_sched: (0..slots).map(|_| new_hist()).collect(),
            by_arrival: vec![0; slots],
            shed_by_sched: vec![0; slots],
        }
    }

    /// One message shed, scheduled at `sched_ns`.
    pub fn shed(&mut self, sched_ns: u64) {
        if let Some(i) = self.index(sched_ns) {
            self.shed_by_sched[i] += 1;
        }
    }

    fn index(&self, ns: u64) -> Option<usize> {
        let i = (ns.checked_sub(self.origin_ns)? / self.slot_ns) as usize;
        (i < self.by_arrival.len()).then_some(i)
    }

    /// One delivery: scheduled at `sched_ns`, arrived at `now_ns`, after `lat_us`.
    pub fn record(&mut self, sched_ns: u64, now_ns: u64, lat_us: u64) {
        if let Some(i) = self.index(sched_ns) {
            self.by_sched[i].saturating_record(lat_us);
        }
        if let Some(i) = self.index(now_ns) {
            self.by_arrival[i] += 1;
        }
    }
}

impl Step {
    pub fn new(label: &str, offered_dps: f64, rate_mps: f64) -> Step {
        Step {
            label: label.to_owned(),
            offered_dps,
            rate_mps,
            sent: 0,
            expected: 0,
            received: 0,
            gaps: 0,
            dups: 0,
            late: 0,
            closed: false,
            hist: new_hist(),
            first_recv: None,
            last_recv: None,
            max_send_lag_us: 0,
            disconnects: 0,
            shed: 0,
            shed_window: 0,
            slots: None,
            sent_by_channel: Vec::new(),
            by_node: Vec::new(),
        }
    }
}

pub fn new_hist() -> Histogram<u64> {
    // 1 µs .. 120 s, 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|e| panic!("histogram: {e}")))
}

/// The publishing schedule of the running step: `first` messages `interval_ns` apart, then
/// the rest (up to `total`) `then_interval_ns` apart.
pub struct Sched {
    pub step: u32,
    pub start: Instant,
    pub interval_ns: f64,
    pub first: u64,
    pub then_interval_ns: f64,
    pub total: u64,
    pub next_j: u64,
}

impl Sched {
    /// A schedule at one rate.
    pub fn steady(step: u32, start: Instant, rate: f64, dur_s: f64) -> Sched {
        let total = (rate * dur_s).round().max(1.0) as u64;
        Sched {
            step,
            start,
            interval_ns: 1e9 / rate,
            first: total,
            then_interval_ns: 1e9 / rate,
            total,
            next_j: 0,
        }
    }

    /// When message `j` is due.
    pub fn due(&self, j: u64) -> Instant {
        let ns = if j < self.first {
            j as f64 * self.interval_ns
        } else {
            self.first as f64 * self.interval_ns + (j - self.first) as f64 * self.then_interval_ns
        };
        self.start + Duration::from_nanos(ns as u64)
    }

    /// When the next message is due, if any is left.
    pub fn next_due(&self) -> Option<Instant> {
        (self.next_j < self.total).then(|| self.due(self.next_j))
    }
}

/// REST queries during a step.
#[derive(Default)]
pub struct RestRun {
    pub interval: Duration,
    pub next_at: Option<Instant>,
    pub started: u64,
    pub statuses: BTreeMap<String, u64>,
    pub max_ms: f64,
    /// Durations of the queries answered with 200, in ms.
    pub ok_ms: Vec<f64>,
    pub inflight: usize,
}

/// Connection churn during a step.
pub struct ChurnRun {
    pub interval: Duration,
    pub next_at: Instant,
    pub started: u64,
    pub ok: u64,
    pub failed: u64,
    pub inflight: usize,
    pub hist: Histogram<u64>,
}

/// Everything except the poll, the slab and the read buffer (so handlers can borrow both).
pub struct Shared {
    pub base: Instant,
    /// The last instant converted by `ns_since_base`, and the result (one read's messages
    /// share one instant).
    pub now_cache: (Instant, u64),
    /// `read` calls on client sockets so far.
    pub reads: u64,
    /// Finds the `": "` that ends the prefix of a chat line.
    pub colon_space: memchr::memmem::Finder<'static>,
    pub channels: usize,
    pub senders: usize,
    /// Member index → slab key.
    pub member_keys: Vec<Option<usize>>,
    /// Per channel: joined members that read.
    pub live: Vec<u32>,
    pub joined: usize,
    pub inflight: usize,
    pub failed: usize,
    pub disconnects: u64,
    pub barrier_nonce: u32,
    pub barrier_seen: usize,
    pub steps: Vec<Step>,
    pub sched: Option<Sched>,
    pub seq: Vec<u32>,
    pub rest: Option<RestRun>,
    pub churn: Option<ChurnRun>,
    pub errors: BTreeMap<String, u64>,
    pub rss_max_kib: u64,
    /// Bytes drained from formerly stalled readers.
    pub drained_bytes: u64,
    pub stalled_eof: u64,
    /// Members reconnected after getting no greeting in time.
    pub retried: u64,
    /// `--order-check`: members record the ids of the messages they receive.
    pub order_check: bool,
    /// Server nodes the members are spread over.
    pub nodes: usize,
}

impl Shared {
    /// Nanoseconds from the base instant to `now`.
    pub fn ns_since_base(&mut self, now: Instant) -> u64 {
        if self.now_cache.0 != now {
            self.now_cache = (now, now.duration_since(self.base).as_nanos() as u64);
        }
        self.now_cache.1
    }

    pub fn error(&mut self, what: &str) {
        *self.errors.entry(what.to_owned()).or_default() += 1;
    }
}
