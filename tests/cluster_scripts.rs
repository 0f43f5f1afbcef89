//! The cluster's Lua scripts (CLUSTER.md §2–§3) against a real `redis-server` on loopback
//! (AOF on, its own temporary directory, stopped by PID), driven over plain blocking sockets
//! through the crate's RESP codec: dense seq, de-duplication by msg_id, epoch and lease
//! fencing, nick claims racing, lease refresh as compare-and-set, idempotent reaping.
//!
//! Each test starts its own server and is bounded by deadlines (no fixed sleeps). Without
//! `redis-server` they print a loud SKIPPED banner and pass (under `CI`, they fail).
//!
//! `append_throughput` (ignored by default) measures the append script:
//! `cargo test --release --test cluster_scripts append_throughput -- --ignored --nocapture`

mod common;

use chat_server::cluster::entry::{Body, Entry};
use chat_server::cluster::scripts::{
    self, APPEND, LEASE_REFRESH, NICK_CLAIM, NICK_RELEASE, REAP, REGISTER,
};
use chat_server::cluster::scripts::{CallContext, Script};
use chat_server::cluster::PREFIX;
use chat_server::proto::resp::{as_bytes, as_int, Frame};
use common::redis::{redis_or_skip, wait_until, Conn};
use std::time::Instant;

const EPOCH: &str = "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0";
const LONG_LEASE: &str = "60000";
const SHORT_LEASE: &str = "400";

/// Sets the epoch and returns a registered node `id` with incarnation `inc`.
fn node(c: &mut Conn, id: &str, inc: &str, lease: &str) -> Node {
    let _ = c.call(&["SET", "{chat}:epoch", EPOCH, "NX"]);
    let mut n = Node::new(id, inc, EPOCH);
    let (status, epoch, _) = ok_reply(&n.run(c, &REGISTER, &[lease]));
    assert_eq!((status.as_str(), epoch.as_str()), ("ok", EPOCH));
    n
}

fn chat_line(n: &mut Node, c: &mut Conn, text: &str) -> Frame {
    n.run(
        c,
        &APPEND,
        &["k", "msg", "ch", "#x", "nick", "bob", "text", text],
    )
}

/// Every entry in the stream, parsed.
fn stream(c: &mut Conn) -> Vec<Entry> {
    match c.call(&["XRANGE", "{chat}:log", "-", "+"]) {
        Frame::Array(items) => items
            .iter()
            .map(|f| Entry::from_frame(f).expect("a valid entry"))
            .collect(),
        other => panic!("XRANGE: {other:?}"),
    }
}

fn wait_lease_gone(c: &mut Conn, id: &str) {
    let key = format!("{{chat}}:node:{id}");
    wait_until("the lease to expire", || c.get(&key).is_none());
}

#[test]
fn epoch_is_set_once() {
    let Some(redis) = redis_or_skip("epoch_is_set_once") else {
        return;
    };
    let mut c = redis.conn();
    assert_eq!(
        c.call(&["SET", "{chat}:epoch", "first", "NX"]),
        Frame::SimpleString(b"OK".to_vec())
    );
    assert_eq!(
        c.call(&["SET", "{chat}:epoch", "second", "NX"]),
        Frame::Null
    );
    assert_eq!(c.get("{chat}:epoch").as_deref(), Some(&b"first"[..]));
    // A caller holding another epoch is refused, naming the current one.
    let n = Node::new("n1", "i1", "second");
    let r = n.run_with(&mut c, &REGISTER, "", &[LONG_LEASE]);
    assert_eq!(r, Frame::Error("EPOCH first".into()));
    // After FLUSHALL (Redis lost its data) the epoch is gone: EPOCH none.
    c.call(&["FLUSHALL"]);
    let n = Node::new("n1", "i1", "first");
    assert_eq!(
        n.run_with(&mut c, &REGISTER, "", &[LONG_LEASE]),
        Frame::Error("EPOCH none".into())
    );
}

#[test]
fn appends_get_dense_seqs_and_resends_are_deduplicated() {
    let Some(redis) = redis_or_skip("appends_get_dense_seqs_and_resends_are_deduplicated") else {
        return;
    };
    let mut c = redis.conn();
    let mut n = node(&mut c, "n1", "i1", LONG_LEASE);
    let mut seqs = Vec::new();
    let mut ids = Vec::new();
    for k in 0..50 {
        let m = n.next_msg_id();
        let r = n.run_with(
            &mut c,
            &APPEND,
            &m,
            &[
                "k",
                "msg",
                "ch",
                "#x",
                "nick",
                "bob",
                "text",
                &format!("line {k}"),
            ],
        );
        let (status, _, seq) = ok_reply(&r);
        assert_eq!(status, "ok");
        seqs.push(seq);
        ids.push(m);
    }
    // node_up took seq 1; then 2..=51, dense.
    assert_eq!(seqs, (2..=51).collect::<Vec<_>>());
    // A resend with the same msg_id is acknowledged with the same seq and appends nothing.
    let r = n.run_with(
        &mut c,
        &APPEND,
        &ids[6],
        &[
            "k",
            "msg",
            "ch",
            "#x",
            "nick",
            "bob",
            "text",
            "line 6 again",
        ],
    );
    assert_eq!(ok_reply(&r), ("dup".into(), EPOCH.into(), 8));
    let entries = stream(&mut c);
    assert_eq!(entries.len(), 51);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!((&*e.node, &*e.incarnation), ("n1", "i1"));
    }
    assert_eq!(entries[0].body, Body::NodeUp);
    assert_eq!(&*entries[7].msg_id, ids[6].as_str());
    assert_eq!(
        entries[7].body,
        Body::Line {
            channel: "#x".into(),
            nick: "bob".into(),
            text: "line 6".into()
        }
    );
    assert!(entries[0].ts_ms > 1_600_000_000_000, "Redis's clock in ms");
    // Malformed field lists are refused without appending.
    assert_eq!(err_code(&n.run(&mut c, &APPEND, &["k"])), "BADARG");
    assert_eq!(c.int(&["XLEN", "{chat}:log"]), 51);
}

#[test]
fn evalsha_answers_noscript_after_a_flush_and_works_after_reload() {
    let Some(redis) =
        redis_or_skip("evalsha_answers_noscript_after_a_flush_and_works_after_reload")
    else {
        return;
    };
    let mut c = redis.conn();
    let mut n = node(&mut c, "n1", "i1", LONG_LEASE);
    let sha = load(&mut c, &APPEND);
    let own = ["k", "ann", "text", "hello"];
    let m = n.next_msg_id();
    let (_, _, seq) = ok_reply(&c.call(&n.evalsha_args(&sha, &m, &own)));
    assert_eq!(seq, 2);
    c.call(&["SCRIPT", "FLUSH"]);
    let m = n.next_msg_id();
    assert_eq!(
        err_code(&c.call(&n.evalsha_args(&sha, &m, &own))),
        "NOSCRIPT"
    );
    assert_eq!(
        load(&mut c, &APPEND),
        sha,
        "the SHA-1 depends only on the source"
    );
    assert_eq!(ok_reply(&c.call(&n.evalsha_args(&sha, &m, &own))).2, 3);
    // Every script loads.
    for s in scripts::ALL {
        assert_eq!(load(&mut c, &s).len(), 40, "{}", s.name);
    }
}

#[test]
fn a_stale_incarnation_is_fenced() {
    let Some(redis) = redis_or_skip("a_stale_incarnation_is_fenced") else {
        return;
    };
    let mut c = redis.conn();
    let mut old = node(&mut c, "n1", "old", SHORT_LEASE);
    assert_eq!(ok_reply(&chat_line(&mut old, &mut c, "before")).0, "ok");
    // A second process with the same node id is refused while the lease is held.
    let mut busy = Node::new("n1", "new", EPOCH);
    assert_eq!(
        err_code(&busy.run(&mut c, &REGISTER, &[LONG_LEASE])),
        "NODEBUSY"
    );
    // The old incarnation pauses past its lease; a new one registers.
    wait_lease_gone(&mut c, "n1");
    let mut new = node(&mut c, "n1", "new", LONG_LEASE);
    let len = c.int(&["XLEN", "{chat}:log"]);
    // The paused one wakes up: every state change it tries is refused at the resource.
    assert_eq!(err_code(&chat_line(&mut old, &mut c, "stale")), "FENCED");
    assert_eq!(
        err_code(&old.run(&mut c, &NICK_CLAIM, &["bob", "Bob", "1", ""])),
        "FENCED"
    );
    assert_eq!(err_code(&old.run(&mut c, &REAP, &["n2", "x"])), "FENCED");
    assert_eq!(c.int(&["XLEN", "{chat}:log"]), len, "nothing appended");
    assert_eq!(ok_reply(&chat_line(&mut new, &mut c, "fresh")).0, "ok");
    // A node whose lease expired cannot quietly take it back with the same incarnation
    // (others may have taken its nicks or reaped it): renewing is refused.
    let mut n9 = node(&mut c, "n9", "i9", SHORT_LEASE);
    assert_eq!(
        ok_reply(&n9.run(&mut c, &REGISTER, &[SHORT_LEASE, "1"])).0,
        "own",
        "renewing a live lease"
    );
    wait_lease_gone(&mut c, "n9");
    assert_eq!(
        err_code(&n9.run(&mut c, &REGISTER, &[LONG_LEASE, "1"])),
        "FENCED"
    );
    assert_eq!(c.get("{chat}:node:n9"), None);
    // The epoch is checked before anything else.
    let mut other_epoch = Node::new("n1", "new", "not-the-epoch");
    assert_eq!(err_code(&chat_line(&mut other_epoch, &mut c, "x")), "EPOCH");
}

#[test]
fn lease_refresh_is_compare_and_set() {
    let Some(redis) = redis_or_skip("lease_refresh_is_compare_and_set") else {
        return;
    };
    let mut c = redis.conn();
    let n = node(&mut c, "n1", "i1", "5000");
    let refresh = |node: &Node, c: &mut Conn, ms: &str| -> i64 {
        match node.run_with(c, &LEASE_REFRESH, "", &[ms]) {
            Frame::Array(v) => as_int(&v[0]).expect("flag"),
            other => panic!("refresh: {other:?}"),
        }
    };
    assert_eq!(refresh(&n, &mut c, "60000"), 1);
    assert!(c.int(&["PTTL", "{chat}:node:n1"]) > 10_000, "extended");
    // Another incarnation's refresh neither succeeds nor touches the lease.
    let impostor = Node::new("n1", "i2", EPOCH);
    assert_eq!(refresh(&impostor, &mut c, "1"), 0);
    assert_eq!(c.get("{chat}:node:n1").as_deref(), Some(&b"i1"[..]));
    assert!(c.int(&["PTTL", "{chat}:node:n1"]) > 10_000);
    // Once expired, the lease is lost for good: refresh reports it, and does not recreate it.
    assert_eq!(refresh(&n, &mut c, SHORT_LEASE), 1);
    wait_lease_gone(&mut c, "n1");
    assert_eq!(refresh(&n, &mut c, "60000"), 0);
    assert_eq!(c.get("{chat}:node:n1"), None);
    // An epoch change shows up at the next refresh.
    c.call(&["SET", "{chat}:epoch", "other"]);
    assert_eq!(
        n.run_with(&mut c, &LEASE_REFRESH, "", &["60000"]),
        Frame::Error("EPOCH other".into())
    );
}

#[test]
fn nick_claims_race_and_leases_decide() {
    let Some(redis) = redis_or_skip("nick_claims_race_and_leases_decide") else {
        return;
    };
    let mut c = redis.conn();
    let mut n1 = node(&mut c, "n1", "i1", LONG_LEASE);
    let mut n2 = node(&mut c, "n2", "i2", SHORT_LEASE);
    // n2 (short lease) claims bob; n1's claim is TAKEN while n2's lease lives.
    let (st, _, claim_seq) = ok_reply(&n2.run(&mut c, &NICK_CLAIM, &["bob", "Bob", "7", ""]));
    assert_eq!(st, "ok");
    let r = n2.run_with(&mut c, &LEASE_REFRESH, "", &[LONG_LEASE]);
    assert!(matches!(r, Frame::Array(_)), "{r:?}");
    assert_eq!(
        n1.run(&mut c, &NICK_CLAIM, &["bob", "BOB", "1", ""]),
        Frame::Error("TAKEN bob".into())
    );
    // Claiming again on the owning connection changes nothing.
    assert_eq!(
        ok_reply(&n2.run(&mut c, &NICK_CLAIM, &["bob", "Bob", "7", ""])).0,
        "own"
    );
    // Only the owner releases.
    assert_eq!(
        err_code(&n1.run(&mut c, &NICK_RELEASE, &["bob", "1", "quit"])),
        "NOTOWNER"
    );
    // A rename releases the old nick in the same step.
    let (st, _, _) = ok_reply(&n2.run(&mut c, &NICK_CLAIM, &["rob", "Rob", "7", "bob"]));
    assert_eq!(st, "ok");
    assert_eq!(c.call(&["HGET", "{chat}:nicks", "bob"]), Frame::Null);
    let (st, _, _) = ok_reply(&n1.run(&mut c, &NICK_CLAIM, &["bob", "Bob", "1", ""]));
    assert_eq!(st, "ok", "bob is free after the rename");
    // n2 stops refreshing: once its lease has expired, its nick can be taken over.
    n2.run_with(&mut c, &LEASE_REFRESH, "", &[SHORT_LEASE]);
    assert_eq!(
        n1.run(&mut c, &NICK_CLAIM, &["rob", "Rob", "2", ""]),
        Frame::Error("TAKEN rob".into())
    );
    wait_lease_gone(&mut c, "n2");
    let (st, _, _) = ok_reply(&n1.run(&mut c, &NICK_CLAIM, &["rob", "Rob", "2", ""]));
    assert_eq!(st, "ok");
    assert_eq!(
        c.call(&["HGET", "{chat}:nicks", "rob"]),
        Frame::BulkString(b"n1/i1/2".to_vec())
    );
    // The log holds each claim and release as one entry, in order.
    let kinds: Vec<String> = stream(&mut c)
        .iter()
        .filter(|e| e.seq >= claim_seq as u64)
        .map(|e| match &e.body {
            Body::Nick { nick, old, .. } => {
                format!(
                    "{}:nick {nick} old {}",
                    e.node,
                    old.as_deref().unwrap_or("-")
                )
            }
            other => format!("{}:{}", e.node, other.kind()),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "n2:nick Bob old -",
            "n2:nick Rob old bob",
            "n1:nick Bob old -",
            "n1:nick Rob old -"
        ]
    );
    // A release by the owner appends one unnick entry.
    let (st, _, seq) = ok_reply(&n1.run(&mut c, &NICK_RELEASE, &["bob", "1", "quit"]));
    assert_eq!(st, "ok");
    let last = stream(&mut c).pop().expect("an entry");
    assert_eq!(last.seq, seq as u64);
    assert_eq!(
        last.body,
        Body::Unnick {
            nick: "bob".into(),
            conn: "1".into(),
            reason: "quit".into()
        }
    );
}

#[test]
fn concurrent_claims_of_one_nick_have_one_winner() {
    let Some(redis) = redis_or_skip("concurrent_claims_of_one_nick_have_one_winner") else {
        return;
    };
    let mut c = redis.conn();
    node(&mut c, "n1", "i1", LONG_LEASE);
    node(&mut c, "n2", "i2", LONG_LEASE);
    node(&mut c, "n3", "i3", LONG_LEASE);
    let port = redis.port;
    let threads: Vec<_> = (0..20)
        .map(|k| {
            std::thread::spawn(move || {
                let mut c = Conn::open(port).expect("connect");
                let id = format!("n{}", k % 3 + 1);
                let inc = format!("i{}", k % 3 + 1);
                let mut n = Node::new(&id, &inc, EPOCH);
                n.counter = 1000 + k;
                let shown = ["Bob", "bob", "BOB"][k as usize % 3];
                n.run(&mut c, &NICK_CLAIM, &["bob", shown, &k.to_string(), ""])
            })
        })
        .collect();
    let replies: Vec<Frame> = threads
        .into_iter()
        .map(|t| t.join().expect("claim thread"))
        .collect();
    let wins = replies
        .iter()
        .filter(|r| matches!(r, Frame::Array(_)))
        .count();
    let taken = replies
        .iter()
        .filter(|r| **r == Frame::Error("TAKEN bob".into()))
        .count();
    assert_eq!((wins, taken), (1, 19), "{replies:?}");
    let claims = stream(&mut c)
        .iter()
        .filter(|e| matches!(e.body, Body::Nick { .. }))
        .count();
    assert_eq!(claims, 1, "the log has one claim");
}

#[test]
fn reaping_a_dead_node_is_idempotent() {
    let Some(redis) = redis_or_skip("reaping_a_dead_node_is_idempotent") else {
        return;
    };
    let mut c = redis.conn();
    let mut n1 = node(&mut c, "n1", "i1", LONG_LEASE);
    let mut n3 = node(&mut c, "n3", "i3", LONG_LEASE);
    let mut n2 = node(&mut c, "n2", "dead", SHORT_LEASE);
    for (f, shown, conn) in [("ann", "Ann", "1"), ("joe", "Joe", "2")] {
        assert_eq!(
            ok_reply(&n2.run(&mut c, &NICK_CLAIM, &[f, shown, conn, ""])).0,
            "ok"
        );
    }
    let r = n2.run_with(&mut c, &LEASE_REFRESH, "", &[LONG_LEASE]);
    assert!(matches!(r, Frame::Array(_)));
    // Not while it is alive.
    assert_eq!(err_code(&n1.run(&mut c, &REAP, &["n2", "dead"])), "ALIVE");
    n2.run_with(&mut c, &LEASE_REFRESH, "", &[SHORT_LEASE]);
    // Before the reap, a live node takes over one of the dead node's nicks.
    wait_lease_gone(&mut c, "n2");
    assert_eq!(
        ok_reply(&n3.run(&mut c, &NICK_CLAIM, &["joe", "Joe", "9", ""])).0,
        "ok"
    );
    // Two live nodes reap it, several times each: one node_down entry, the same seq for all.
    let mut seqs = Vec::new();
    for _ in 0..3 {
        for n in [&mut n1, &mut n3] {
            let (st, _, seq) = ok_reply(&n.run(&mut c, &REAP, &["n2", "dead"]));
            assert!(st == "ok" || st == "done", "{st}");
            seqs.push(seq);
        }
    }
    assert!(seqs.iter().all(|s| *s == seqs[0]), "{seqs:?}");
    let downs: Vec<Entry> = stream(&mut c)
        .into_iter()
        .filter(|e| matches!(e.body, Body::NodeDown { .. }))
        .collect();
    assert_eq!(downs.len(), 1);
    assert_eq!(downs[0].seq, seqs[0] as u64);
    assert_eq!(
        downs[0].body,
        Body::NodeDown {
            node: "n2".into(),
            incarnation: "dead".into()
        }
    );
    // Its nick is free; the one taken over stays with its new owner.
    assert_eq!(c.call(&["HGET", "{chat}:nicks", "ann"]), Frame::Null);
    assert_eq!(
        c.call(&["HGET", "{chat}:nicks", "joe"]),
        Frame::BulkString(b"n3/i3/9".to_vec())
    );
    // The reaped incarnation can never come back; a new one can.
    assert_eq!(
        err_code(&n2.run(&mut c, &REGISTER, &[LONG_LEASE])),
        "REAPED"
    );
    node(&mut c, "n2", "reborn", LONG_LEASE);
}

/// Appends per second of the append script against this Redis, pipelined 256 deep on one
/// connection, against a baseline measured in the same run on the same server: a plain
/// `XADD ... MAXLEN ~` of the same fields (no epoch, lease or de-dup checks, no seq). A figure
/// for the README, not an assertion.
#[test]
#[ignore]
fn append_throughput() {
    let Some(redis) = redis_or_skip("append_throughput") else {
        return;
    };
    let mut c = redis.conn();
    let mut n = node(&mut c, "n1", "i1", LONG_LEASE);
    let sha = load(&mut c, &APPEND);
    let total = 200_000;
    let text = "x".repeat(60);
    let own = [
        "k",
        "msg",
        "ch",
        "#bench",
        "nick",
        "bob",
        "text",
        text.as_str(),
    ];
    let baseline = pipelined(&mut c, total, |_| {
        let mut args: Vec<Vec<u8>> = ["XADD", "{chat}:baseline", "MAXLEN", "~", "1000000", "*"]
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        args.extend(own.iter().map(|a| a.as_bytes().to_vec()));
        args
    });
    let scripted = pipelined(&mut c, total, |_| {
        let m = n.next_msg_id();
        n.evalsha_args(&sha, &m, &own)
    });
    println!(
        "append_throughput: baseline XADD {baseline:.0}/s, append script {scripted:.0}/s \
         ({:.2} of the baseline), {total} each, window 256, one connection",
        scripted / baseline
    );
    assert_eq!(c.int(&["GET", "{chat}:seq"]), total as i64 + 1);
}

/// Sends `total` commands keeping 256 in flight; commands per second.
fn pipelined(c: &mut Conn, total: usize, mut command: impl FnMut(usize) -> Vec<Vec<u8>>) -> f64 {
    let window = 256;
    let start = Instant::now();
    let (mut sent, mut done) = (0, 0);
    while done < total {
        while sent < total && sent - done < window {
            c.send(&command(sent));
            sent += 1;
        }
        let r = c.reply();
        assert!(!matches!(r, Frame::Error(_)), "{r:?}");
        done += 1;
    }
    total as f64 / start.elapsed().as_secs_f64()
}

// ------------------------------------------------------------------------------ script calls

/// `SCRIPT LOAD`: the script's SHA-1 as Redis computed it.
fn load(c: &mut Conn, script: &Script) -> String {
    match c.call(&["SCRIPT", "LOAD", script.source]) {
        Frame::BulkString(sha) => String::from_utf8(sha).expect("hex sha"),
        other => panic!("SCRIPT LOAD {}: {other:?}", script.name),
    }
}

/// A node as the scripts see it: an id, an incarnation, a message counter.
pub struct Node {
    pub id: String,
    pub inc: String,
    pub epoch: String,
    pub counter: u64,
    pub maxlen: u64,
}

impl Node {
    pub fn new(id: &str, inc: &str, epoch: &str) -> Node {
        Node {
            id: id.into(),
            inc: inc.into(),
            epoch: epoch.into(),
            counter: 0,
            maxlen: 1_000_000,
        }
    }

    /// A fresh msg_id: `node/incarnation/counter`.
    pub fn next_msg_id(&mut self) -> String {
        self.counter += 1;
        format!("{}/{}/{}", self.id, self.inc, self.counter)
    }

    /// Arguments of `EVAL script` with this node's context and `msg_id`.
    pub fn eval_args(&self, script: &Script, msg_id: &str, own: &[&str]) -> Vec<Vec<u8>> {
        self.ctx(msg_id).eval(script, own)
    }

    pub fn evalsha_args(&self, sha: &str, msg_id: &str, own: &[&str]) -> Vec<Vec<u8>> {
        self.ctx(msg_id).evalsha(sha, own)
    }

    fn ctx<'a>(&'a self, msg_id: &'a str) -> CallContext<'a> {
        CallContext {
            prefix: PREFIX,
            epoch: &self.epoch,
            node: &self.id,
            incarnation: &self.inc,
            msg_id,
            stream_maxlen: self.maxlen,
        }
    }

    /// Runs `script` with a fresh msg_id.
    pub fn run(&mut self, c: &mut Conn, script: &Script, own: &[&str]) -> Frame {
        let m = self.next_msg_id();
        self.run_with(c, script, &m, own)
    }

    pub fn run_with(&self, c: &mut Conn, script: &Script, msg_id: &str, own: &[&str]) -> Frame {
        c.call(&self.eval_args(script, msg_id, own))
    }
}

/// `{status, epoch, seq}` from a script's success reply.
pub fn ok_reply(f: &Frame) -> (String, String, i64) {
    match f {
        Frame::Array(v) if v.len() == 3 => (
            String::from_utf8_lossy(as_bytes(&v[0]).unwrap_or(b"?")).into_owned(),
            String::from_utf8_lossy(as_bytes(&v[1]).unwrap_or(b"?")).into_owned(),
            as_int(&v[2]).expect("seq"),
        ),
        Frame::Array(v) if v.len() == 3 || v.len() == 2 => panic!("unexpected reply {f:?}"),
        other => panic!("expected {{status, epoch, seq}}, got {other:?}"),
    }
}

/// The error code (first word) of an error reply.
pub fn err_code(f: &Frame) -> String {
    match f {
        Frame::Error(e) => e.split_whitespace().next().unwrap_or("").to_string(),
        other => panic!("expected an error reply, got {other:?}"),
    }
}
