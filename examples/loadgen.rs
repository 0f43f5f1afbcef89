//! Load generator for chat-server and the baseline servers (`examples/baseline_*.rs`).
//!
//! One thread, one mio `Poll`, like the server. It opens telnet and WebSocket clients on
//! loopback (client sockets bound to 127.0.0.2.., so 10,000 connections do not run out of
//! ephemeral ports), identifies them as `u<i>`, joins them to `#b<c>` (clients spread
//! round-robin over `--channels`), checks with a barrier message that every client is in its
//! channel, then runs phases:
//!
//! * `knee`: steps the offered load (doubling, then bisecting) to find the highest delivered
//!   messages/s with p99 ≤ `--p99-ms` and zero loss;
//! * `fixed:D`: one step at D offered deliveries/s;
//! * `stalled:D`: a share (`--stalled-share`) of the clients stop reading; the others' latency
//!   and the server's RSS are measured;
//! * `rest:D`: a REST log query (`GET /v1/api/message?pattern=...`) is repeated during the step;
//! * `churn:D`: extra telnet clients connect, identify and `/quit` at `--churn-rate`/s.
//!
//! Senders publish open loop: message `j` of a step is due at `start + j/R` and carries that
//! scheduled time, so latency is measured from when it *should* have been sent (no
//! coordinated omission). Every delivery is checked per (sender, recipient) for loss, gaps
//! (skipped sequence numbers) and duplicates/reordering.
//!
//! Output: a human summary on stderr and one JSON object per scenario on stdout.
//! Every wait has a deadline and the whole run ends by `--max-seconds`.

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// Length of every chat text the senders publish.
const MSG_LEN: usize = 64;
/// The read buffer shared by all connections.
const SCRATCH: usize = 128 * 1024;
/// The WebSocket key sent in every handshake (its accept value is checked).
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Linux's clock tick for /proc CPU times.
const CLK_TCK: f64 = 100.0;

const USAGE: &str = "\
loadgen: fan-out load generator for chat-server and the baselines

USAGE: loadgen [OPTIONS]
  --telnet HOST:PORT        telnet chat port
  --ws HOST:PORT            WebSocket chat port (GET /ws)
  --rest HOST:PORT          REST port (for rest:D phases)
  --token TOKEN             admin bearer token for the REST query
  --telnet-clients N        telnet clients (default 0)
  --ws-clients M            WebSocket clients (default 0); kinds are interleaved
  --channels C              channels, clients spread round-robin (default 1)
  --senders K               publishing clients (default 1; at least C)
  --connect-rate R          new connections per second (default 10000)
  --max-inflight N          connections being set up at once (default 200)
  --src-addrs N             client source addresses 127.0.0.2.. (default 8)
  --server-pid PID          read CPU and RSS of this process from /proc
  --target NAME             label for the output (default \"server\")
  --sizes A,B,..            grow the client set in these steps (default: all at once);
                            at each size: barrier, idle RSS sample, then --phases
  --phases LIST             comma list: knee, fixed:D, stalled:D, rest:D, churn:D
                            (D = offered deliveries per second), run at every size
  --phases-at A,B,..        run --phases only at these sizes (default: every size); load
                            leaves heap behind, so idle RSS is clean only at sizes before it
  --extra-at N              run --extra-phases after --phases at size N
  --extra-phases LIST       as --phases
  --tag KEY=VALUE           added to every JSON line (repeatable)
  --msgs                    phase rates (and --knee-start) are published messages per
                            second in total instead of deliveries per second
  --step-s S                length of each load step (default 2)
  --p99-ms MS               knee condition (default 100)
  --knee-start D            first offered load of the knee search (default 250000)
  --knee-steps N            most steps of the knee search (default 10)
  --knee-bisect N           bisection steps after the first failure (default 3)
  --knee-factor F           step factor before the first failure (default 2)
  --knee-hints FILE         JSON lines of earlier runs: start the knee search at the
                            median knee found there for the same target, tags and size,
                            stepping by 1.25 with 2 bisections
  --stalled-share F         share of clients that stop reading in stalled:D (default 0.01)
  --stalled-s S             length of the stalled phase (default 3)
  --churn-rate R            connect/identify/quit cycles per second in churn:D (default 200)
  --rest-interval-ms MS     REST query period in rest:D (default 100)
  --rest-pattern RE         the query's pattern, URL-encoded (default b0%3A)
  --setup-timeout S         deadline to connect, join and pass the barrier (default 120)
  --max-seconds S           hard deadline for the whole run (default 600)
  --read-batch-us US        least time between two busy polls, so reads coalesce
                            (default 500; 0 turns it off)
";

/// One load phase after setup.
#[derive(Clone, Copy, Debug)]
enum Phase {
    Knee,
    Fixed(f64),
    Stalled(f64),
    Rest(f64),
    Churn(f64),
}

struct Opts {
    telnet: Option<SocketAddr>,
    ws: Option<SocketAddr>,
    rest: Option<SocketAddr>,
    token: String,
    telnet_clients: usize,
    ws_clients: usize,
    channels: usize,
    senders: usize,
    connect_rate: f64,
    max_inflight: usize,
    src_addrs: u8,
    server_pid: Option<u32>,
    target: String,
    sizes: Vec<usize>,
    phases: Vec<Phase>,
    extra_at: Option<usize>,
    phases_at: Vec<usize>,
    extra_phases: Vec<Phase>,
    tags: Vec<(String, String)>,
    knee_factor: f64,
    /// Phase rates and --knee-start are messages per second instead of deliveries.
    msgs: bool,
    knee_hints: Option<String>,
    step_s: f64,
    p99_ms: f64,
    knee_start: f64,
    knee_steps: usize,
    knee_bisect: usize,
    stalled_share: f64,
    stalled_s: f64,
    churn_rate: f64,
    rest_interval_ms: u64,
    rest_pattern: String,
    setup_timeout_s: f64,
    max_seconds: f64,
    read_batch_us: u64,
}

fn parse_list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.trim()
                .parse::<T>()
                .map_err(|_| format!("bad list item {p:?}"))
        })
        .collect()
}

fn parse_phases(s: &str) -> Result<Vec<Phase>, String> {
    let mut out = Vec::new();
    for p in s.split(',').filter(|p| !p.is_empty()) {
        let (name, arg) = match p.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (p, None),
        };
        let rate = || -> Result<f64, String> {
            arg.ok_or_else(|| format!("phase {name} needs :RATE"))?
                .parse::<f64>()
                .map_err(|_| format!("bad rate in {p:?}"))
        };
        out.push(match name {
            "knee" => Phase::Knee,
            "fixed" => Phase::Fixed(rate()?),
            "stalled" => Phase::Stalled(rate()?),
            "rest" => Phase::Rest(rate()?),
            "churn" => Phase::Churn(rate()?),
            _ => return Err(format!("unknown phase {name:?}")),
        });
    }
    Ok(out)
}

fn parse_opts() -> Result<Opts, String> {
    let mut a = pico_args::Arguments::from_env();
    if a.contains(["-h", "--help"]) {
        print!("{USAGE}");
        std::process::exit(0);
    }
    let e = |e: pico_args::Error| e.to_string();
    let o = Opts {
        telnet: a.opt_value_from_str("--telnet").map_err(e)?,
        ws: a.opt_value_from_str("--ws").map_err(e)?,
        rest: a.opt_value_from_str("--rest").map_err(e)?,
        token: a
            .opt_value_from_str("--token")
            .map_err(e)?
            .unwrap_or_default(),
        telnet_clients: a
            .opt_value_from_str("--telnet-clients")
            .map_err(e)?
            .unwrap_or(0),
        ws_clients: a
            .opt_value_from_str("--ws-clients")
            .map_err(e)?
            .unwrap_or(0),
        channels: a.opt_value_from_str("--channels").map_err(e)?.unwrap_or(1),
        senders: a.opt_value_from_str("--senders").map_err(e)?.unwrap_or(1),
        connect_rate: a
            .opt_value_from_str("--connect-rate")
            .map_err(e)?
            .unwrap_or(10_000.0),
        max_inflight: a
            .opt_value_from_str("--max-inflight")
            .map_err(e)?
            .unwrap_or(200),
        src_addrs: a.opt_value_from_str("--src-addrs").map_err(e)?.unwrap_or(8),
        server_pid: a.opt_value_from_str("--server-pid").map_err(e)?,
        target: a
            .opt_value_from_str("--target")
            .map_err(e)?
            .unwrap_or_else(|| "server".to_owned()),
        sizes: match a.opt_value_from_str::<_, String>("--sizes").map_err(e)? {
            Some(s) => parse_list(&s)?,
            None => Vec::new(),
        },
        extra_at: a.opt_value_from_str("--extra-at").map_err(e)?,
        phases_at: match a
            .opt_value_from_str::<_, String>("--phases-at")
            .map_err(e)?
        {
            Some(s) => parse_list(&s)?,
            None => Vec::new(),
        },
        extra_phases: match a
            .opt_value_from_str::<_, String>("--extra-phases")
            .map_err(e)?
        {
            Some(s) => parse_phases(&s)?,
            None => Vec::new(),
        },
        tags: a
            .values_from_str::<_, String>("--tag")
            .map_err(e)?
            .into_iter()
            .map(|t| match t.split_once('=') {
                Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
                None => Err(format!("--tag {t:?}: expected KEY=VALUE")),
            })
            .collect::<Result<_, _>>()?,
        msgs: a.contains("--msgs"),
        knee_factor: a
            .opt_value_from_str("--knee-factor")
            .map_err(e)?
            .unwrap_or(2.0),
        knee_hints: a.opt_value_from_str("--knee-hints").map_err(e)?,
        phases: match a.opt_value_from_str::<_, String>("--phases").map_err(e)? {
            Some(s) => parse_phases(&s)?,
            None => Vec::new(),
        },
        step_s: a.opt_value_from_str("--step-s").map_err(e)?.unwrap_or(2.0),
        p99_ms: a
            .opt_value_from_str("--p99-ms")
            .map_err(e)?
            .unwrap_or(100.0),
        knee_start: a
            .opt_value_from_str("--knee-start")
            .map_err(e)?
            .unwrap_or(250_000.0),
        knee_steps: a
            .opt_value_from_str("--knee-steps")
            .map_err(e)?
            .unwrap_or(10),
        knee_bisect: a
            .opt_value_from_str("--knee-bisect")
            .map_err(e)?
            .unwrap_or(3),
        stalled_share: a
            .opt_value_from_str("--stalled-share")
            .map_err(e)?
            .unwrap_or(0.01),
        stalled_s: a
            .opt_value_from_str("--stalled-s")
            .map_err(e)?
            .unwrap_or(3.0),
        churn_rate: a
            .opt_value_from_str("--churn-rate")
            .map_err(e)?
            .unwrap_or(200.0),
        rest_interval_ms: a
            .opt_value_from_str("--rest-interval-ms")
            .map_err(e)?
            .unwrap_or(100),
        rest_pattern: a
            .opt_value_from_str("--rest-pattern")
            .map_err(e)?
            .unwrap_or_else(|| "b0%3A".to_owned()),
        setup_timeout_s: a
            .opt_value_from_str("--setup-timeout")
            .map_err(e)?
            .unwrap_or(120.0),
        read_batch_us: a
            .opt_value_from_str("--read-batch-us")
            .map_err(e)?
            .unwrap_or(500),
        max_seconds: a
            .opt_value_from_str("--max-seconds")
            .map_err(e)?
            .unwrap_or(600.0),
    };
    let rest = a.finish();
    if !rest.is_empty() {
        return Err(format!("unexpected arguments: {rest:?}"));
    }
    if o.telnet_clients > 0 && o.telnet.is_none() {
        return Err("--telnet-clients needs --telnet".into());
    }
    if o.ws_clients > 0 && o.ws.is_none() {
        return Err("--ws-clients needs --ws".into());
    }
    if o.channels == 0 || o.src_addrs == 0 || o.src_addrs > 200 {
        return Err("--channels and --src-addrs (1..200) must be positive".into());
    }
    let all = || o.phases.iter().chain(o.extra_phases.iter());
    if all().any(|p| matches!(p, Phase::Rest(_))) && o.rest.is_none() {
        return Err("rest:D phases need --rest".into());
    }
    if all().any(|p| matches!(p, Phase::Churn(_))) && o.telnet.is_none() {
        return Err("churn:D phases need --telnet".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// /proc readers

/// utime + stime of a process, in seconds.
fn proc_cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / CLK_TCK)
}

/// VmRSS of a process, in KiB.
fn proc_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `IP_BIND_ADDRESS_NO_PORT` (Linux): best effort, the bind still works without it.
fn set_bind_address_no_port(s: &Socket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a c_int with its size, as setsockopt expects.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Telnet,
    Ws,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    /// TCP connect in progress.
    Connecting,
    /// WebSocket upgrade request sent, waiting for `101`.
    WsHandshake,
    /// Waiting for the `Welcome` greeting.
    Greeting,
    /// Nickname and `/join` sent; waiting for our own "just joined" line.
    Joining,
    /// In the channel.
    Joined,
    /// Churn: nickname sent, waiting for `Thanks`.
    ChurnNick,
    /// Churn: `/quit` sent, waiting for the server to close.
    ChurnQuit,
    /// REST: request sent, reading the response until EOF.
    RestWait,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Member,
    Churn,
    Rest,
}

struct Conn {
    sock: TcpStream,
    kind: Kind,
    role: Role,
    st: St,
    /// Member index (nickname `u<id>`), churn nickname number, or 0.
    id: u64,
    channel: u32,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    /// Stopped reading (stalled-reader phase).
    stalled: bool,
    /// Reading again after a stall: data is drained, not measured.
    draining: bool,
    /// Has output appended during this send pass (dedup for flushing).
    touched: bool,
    /// Per sender of this channel: the next sequence number expected.
    next_seq: Box<[u32]>,
    /// The last barrier nonce seen.
    barrier: u32,
    started: Instant,
    /// REST: the first bytes of the response.
    head: Vec<u8>,
}

/// Statistics of one load step.
struct Step {
    label: String,
    offered_dps: f64,
    rate_mps: f64,
    sent: u64,
    expected: u64,
    received: u64,
    gaps: u64,
    dups: u64,
    late: u64,
    closed: bool,
    hist: Histogram<u64>,
    first_recv: Option<Instant>,
    last_recv: Option<Instant>,
    max_send_lag_us: u64,
    disconnects: u64,
}

impl Step {
    fn new(label: &str, offered_dps: f64, rate_mps: f64) -> Step {
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
        }
    }
}

fn new_hist() -> Histogram<u64> {
    // 1 µs .. 120 s, 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|e| panic!("histogram: {e}")))
}

/// The publishing schedule of the running step.
struct Sched {
    step: u32,
    start: Instant,
    interval_ns: f64,
    total: u64,
    next_j: u64,
}

/// REST queries during a step.
#[derive(Default)]
struct RestRun {
    interval: Duration,
    next_at: Option<Instant>,
    started: u64,
    statuses: BTreeMap<String, u64>,
    max_ms: f64,
    inflight: usize,
}

/// Connection churn during a step.
struct ChurnRun {
    interval: Duration,
    next_at: Instant,
    started: u64,
    ok: u64,
    failed: u64,
    inflight: usize,
    hist: Histogram<u64>,
}

/// Everything except the poll, the slab and the read buffer (so handlers can borrow both).
struct Shared {
    base: Instant,
    channels: usize,
    senders: usize,
    /// Member index → slab key.
    member_keys: Vec<Option<usize>>,
    /// Per channel: joined members that read.
    live: Vec<u32>,
    joined: usize,
    inflight: usize,
    failed: usize,
    disconnects: u64,
    barrier_nonce: u32,
    barrier_seen: usize,
    steps: Vec<Step>,
    sched: Option<Sched>,
    seq: Vec<u32>,
    rest: Option<RestRun>,
    churn: Option<ChurnRun>,
    errors: BTreeMap<String, u64>,
    rss_max_kib: u64,
    /// Bytes drained from formerly stalled readers.
    drained_bytes: u64,
    stalled_eof: u64,
    /// Members reconnected after getting no greeting in time.
    retried: u64,
}

impl Shared {
    fn error(&mut self, what: &str) {
        *self.errors.entry(what.to_owned()).or_default() += 1;
    }
}

fn kind_of(i: usize, telnet: usize, ws: usize) -> Kind {
    let n = telnet + ws;
    if n == 0 || ws == 0 {
        return Kind::Telnet;
    }
    if telnet == 0 {
        return Kind::Ws;
    }
    // Interleave the kinds evenly (Bresenham).
    if (i + 1) * ws / n > i * ws / n {
        Kind::Ws
    } else {
        Kind::Telnet
    }
}

/// Appends `text` as a masked WebSocket text frame.
fn ws_frame(text: &[u8], key: [u8; 4], out: &mut Vec<u8>) {
    out.push(0x81);
    let n = text.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    out.extend(text.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
}

fn ws_frame_op(op: u8, payload: &[u8], key: [u8; 4], out: &mut Vec<u8>) {
    let start = out.len();
    ws_frame(payload, key, out);
    out[start] = 0x80 | op;
}

/// Appends one input line in the connection's wire format.
fn push_line(c: &mut Conn, text: &[u8]) {
    match c.kind {
        Kind::Telnet => {
            c.out.extend_from_slice(text);
            c.out.extend_from_slice(b"\r\n");
        }
        Kind::Ws => {
            let key = (c.id as u32).wrapping_mul(2_654_435_761).to_le_bytes();
            ws_frame(text, key, &mut c.out);
        }
    }
}

/// Writes queued output until done or `WouldBlock`. `Err` means the connection failed.
fn flush(c: &mut Conn) -> io::Result<()> {
    while c.out_pos < c.out.len() {
        match c.sock.write(&c.out[c.out_pos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => c.out_pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    c.out.clear();
    c.out_pos = 0;
    if c.out.capacity() > 4096 {
        c.out = Vec::new();
    }
    Ok(())
}

fn parse_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v: u64 = 0;
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add(u64::from(b[i] - b'0'))?;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    Some((v, &b[i..]))
}

/// `b<sender>:<step>:<seq>:<sched_ns>:...`
fn parse_msg(b: &[u8]) -> Option<(u64, u64, u64, u64)> {
    let b = b.strip_prefix(b"b")?;
    let (sender, b) = parse_u64(b)?;
    let (step, b) = parse_u64(b.strip_prefix(b":")?)?;
    let (seq, b) = parse_u64(b.strip_prefix(b":")?)?;
    let (ns, _) = parse_u64(b.strip_prefix(b":")?)?;
    Some((sender, step, seq, ns))
}

/// What the connection must do after a message was handled.
#[derive(PartialEq, Eq)]
enum After {
    Continue,
    Close,
}

/// One server message (a telnet line without CR LF, or a WebSocket text payload).
fn on_text(c: &mut Conn, text: &[u8], now: Instant, sh: &mut Shared) -> After {
    match c.st {
        St::Joined => {
            if c.draining {
                return After::Continue;
            }
            // "3:04PM-@nick: text": the first ": " ends the prefix.
            let Some(p) = memchr::memmem::find(text, b": ") else {
                return After::Continue;
            };
            let body = &text[p + 2..];
            match body.first() {
                Some(b'b') => {
                    let Some((sender, step, seq, ns)) = parse_msg(body) else {
                        sh.error("unparsable chat line");
                        return After::Continue;
                    };
                    let now_ns = now.duration_since(sh.base).as_nanos() as u64;
                    let lat_us = now_ns.saturating_sub(ns) / 1000;
                    let local = (sender as usize) / sh.channels;
                    if let Some(next) = c.next_seq.get_mut(local) {
                        let seq = seq as u32;
                        if seq == *next {
                            *next += 1;
                        } else if seq > *next {
                            let skipped = u64::from(seq - *next);
                            *next = seq + 1;
                            if let Some(s) = sh.steps.get_mut(step as usize) {
                                s.gaps += skipped;
                            }
                        } else if let Some(s) = sh.steps.get_mut(step as usize) {
                            s.dups += 1;
                        }
                    } else {
                        sh.error("message from a sender of another channel");
                    }
                    if let Some(s) = sh.steps.get_mut(step as usize) {
                        if s.closed {
                            s.late += 1;
                        } else {
                            s.received += 1;
                            s.hist.saturating_record(lat_us.max(1));
                            s.last_recv = Some(now);
                            if s.first_recv.is_none() {
                                s.first_recv = Some(now);
                            }
                        }
                    }
                }
                Some(b'z') => {
                    if let Some((nonce, _)) = parse_u64(&body[1..]) {
                        if nonce as u32 == sh.barrier_nonce && c.barrier != sh.barrier_nonce {
                            c.barrier = sh.barrier_nonce;
                            sh.barrier_seen += 1;
                        }
                    }
                }
                _ => {}
            }
            After::Continue
        }
        St::Greeting => {
            if text.starts_with(b"Welcome") {
                match c.role {
                    Role::Member => {
                        let line = format!("u{}", c.id);
                        push_line(c, line.as_bytes());
                        let join = format!("/join #b{}", c.channel);
                        push_line(c, join.as_bytes());
                        c.st = St::Joining;
                    }
                    Role::Churn => {
                        let line = format!("c{}", c.id);
                        push_line(c, line.as_bytes());
                        c.st = St::ChurnNick;
                    }
                    Role::Rest => {}
                }
            }
            After::Continue
        }
        St::Joining => {
            if let Some(p) = memchr::memmem::find(text, b" just joined channel ") {
                let own = format!("-@u{}", c.id);
                if text[..p].ends_with(own.as_bytes()) {
                    c.st = St::Joined;
                    // Joins happen between load steps (nothing in flight): expect each
                    // sender's next message.
                    let ch = c.channel as usize;
                    c.next_seq = (0..senders_in(sh, ch))
                        .map(|l| sh.seq.get(ch + l * sh.channels).copied().unwrap_or(0))
                        .collect();
                    sh.joined += 1;
                    sh.inflight = sh.inflight.saturating_sub(1);
                    if !c.stalled {
                        sh.live[c.channel as usize] += 1;
                    }
                }
            } else if text.starts_with(b"Another user") {
                sh.error("nickname taken");
                return After::Close;
            }
            After::Continue
        }
        St::ChurnNick => {
            if text.starts_with(b"Thanks") {
                push_line(c, b"/quit");
                c.st = St::ChurnQuit;
            }
            After::Continue
        }
        _ => After::Continue,
    }
}

fn senders_in(sh: &Shared, channel: usize) -> usize {
    (sh.senders + sh.channels - 1 - channel) / sh.channels
}

/// Splits `data` into messages; returns the bytes consumed.
fn frame(c: &mut Conn, data: &[u8], now: Instant, sh: &mut Shared) -> (usize, After) {
    let mut pos = 0;
    if c.st == St::WsHandshake {
        let Some(end) = memchr::memmem::find(data, b"\r\n\r\n") else {
            return (0, After::Continue);
        };
        let head = &data[..end];
        let accept = tungstenite::handshake::derive_accept_key(WS_KEY.as_bytes());
        let ok = head.starts_with(b"HTTP/1.1 101")
            && memchr::memmem::find(head, accept.as_bytes()).is_some();
        if !ok {
            sh.error("websocket handshake refused");
            return (end + 4, After::Close);
        }
        c.st = St::Greeting;
        pos = end + 4;
    }
    if c.role == Role::Rest {
        if c.head.len() < 64 {
            let take = (64 - c.head.len()).min(data.len());
            c.head.extend_from_slice(&data[..take]);
        }
        return (data.len(), After::Continue);
    }
    match c.kind {
        Kind::Telnet => {
            while let Some(nl) = memchr::memchr(b'\n', &data[pos..]) {
                let mut line = &data[pos..pos + nl];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                pos += nl + 1;
                if on_text(c, line, now, sh) == After::Close {
                    return (pos, After::Close);
                }
            }
        }
        Kind::Ws => loop {
            let d = &data[pos..];
            if d.len() < 2 {
                break;
            }
            let op = d[0] & 0x0f;
            let masked = d[1] & 0x80 != 0;
            let mut len = usize::from(d[1] & 0x7f);
            let mut h = 2;
            if len == 126 {
                if d.len() < 4 {
                    break;
                }
                len = usize::from(u16::from_be_bytes([d[2], d[3]]));
                h = 4;
            } else if len == 127 {
                if d.len() < 10 {
                    break;
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&d[2..10]);
                len = u64::from_be_bytes(b) as usize;
                h = 10;
            }
            if masked {
                h += 4;
            }
            if d.len() < h + len {
                break;
            }
            let payload = &d[h..h + len];
            pos += h + len;
            match op {
                0 | 1 if on_text(c, payload, now, sh) == After::Close => {
                    return (pos, After::Close);
                }
                8 => {
                    sh.error("websocket close frame from server");
                    return (pos, After::Close);
                }
                9 => {
                    let payload = payload.to_vec();
                    ws_frame_op(0xA, &payload, [7, 7, 7, 7], &mut c.out);
                }
                _ => {}
            }
        },
    }
    (pos, After::Continue)
}

/// Handles bytes read from a connection.
fn process(c: &mut Conn, data: &[u8], now: Instant, sh: &mut Shared) -> After {
    if c.draining {
        sh.drained_bytes += data.len() as u64;
        return After::Continue;
    }
    if c.inbuf.is_empty() {
        let (used, after) = frame(c, data, now, sh);
        if after == After::Continue {
            c.inbuf.extend_from_slice(&data[used..]);
        }
        after
    } else {
        c.inbuf.extend_from_slice(data);
        let buf = std::mem::take(&mut c.inbuf);
        let (used, after) = frame(c, &buf, now, sh);
        c.inbuf = buf;
        c.inbuf.drain(..used);
        if c.inbuf.capacity() > 8192 && c.inbuf.len() < 1024 {
            c.inbuf.shrink_to(1024);
        }
        after
    }
}

// ---------------------------------------------------------------------------------------------
// The generator

struct Gen {
    o: Opts,
    poll: Poll,
    conns: Slab<Conn>,
    scratch: Vec<u8>,
    sh: Shared,
    deadline: Instant,
    /// Member index to connect next, and how many members are wanted now.
    next_member: usize,
    want_members: usize,
    next_connect_at: Instant,
    src_rr: u32,
    touched: Vec<usize>,
    pid: Option<String>,
    next_rss_at: Instant,
    aborted: bool,
    /// The last poll returned events (see `poll_once`).
    busy: bool,
    last_poll: Instant,
}

impl Gen {
    fn new(o: Opts) -> io::Result<Gen> {
        let now = Instant::now();
        let senders = o.senders.max(o.channels);
        let deadline = now + Duration::from_secs_f64(o.max_seconds);
        Ok(Gen {
            poll: Poll::new()?,
            conns: Slab::with_capacity(o.telnet_clients + o.ws_clients + 64),
            scratch: vec![0u8; SCRATCH],
            sh: Shared {
                base: now,
                channels: o.channels,
                senders,
                member_keys: Vec::new(),
                live: vec![0; o.channels],
                joined: 0,
                inflight: 0,
                failed: 0,
                disconnects: 0,
                barrier_nonce: 0,
                barrier_seen: 0,
                steps: Vec::new(),
                sched: None,
                seq: vec![0; senders],
                rest: None,
                churn: None,
                errors: BTreeMap::new(),
                rss_max_kib: 0,
                drained_bytes: 0,
                stalled_eof: 0,
                retried: 0,
            },
            deadline,
            next_member: 0,
            want_members: 0,
            next_connect_at: now,
            src_rr: 0,
            touched: Vec::new(),
            pid: o.server_pid.map(|p| p.to_string()),
            next_rss_at: now,
            aborted: false,
            busy: false,
            last_poll: now,
            o,
        })
    }

    fn total_clients(&self) -> usize {
        self.o.telnet_clients + self.o.ws_clients
    }

    fn cpu(&self) -> Option<f64> {
        self.pid.as_deref().and_then(proc_cpu_s)
    }

    fn rss(&self) -> Option<u64> {
        self.pid.as_deref().and_then(proc_rss_kib)
    }

    fn own_cpu() -> f64 {
        proc_cpu_s("self").unwrap_or(0.0)
    }

    /// Opens a non-blocking connection from 127.0.0.(2 + n % src_addrs).
    fn open(&mut self, addr: SocketAddr, small_rcvbuf: bool) -> io::Result<TcpStream> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_nonblocking(true)?;
        s.set_tcp_nodelay(true)?;
        if small_rcvbuf {
            s.set_recv_buffer_size(4096)?;
        }
        if addr.ip().is_loopback() {
            // Choose the port at connect() (4-tuple aware) instead of at bind(), which
            // searches for a port unused on that address and slows down with every socket.
            set_bind_address_no_port(&s);
            let last = 2 + (self.src_rr % u32::from(self.o.src_addrs)) as u8;
            self.src_rr = self.src_rr.wrapping_add(1);
            let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0);
            s.bind(&src.into())?;
        }
        match s.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(115) => {} // EINPROGRESS
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(TcpStream::from_std(std::net::TcpStream::from(s)))
    }

    fn add_conn(
        &mut self,
        mut sock: TcpStream,
        kind: Kind,
        role: Role,
        id: u64,
        ch: u32,
    ) -> Option<usize> {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.sh.error(&format!("register: {e}"));
            return None;
        }
        entry.insert(Conn {
            sock,
            kind,
            role,
            st: St::Connecting,
            id,
            channel: ch,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            stalled: false,
            draining: false,
            touched: false,
            next_seq: Box::new([]),
            barrier: 0,
            started: Instant::now(),
            head: Vec::new(),
        });
        Some(key)
    }

    fn is_stall_candidate(&self, i: usize) -> bool {
        let share = self.o.stalled_share;
        if share <= 0.0 || i < self.sh.senders {
            return false;
        }
        if !self
            .o
            .phases
            .iter()
            .chain(self.o.extra_phases.iter())
            .any(|p| matches!(p, Phase::Stalled(_)))
        {
            return false;
        }
        let every = (1.0 / share).round().max(1.0) as usize;
        (i - self.sh.senders) % every == every - 1
    }

    fn connect_member(&mut self) {
        let i = self.next_member;
        self.next_member += 1;
        self.connect_member_at(i);
    }

    fn connect_member_at(&mut self, i: usize) {
        let kind = kind_of(i, self.o.telnet_clients, self.o.ws_clients);
        let addr = match kind {
            Kind::Telnet => self.o.telnet,
            Kind::Ws => self.o.ws,
        };
        let Some(addr) = addr else { return };
        let small = self.is_stall_candidate(i);
        let ch = (i % self.o.channels) as u32;
        if self.sh.member_keys.len() <= i {
            self.sh.member_keys.resize(i + 1, None);
        }
        match self.open(addr, small) {
            Ok(sock) => {
                if let Some(key) = self.add_conn(sock, kind, Role::Member, i as u64, ch) {
                    self.sh.member_keys[i] = Some(key);
                    self.sh.inflight += 1;
                } else {
                    self.sh.failed += 1;
                }
            }
            Err(e) => {
                self.sh.failed += 1;
                self.sh.error(&format!("connect: {e}"));
            }
        }
    }

    /// Starts due work: connections, sends, churn cycles, REST queries, RSS samples.
    fn timers(&mut self, now: Instant) {
        // Connections, at a bounded rate and with a bounded number in flight.
        if self.next_member < self.want_members {
            let step = Duration::from_secs_f64(1.0 / self.o.connect_rate.max(1.0));
            if self.next_connect_at + Duration::from_millis(20) < now {
                self.next_connect_at = now;
            }
            while self.next_member < self.want_members
                && self.sh.inflight < self.o.max_inflight
                && self.next_connect_at <= now
            {
                self.connect_member();
                self.next_connect_at += step;
            }
        }
        self.send_due(now);
        self.churn_due(now);
        self.rest_due(now);
        if now >= self.next_rss_at {
            if let Some(r) = self.rss() {
                self.sh.rss_max_kib = self.sh.rss_max_kib.max(r);
            }
            self.next_rss_at = now + Duration::from_millis(100);
        }
    }

    fn send_due(&mut self, now: Instant) {
        let Some(sched) = self.sh.sched.as_mut() else {
            return;
        };
        let base = self.sh.base;
        let channels = self.sh.channels;
        let senders = self.sh.senders;
        let mut buf = [b'x'; MSG_LEN];
        while sched.next_j < sched.total {
            let due_off = Duration::from_nanos((sched.next_j as f64 * sched.interval_ns) as u64);
            let due = sched.start + due_off;
            if due > now {
                break;
            }
            let s = (sched.next_j % senders as u64) as usize;
            sched.next_j += 1;
            let step = &mut self.sh.steps[sched.step as usize];
            let lag = now.duration_since(due).as_micros() as u64;
            step.max_send_lag_us = step.max_send_lag_us.max(lag);
            let Some(key) = self.sh.member_keys.get(s).copied().flatten() else {
                continue;
            };
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            if c.st != St::Joined {
                continue;
            }
            let seq = self.sh.seq[s];
            self.sh.seq[s] += 1;
            let sched_ns = due.duration_since(base).as_nanos() as u64;
            buf.fill(b'x');
            let mut cur = io::Cursor::new(&mut buf[..]);
            let _ = write!(cur, "b{s}:{}:{seq}:{sched_ns}:", sched.step);
            push_line(c, &buf);
            step.sent += 1;
            step.expected += u64::from(self.sh.live[s % channels]);
            if !c.touched {
                c.touched = true;
                self.touched.push(key);
            }
        }
        let touched = std::mem::take(&mut self.touched);
        for &key in &touched {
            if let Some(c) = self.conns.get_mut(key) {
                c.touched = false;
                if flush(c).is_err() {
                    self.close(key, "write failed");
                }
            }
        }
        self.touched = touched;
        self.touched.clear();
    }

    fn churn_due(&mut self, now: Instant) {
        let Some(addr) = self.o.telnet else { return };
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
                        .add_conn(sock, Kind::Telnet, Role::Churn, n, 0)
                        .is_none()
                    {
                        self.churn_end(false, None);
                    }
                }
                Err(_) => self.churn_end(false, None),
            }
        }
    }

    fn churn_end(&mut self, ok: bool, started: Option<Instant>) {
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

    fn rest_due(&mut self, now: Instant) {
        let Some(addr) = self.o.rest else { return };
        let Some(r) = self.sh.rest.as_mut() else {
            return;
        };
        let Some(at) = r.next_at else { return };
        if at > now || r.inflight >= 4 {
            return;
        }
        r.next_at = Some(now + r.interval);
        r.started += 1;
        r.inflight += 1;
        match self.open(addr, false) {
            Ok(sock) => {
                if self
                    .add_conn(sock, Kind::Telnet, Role::Rest, 0, 0)
                    .is_none()
                {
                    self.rest_end("register failed".into(), None);
                }
            }
            Err(e) => self.rest_end(format!("connect: {e}"), None),
        }
    }

    fn rest_end(&mut self, status: String, started: Option<Instant>) {
        if let Some(r) = self.sh.rest.as_mut() {
            r.inflight = r.inflight.saturating_sub(1);
            *r.statuses.entry(status).or_default() += 1;
            if let Some(t) = started {
                r.max_ms = r.max_ms.max(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }

    /// Removes a connection and updates the counts.
    fn close(&mut self, key: usize, why: &str) {
        let Some(mut c) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.sock);
        match c.role {
            Role::Member => {
                let i = c.id as usize;
                if let Some(slot) = self.sh.member_keys.get_mut(i) {
                    *slot = None;
                }
                if c.draining {
                    self.sh.stalled_eof += 1;
                    return;
                }
                self.sh.disconnects += 1;
                if let Some(s) = self.sh.steps.last_mut() {
                    if !s.closed {
                        s.disconnects += 1;
                    }
                }
                match c.st {
                    St::Joined => {
                        self.sh.joined -= 1;
                        if !c.stalled {
                            self.sh.live[c.channel as usize] -= 1;
                        }
                    }
                    _ => {
                        self.sh.inflight = self.sh.inflight.saturating_sub(1);
                        self.sh.failed += 1;
                    }
                }
                self.sh.error(&format!("member closed: {why}"));
            }
            Role::Churn => {
                let ok = c.st == St::ChurnQuit && why == "eof";
                if !ok {
                    self.sh
                        .error(&format!("churn client closed in {:?}: {why}", c.st));
                }
                self.churn_end(ok, Some(c.started));
            }
            Role::Rest => {
                let status = if why == "eof" {
                    let head = String::from_utf8_lossy(&c.head);
                    head.split_whitespace()
                        .nth(1)
                        .unwrap_or("no-response")
                        .to_owned()
                } else {
                    why.to_owned()
                };
                self.rest_end(status, Some(c.started));
            }
        }
    }

    /// Polls once and handles the events.
    fn poll_once(&mut self, events: &mut Events, timeout: Duration) {
        // Read coalescing: when the last poll found work, wait until `--read-batch-us` has
        // passed since it, so that several messages queue up per socket and one read takes
        // them all (otherwise the generator makes a read per delivery, like an unbatched
        // server makes a write per delivery). Bounded extra latency, measured like the rest.
        if self.busy {
            let batch = Duration::from_micros(self.o.read_batch_us);
            let since = self.last_poll.elapsed();
            if since < batch {
                std::thread::sleep((batch - since).min(timeout));
            }
        }
        self.last_poll = Instant::now();
        let r = self.poll.poll(events, Some(timeout));
        self.busy = r.is_ok() && !events.is_empty();
        if let Err(e) = r {
            if e.kind() != io::ErrorKind::Interrupted {
                self.sh.error(&format!("poll: {e}"));
            }
            return;
        }
        for ev in events.iter() {
            let key = ev.token().0;
            let hup = ev.is_read_closed() || ev.is_error();
            self.handle(key, ev.is_readable() || hup, hup, ev.is_writable());
        }
    }

    fn handle(&mut self, key: usize, readable: bool, hup: bool, writable: bool) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.st == St::Connecting && (writable || readable) {
            match c.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    let why = format!("connect: {e}");
                    self.close(key, &why);
                    return;
                }
            }
            if c.sock.peer_addr().is_err() {
                if readable {
                    self.close(key, "connect refused");
                }
                return;
            }
            match (c.role, c.kind) {
                (Role::Rest, _) => {
                    let req = format!(
                        "GET /v1/api/message?pattern={}&limit=100 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                        self.o.rest_pattern,
                        self.o.rest.map(|a| a.to_string()).unwrap_or_default(),
                        self.o.token
                    );
                    c.out.extend_from_slice(req.as_bytes());
                    c.st = St::RestWait;
                }
                (_, Kind::Ws) => {
                    let req = format!(
                        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
                        self.o.ws.map(|a| a.to_string()).unwrap_or_default()
                    );
                    c.out.extend_from_slice(req.as_bytes());
                    c.st = St::WsHandshake;
                }
                (_, Kind::Telnet) => c.st = St::Greeting,
            }
        }
        if !c.out.is_empty() && flush(c).is_err() {
            self.close(key, "write failed");
            return;
        }
        if readable {
            self.read(key, hup);
        }
    }

    /// Reads until `WouldBlock` or EOF. `hup`: the peer closed, so read on to the EOF.
    fn read(&mut self, key: usize, hup: bool) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            if c.stalled && !c.draining {
                return;
            }
            match c.sock.read(&mut self.scratch) {
                Ok(0) => {
                    self.close(key, "eof");
                    return;
                }
                Ok(n) => {
                    let now = Instant::now();
                    let after = process(c, &self.scratch[..n], now, &mut self.sh);
                    if after == After::Close {
                        self.close(key, "protocol");
                        return;
                    }
                    if !c.out.is_empty() && flush(c).is_err() {
                        self.close(key, "write failed");
                        return;
                    }
                    if c.st == St::ChurnQuit && c.out.is_empty() {
                        let _ = c.sock.shutdown(Shutdown::Write);
                    }
                    // A short read emptied the socket's receive queue (TCP): the next edge
                    // will tell us about new data, so the confirming EAGAIN read is skipped,
                    // unless the peer's FIN came with this edge (then read on to the EOF).
                    if n < self.scratch.len() && !hup {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = format!("read: {e}");
                    self.close(key, &why);
                    return;
                }
            }
        }
    }

    /// Runs the loop until `done` holds or `until` passes; returns whether `done` held.
    fn pump(&mut self, events: &mut Events, until: Instant, done: impl Fn(&Gen) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= until || now >= self.deadline {
                if now >= self.deadline {
                    self.aborted = true;
                }
                return false;
            }
            self.timers(now);
            let mut timeout = until.min(self.deadline) - now;
            timeout = timeout.min(Duration::from_millis(5));
            if let Some(s) = &self.sh.sched {
                if s.next_j < s.total {
                    let due =
                        s.start + Duration::from_nanos((s.next_j as f64 * s.interval_ns) as u64);
                    timeout = timeout.min(due.saturating_duration_since(now));
                }
            }
            if self.next_member < self.want_members {
                timeout = timeout.min(Duration::from_millis(1));
            }
            self.poll_once(events, timeout);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Scenarios

    /// Connects members up to `n`, waits until they joined. Returns false on timeout.
    fn grow_to(&mut self, events: &mut Events, n: usize) -> bool {
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
    fn retry_stuck(&mut self) {
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
    fn barrier(&mut self, events: &mut Events) -> (bool, f64) {
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

    fn live_total(&self) -> usize {
        self.sh.live.iter().map(|&n| n as usize).sum()
    }

    /// Runs one open-loop step at `dps` offered deliveries/s for `dur_s`, then drains.
    /// Deliveries per published message: members of the sender's channel (senders are
    /// spread evenly over the channels).
    fn per_msg(&self) -> f64 {
        self.live_total().max(1) as f64 / self.o.channels as f64
    }

    /// `offered` is deliveries/s, or messages/s with `--msgs`.
    fn run_step(&mut self, events: &mut Events, label: &str, offered: f64, dur_s: f64) -> Value {
        let live = self.live_total().max(1) as f64;
        let per_msg = self.per_msg();
        let (dps, rate) = if self.o.msgs {
            (offered * per_msg, offered.max(0.1))
        } else {
            (offered, (offered / per_msg).max(0.1))
        };
        let start = Instant::now() + Duration::from_millis(5);
        let end = start + Duration::from_secs_f64(dur_s);
        let idx = self.sh.steps.len() as u32;
        self.sh.steps.push(Step::new(label, dps, rate));
        self.sh.sched = Some(Sched {
            step: idx,
            start,
            interval_ns: 1e9 / rate,
            total: (rate * dur_s).round().max(1.0) as u64,
            next_j: 0,
        });
        let cpu0 = self.cpu();
        let rss0 = self.rss();
        self.sh.rss_max_kib = rss0.unwrap_or(0);
        let own0 = Self::own_cpu();
        let t0 = Instant::now();
        self.pump(events, end, |_| false);
        self.sh.sched = None;
        // Drain: wait until every expected delivery arrived.
        let drain_cap = end + Duration::from_secs_f64((2.0 * dur_s).max(2.0));
        let complete = self.pump(events, drain_cap, |g| {
            let s = &g.sh.steps[idx as usize];
            s.received >= s.expected
        });
        let wall = t0.elapsed().as_secs_f64();
        let own = Self::own_cpu() - own0;
        let cpu1 = self.cpu();
        let rss1 = self.rss();
        let s = &mut self.sh.steps[idx as usize];
        s.closed = true;
        if !complete {
            // Give a backlog time to clear before the next step (counted as late).
            let expected = s.expected;
            let received = s.received;
            let until = Instant::now() + Duration::from_secs(10);
            self.pump(events, until, |g| {
                received + g.sh.steps[idx as usize].late >= expected
            });
        }
        let s = &self.sh.steps[idx as usize];
        // Deliveries per second between the first and the last receipt (so a constant
        // latency does not count against the rate; a growing one does), at least the window.
        let span = match (s.first_recv, s.last_recv) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        }
        .max(dur_s * 0.98)
        .max(1e-3);
        let delivered_ps = s.received as f64 / span;
        let loss = s.expected.saturating_sub(s.received);
        let q = |p: f64| s.hist.value_at_quantile(p) as f64 / 1000.0;
        let server_cpu = match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let own_pct = own / wall * 100.0;
        let saturated = own_pct >= 90.0;
        let p99 = if s.received > 0 {
            q(0.99)
        } else {
            f64::INFINITY
        };
        let ok = p99 <= self.o.p99_ms
            && loss == 0
            && s.gaps == 0
            && s.dups == 0
            && s.disconnects == 0
            && s.sent > 0;
        let v = json!({
            "label": s.label,
            "offered_dps": s.offered_dps.round(),
            "rate_mps": (s.rate_mps * 10.0).round() / 10.0,
            "duration_s": dur_s,
            "live_clients": live as u64,
            "sent": s.sent,
            "expected": s.expected,
            "delivered": s.received,
            "delivered_per_s": delivered_ps.round(),
            "loss": loss,
            "gaps": s.gaps,
            "dups_or_reordered": s.dups,
            "late": s.late,
            "disconnects": s.disconnects,
            "p50_ms": q(0.5),
            "p90_ms": q(0.9),
            "p99_ms": if p99.is_finite() { json!(p99) } else { Value::Null },
            "p999_ms": q(0.999),
            "max_ms": s.hist.max() as f64 / 1000.0,
            "max_send_lag_ms": s.max_send_lag_us as f64 / 1000.0,
            "server_cpu_s": server_cpu,
            "server_cpu_us_per_delivery": server_cpu.filter(|_| s.received > 0).map(|c| c * 1e6 / s.received as f64),
            "server_cpu_pct": server_cpu.map(|c| c / wall * 100.0),
            "server_rss_kib_start": rss0,
            "server_rss_kib_end": rss1,
            "server_rss_kib_max": self.sh.rss_max_kib.max(rss1.unwrap_or(0)),
            "gen_cpu_pct": (own_pct * 10.0).round() / 10.0,
            "gen_saturated": saturated,
            "complete": complete,
            "ok": ok,
        });
        eprintln!(
            "  [{}] {label}: offered {:.0}/s ({:.1} msg/s) delivered {:.0}/s p50 {:.2} p99 {} max {:.1} ms loss {} gaps {} dups {} srv-cpu {} gen-cpu {:.0}%{}",
            self.o.target,
            dps,
            rate,
            delivered_ps,
            q(0.5),
            if p99.is_finite() { format!("{p99:.2}") } else { "-".into() },
            s.hist.max() as f64 / 1000.0,
            loss,
            s.gaps,
            s.dups,
            server_cpu.map_or("-".into(), |c| format!("{:.0}%", c / wall * 100.0)),
            own_pct,
            if saturated { " GENERATOR SATURATED" } else { "" }
        );
        v
    }

    /// The median knee of earlier runs for this target, tags and size (`--knee-hints`).
    fn knee_hint(&self, size: usize) -> Option<f64> {
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

    fn knee(&mut self, events: &mut Events, size: usize) -> Value {
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

    /// Stops a share of the members reading, runs a step, then reads them again to see
    /// whether the server dropped them.
    fn stalled(&mut self, events: &mut Events, dps: f64) -> Value {
        let mut stalled = Vec::new();
        for i in 0..self.sh.member_keys.len() {
            if !self.is_stall_candidate(i) {
                continue;
            }
            let Some(key) = self.sh.member_keys[i] else {
                continue;
            };
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            if c.st != St::Joined || c.stalled {
                continue;
            }
            c.stalled = true;
            self.sh.live[c.channel as usize] -= 1;
            stalled.push(key);
        }
        let rss0 = self.rss();
        let step = self.run_step(events, "stalled", dps, self.o.stalled_s);
        let rss_max = self.sh.rss_max_kib;
        // Read the stalled clients again (without measuring) to see which were closed.
        for &key in &stalled {
            if let Some(c) = self.conns.get_mut(key) {
                c.draining = true;
            }
            self.read(key, true);
        }
        let until = Instant::now() + Duration::from_secs(2);
        let n = stalled.len() as u64;
        self.pump(events, until, |g| g.sh.stalled_eof >= n);
        let closed_by_server = self.sh.stalled_eof;
        // Close the rest: they are out of step with the sequence numbers.
        for &key in &stalled {
            if let Some(c) = self.conns.get(key) {
                if c.draining {
                    self.close(key, "stalled reader retired");
                }
            }
        }
        let growth = rss_max.saturating_sub(rss0.unwrap_or(rss_max));
        json!({
            "stalled_clients": n,
            "closed_by_server": closed_by_server,
            "bytes_drained_after": self.sh.drained_bytes,
            "server_rss_kib_before": rss0,
            "server_rss_kib_max": rss_max,
            "rss_growth_kib": growth,
            "rss_growth_kib_per_stalled": if n > 0 { json!(growth as f64 / n as f64) } else { Value::Null },
            "step": step,
        })
    }

    fn rest_phase(&mut self, events: &mut Events, dps: f64) -> Value {
        self.sh.rest = Some(RestRun {
            interval: Duration::from_millis(self.o.rest_interval_ms.max(1)),
            next_at: Some(Instant::now()),
            ..RestRun::default()
        });
        let step = self.run_step(events, "rest", dps, self.o.step_s);
        if let Some(r) = self.sh.rest.as_mut() {
            r.next_at = None;
        }
        let until = Instant::now() + Duration::from_secs(5);
        self.pump(events, until, |g| {
            g.sh.rest.as_ref().is_none_or(|r| r.inflight == 0)
        });
        let r = self.sh.rest.take().unwrap_or_default();
        json!({
            "queries": r.started,
            "statuses": r.statuses,
            "max_query_ms": r.max_ms,
            "step": step,
        })
    }

    fn churn_phase(&mut self, events: &mut Events, dps: f64) -> Value {
        let rate = self.o.churn_rate.max(1.0);
        self.sh.churn = Some(ChurnRun {
            interval: Duration::from_secs_f64(1.0 / rate),
            next_at: Instant::now(),
            started: 0,
            ok: 0,
            failed: 0,
            inflight: 0,
            hist: new_hist(),
        });
        let step = self.run_step(events, "churn", dps, self.o.step_s);
        if let Some(ch) = self.sh.churn.as_mut() {
            ch.next_at = Instant::now() + Duration::from_secs(3600);
        }
        let until = Instant::now() + Duration::from_secs(5);
        self.pump(events, until, |g| {
            g.sh.churn.as_ref().is_none_or(|c| c.inflight == 0)
        });
        // Close cycles that did not finish.
        let left: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.role == Role::Churn)
            .map(|(k, _)| k)
            .collect();
        for key in left {
            self.close(key, "churn cycle timed out");
        }
        let Some(ch) = self.sh.churn.take() else {
            return Value::Null;
        };
        json!({
            "rate_per_s": rate,
            "cycles_started": ch.started,
            "cycles_ok": ch.ok,
            "cycles_failed": ch.failed,
            "cycle_p50_ms": ch.hist.value_at_quantile(0.5) as f64 / 1000.0,
            "cycle_p99_ms": ch.hist.value_at_quantile(0.99) as f64 / 1000.0,
            "step": step,
        })
    }
}

fn emit(target: &str, scenario: &str, common: &Value, body: Value) {
    let mut v = json!({ "target": target, "scenario": scenario });
    if let (Some(m), Some(c)) = (v.as_object_mut(), common.as_object()) {
        for (k, val) in c {
            m.insert(k.clone(), val.clone());
        }
        if let Some(b) = body.as_object() {
            for (k, val) in b {
                m.insert(k.clone(), val.clone());
            }
        } else {
            m.insert("result".into(), body);
        }
    }
    println!("{v}");
}

fn run(o: Opts) -> io::Result<i32> {
    let started = Instant::now();
    let mut g = Gen::new(o)?;
    let mut events = Events::with_capacity(4096);
    let target = g.o.target.clone();
    let mut common = json!({
        "telnet_clients": g.o.telnet_clients,
        "ws_clients": g.o.ws_clients,
        "channels": g.o.channels,
        "senders": g.sh.senders,
    });
    if let Some(m) = common.as_object_mut() {
        for (k, v) in &g.o.tags {
            m.insert(k.clone(), json!(v));
        }
    }
    let rss_before = g.rss();
    let total = g.total_clients();
    eprintln!(
        "[{target}] {} telnet + {} websocket clients, {} channel(s), {} sender(s)",
        g.o.telnet_clients, g.o.ws_clients, g.o.channels, g.sh.senders
    );
    let mut sizes: Vec<usize> = g.o.sizes.iter().copied().filter(|&n| n < total).collect();
    sizes.push(total);
    let t_connect = Instant::now();
    let mut code = 0;
    for &n in &sizes {
        if g.aborted {
            break;
        }
        let mut common = common.clone();
        if let Some(m) = common.as_object_mut() {
            m.insert("size".into(), json!(n));
        }
        // Grow: connect, identify, join; then the barrier.
        let t_grow = Instant::now();
        let joined = g.grow_to(&mut events, n);
        let grow_s = t_grow.elapsed().as_secs_f64();
        let (bar_ok, bar_s) = g.barrier(&mut events);
        let setup_ok = joined && bar_ok;
        // Let the server flush and settle before sampling its RSS.
        let until = Instant::now() + Duration::from_millis(300);
        g.pump(&mut events, until, |_| false);
        let rss = g.rss();
        let per_conn = match (rss, rss_before) {
            (Some(a), Some(b)) if g.sh.joined > 0 => {
                Some((a as f64 - b as f64) * 1024.0 / g.sh.joined as f64)
            }
            _ => None,
        };
        eprintln!(
            "[{target}] {} joined ({} failed) in {grow_s:.2} s, barrier {bar_s:.2} s{}, server RSS {} KiB{}",
            g.sh.joined,
            g.sh.failed,
            if bar_ok { "" } else { " (TIMED OUT)" },
            rss.map_or("-".into(), |r| r.to_string()),
            per_conn.map_or(String::new(), |b| format!(", {b:.0} B per connection"))
        );
        emit(
            &target,
            "setup",
            &common,
            json!({
                "ok": setup_ok,
                "joined": g.sh.joined,
                "failed": g.sh.failed,
                "retried": g.sh.retried,
                "grow_s": grow_s,
                "barrier_s": bar_s,
                "setup_s": t_connect.elapsed().as_secs_f64(),
                "server_rss_kib_before": rss_before,
                "server_rss_kib": rss,
                "rss_bytes_per_conn": per_conn,
                "errors": g.sh.errors,
            }),
        );
        if !setup_ok {
            let mut stuck: BTreeMap<String, u64> = BTreeMap::new();
            for (_, c) in g.conns.iter() {
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
                "[{target}] setup failed: errors {:?}, not joined: {stuck:?}",
                g.sh.errors
            );
            code = 1;
            break;
        }
        let mut phases = if g.o.phases_at.is_empty() || g.o.phases_at.contains(&n) {
            g.o.phases.clone()
        } else {
            Vec::new()
        };
        if g.o.extra_at == Some(n) {
            phases.extend(g.o.extra_phases.iter().copied());
        }
        for p in phases {
            if g.aborted {
                break;
            }
            run_phase(&mut g, &mut events, p, n, &common);
            // A short pause between phases.
            let until = Instant::now() + Duration::from_millis(100);
            g.pump(&mut events, until, |_| false);
        }
    }
    emit(
        &target,
        "end",
        &common,
        json!({
            "aborted": g.aborted,
            "wall_s": started.elapsed().as_secs_f64(),
            "disconnects": g.sh.disconnects,
            "errors": g.sh.errors,
        }),
    );
    if g.aborted {
        eprintln!("[{target}] stopped at --max-seconds");
        return Ok(3);
    }
    Ok(code)
}

fn run_phase(g: &mut Gen, events: &mut Events, p: Phase, size: usize, common: &Value) {
    let target = g.o.target.clone();
    match p {
        Phase::Knee => {
            let v = g.knee(events, size);
            eprintln!(
                "[{target}] knee at {size}: {:.0} deliveries/s{}",
                v["knee_dps"].as_f64().unwrap_or(0.0),
                if v["limited_by_generator"].as_bool().unwrap_or(false) {
                    " (the failing step saturated the generator)"
                } else {
                    ""
                }
            );
            emit(&target, "knee", common, v);
        }
        Phase::Fixed(d) => {
            let v = g.run_step(events, "fixed", d, g.o.step_s);
            emit(&target, "fixed", common, v);
        }
        Phase::Stalled(d) => {
            let v = g.stalled(events, d);
            eprintln!(
                "[{target}] stalled: {} stalled readers, {} closed by the server, RSS +{} KiB",
                v["stalled_clients"], v["closed_by_server"], v["rss_growth_kib"]
            );
            emit(&target, "stalled", common, v);
        }
        Phase::Rest(d) => {
            let v = g.rest_phase(events, d);
            eprintln!(
                "[{target}] rest queries: {} {}",
                v["queries"], v["statuses"]
            );
            emit(&target, "rest", common, v);
        }
        Phase::Churn(d) => {
            let v = g.churn_phase(events, d);
            eprintln!(
                "[{target}] churn: {} ok, {} failed",
                v["cycles_ok"], v["cycles_failed"]
            );
            emit(&target, "churn", common, v);
        }
    }
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(o) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}
