//! Growing the client set and the barrier that checks every member is in its channel.

use crate::conn::{flush, push_line, Role, St};
use crate::emit;
use crate::gen::Gen;
use mio::Events;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

impl Gen {
    /// Connects members up to `n`, waits until they joined. Returns false on timeout.
    pub fn grow_to(&mut self, events: &mut Events, n: usize) -> bool {
        self.want_members = n.min(self.total_clients());
        let until = Instant::now() + Duration::from_secs_f64(self.o.setup_timeout_s);
        loop {
            let slice = (Instant::now() + Duration::from_millis(500)).min(until);
            if self.pump(events, slice, |g| {
                g.next_member >= g.want_members && g.sh.inflight == 0
            }) {
                return true;
            }
            if Instant::now() >= until || self.aborted {
                return false;
            }
            self.retry_stuck();
        }
    }

    /// Reconnects members that got no greeting within 3 s. When the server's accept queue
    /// overflows, the kernel may complete the client's handshake (SYN cookies) while the
    /// server never sees the connection; the client would wait for the greeting forever.
    pub fn retry_stuck(&mut self) {
        let stuck: Vec<(usize, usize)> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.role == Role::Member
                    && matches!(c.st, St::Connecting | St::WsHandshake | St::Greeting)
                    && c.started.elapsed() > Duration::from_secs(3)
            })
            .map(|(k, c)| (k, c.id as usize))
            .collect();
        for (key, i) in stuck {
            let mut c = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut c.sock);
            drop(c);
            self.sh.member_keys[i] = None;
            self.sh.inflight = self.sh.inflight.saturating_sub(1);
            self.sh.retried += 1;
            self.connect_member_at(i);
        }
    }

    /// Sends a barrier message in every channel and waits until every member saw it.
    pub fn barrier(&mut self, events: &mut Events) -> (bool, f64) {
        let t0 = Instant::now();
        self.sh.barrier_nonce += 1;
        self.sh.barrier_seen = 0;
        let nonce = self.sh.barrier_nonce;
        for ch in 0..self.o.channels {
            // The first joined member of the channel sends it.
            let mut i = ch;
            while i < self.sh.member_keys.len() {
                if let Some(key) = self.sh.member_keys[i] {
                    if let Some(c) = self.conns.get_mut(key) {
                        if c.st == St::Joined && !c.stalled {
                            push_line(c, format!("z{nonce}").as_bytes());
                            if flush(c).is_err() {
                                self.close(key, "write failed");
                            }
                            break;
                        }
                    }
                }
                i += self.o.channels;
            }
        }
        let until = Instant::now() + Duration::from_secs_f64(self.o.setup_timeout_s);
        let ok = self.pump(events, until, |g| {
            g.sh.barrier_seen >= g.sh.live.iter().map(|&n| n as usize).sum::<usize>()
        });
        (ok, t0.elapsed().as_secs_f64())
    }

    pub fn live_total(&self) -> usize {
        self.sh.live.iter().map(|&n| n as usize).sum()
    }

    /// Runs one open-loop step at `dps` offered deliveries/s for `dur_s`, then drains.
    /// Deliveries per published message: members of the sender's channel (senders are
    /// spread evenly over the channels).
    pub fn per_msg(&self) -> f64 {
        self.live_total().max(1) as f64 / self.o.channels as f64
    }

    /// Grows the client set to `n` (connect, identify, join), checks with the barrier that
    /// every member is in its channel, samples the server's RSS, and emits the `setup` line.
    /// Returns false when the setup failed (with what was stuck on stderr).
    pub fn setup_size(
        &mut self,
        events: &mut Events,
        n: usize,
        common: &Value,
        rss_before: Option<u64>,
        t_connect: Instant,
    ) -> bool {
        // Grow: connect, identify, join; then the barrier.
        let t_grow = Instant::now();
        let cpu_grow0 = self.cpu();
        let joined = self.grow_to(events, n);
        let grow_s = t_grow.elapsed().as_secs_f64();
        let grow_cpu_s = self.cpu().zip(cpu_grow0).map(|(b, a)| b - a);
        let (bar_ok, bar_s) = self.barrier(events);
        let setup_ok = joined && bar_ok;
        // Let the server flush and settle before sampling its RSS.
        let until = Instant::now() + Duration::from_millis(300);
        self.pump(events, until, |_| false);
        let rss = self.rss();
        let per_conn = match (rss, rss_before) {
            (Some(a), Some(b)) if self.sh.joined > 0 => {
                Some((a as f64 - b as f64) * 1024.0 / self.sh.joined as f64)
            }
            _ => None,
        };
        eprintln!(
            "[{}] {} joined ({} failed) in {grow_s:.2} s, barrier {bar_s:.2} s{}, server RSS {} KiB{}",
            self.o.target,
            self.sh.joined,
            self.sh.failed,
            if bar_ok { "" } else { " (TIMED OUT)" },
            rss.map_or("-".into(), |r| r.to_string()),
            per_conn.map_or(String::new(), |b| format!(", {b:.0} B per connection"))
        );
        emit(
            &self.o.target,
            "setup",
            common,
            json!({
                "ok": setup_ok,
                "joined": self.sh.joined,
                "failed": self.sh.failed,
                "retried": self.sh.retried,
                "grow_s": grow_s,
                "grow_server_cpu_s": grow_cpu_s,
                "barrier_s": bar_s,
                "setup_s": t_connect.elapsed().as_secs_f64(),
                "server_rss_kib_before": rss_before,
                "server_rss_kib": rss,
                "rss_bytes_per_conn": per_conn,
                "errors": self.sh.errors,
            }),
        );
        if !setup_ok {
            let mut stuck: BTreeMap<String, u64> = BTreeMap::new();
            for (_, c) in self.conns.iter() {
                if c.role == Role::Member && c.st != St::Joined {
                    let k = format!(
                        "{:?} {:?} inbuf={} out={}",
                        c.kind,
                        c.st,
                        c.inbuf.len(),
                        c.out.len() - c.out_pos
                    );
                    *stuck.entry(k).or_default() += 1;
                }
            }
            eprintln!(
                "[{}] setup failed: errors {:?}, not joined: {stuck:?}",
                self.o.target, self.sh.errors
            );
            return false;
        }
        true
    }
}
