//! Side work during a step: connection churn and REST queries.

use crate::conn::{Kind, Role};
use crate::gen::Gen;
use std::time::Instant;

impl Gen {
    pub fn churn_due(&mut self, now: Instant) {
        let Some(addr) = self.o.telnet.first().copied() else {
            return;
        };
        let Some(ch) = self.sh.churn.as_mut() else {
            return;
        };
        let mut starts = Vec::new();
        while ch.next_at <= now && ch.inflight < 1000 {
            starts.push(ch.started);
            ch.started += 1;
            ch.inflight += 1;
            ch.next_at += ch.interval;
        }
        for n in starts {
            match self.open(addr, false) {
                Ok(sock) => {
                    if self
                        .add_conn(sock, Kind::Telnet, Role::Churn, n, 0, 0)
                        .is_none()
                    {
                        self.churn_end(false, None);
                    }
                }
                Err(_) => self.churn_end(false, None),
            }
        }
    }

    pub fn churn_end(&mut self, ok: bool, started: Option<Instant>) {
        if let Some(ch) = self.sh.churn.as_mut() {
            ch.inflight = ch.inflight.saturating_sub(1);
            if ok {
                ch.ok += 1;
                if let Some(t) = started {
                    ch.hist
                        .saturating_record(t.elapsed().as_micros() as u64 + 1);
                }
            } else {
                ch.failed += 1;
            }
        }
    }

    pub fn rest_due(&mut self, now: Instant) {
        let Some(addr) = self.o.rest else { return };
        let Some(r) = self.sh.rest.as_mut() else {
            return;
        };
        let Some(at) = r.next_at else { return };
        if at > now || r.inflight >= self.o.rest_concurrency.max(1) {
            return;
        }
        r.next_at = Some(now + r.interval);
        r.started += 1;
        r.inflight += 1;
        match self.open(addr, false) {
            Ok(sock) => {
                if self
                    .add_conn(sock, Kind::Telnet, Role::Rest, 0, 0, 0)
                    .is_none()
                {
                    self.rest_end("register failed".into(), None);
                }
            }
            Err(e) => self.rest_end(format!("connect: {e}"), None),
        }
    }

    pub fn rest_end(&mut self, status: String, started: Option<Instant>) {
        if let Some(r) = self.sh.rest.as_mut() {
            r.inflight = r.inflight.saturating_sub(1);
            *r.statuses.entry(status.clone()).or_default() += 1;
            if let Some(t) = started {
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                r.max_ms = r.max_ms.max(ms);
                if status == "200" {
                    r.ok_ms.push(ms);
                }
            }
        }
    }
}
