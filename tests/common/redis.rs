//! A real `redis-server` for the cluster tests: started from the PATH on a free loopback port
//! with its own temporary directory, `appendonly yes`, `appendfsync everysec` and
//! `maxmemory-policy noeviction`; killed, paused, resumed and restarted on the same directory
//! (so the AOF carries its data over) by PID; stopped by PID when dropped. [`Conn`] is a
//! small blocking RESP client over a `TcpStream` (through the crate's codec).
//!
//! Without `redis-server` on the PATH, [`redis_or_skip`] prints a loud SKIPPED banner and the
//! test passes, except under `CI` (which always installs it), where it fails.

use super::TempDir;
use chat_server::proto::resp::{as_bytes, as_int, encode_command, Frame, RespDecoder};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any single wait on Redis may take.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often polling loops look again (pacing only).
const POLL: Duration = Duration::from_millis(20);

/// Whether `redis-server` runs at all.
pub fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Prints the loud banner of a test that did not run because `redis-server` is missing
/// (straight to the process's stderr, so the test harness does not swallow it), or fails
/// the test under `CI`.
pub fn skip_without_redis(test: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs redis-server under CI, but it is not on the PATH");
    }
    let bar = "*".repeat(72);
    let _ = writeln!(
        io::stderr(),
        "\n{bar}\n*** SKIPPED: {test} did NOT run: redis-server is not installed\n\
         ***   (Debian: apt-get install redis-server; CI installs it)\n{bar}\n"
    );
}

/// A started server, or `None` after a loud skip notice (a failure under `CI`).
pub fn redis_or_skip(test: &str) -> Option<Redis> {
    if !redis_installed() {
        skip_without_redis(test);
        return None;
    }
    Some(Redis::start())
}

/// A `redis-server` process of this test, with its data directory.
pub struct Redis {
    child: Child,
    pub port: u16,
    dir: TempDir,
    /// `requirepass`, when set.
    password: Option<String>,
}

impl Redis {
    /// Starts a server on a free port; a port taken between probing and binding is retried.
    pub fn start() -> Redis {
        Redis::start_with_password(None)
    }

    /// [`Redis::start`], with `requirepass` when `password` is given.
    pub fn start_with_password(password: Option<&str>) -> Redis {
        let dir = TempDir::new("redis");
        let password = password.map(str::to_string);
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            if let Some(child) = spawn_ready(port, dir.path(), password.as_deref()) {
                return Redis {
                    child,
                    port,
                    dir,
                    password,
                };
            }
        }
        panic!("redis-server did not start; {}", log_tail(dir.path()));
    }

    /// `127.0.0.1:PORT`, as a node's config names it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn conn(&self) -> Conn {
        Conn::open_auth(self.port, self.password.as_deref()).expect("connect to redis-server")
    }

    /// `kill -9`, then reaps the process.
    pub fn kill9(&mut self) {
        // Child::kill sends SIGKILL to this child's own PID (not reaped yet, so not reused).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `kill -STOP`: the process keeps its sockets but answers nothing.
    pub fn stop(&self) {
        signal(self.pid(), libc::SIGSTOP);
    }

    /// `kill -CONT`.
    pub fn cont(&self) {
        signal(self.pid(), libc::SIGCONT);
    }

    /// Starts the server again on the same port and directory (after [`Redis::kill9`], or
    /// killing it first): what its AOF holds is loaded again. Retries while the port is still
    /// held by the old process's sockets.
    pub fn restart(&mut self) {
        self.kill9();
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(child) = spawn_ready(self.port, self.dir.path(), self.password.as_deref()) {
                self.child = child;
                return;
            }
            assert!(
                Instant::now() < end,
                "redis-server did not restart on port {}; {}",
                self.port,
                log_tail(self.dir.path())
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `FLUSHALL`: Redis loses every key, as a restart without persistence would.
    pub fn flushall(&self) {
        let reply = self.conn().call(&["FLUSHALL"]);
        assert_eq!(reply, Frame::SimpleString(b"OK".to_vec()), "FLUSHALL");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too; by PID, this child only.
        self.kill9();
    }
}

/// Sends `sig` to `pid` (a process this test started).
pub fn signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a PID fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}): {}", io::Error::last_os_error());
}

/// Spawns `redis-server` on `port` in `dir` (with `requirepass` when `password` is given) and
/// waits until it answers `INFO` with its own process id; `None` (the process stopped) when it
/// exits first or never answers, e.g. because the port is taken (by another test's server,
/// which must not be mistaken for this one).
fn spawn_ready(port: u16, dir: &Path, password: Option<&str>) -> Option<Child> {
    let mut command = Command::new("redis-server");
    if let Some(pw) = password {
        command.args(["--requirepass", pw]);
    }
    let mut child = command
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--protected-mode", "yes"])
        .arg("--dir")
        .arg(dir)
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .args(["--save", "", "--maxmemory-policy", "noeviction"])
        .args(["--logfile", "redis.log", "--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if let Ok(mut c) = Conn::open_auth(port, password) {
            // Ours, not another test's server that took the port meanwhile.
            let pid_line = format!("process_id:{}", child.id());
            let info = c.try_call(&["INFO", "server"]);
            if matches!(&info, Ok(f) if as_bytes(f).is_some_and(|b| {
                String::from_utf8_lossy(b).lines().any(|l| l.trim() == pid_line)
            })) {
                return Some(child);
            }
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The end of the server's own log, for failure messages.
fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("the end of its log in {}:\n{tail}", dir.display())
}

/// A blocking connection speaking RESP.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    decoder: RespDecoder,
    frames: VecDeque<Frame>,
}

impl Conn {
    pub fn open(port: u16) -> io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(DEADLINE))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            decoder: RespDecoder::default(),
            frames: VecDeque::new(),
        })
    }

    /// [`Conn::open`], then `AUTH` when `password` is given.
    pub fn open_auth(port: u16, password: Option<&str>) -> io::Result<Conn> {
        let mut c = Conn::open(port)?;
        if let Some(pw) = password {
            match c.try_call(&["AUTH", pw])? {
                Frame::SimpleString(ok) if ok == b"OK" => {}
                other => {
                    let e = format!("AUTH: {other:?}");
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, e));
                }
            }
        }
        Ok(c)
    }

    /// Sends a command without waiting for its reply.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let mut out = Vec::new();
        encode_command(&mut out, args);
        self.stream.write_all(&out).expect("write to redis");
    }

    /// The next reply.
    pub fn reply(&mut self) -> Frame {
        self.try_reply().expect("reply from redis")
    }

    fn try_reply(&mut self) -> io::Result<Frame> {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Ok(f);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let mut got = Vec::new();
            self.decoder
                .drain(&mut self.buf, &mut got)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.frames.extend(got);
        }
    }

    fn try_call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Frame> {
        let mut out = Vec::new();
        encode_command(&mut out, args);
        self.stream.write_all(&out)?;
        self.try_reply()
    }

    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Frame {
        self.send(args);
        self.reply()
    }

    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        as_bytes(&self.call(&["GET", key])).map(<[u8]>::to_vec)
    }

    pub fn int(&mut self, args: &[&str]) -> i64 {
        let f = self.call(args);
        as_int(&f).unwrap_or_else(|| panic!("{args:?}: not an integer: {f:?}"))
    }
}

/// Polls until `cond` holds or [`DEADLINE`] passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}
