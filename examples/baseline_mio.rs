//! The ceiling: a minimal single-threaded mio fan-out chat server for benchmarks.
//!
//! Telnet text subset only: greeting, nickname line → `Thanks` line, `/join #ch` → joined line
//! to the channel, chat lines fanned out as `H:MMPM-@nick: text\r\n` to the channel (sender
//! included). A message is one shared `Rc<[u8]>` chunk; each connection with queued output is
//! written once per loop pass with `writev`. No log file, no limits beyond a 256 KiB output cap.
//! Listens on 127.0.0.1:`--port` (or `$PEER_PORT`, default 0) and prints
//! `telnet listening on 127.0.0.1:PORT` to stderr.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

const LISTENER: Token = Token(usize::MAX);
const OUT_CAP: usize = 256 * 1024;

struct Conn {
    sock: TcpStream,
    inbuf: Vec<u8>,
    nick: Option<Box<str>>,
    channel: Option<Rc<str>>,
    out: VecDeque<Rc<[u8]>>,
    head: usize,
    queued: usize,
    dirty: bool,
    dead: bool,
}

#[derive(Default)]
struct State {
    conns: Slab<Conn>,
    channels: HashMap<Rc<str>, Vec<usize>>,
    dirty: Vec<usize>,
    users: usize,
}

impl State {
    fn push(&mut self, key: usize, chunk: &Rc<[u8]>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.dead {
            return;
        }
        if c.queued + chunk.len() > OUT_CAP {
            c.dead = true;
            return self.dirty.push(key);
        }
        c.queued += chunk.len();
        c.out.push_back(chunk.clone());
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(key);
        }
    }

    fn fan_out(&mut self, ch: &Rc<str>, msg: &Rc<[u8]>) {
        let Some(members) = self.channels.get_mut(ch).map(std::mem::take) else {
            return;
        };
        for &m in &members {
            self.push(m, msg);
        }
        if let Some(slot) = self.channels.get_mut(ch) {
            *slot = members;
        }
    }

    fn line(&mut self, key: usize, line: &str) {
        let (nick, channel) = match self.conns.get(key) {
            Some(c) => (c.nick.clone(), c.channel.clone()),
            None => return,
        };
        let Some(nick) = nick else {
            let t = format!("Thanks {line}, now please type /join #channel to join a channel or /help to get all commands\r\n");
            self.push(key, &Rc::from(t.as_bytes()));
            self.users += 1;
            self.conns[key].nick = Some(line.into());
            return;
        };
        if let Some(name) = line.strip_prefix("/join #") {
            if let Some(old) = channel {
                if let Some(m) = self.channels.get_mut(&old) {
                    m.retain(|&k| k != key);
                }
            }
            let name: Rc<str> = Rc::from(name);
            let members = self.channels.entry(name.clone()).or_default();
            let others = format!(
                "There are {} other users in this channel.\r\n",
                members.len()
            );
            members.push(key);
            self.conns[key].channel = Some(name.clone());
            self.push(key, &Rc::from(others.as_bytes()));
            let msg = format!("{}-@{nick} just joined channel #{name}\r\n", kitchen());
            self.fan_out(&name, &Rc::from(msg.as_bytes()));
        } else if let Some(ch) = channel {
            let msg = format!("{}-@{nick}: {line}\r\n", kitchen());
            self.fan_out(&ch, &Rc::from(msg.as_bytes()));
        }
    }

    fn read(&mut self, key: usize, buf: &mut [u8]) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            match c.sock.read(buf) {
                Ok(0) => return self.kill(key),
                Ok(n) => {
                    c.inbuf.extend_from_slice(&buf[..n]);
                    let data = std::mem::take(&mut c.inbuf);
                    let mut start = 0;
                    while let Some(i) = data[start..].iter().position(|&b| b == b'\n') {
                        let line = String::from_utf8_lossy(&data[start..start + i]);
                        self.line(key, line.trim_end_matches('\r'));
                        start += i + 1;
                    }
                    if let Some(c) = self.conns.get_mut(key) {
                        c.inbuf = data[start..].to_vec();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.kill(key),
            }
        }
    }

    fn kill(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            c.dead = true;
            self.dirty.push(key);
        }
    }

    /// Writes a connection's queue with writev until empty or `WouldBlock`.
    fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.dirty = false;
        while !c.out.is_empty() && !c.dead {
            let mut slices = [IoSlice::new(&[]); 128];
            let mut n = 0;
            for (i, chunk) in c.out.iter().take(128).enumerate() {
                slices[n] = IoSlice::new(if i == 0 { &chunk[c.head..] } else { chunk });
                n += 1;
            }
            match c.sock.write_vectored(&slices[..n]) {
                Ok(mut w) => {
                    c.queued -= w;
                    while let Some(front) = c.out.front() {
                        if w < front.len() - c.head {
                            c.head += w;
                            break;
                        }
                        w -= front.len() - c.head;
                        c.head = 0;
                        c.out.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => c.dead = true,
            }
        }
        if c.dead {
            let c = self.conns.remove(key);
            if let Some(ch) = &c.channel {
                if let Some(m) = self.channels.get_mut(ch) {
                    m.retain(|&k| k != key);
                }
            }
            self.users -= usize::from(c.nick.is_some());
        }
    }
}

fn kitchen() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m) = ((secs / 3600) % 24, (secs / 60) % 60);
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    format!("{h12}:{m:02}{}", if h < 12 { "AM" } else { "PM" })
}

fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .skip_while(|a| a != "--port")
        .nth(1)
        .or_else(|| std::env::var("PEER_PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    eprintln!("telnet listening on {}", listener.local_addr()?);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut st = State::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    let entry = st.conns.vacant_entry();
                    let key = entry.key();
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    poll.registry().register(&mut sock, Token(key), interest)?;
                    let _ = sock.set_nodelay(true);
                    entry.insert(Conn {
                        sock,
                        inbuf: Vec::new(),
                        nick: None,
                        channel: None,
                        out: VecDeque::new(),
                        head: 0,
                        queued: 0,
                        dirty: false,
                        dead: false,
                    });
                    let users = st.users;
                    let greet = format!("Welcome to chat server. There are {users} other users on this server. please enter a nickname\r\n");
                    st.push(key, &Rc::from(greet.as_bytes()));
                }
                continue;
            }
            let key = ev.token().0;
            if ev.is_readable() {
                st.read(key, &mut buf);
            }
            if ev.is_writable() && st.conns.get(key).is_some_and(|c| !c.out.is_empty()) {
                st.flush(key);
            }
        }
        let dirty = std::mem::take(&mut st.dirty);
        for key in dirty {
            st.flush(key);
        }
    }
}
