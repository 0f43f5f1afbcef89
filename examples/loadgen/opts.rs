//! Command-line options and the phase list.

use std::net::SocketAddr;

pub const USAGE: &str = "\
loadgen: fan-out load generator for chat-server and the baselines

USAGE: loadgen [OPTIONS]
  --telnet HOST:PORT,..     telnet chat port; several (a comma list, or the option
                            repeated) spread the members over that many server nodes
  --ws HOST:PORT,..         WebSocket chat port (GET /ws); several as --telnet
  --rest HOST:PORT          REST port (for rest:D phases)
  --token TOKEN             admin bearer token for the REST query
  --telnet-clients N        telnet clients (default 0)
  --ws-clients M            WebSocket clients (default 0); kinds are interleaved
  --channels C              channels, clients spread round-robin (default 1)
  --senders K               publishing clients (default 1; at least C)
  --connect-rate R          new connections per second (default 10000)
  --max-inflight N          connections being set up at once (default 200)
  --src-addrs N             client source addresses 127.0.0.2.. (default 8)
  --server-pid PID,..       read CPU and RSS of this process from /proc; with several
                            nodes, one per node in the order of --telnet (summed, and
                            reported per node)
  --order-check             record the id of every message each member receives and
                            check after each step that the members of a channel received
                            the messages in one order (cross-node order check)
  --redis HOST:PORT         a cluster's Redis: its CPU (process_id from INFO, /proc) and
                            the appends ({chat}:seq) and EVALSHA calls during each step
  --redis-password PW       sent with AUTH to --redis
  --target NAME             label for the output (default \"server\")
  --sizes A,B,..            grow the client set in these steps (default: all at once);
                            at each size: barrier, idle RSS sample, then --phases
  --phases LIST             comma list: knee, fixed:D, stalled:D, rest:D, churn:D,
                            overload[:D] (D = offered deliveries per second; overload
                            without D uses the knee found before at the same size), run
                            at every size
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
  --overload-s S            overload: seconds at twice the load (default 10)
  --recover-s S             overload: seconds at the load afterwards (default 10)
  --churn-rate R            connect/identify/quit cycles per second in churn:D (default 200)
  --rest-interval-ms MS     REST query period in rest:D (default 100)
  --rest-concurrency N      REST queries running at once, at most (default 4)
  --rest-pattern RE         the query's pattern, URL-encoded (default b0%3A)
  --setup-timeout S         deadline to connect, join and pass the barrier (default 120)
  --max-seconds S           hard deadline for the whole run (default 600)
  --read-batch-us US        least time between two busy polls, so reads coalesce
                            (default 500; 0 turns it off)
";

/// One load phase after setup.
#[derive(Clone, Copy, Debug)]
pub enum Phase {
    Knee,
    Fixed(f64),
    Stalled(f64),
    Rest(f64),
    Churn(f64),
    /// Twice the load for `--overload-s`, then the load for `--recover-s`; the load is the
    /// given one, or the knee found earlier at the same size.
    Overload(Option<f64>),
}

pub struct Opts {
    /// Telnet and WebSocket ports, one per node (member `i` uses node `node_of(i)`).
    pub telnet: Vec<SocketAddr>,
    pub ws: Vec<SocketAddr>,
    pub rest: Option<SocketAddr>,
    pub order_check: bool,
    pub redis: Option<SocketAddr>,
    pub redis_password: Option<String>,
    pub token: String,
    pub telnet_clients: usize,
    pub ws_clients: usize,
    pub channels: usize,
    pub senders: usize,
    pub connect_rate: f64,
    pub max_inflight: usize,
    pub src_addrs: u8,
    pub server_pids: Vec<u32>,
    pub target: String,
    pub sizes: Vec<usize>,
    pub phases: Vec<Phase>,
    pub extra_at: Option<usize>,
    pub phases_at: Vec<usize>,
    pub extra_phases: Vec<Phase>,
    pub tags: Vec<(String, String)>,
    pub knee_factor: f64,
    /// Phase rates and --knee-start are messages per second instead of deliveries.
    pub msgs: bool,
    pub knee_hints: Option<String>,
    pub step_s: f64,
    pub p99_ms: f64,
    pub knee_start: f64,
    pub knee_steps: usize,
    pub knee_bisect: usize,
    pub stalled_share: f64,
    pub stalled_s: f64,
    pub churn_rate: f64,
    pub overload_s: f64,
    pub recover_s: f64,
    pub rest_interval_ms: u64,
    pub rest_concurrency: usize,
    pub rest_pattern: String,
    pub setup_timeout_s: f64,
    pub max_seconds: f64,
    pub read_batch_us: u64,
}

pub fn parse_list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.trim()
                .parse::<T>()
                .map_err(|_| format!("bad list item {p:?}"))
        })
        .collect()
}

/// Every value of an option given several times, each a comma list.
fn repeated_list<T: std::str::FromStr>(
    a: &mut pico_args::Arguments,
    key: &'static str,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for v in a
        .values_from_str::<_, String>(key)
        .map_err(|e| e.to_string())?
    {
        out.extend(parse_list(&v).map_err(|e| format!("{key}: {e}"))?);
    }
    Ok(out)
}

impl Opts {
    /// Server nodes the members are spread over.
    pub fn nodes(&self) -> usize {
        self.telnet.len().max(self.ws.len()).max(1)
    }

    /// The node of member `i`: round-robin within its channel, the first member of channel
    /// `c` on node `c` (so the senders of different channels start on different nodes).
    pub fn node_of(&self, i: usize) -> usize {
        let nodes = self.nodes();
        (i / self.channels + i % self.channels) % nodes
    }

    /// The address of `list` for node `n` (a list of one serves every node).
    pub fn addr_for(list: &[SocketAddr], n: usize) -> Option<SocketAddr> {
        list.get(n).or_else(|| list.first()).copied()
    }
}

pub fn parse_phases(s: &str) -> Result<Vec<Phase>, String> {
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
            "overload" => Phase::Overload(arg.map(|_| rate()).transpose()?),
            _ => return Err(format!("unknown phase {name:?}")),
        });
    }
    Ok(out)
}

pub fn parse_opts() -> Result<Opts, String> {
    let mut a = pico_args::Arguments::from_env();
    if a.contains(["-h", "--help"]) {
        print!("{USAGE}");
        std::process::exit(0);
    }
    let e = |e: pico_args::Error| e.to_string();
    let o = Opts {
        telnet: repeated_list(&mut a, "--telnet")?,
        ws: repeated_list(&mut a, "--ws")?,
        rest: a.opt_value_from_str("--rest").map_err(e)?,
        order_check: a.contains("--order-check"),
        redis: a.opt_value_from_str("--redis").map_err(e)?,
        redis_password: a.opt_value_from_str("--redis-password").map_err(e)?,
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
        server_pids: repeated_list(&mut a, "--server-pid")?,
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
        overload_s: a
            .opt_value_from_str("--overload-s")
            .map_err(e)?
            .unwrap_or(10.0),
        recover_s: a
            .opt_value_from_str("--recover-s")
            .map_err(e)?
            .unwrap_or(10.0),
        churn_rate: a
            .opt_value_from_str("--churn-rate")
            .map_err(e)?
            .unwrap_or(200.0),
        rest_concurrency: a
            .opt_value_from_str("--rest-concurrency")
            .map_err(e)?
            .unwrap_or(4),
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
    if o.telnet_clients > 0 && o.telnet.is_empty() {
        return Err("--telnet-clients needs --telnet".into());
    }
    if o.ws_clients > 0 && o.ws.is_empty() {
        return Err("--ws-clients needs --ws".into());
    }
    let nodes = o.nodes();
    if o.telnet.len() > 1 && o.telnet.len() != nodes || o.ws.len() > 1 && o.ws.len() != nodes {
        return Err(format!(
            "--telnet ({}) and --ws ({}) must name the same number of nodes (or one)",
            o.telnet.len(),
            o.ws.len()
        ));
    }
    if nodes > 255 {
        return Err("at most 255 nodes".into());
    }
    if o.server_pids.len() > 1 && o.server_pids.len() != nodes {
        return Err(format!(
            "--server-pid names {} processes for {nodes} nodes",
            o.server_pids.len()
        ));
    }
    if o.channels == 0 || o.src_addrs == 0 || o.src_addrs > 200 {
        return Err("--channels and --src-addrs (1..200) must be positive".into());
    }
    let all = || o.phases.iter().chain(o.extra_phases.iter());
    if all().any(|p| matches!(p, Phase::Rest(_))) && o.rest.is_none() {
        return Err("rest:D phases need --rest".into());
    }
    if all().any(|p| matches!(p, Phase::Churn(_))) && o.telnet.is_empty() {
        return Err("churn:D phases need --telnet".into());
    }
    Ok(o)
}
