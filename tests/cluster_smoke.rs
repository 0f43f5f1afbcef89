//! Cluster mode end to end, smallest form: one real `redis-server` (free loopback port,
//! temporary directory, AOF on, stopped by PID) and two `chat-server` nodes against it.
//! Users on both nodes see one order; a nickname is unique across nodes; while Redis is
//! paused chat is refused with SPEC §15's notice and `/healthz` answers 503, and afterwards
//! chat works again by itself.
//!
//! With `requirepass` set, nodes given `redis_password` form one chat too.
//!
//! Without `redis-server` the test prints a loud SKIPPED banner and passes (under `CI` it
//! fails). Redis comes from `common::redis`.

mod common;

use common::redis::{redis_installed, skip_without_redis, Redis};
use common::{Server, Telnet};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const DOWN_NOTICE: &str =
    "Chat is unavailable right now: the cluster link is down. Please try again shortly.";
const WAIT: Duration = Duration::from_secs(20);

fn node(redis: &Redis, id: &str) -> Server {
    node_with_password(redis, id, None)
}

fn node_with_password(redis: &Redis, id: &str, password: Option<&str>) -> Server {
    let mut cluster = json!({ "redis": redis.addr(), "node_id": id, "lease_ms": 1500 });
    if let Some(pw) = password {
        cluster["redis_password"] = json!(pw);
    }
    Server::start_expecting(json!({ "cluster": cluster }), &["telnet", "rest"])
}

/// A started Redis (with `requirepass` when `password` is given), or `None` after a loud
/// skip (a failure under `CI`).
fn redis_or_skip(test: &str, password: Option<&str>) -> Option<Redis> {
    if !redis_installed() {
        skip_without_redis(test);
        return None;
    }
    Some(Redis::start_with_password(password))
}

/// The status code of `GET /healthz`, or 0 when there is no answer.
fn healthz(addr: SocketAddr) -> u16 {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn wait_healthz(server: &mut Server, code: u16, what: &str) {
    let addr = server.addr("rest");
    let end = Instant::now() + WAIT;
    loop {
        let got = healthz(addr);
        if got == code {
            return;
        }
        assert!(
            Instant::now() < end,
            "{what}: /healthz stayed {got}, expected {code}; stderr:\n{}",
            server.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The texts of the next `n` chat lines (`3:04PM-@nick: text`), skipping other lines.
fn chat_lines(t: &mut Telnet, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let (_, line) = t.wait_for("a chat line", |l| common::parse_chat(l).is_some());
            line.split_once("-@")
                .map_or(line.clone(), |(_, r)| r.to_string())
        })
        .collect()
}

#[test]
fn two_nodes_one_chat_and_a_paused_redis() {
    let Some(redis) = redis_or_skip("two_nodes_one_chat_and_a_paused_redis", None) else {
        return;
    };
    let mut n1 = node(&redis, "n1");
    let mut n2 = node(&redis, "n2");
    wait_healthz(&mut n1, 200, "node 1 starting");
    wait_healthz(&mut n2, 200, "node 2 starting");

    let mut alice = n1.user_in("alice", "#general");
    let mut bob = n2.user_in("bob", "#general");
    alice.wait_for("bob's join", |l| {
        common::is_event(l, "bob", "just joined channel #general")
    });

    // One order on both nodes, the sender's own lines included (they come back from Redis).
    alice.send_line("one from alice");
    bob.send_line("two from bob");
    alice.send_line("three from alice");
    bob.send_line("four from bob");
    let seen_a = chat_lines(&mut alice, 4);
    let seen_b = chat_lines(&mut bob, 4);
    assert_eq!(
        seen_a, seen_b,
        "the same lines in the same order on both nodes"
    );
    let own: Vec<&String> = seen_a.iter().filter(|l| l.starts_with("alice")).collect();
    assert_eq!(own, ["alice: one from alice", "alice: three from alice"]);

    // /list and /whois answer for the whole cluster.
    bob.send_line("/list");
    bob.expect("Here is the list of all users in this channel");
    let mut members = vec![bob.next_line(), bob.next_line()];
    members.sort();
    assert_eq!(members, ["@alice", "@bob"]);

    // A nickname held on node 1 is refused on node 2, in any case.
    let mut carol = n2.telnet();
    carol.expect_match("the greeting", |l| l.starts_with("Welcome to chat server."));
    carol.send_line("ALICE");
    carol.expect_match("the taken answer", |l| {
        l.starts_with("Another user with this nickname is connected to this server")
    });

    // Redis paused: chat is refused with the notice, /healthz answers 503, /help works.
    redis.stop();
    let end = Instant::now() + WAIT;
    loop {
        alice.send_line("while redis sleeps");
        match alice.line_within(Duration::from_millis(500)) {
            Ok(l) if l == DOWN_NOTICE => break,
            _ => assert!(Instant::now() < end, "no refusal; {}", alice.context()),
        }
    }
    wait_healthz(&mut n1, 503, "Redis paused");
    alice.send_line("/help");
    alice.wait_for("the help text", |l| {
        l.starts_with("Here is the list of all available commands")
    });

    // Resumed: everything comes back by itself.
    redis.cont();
    wait_healthz(&mut n1, 200, "Redis resumed");
    wait_healthz(&mut n2, 200, "Redis resumed");
    alice.send_line("back again");
    bob.wait_for("the line after the pause", |l| {
        common::is_chat(l, "alice", "back again")
    });
    alice.wait_for("the own line after the pause", |l| {
        common::is_chat(l, "alice", "back again")
    });

    // Both logs hold the cluster records, with cseq and origin, in the same order.
    let cluster_records = |s: &Server| -> Vec<(u64, String, String)> {
        s.log_records()
            .iter()
            .filter(|r| r.get("cseq").is_some())
            .map(|r| {
                (
                    r["cseq"].as_u64().unwrap_or(0),
                    r["kind"].as_str().unwrap_or("").to_string(),
                    r["node"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let end = Instant::now() + WAIT;
    loop {
        let (r1, r2) = (cluster_records(&n1), cluster_records(&n2));
        let n = r1.len().min(r2.len());
        assert_eq!(
            r1[..n],
            r2[..n],
            "the logs' cluster records are prefix-equal"
        );
        if r1 == r2 && r1.iter().any(|(_, k, _)| k == "chat") {
            break;
        }
        assert!(Instant::now() < end, "the logs did not converge");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn nodes_with_the_redis_password_form_one_chat_and_a_wrong_one_is_refused() {
    let test = "nodes_with_the_redis_password_form_one_chat_and_a_wrong_one_is_refused";
    let Some(redis) = redis_or_skip(test, Some("smoke-secret-9")) else {
        return;
    };
    let mut n1 = node_with_password(&redis, "n1", Some("smoke-secret-9"));
    let mut n2 = node_with_password(&redis, "n2", Some("smoke-secret-9"));
    wait_healthz(&mut n1, 200, "node 1 with the password");
    wait_healthz(&mut n2, 200, "node 2 with the password");
    let mut alice = n1.user_in("alice", "#general");
    let mut bob = n2.user_in("bob", "#general");
    alice.wait_for("bob's join", |l| {
        common::is_event(l, "bob", "just joined channel #general")
    });
    bob.send_line("over the password-protected link");
    alice.wait_for("bob's line", |l| {
        common::is_chat(l, "bob", "over the password-protected link")
    });

    // A node with the wrong password says why on stderr and never takes chat.
    let mut n3 = node_with_password(&redis, "n3", Some("not-the-secret"));
    let end = Instant::now() + WAIT;
    while !n3.stderr_text().contains("WRONGPASS") {
        assert!(
            Instant::now() < end,
            "no WRONGPASS on the node's stderr:\n{}",
            n3.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        healthz(n3.addr("rest")),
        503,
        "a node Redis refused is not healthy"
    );
}
