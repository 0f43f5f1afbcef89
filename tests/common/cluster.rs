//! Several `chat-server` nodes and one `redis-server` on loopback, for the cluster tests.
//!
//! A [`Node`] is the real binary (started through [`Server`], so ports are 0 and learned from
//! the start-up lines) in a directory that the node owns, so [`Node::restart`] keeps its
//! config and its JSONL log. It can be killed (`kill -9`), paused (`SIGSTOP`) and resumed
//! (`SIGCONT`) by PID. [`Cluster::try_start`] is one [`Redis`] and N nodes `n1..nN`, whose
//! configs carry the `cluster` section:
//!
//! ```json
//! "cluster": { "redis": "127.0.0.1:PORT", "node_id": "n1", "lease_ms": 1500,
//!              "stream_maxlen": 100000 }
//! ```
//!
//! The chat-level words of the cluster contract (notices, record kinds, `/status` fields)
//! are the test files' business; this file only starts, stops and reads.

use super::http::{request, Response};
use super::redis::{redis_installed, signal, Redis};
use super::tools::{fast_lines, merge};
use super::{render_records, Server, StartOptions, Telnet, TempDir};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

/// The REST admin token of every node.
pub const ADMIN_TOKEN: &str = "cluster-test-token-8e41c07b";
/// The lease of the test configuration: a node silent this long is dead.
pub const TEST_LEASE_MS: u64 = 1500;
/// Pacing of polling loops; never an assertion.
const POLL: Duration = Duration::from_millis(25);

/// What a node's `cluster` section says beyond its Redis address and id.
#[derive(Clone, Copy, Debug)]
pub struct NodeOptions {
    pub lease_ms: u64,
    pub stream_maxlen: u64,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            lease_ms: TEST_LEASE_MS,
            stream_maxlen: 100_000,
        }
    }
}

/// The `cluster` config section of node `id` against Redis at `redis`.
pub fn cluster_section(redis: &str, id: &str, options: NodeOptions) -> Value {
    json!({
        "redis": redis,
        "node_id": id,
        "lease_ms": options.lease_ms,
        "stream_maxlen": options.stream_maxlen,
    })
}

/// One `chat-server` process, restartable in the same directory.
pub struct Node {
    pub id: String,
    /// The config keys on top of the harness's defaults (ports 0, log file in the directory).
    config: Value,
    server: Server,
    // Last, so the directory goes after the process.
    dir: TempDir,
}

impl Node {
    /// Starts node `id` with the `cluster` section `cluster` (`None`: a single process);
    /// telnet and REST listeners. A server that exits or never listens is an `Err` with its
    /// stderr.
    pub fn try_start(id: &str, cluster: Option<Value>) -> Result<Node, String> {
        let mut config = merge(&[fast_lines(), json!({ "admin_token": ADMIN_TOKEN })]);
        if let Some(section) = cluster {
            config["cluster"] = section;
        }
        let dir = TempDir::new(&format!("node-{id}"));
        let server = launch(&config, &dir)?;
        Ok(Node {
            id: id.to_string(),
            config,
            server,
            dir,
        })
    }

    /// [`Node::try_start`], failing the test when the node does not start.
    pub fn start(id: &str, cluster: Option<Value>) -> Node {
        Node::try_start(id, cluster).unwrap_or_else(|why| panic!("node {id}: {why}"))
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The directory holding the node's config and log; it outlives restarts.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Whether the process is still there (not killed, not exited).
    pub fn running(&mut self) -> bool {
        self.server.try_wait().is_none()
    }

    /// `kill -9`, then waits for the process to be gone.
    pub fn kill9(&mut self) {
        self.server.signal("KILL");
        assert!(
            self.server.wait_exit(Duration::from_secs(10)).is_some(),
            "node {} (PID {}) survived SIGKILL",
            self.id,
            self.pid()
        );
    }

    /// `kill -STOP`: the process keeps its sockets and its lease key but does nothing.
    pub fn stop(&self) {
        signal(self.pid(), libc::SIGSTOP);
    }

    /// `kill -CONT`.
    pub fn cont(&self) {
        signal(self.pid(), libc::SIGCONT);
    }

    /// Starts the node again in its directory, with the same config and log (killing the
    /// old process first when it still runs). The new process listens on new ports.
    pub fn restart(&mut self) {
        if self.running() {
            self.kill9();
        }
        self.server = launch(&self.config, &self.dir)
            .unwrap_or_else(|why| panic!("node {} did not restart: {why}", self.id));
    }

    /// Every record of the node's JSONL log (complete lines), parsed.
    pub fn log_records(&self) -> Vec<Value> {
        self.server.log_records()
    }

    /// Waits until a record satisfies `pred`; returns it. Fails with the log.
    pub fn wait_log(&self, what: &str, deadline: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        self.server
            .wait_log(&format!("{what} on node {}", self.id), deadline, pred)
    }

    /// The log, one record a line, for failure messages.
    pub fn log_text(&self) -> String {
        render_records(&self.log_records())
    }

    /// A telnet client that read the greeting and chose `nick`.
    pub fn user(&self, nick: &str) -> Telnet {
        self.server.user(nick)
    }

    /// A telnet client that chose `nick` and joined `channel`.
    pub fn user_in(&self, nick: &str, channel: &str) -> Telnet {
        self.server.user_in(nick, channel)
    }

    /// A connected telnet client, before the greeting.
    pub fn telnet(&self) -> Telnet {
        self.server.telnet()
    }

    pub fn telnet_addr(&self) -> SocketAddr {
        self.server.telnet_addr()
    }

    pub fn rest_addr(&self) -> SocketAddr {
        *self.server.addrs().get("rest").unwrap_or_else(|| {
            panic!(
                "node {}: no rest listener; stderr:\n{}",
                self.id,
                self.server.stderr_text()
            )
        })
    }

    /// `GET path` on the REST port, with the admin token.
    pub fn get(&self, path: &str) -> Response {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        request(
            self.rest_addr(),
            "GET",
            path,
            &[("Authorization", &auth), ("Connection", "close")],
            None,
        )
    }

    /// `POST path` with a JSON body and the admin token.
    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        request(
            self.rest_addr(),
            "POST",
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Connection", "close"),
            ],
            Some(body.to_string().as_bytes()),
        )
    }

    /// `GET /status` as JSON (fails the test unless 200 with a JSON body).
    pub fn status(&self) -> Value {
        let r = self.get("/status");
        assert_eq!(r.status, 200, "node {}: GET /status: {}", self.id, r.text());
        r.json()
    }

    /// The HTTP status of `GET /healthz`.
    pub fn healthz(&self) -> u16 {
        self.get("/healthz").status
    }
}

/// Starts the binary in `dir` with `config`, waiting for its telnet and REST listeners.
fn launch(config: &Value, dir: &TempDir) -> Result<Server, String> {
    Server::try_start_with(
        config.clone(),
        StartOptions {
            kinds: vec!["telnet".into(), "rest".into()],
            dir: Some(dir.path().to_path_buf()),
            ..StartOptions::default()
        },
    )
}

/// Why a cluster did not start.
#[derive(Debug)]
pub enum StartError {
    /// `redis-server` is not on the PATH.
    NoRedis,
    /// A node refused its config or exited at start-up (its stderr).
    NodeFailed { node: String, why: String },
}

/// One Redis and nodes `n1..nN`.
pub struct Cluster {
    pub nodes: Vec<Node>,
    // After the nodes: they stop before Redis does.
    pub redis: Redis,
}

impl Cluster {
    /// Redis, then `n` nodes one after the other, each with the `cluster` section.
    pub fn try_start(n: usize, options: NodeOptions) -> Result<Cluster, StartError> {
        if !redis_installed() {
            return Err(StartError::NoRedis);
        }
        let redis = Redis::start();
        let mut nodes = Vec::with_capacity(n);
        for i in 1..=n {
            let id = format!("n{i}");
            let section = cluster_section(&redis.addr(), &id, options);
            match Node::try_start(&id, Some(section)) {
                Ok(node) => nodes.push(node),
                Err(why) => return Err(StartError::NodeFailed { node: id, why }),
            }
        }
        Ok(Cluster { nodes, redis })
    }

    /// Node `n1`, `n2`, ... by its number (1-based).
    pub fn node(&self, number: usize) -> &Node {
        &self.nodes[number - 1]
    }

    pub fn node_mut(&mut self, number: usize) -> &mut Node {
        &mut self.nodes[number - 1]
    }

    /// Every node's log, for failure messages.
    pub fn logs_text(&self) -> String {
        let mut s = String::new();
        for node in &self.nodes {
            s.push_str(&format!("--- log of {}:\n{}", node.id, node.log_text()));
        }
        s
    }
}

// ------------------------------------------------------------------------------ waiting

/// Polls `cond` until it gives a value or `deadline` passes; fails with `what` and the
/// description `context` gives at that moment.
pub fn poll<T>(
    what: &str,
    deadline: Duration,
    mut cond: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() >= end {
            panic!("{what}: not within {deadline:?}; {}", context());
        }
        thread::sleep(POLL);
    }
}

// ------------------------------------------------------------------------------ clients

/// Reads lines until one satisfies `pred`, within `deadline`: the lines before it and the
/// match, or `Err` with the lines read and why it stopped (timeout, EOF). Never fails the
/// test.
pub fn read_until(
    t: &mut Telnet,
    deadline: Duration,
    pred: impl Fn(&str) -> bool,
) -> Result<(Vec<String>, String), (Vec<String>, String)> {
    let end = Instant::now() + deadline;
    let mut before = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match t.line_within(left) {
            Ok(line) if pred(&line) => return Ok((before, line)),
            Ok(line) => before.push(line),
            Err(why) => return Err((before, why)),
        }
    }
}

/// Every line that arrives within `span` (all of it waited for: only for reading what is
/// already on its way, never to decide that something did not happen in time).
pub fn drain_for(t: &mut Telnet, span: Duration) -> Vec<String> {
    let end = Instant::now() + span;
    let mut lines = Vec::new();
    while let Ok(line) = t.line_within(end.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    lines
}

/// Sends `command`, then `/back` (whose answer to a user who is not away is a fixed line),
/// and returns the lines in between: the whole answer to `command`, however many lines.
pub fn answer(t: &mut Telnet, command: &str) -> Vec<String> {
    const NOT_AWAY: &str = "You are not marked as away.";
    t.send_line(command);
    t.send_line("/back");
    let (lines, _) = t.wait_for(&format!("the end of the answer to {command}"), |l| {
        l == NOT_AWAY
    });
    lines
}
