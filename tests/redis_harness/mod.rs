//! A real `redis-server` for the cluster tests: started on a free loopback port with its own
//! temporary directory and AOF on, stopped by PID when dropped; and a blocking client over
//! the crate's own RESP codec.
//!
//! Without `redis-server` on the PATH a test prints a loud SKIPPED banner and passes, except
//! under `CI` (which always installs it), where it fails.

#![allow(dead_code)]

use chat_server::cluster::scripts::{CallContext, Script};
use chat_server::cluster::PREFIX;
use chat_server::proto::resp::{as_bytes, as_int, encode_command, Frame, RespDecoder};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct Redis {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

/// The server, or `None` after a loud skip notice (a failure under `CI`).
pub fn redis_or_skip(test: &str) -> Option<Redis> {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{test} needs redis-server under CI, but it is not on the PATH");
        }
        eprintln!();
        eprintln!("************************************************************************");
        eprintln!("*** SKIPPED: {test} did NOT run: redis-server is not installed");
        eprintln!("***   (Debian: apt-get install redis-server; CI installs it)");
        eprintln!("************************************************************************");
        return None;
    }
    Some(Redis::start())
}

impl Redis {
    /// Starts a server; a port taken between probing and binding is retried.
    pub fn start() -> Redis {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "chat-redis-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--protected-mode", "yes"])
                .arg("--dir")
                .arg(&dir)
                .args(["--appendonly", "yes", "--appendfsync", "everysec"])
                .args(["--save", "", "--maxmemory-policy", "noeviction"])
                .args(["--logfile", "redis.log", "--daemonize", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut redis = Redis {
                child,
                port,
                dir: dir.clone(),
            };
            if redis.wait_ready() {
                return redis;
            }
            // Drop stops this one; try another port.
        }
        panic!(
            "redis-server did not start; see its log in {}",
            dir.display()
        );
    }

    fn wait_ready(&mut self) -> bool {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut c) = Conn::open(self.port) {
                if let Ok(Frame::SimpleString(s)) = c.try_call(&["PING"]) {
                    if s == b"PONG" {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn conn(&self) -> Conn {
        Conn::open(self.port).expect("connect to redis-server")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A blocking connection speaking RESP through the crate's codec.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    decoder: RespDecoder,
    frames: std::collections::VecDeque<Frame>,
}

impl Conn {
    pub fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(DEADLINE))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            decoder: RespDecoder::default(),
            frames: Default::default(),
        })
    }

    /// Sends commands without waiting for their replies.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let mut out = Vec::new();
        encode_command(&mut out, args);
        self.stream.write_all(&out).expect("write to redis");
    }

    /// The next reply.
    pub fn reply(&mut self) -> Frame {
        self.try_reply().expect("reply from redis")
    }

    fn try_reply(&mut self) -> std::io::Result<Frame> {
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Ok(f);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let mut got = Vec::new();
            self.decoder
                .drain(&mut self.buf, &mut got)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            self.frames.extend(got);
        }
    }

    fn try_call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<Frame> {
        let mut out = Vec::new();
        encode_command(&mut out, args);
        self.stream.write_all(&out)?;
        self.try_reply()
    }

    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Frame {
        self.send(args);
        self.reply()
    }

    /// `SCRIPT LOAD`: the script's SHA-1 as Redis computed it.
    pub fn load(&mut self, script: &Script) -> String {
        match self.call(&["SCRIPT", "LOAD", script.source]) {
            Frame::BulkString(sha) => String::from_utf8(sha).expect("hex sha"),
            other => panic!("SCRIPT LOAD {}: {other:?}", script.name),
        }
    }

    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        as_bytes(&self.call(&["GET", key])).map(<[u8]>::to_vec)
    }

    pub fn int(&mut self, args: &[&str]) -> i64 {
        let f = self.call(args);
        as_int(&f).unwrap_or_else(|| panic!("{args:?}: not an integer: {f:?}"))
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

/// Polls until `cond` holds or the deadline passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
