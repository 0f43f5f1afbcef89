//! The sans-IO broker client (`cluster::broker`) against a real `redis-server`: a small
//! driver plays the event loop (sockets on loopback, the clock) around it, so the state
//! machine's handshake, scripts, tail and recovery meet real Redis replies.
//!
//! Each test starts its own server (AOF on, temporary directory, stopped by PID) and is
//! bounded by deadlines; without `redis-server` they print a loud SKIPPED banner and pass
//! (under `CI`, they fail).

mod common;

use chat_server::cluster::broker::{Broker, BrokerConfig, Event, Link, Proposal};
use chat_server::cluster::config::ClusterConfig;
use chat_server::cluster::entry::{Body, Entry};
use common::redis::{redis_or_skip, DEADLINE};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Plays the event loop for one broker: its two sockets and a millisecond clock.
struct Driver {
    broker: Broker,
    port: u16,
    socks: [Option<TcpStream>; 2],
    start: Instant,
    /// Every event other than Connect/Close, in order.
    seen: Vec<Event>,
}

fn idx(link: Link) -> usize {
    match link {
        Link::Cmd => 0,
        Link::Tail => 1,
    }
}

impl Driver {
    fn new(port: u16, node: &str, inc: &str) -> Driver {
        Driver::with_lease(port, node, inc, 3000)
    }

    fn with_lease(port: u16, node: &str, inc: &str, lease_ms: u64) -> Driver {
        let cfg = ClusterConfig {
            redis: format!("127.0.0.1:{port}"),
            node_id: node.into(),
            lease_ms,
            stream_maxlen: 100_000,
            redis_password: None,
        };
        cfg.validate().expect("valid config");
        let mut bc = BrokerConfig::from_cluster(&cfg);
        bc.block_ms = 200;
        Driver {
            broker: Broker::new(bc, inc, &format!("seed-{inc}"), None),
            port,
            socks: [None, None],
            start: Instant::now(),
            seen: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// One pass: timers, events, writes, reads. True if anything happened.
    fn step(&mut self) -> bool {
        let now = self.now();
        self.broker.tick(now);
        let mut busy = self.drain_events();
        for link in [Link::Cmd, Link::Tail] {
            let Some(sock) = self.socks[idx(link)].as_mut() else {
                continue;
            };
            let out = self.broker.output(link);
            if !out.is_empty() {
                match sock.write(out) {
                    Ok(n) => {
                        self.broker.consume_output(link, n);
                        busy = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => {
                        self.socks[idx(link)] = None;
                        self.broker.disconnected(link, now);
                        continue;
                    }
                }
            }
            let mut buf = [0u8; 64 * 1024];
            let Some(sock) = self.socks[idx(link)].as_mut() else {
                continue;
            };
            match sock.read(&mut buf) {
                Ok(0) => {
                    self.socks[idx(link)] = None;
                    self.broker.disconnected(link, now);
                    busy = true;
                }
                Ok(n) => {
                    self.broker.received(link, &buf[..n], now);
                    busy = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.socks[idx(link)] = None;
                    self.broker.disconnected(link, now);
                    busy = true;
                }
            }
        }
        self.drain_events() || busy
    }

    fn drain_events(&mut self) -> bool {
        let mut any = false;
        while let Some(ev) = self.broker.poll_event() {
            any = true;
            match ev {
                Event::Connect(link) => {
                    let now = self.now();
                    match TcpStream::connect(("127.0.0.1", self.port)) {
                        Ok(s) => {
                            s.set_nonblocking(true).expect("nonblocking");
                            self.socks[idx(link)] = Some(s);
                            self.broker.connected(link, now);
                        }
                        Err(_) => self.broker.disconnected(link, now),
                    }
                }
                Event::Close(link) => self.socks[idx(link)] = None,
                other => self.seen.push(other),
            }
        }
        any
    }

    /// Steps until `cond` holds (polling, bounded by the deadline).
    fn run_until(&mut self, what: &str, mut cond: impl FnMut(&Driver) -> bool) {
        let end = Instant::now() + DEADLINE;
        while !cond(self) {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; events: {:?}",
                self.seen
            );
            if !self.step() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    fn applied(&self) -> Vec<&Entry> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::Apply(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn announce(&mut self, text: &str) -> Box<str> {
        let now = self.now();
        self.broker
            .propose(
                Proposal::Append(Body::Announcement { text: text.into() }),
                now,
            )
            .expect("the link is up")
    }
}

fn texts(entries: &[&Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match &e.body {
            Body::Announcement { text } => text.to_string(),
            other => other.kind().to_string(),
        })
        .collect()
}

#[test]
fn two_nodes_see_one_order_and_one_nick_owner() {
    let Some(redis) = redis_or_skip("two_nodes_see_one_order_and_one_nick_owner") else {
        return;
    };
    let mut a = Driver::new(redis.port, "a", "ia");
    let mut b = Driver::new(redis.port, "b", "ib");
    a.run_until("node a up", |d| d.broker.is_up());
    b.run_until("node b up", |d| d.broker.is_up());
    assert_eq!(a.broker.epoch(), b.broker.epoch(), "one epoch");
    // Both propose at once, interleaved.
    for i in 0..100 {
        a.announce(&format!("a{i}"));
        b.announce(&format!("b{i}"));
        a.step();
        b.step();
    }
    let claim = |folded: &str, conn: &str| Proposal::ClaimNick {
        folded: folded.into(),
        nick: "Bob".into(),
        conn: conn.into(),
        old: None,
    };
    let now = a.now();
    a.broker.propose(claim("bob", "1"), now).expect("up");
    a.run_until("a's claim accepted", |d| {
        d.seen
            .iter()
            .any(|e| matches!(e, Event::Accepted { .. }) && d.broker.pending() == 0)
    });
    let now = b.now();
    let refused = b.broker.propose(claim("bob", "2"), now).expect("up");
    b.run_until("b's claim answered", |d| d.broker.pending() == 0);
    assert!(b.seen.contains(&Event::Refused {
        msg_id: refused,
        code: "TAKEN".into(),
        detail: "bob".into()
    }));
    // 2 node_up + 200 announcements + 1 claim, the same on both, dense from 1.
    let total = 203;
    a.run_until("a applied everything", |d| d.broker.last_applied() == total);
    b.run_until("b applied everything", |d| d.broker.last_applied() == total);
    let (ea, eb) = (a.applied(), b.applied());
    assert_eq!(ea.len(), total as usize);
    assert_eq!(
        ea.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(ea, eb, "the same entries in the same order on both nodes");
    // Each node's own lines keep their order.
    let own: Vec<String> = texts(&ea)
        .into_iter()
        .filter(|t| t.starts_with('a'))
        .collect();
    assert_eq!(own, (0..100).map(|i| format!("a{i}")).collect::<Vec<_>>());
    assert!(a.seen.iter().all(|e| !matches!(e, Event::Gap { .. })));
}

#[test]
fn a_dropped_connection_resends_once_and_a_flushall_is_an_epoch_change() {
    let Some(redis) =
        redis_or_skip("a_dropped_connection_resends_once_and_a_flushall_is_an_epoch_change")
    else {
        return;
    };
    let mut side = redis.conn();
    let mut d = Driver::new(redis.port, "a", "ia");
    d.run_until("up", |d| d.broker.is_up());
    let first = d.announce("before");
    d.run_until("the first accepted", |d| d.broker.pending() == 0);
    // Queue a proposal, then kill every client connection before it is written.
    let m = d.announce("across the drop");
    side.call(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    d.run_until("the resent proposal accepted", |d| {
        d.seen
            .iter()
            .any(|e| matches!(e, Event::Accepted { msg_id, .. } if *msg_id == m))
    });
    assert!(d.seen.iter().any(|e| matches!(e, Event::Down { .. })));
    d.run_until("up again", |d| d.broker.is_up());
    d.run_until("both applied", |d| d.broker.last_applied() >= 3);
    let once = d
        .applied()
        .iter()
        .filter(|e| *e.msg_id == *m || *e.msg_id == *first)
        .count();
    assert_eq!(once, 2, "each exactly once: {:?}", texts(&d.applied()));
    assert_eq!(side.int(&["XLEN", "{chat}:log"]), 3);
    // Redis loses everything: the heartbeat notices, the handshake announces a new epoch.
    let old = d.broker.epoch().map(str::to_string);
    side.call(&["FLUSHALL"]);
    d.run_until("the epoch change", |d| {
        d.seen
            .iter()
            .any(|e| matches!(e, Event::EpochChanged { .. }))
    });
    let change = d
        .seen
        .iter()
        .find(|e| matches!(e, Event::EpochChanged { .. }))
        .cloned();
    match change {
        Some(Event::EpochChanged {
            old: o, last_seq, ..
        }) => {
            assert_eq!(Some(o.to_string()), old);
            assert_eq!(last_seq, 3);
        }
        other => panic!("{other:?}"),
    }
    // The node re-registers in the new history and reads it from the start.
    d.run_until("up in the new epoch", |d| {
        d.broker.is_up() && d.broker.epoch() != old.as_deref()
    });
    let before = d.seen.len();
    d.announce("after");
    d.run_until("the new history applied", |d| {
        d.seen[before..].iter().any(|e| {
            matches!(e, Event::Apply(Entry { body: Body::Announcement { text }, .. }) if &**text == "after")
        })
    });
    let new_history: Vec<u64> = d.seen[before..]
        .iter()
        .filter_map(|e| match e {
            Event::Apply(e) => Some(e.seq),
            _ => None,
        })
        .collect();
    assert_eq!(
        *new_history.last().expect("applied"),
        2,
        "node_up, then the line"
    );
}

#[test]
fn a_silent_node_is_reaped_by_another_with_one_node_down() {
    let Some(redis) = redis_or_skip("a_silent_node_is_reaped_by_another_with_one_node_down") else {
        return;
    };
    let mut a = Driver::with_lease(redis.port, "a", "ia", 600);
    let mut c = Driver::with_lease(redis.port, "c", "ic", 600);
    let mut b = Driver::with_lease(redis.port, "b", "ib", 600);
    a.run_until("a up", |d| d.broker.is_up());
    c.run_until("c up", |d| d.broker.is_up());
    b.run_until("b up", |d| d.broker.is_up());
    let now = b.now();
    b.broker
        .propose(
            Proposal::ClaimNick {
                folded: "bob".into(),
                nick: "Bob".into(),
                conn: "1".into(),
                old: None,
            },
            now,
        )
        .expect("up");
    b.run_until("b's claim", |d| d.broker.pending() == 0);
    // b stops (as if killed): no more steps, its sockets stay open but silent. a and c keep
    // running; both watch b's lease and reap it.
    let is_down = |d: &Driver| {
        d.applied()
            .iter()
            .any(|e| matches!(&e.body, Body::NodeDown { node, incarnation } if &**node == "b" && &**incarnation == "ib"))
    };
    let end = Instant::now() + DEADLINE;
    while !(is_down(&a) && is_down(&c)) {
        assert!(Instant::now() < end, "b was not reaped: {:?}", a.seen);
        let busy = a.step() | c.step();
        if !busy {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    drop(b);
    // Exactly one node_down, the same entries on both survivors.
    let downs = a
        .applied()
        .iter()
        .filter(|e| matches!(e.body, Body::NodeDown { .. }))
        .count();
    assert_eq!(downs, 1);
    let last = a.broker.last_applied();
    c.run_until("c caught up", |d| d.broker.last_applied() >= last);
    a.run_until("a caught up", |d| {
        d.broker.last_applied() >= c.broker.last_applied()
    });
    assert_eq!(a.applied(), c.applied());
    // The nick is free again.
    let now = a.now();
    a.broker
        .propose(
            Proposal::ClaimNick {
                folded: "bob".into(),
                nick: "Bob".into(),
                conn: "5".into(),
                old: None,
            },
            now,
        )
        .expect("up");
    a.run_until("a's claim", |d| d.broker.pending() == 0);
    assert!(a.seen.iter().any(|e| matches!(e, Event::Accepted { .. })));
    assert!(!a.seen.iter().any(|e| matches!(e, Event::Refused { .. })));
}
