//! Test harness shared by the integration tests: a real `chat-server` process on ports picked
//! by the kernel, a small raw telnet client, and in [`http`] and [`ws`] raw HTTP/1.1 and
//! WebSocket clients.
//!
//! Every wait here is a loop on a condition with a generous deadline; nothing relies on a
//! fixed sleep for correctness, so the tests hold on a busy two-core machine.
//!
//! Not every test binary uses every helper.
#![allow(dead_code)]

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod cluster;
pub mod http;
pub mod probe;
pub mod procfs;
pub mod redis;
pub mod sockets;
pub mod tools;
pub mod ws;

/// The default deadline of every wait: generous, so a loaded machine never fails a test.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How often polling loops look again. Only a pacing interval, never an assertion.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Path of the server binary built by cargo for this test run.
pub fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_chat-server")
}

/// A TCP connection to `addr` with `TCP_NODELAY`, retrying briefly on refusal (which a
/// listener never gives once it printed its address, but costs nothing).
pub fn connect_tcp(addr: SocketAddr) -> TcpStream {
    let end = Instant::now() + DEADLINE;
    loop {
        match TcpStream::connect_timeout(&addr, DEADLINE) {
            Ok(s) => {
                s.set_nodelay(true).unwrap();
                return s;
            }
            Err(e) if Instant::now() < end => {
                let _ = e;
                thread::sleep(POLL_INTERVAL);
            }
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }
}

/// Reads once from `stream` onto the end of `buf`, waiting at most until `end`: `Ok(true)` when
/// bytes came or the peer closed (`eof` is then set), `Ok(false)` on timeout (and at once when
/// `eof` is already set), `Err` on a reset (`eof` is set too).
pub fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    eof: &mut bool,
    end: Instant,
) -> io::Result<bool> {
    if *eof {
        return Ok(false);
    }
    let left = end.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(false);
    }
    stream
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .unwrap();
    let mut chunk = [0u8; 65536];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => {
                *eof = true;
                return Ok(true);
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                *eof = true;
                return Err(e);
            }
        }
    }
}

// ------------------------------------------------------------------------------ temp dirs

/// A fresh directory under the system temp dir, removed (with its contents) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/chat-server-test-<tag>-<pid>-<n>-<nanos>`.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "chat-server-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ------------------------------------------------------------------------------ output capture

/// Reads a child's pipe to its end on a thread, appending to a shared buffer, so the pipe
/// never fills up and blocks the server.
fn drain<R: Read + Send + 'static>(mut pipe: R, sink: Arc<Mutex<Vec<u8>>>) {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
}

/// `kind -> address` for every `KIND listening on IP:PORT` in a start-up log.
pub fn parse_listening(text: &str) -> BTreeMap<String, SocketAddr> {
    let mut found = BTreeMap::new();
    for line in text.lines() {
        let Some(at) = line.find(" listening on ") else {
            continue;
        };
        let kind = line[..at].rsplit(' ').next().unwrap_or("");
        if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let rest = &line[at + " listening on ".len()..];
        let addr_text: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        if let Ok(addr) = addr_text.parse::<SocketAddr>() {
            found.insert(kind.to_string(), addr);
        }
    }
    found
}

// ------------------------------------------------------------------------------ the server

/// How to start a server beyond its config.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Listener kinds to wait for before returning (default: telnet).
    pub kinds: Vec<String>,
    /// Open-file limit for the process (`ulimit -n`).
    pub fd_limit: Option<u64>,
    /// Bytes the log file holds before the server starts (e.g. a torn last line).
    pub log_prefill: Option<Vec<u8>>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Run in this existing directory (config, log file, working directory), which the
    /// caller owns and which outlives the server: a restart in the same directory keeps the
    /// log. `None`: a fresh temp dir, removed with the server.
    pub dir: Option<PathBuf>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            kinds: vec!["telnet".to_string()],
            fd_limit: None,
            log_prefill: None,
            env: Vec::new(),
            dir: None,
        }
    }
}

/// A running `chat-server` with its own config, log file and temp dir.
pub struct Server {
    child: Child,
    pid: u32,
    exit: Option<ExitStatus>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout: Arc<Mutex<Vec<u8>>>,
    log_path: PathBuf,
    config_path: PathBuf,
    config: Value,
    dir_path: PathBuf,
    // Last, so the directory goes after the process; `None` when the caller owns it.
    _owned_dir: Option<TempDir>,
}

impl Server {
    /// Starts a server on 127.0.0.1 with every port 0 and a fresh log file; `extra` (a JSON
    /// object) adds or overrides config keys. Waits for the telnet listener.
    pub fn start(extra: Value) -> Server {
        Server::start_expecting(extra, &["telnet"])
    }

    /// Like [`Server::start`], with the default config.
    pub fn start_default() -> Server {
        Server::start(json!({}))
    }

    /// Starts the server and waits until a `KIND listening on` line has been printed for
    /// every kind in `kinds` (e.g. `["telnet", "websocket", "rest"]`).
    pub fn start_expecting(extra: Value, kinds: &[&str]) -> Server {
        Server::start_with(
            extra,
            StartOptions {
                kinds: kinds.iter().map(|k| k.to_string()).collect(),
                ..StartOptions::default()
            },
        )
    }

    /// Starts the server with [`StartOptions`].
    pub fn start_with(extra: Value, options: StartOptions) -> Server {
        Server::try_start_with(extra, options).unwrap_or_else(|why| panic!("{why}"))
    }

    /// Like [`Server::start_with`], but a server that exits or never prints a listener comes
    /// back as an error (with its stderr) instead of failing the test.
    pub fn try_start_with(extra: Value, options: StartOptions) -> Result<Server, String> {
        let (owned_dir, dir_path) = match &options.dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = TempDir::new("server");
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let log_path = dir_path.join("chat.log");
        if let Some(prefill) = &options.log_prefill {
            std::fs::write(&log_path, prefill).unwrap();
        }
        let mut config = json!({
            "ip": "127.0.0.1",
            "telnet_port": 0,
            "rest_port": 0,
            "websocket_port": 0,
            "log_file": log_path.to_str().expect("temp dir path is UTF-8"),
        });
        let Value::Object(extra) = extra else {
            panic!("Server::start takes a JSON object, got {extra}");
        };
        let map: &mut Map<String, Value> = config.as_object_mut().unwrap();
        for (k, v) in extra {
            map.insert(k, v);
        }
        let config_path = dir_path.join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let mut command = match options.fd_limit {
            // `exec` keeps the PID: the shell becomes the server.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(server_bin());
                c
            }
            None => Command::new(server_bin()),
        };
        command.arg("-c").arg(&config_path).current_dir(&dir_path);
        for (k, v) in &options.env {
            command.env(k, v);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server_bin()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        drain(child.stderr.take().unwrap(), stderr.clone());
        drain(child.stdout.take().unwrap(), stdout.clone());
        let pid = child.id();
        let mut server = Server {
            child,
            pid,
            exit: None,
            stderr,
            stdout,
            log_path,
            config_path,
            config,
            dir_path,
            _owned_dir: owned_dir,
        };
        for kind in &options.kinds {
            server.try_addr(kind)?;
        }
        Ok(server)
    }

    /// The address of the listener of `kind` ("telnet", "websocket", "rest"), waiting up to
    /// [`DEADLINE`] for its start-up line. Panics with the server's stderr if it never comes.
    pub fn addr(&mut self, kind: &str) -> SocketAddr {
        self.try_addr(kind).unwrap_or_else(|why| panic!("{why}"))
    }

    /// Like [`Server::addr`], but why the line never came is returned, not a failure.
    pub fn try_addr(&mut self, kind: &str) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(addr) = parse_listening(&self.stderr_text()).get(kind) {
                return Ok(*addr);
            }
            if let Some(status) = self.try_wait() {
                // Let the drain thread catch the last words.
                thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "the server exited ({status}) before printing \"{kind} listening on\"; stderr:\n{}",
                    self.stderr_text()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no \"{kind} listening on\" line within {DEADLINE:?}; stderr:\n{}",
                    self.stderr_text()
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Every listener printed so far, by kind.
    pub fn addrs(&self) -> BTreeMap<String, SocketAddr> {
        parse_listening(&self.stderr_text())
    }

    /// The telnet listener's address.
    pub fn telnet_addr(&self) -> SocketAddr {
        *self
            .addrs()
            .get("telnet")
            .unwrap_or_else(|| panic!("no telnet listener; stderr:\n{}", self.stderr_text()))
    }

    /// A connected telnet client (not yet past the greeting).
    pub fn telnet(&self) -> Telnet {
        Telnet::connect(self.telnet_addr())
    }

    /// A telnet client that read the greeting and chose `nick`.
    pub fn user(&self, nick: &str) -> Telnet {
        let mut t = self.telnet();
        t.expect_match("the greeting", |l| {
            l.starts_with("Welcome to chat server. There are ")
        });
        t.send_line(nick);
        t.expect(&thanks(nick));
        t
    }

    /// A user that joined `channel` (the `There are N` and `just joined` lines consumed, and
    /// the replay of the channel's recent messages between them, if any).
    pub fn user_in(&self, nick: &str, channel: &str) -> Telnet {
        let mut t = self.user(nick);
        t.send_line(&format!("/join {channel}"));
        t.expect_match("the others-count line", |l| {
            l.starts_with("There are ") && l.ends_with(" other users in this channel.")
        });
        let line = t.next_line();
        let line = if line.starts_with("Recent messages in ") {
            t.wait_for("the end of the replay", |l| l == "End of recent messages.");
            t.next_line()
        } else {
            line
        };
        assert!(
            is_event(&line, nick, &format!("just joined channel {channel}")),
            "expected the joined notice, got {line:?}; {}",
            t.context()
        );
        t
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The config the server was started with.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// The REST admin token: `admin_token` from the config when set, else the generated one
    /// the server printed at start-up (the last word of its `admin token` line), if any.
    pub fn admin_token(&self) -> Option<String> {
        if let Some(t) = self.config["admin_token"].as_str() {
            return Some(t.to_string());
        }
        self.stderr_text()
            .lines()
            .find(|l| l.to_lowercase().contains("admin token"))
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_string)
    }

    /// Everything the server wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// The chat log's records so far. A last line still without its `\n` is left out; any
    /// complete line that is not a JSON object fails the test.
    pub fn log_records(&self) -> Vec<Value> {
        let bytes = match std::fs::read(&self.log_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("cannot read the log {}: {e}", self.log_path.display()),
        };
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(i) => &bytes[..=i],
            None => return Vec::new(),
        };
        complete
            .split(|&b| b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(|l| {
                let v: Value = serde_json::from_slice(l).unwrap_or_else(|e| {
                    panic!(
                        "log line is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(l)
                    )
                });
                assert!(v.is_object(), "log line is not an object: {v}");
                v
            })
            .collect()
    }

    /// The records of one `kind`.
    pub fn log_kind(&self, kind: &str) -> Vec<Value> {
        self.log_records()
            .into_iter()
            .filter(|r| r["kind"] == kind)
            .collect()
    }

    /// Waits until some log record satisfies `pred`; returns it. Fails with the log.
    pub fn wait_log(&self, what: &str, deadline: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + deadline;
        loop {
            let records = self.log_records();
            if let Some(r) = records.iter().find(|r| pred(r)) {
                return r.clone();
            }
            if Instant::now() >= end {
                panic!(
                    "no log record {what} within {deadline:?}; log:\n{}",
                    render_records(&records)
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends SIGTERM (with the `kill` command) unless the process already exited.
    pub fn sigterm(&mut self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`) to this server only.
    pub fn signal(&mut self, name: &str) {
        if self.try_wait().is_some() {
            return;
        }
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()
            .expect("cannot run kill");
        assert!(
            status.success(),
            "kill -{name} {} failed: {status}",
            self.pid
        );
    }

    /// The exit status, if the process has exited (non-blocking).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait failed");
        }
        self.exit
    }

    /// Waits up to `deadline` for the process to exit.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + deadline;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// CPU time the server used so far, in clock ticks (utime + stime).
    pub fn cpu_ticks(&self) -> u64 {
        cpu_ticks(self.pid)
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid)
    }

    /// Runs `tick` every 100 ms (pacing only) for `span`; returns the CPU seconds the server
    /// used meanwhile and the wall seconds that passed, to tell a busy loop from an idle one.
    pub fn cpu_during(&self, span: Duration, mut tick: impl FnMut()) -> (f64, f64) {
        let tck = clk_tck() as f64;
        let t0 = Instant::now();
        let cpu0 = self.cpu_ticks();
        while t0.elapsed() < span {
            tick();
            thread::sleep(Duration::from_millis(100));
        }
        let cpu = (self.cpu_ticks() - cpu0) as f64 / tck;
        (cpu, t0.elapsed().as_secs_f64())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            // Our own child only: `Child::kill` signals exactly this PID (not yet reaped, so
            // it cannot have been reused).
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One line per record, for failure messages.
pub fn render_records(records: &[Value]) -> String {
    let mut s = String::new();
    for r in records {
        let _ = writeln!(s, "{r}");
    }
    s
}

// ------------------------------------------------------------------------------ /proc

/// Clock ticks per second (`getconf CLK_TCK`, 100 when that fails).
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime of `pid` in clock ticks, from `/proc/PID/stat`.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/stat: {e}"));
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')').expect("malformed stat") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// Open file descriptors of `pid`, from `/proc/PID/fd`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// VmRSS of `pid` in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("no VmRSS in /proc/PID/status")
}

// ------------------------------------------------------------------------------ strings

pub const SHUTDOWN: &str = "The server is shutting down, good bye.";
pub const NICK_TIMEOUT: &str = "You did not enter a nickname in time, good bye.";
pub const HELP_HEADER: &str = "Here is the list of all available commands";

/// The greeting, with `n` other users on the server.
pub fn welcome(n: usize) -> String {
    format!(
        "Welcome to chat server. There are {n} other users on this server. please enter a nickname"
    )
}

/// The answer to `/join`, with `n` other users in the channel.
pub fn others(n: usize) -> String {
    format!("There are {n} other users in this channel.")
}

/// The answer to `/quit`.
pub fn good_bye(nick: &str) -> String {
    format!("Good Bye {nick}, come back again.")
}

/// `<KITCHEN> - *Private from @from: text`
pub fn is_private_from(line: &str, from: &str, text: &str) -> bool {
    line.split_once(" - *Private from @")
        .is_some_and(|(k, rest)| is_kitchen(k) && rest == format!("{from}: {text}"))
}

/// `<KITCHEN> - *Private to @to: text`
pub fn is_private_to(line: &str, to: &str, text: &str) -> bool {
    line.split_once(" - *Private to @")
        .is_some_and(|(k, rest)| is_kitchen(k) && rest == format!("{to}: {text}"))
}

/// `Thanks <nick>, ...`: the reply to an accepted nickname.
pub fn thanks(nick: &str) -> String {
    format!(
        "Thanks {nick}, now please type /join #channel to join a channel or /help to get all commands"
    )
}

/// Splits `3:04PM-@nick: text` (a chat line) into `(nick, text)`.
pub fn parse_chat(line: &str) -> Option<(&str, &str)> {
    let (kitchen, rest) = line.split_once("-@")?;
    if !is_kitchen(kitchen) {
        return None;
    }
    rest.split_once(": ")
}

/// A `3:04PM`-style time stamp.
pub fn is_kitchen(s: &str) -> bool {
    let Some(body) = s.strip_suffix("AM").or_else(|| s.strip_suffix("PM")) else {
        return false;
    };
    let Some((h, m)) = body.split_once(':') else {
        return false;
    };
    let hour_ok = matches!(h.parse::<u32>(), Ok(1..=12)) && !h.starts_with('0');
    hour_ok && m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit()) && m < "60"
}

/// True for `<KITCHEN>-@nick <what>`, e.g. `3:04PM-@bob just joined channel #a`.
pub fn is_event(line: &str, nick: &str, what: &str) -> bool {
    match line.split_once("-@") {
        Some((kitchen, rest)) => is_kitchen(kitchen) && rest == format!("{nick} {what}"),
        None => false,
    }
}

/// True for a chat line from `nick` with exactly `text`.
pub fn is_chat(line: &str, nick: &str, text: &str) -> bool {
    parse_chat(line) == Some((nick, text))
}

// ------------------------------------------------------------------------------ telnet client

/// A raw TCP client speaking the server's telnet dialect; it keeps every byte it read.
pub struct Telnet {
    stream: TcpStream,
    /// Bytes read but not yet consumed.
    buf: Vec<u8>,
    /// Every line consumed so far, for failure messages.
    seen: Vec<String>,
    eof: bool,
    /// The deadline of every wait of this client.
    pub timeout: Duration,
}

/// The result of reading until the peer closes.
#[derive(Debug)]
pub struct Closed {
    /// Bytes that arrived before the end.
    pub bytes: Vec<u8>,
    /// Whether the connection ended with a reset rather than a clean EOF.
    pub reset: bool,
}

impl Closed {
    /// The bytes as CRLF-terminated lines (a trailing partial line included).
    pub fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.bytes);
        let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
        if lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    }
}

impl Telnet {
    /// Connects (see [`connect_tcp`]).
    pub fn connect(addr: SocketAddr) -> Telnet {
        Telnet::from_stream(connect_tcp(addr))
    }

    /// Wraps a stream connected elsewhere (e.g. by a test that must see a refusal).
    pub fn from_stream(stream: TcpStream) -> Telnet {
        stream.set_nodelay(true).unwrap();
        Telnet {
            stream,
            buf: Vec::new(),
            seen: Vec::new(),
            eof: false,
            timeout: DEADLINE,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// Sends `line` followed by CR LF.
    pub fn send_line(&mut self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.send_raw(&bytes);
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write failed: {e}; {}", self.context()));
    }

    /// Like [`Telnet::send_raw`], but a failure is returned (for peers the server may close).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Closes the write half (the server sees EOF).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// A description of what this client has read, for failure messages.
    pub fn context(&self) -> String {
        format!(
            "lines read so far: {:#?}; unconsumed bytes: {:?}",
            self.seen,
            String::from_utf8_lossy(&self.buf)
        )
    }

    /// Reads once more into `buf`, waiting at most until `end` (see [`read_more`]).
    fn fill(&mut self, end: Instant) -> io::Result<bool> {
        read_more(&mut self.stream, &mut self.buf, &mut self.eof, end)
    }

    /// The next CRLF-terminated line, or `None` at EOF/timeout (with `why` set).
    fn try_next_line(&mut self, end: Instant) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
                let line = String::from_utf8_lossy(&line).into_owned();
                self.seen.push(line.clone());
                return Ok(line);
            }
            if self.eof {
                return Err("the server closed the connection".into());
            }
            match self.fill(end) {
                Ok(true) => {}
                Ok(false) => {
                    if self.eof {
                        return Err("the server closed the connection".into());
                    }
                    return Err("no complete line before the deadline".to_string());
                }
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
    }

    /// The next line within `deadline`, or why there is none (EOF, reset, timeout); never
    /// fails the test.
    pub fn line_within(&mut self, deadline: Duration) -> Result<String, String> {
        self.try_next_line(Instant::now() + deadline)
    }

    /// The next line; fails the test after [`Telnet::timeout`] or at EOF.
    pub fn next_line(&mut self) -> String {
        let end = Instant::now() + self.timeout;
        self.try_next_line(end)
            .unwrap_or_else(|why| panic!("expected a line: {why}; {}", self.context()))
    }

    /// The next line must be exactly `expected`.
    pub fn expect(&mut self, expected: &str) {
        let end = Instant::now() + self.timeout;
        match self.try_next_line(end) {
            Ok(line) if line == expected => {}
            Ok(line) => panic!(
                "expected the line {expected:?}, got {line:?}; {}",
                self.context()
            ),
            Err(why) => panic!("expected the line {expected:?}: {why}; {}", self.context()),
        }
    }

    /// The next line must satisfy `pred` (`what` describes it for the failure message).
    pub fn expect_match(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + self.timeout;
        match self.try_next_line(end) {
            Ok(line) if pred(&line) => line,
            Ok(line) => panic!("expected {what}, got {line:?}; {}", self.context()),
            Err(why) => panic!("expected {what}: {why}; {}", self.context()),
        }
    }

    /// Skips lines until one satisfies `pred`; returns the skipped lines and the match.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> (Vec<String>, String) {
        let end = Instant::now() + self.timeout;
        let mut skipped = Vec::new();
        loop {
            match self.try_next_line(end) {
                Ok(line) if pred(&line) => return (skipped, line),
                Ok(line) => skipped.push(line),
                Err(why) => panic!("waiting for {what}: {why}; {}", self.context()),
            }
        }
    }

    /// The next `n` raw bytes must be exactly `expected`.
    pub fn expect_bytes(&mut self, expected: &[u8]) {
        let end = Instant::now() + self.timeout;
        while self.buf.len() < expected.len() {
            match self.fill(end) {
                Ok(true) if !self.eof => {}
                other => panic!(
                    "expected the bytes {expected:02x?}, got {:02x?} ({other:?}, eof {}); {}",
                    self.buf,
                    self.eof,
                    self.context()
                ),
            }
        }
        let got: Vec<u8> = self.buf.drain(..expected.len()).collect();
        assert_eq!(got, expected, "unexpected bytes; {}", self.context());
    }

    /// Reads until the server closes the connection (EOF or reset) or `deadline` passes.
    /// `None` on timeout. Returns every unconsumed byte.
    pub fn read_until_eof(&mut self, deadline: Duration) -> Option<Closed> {
        let end = Instant::now() + deadline;
        let mut reset = false;
        while !self.eof {
            match self.fill(end) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(_) => reset = true,
            }
        }
        Some(Closed {
            bytes: std::mem::take(&mut self.buf),
            reset,
        })
    }

    /// Fails unless the server closes the connection within `deadline`.
    pub fn assert_closed_within(&mut self, deadline: Duration) -> Closed {
        match self.read_until_eof(deadline) {
            Some(c) => c,
            None => panic!(
                "the server did not close the connection within {deadline:?}; {}",
                self.context()
            ),
        }
    }

    /// Every line consumed so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }
}
