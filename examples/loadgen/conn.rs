//! A client connection: its kind, state and role, and the wire formats it writes.

use mio::net::TcpStream;
use std::io::{self, Write};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Telnet,
    Ws,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum St {
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
pub enum Role {
    Member,
    Churn,
    Rest,
}

pub struct Conn {
    pub sock: TcpStream,
    pub kind: Kind,
    pub role: Role,
    pub st: St,
    /// Member index (nickname `u<id>`), churn nickname number, or 0.
    pub id: u64,
    pub channel: u32,
    /// The server node this connection talks to (index into `--telnet` / `--ws`).
    pub node: u8,
    /// With `--order-check`: the ids ([`crate::order::msg_id`]) of the running step's
    /// messages in the order they arrived (capacity reserved before the step).
    pub order: Vec<u64>,
    pub inbuf: Vec<u8>,
    pub out: Vec<u8>,
    pub out_pos: usize,
    /// Stopped reading (stalled-reader phase).
    pub stalled: bool,
    /// Reading again after a stall: data is drained, not measured.
    pub draining: bool,
    /// Has output appended during this send pass (dedup for flushing).
    pub touched: bool,
    /// Per sender of this channel: the next sequence number expected.
    pub next_seq: Box<[u32]>,
    /// The last barrier nonce seen.
    pub barrier: u32,
    pub started: Instant,
    /// REST: the first bytes of the response.
    pub head: Vec<u8>,
}

pub fn kind_of(i: usize, telnet: usize, ws: usize) -> Kind {
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
pub fn ws_frame(text: &[u8], key: [u8; 4], out: &mut Vec<u8>) {
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

pub fn ws_frame_op(op: u8, payload: &[u8], key: [u8; 4], out: &mut Vec<u8>) {
    let start = out.len();
    ws_frame(payload, key, out);
    out[start] = 0x80 | op;
}

/// Appends one input line in the connection's wire format.
pub fn push_line(c: &mut Conn, text: &[u8]) {
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
pub fn flush(c: &mut Conn) -> io::Result<()> {
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
