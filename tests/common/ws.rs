//! A raw WebSocket client (RFC 6455) over [`Http`]: the opening handshake written by hand,
//! masked client frames out, server frames decoded and checked (never masked, no RSV bits).
//! It sends whatever a test asks for, rule-breaking frames included.
//!
//! Two ways to read: frame by frame ([`Ws::next_within`], [`Ws::expect_text`], ...), where the
//! next frame must be what the test says; or message by message ([`Ws::message_within`],
//! [`Ws::expect_message`], [`Ws::wait_for`]), where pings are answered and pongs skipped, for
//! tests about something else than frames.

use super::http::{Http, Response};
use super::{connect_tcp, is_event, thanks, DEADLINE};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The RFC 6455 example key and its accept value (§1.3).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The mask of every client frame.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

// ------------------------------------------------------------------------------ frames

/// One client frame: `first` is the first header byte (FIN, RSV bits, opcode); the payload is
/// masked with `mask` when given.
pub fn frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(bit | n as u8),
        n if n < 65536 => {
            out.push(bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A final, masked frame with `opcode`.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(0x80 | opcode, payload, Some(MASK))
}

/// A final, masked text frame.
pub fn text_frame(text: &str) -> Vec<u8> {
    client_frame(OP_TEXT, text.as_bytes())
}

/// A server frame as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The text of a text frame.
    pub fn text(&self) -> Option<String> {
        (self.opcode == OP_TEXT).then(|| self.payload_text())
    }

    /// The payload as text (lossy), whatever the opcode.
    pub fn payload_text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// The close code of a close frame (1005 when it has none).
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE).then(|| match self.payload.as_slice() {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 1005,
        })
    }
}

/// Decodes one frame at the start of `buf`: the frame and the bytes it used.
pub fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let mut pos = 2;
    let len = match b1 & 0x7f {
        126 => {
            let l = u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize;
            pos = 4;
            l
        }
        127 => {
            let l = u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize;
            pos = 10;
            l
        }
        n => n as usize,
    };
    let masked = b1 & 0x80 != 0;
    let mask = if masked {
        let m: [u8; 4] = buf.get(pos..pos + 4)?.try_into().ok()?;
        pos += 4;
        Some(m)
    } else {
        None
    };
    let mut payload = buf.get(pos..pos + len)?.to_vec();
    if let Some(m) = mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= m[i % 4];
        }
    }
    Some((
        Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0f,
            masked,
            payload,
        },
        pos + len,
    ))
}

/// Takes one complete server frame off the front of `buf`, if there is one; fails the test
/// when it is masked or has RSV bits.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    let (f, used) = parse_frame(buf)?;
    buf.drain(..used);
    assert!(!f.masked, "a server frame is masked: {f:?}");
    assert_eq!(f.rsv, 0, "a server frame has RSV bits: {f:?}");
    Some(f)
}

// ------------------------------------------------------------------------------ handshake

/// An opening handshake for `/ws` with the usual headers; each `extra` header replaces the one
/// of that name (an empty value removes it).
pub fn upgrade_request(method: &str, host: &str, extra: &[(&str, &str)]) -> String {
    let mut headers: Vec<(String, String)> = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    for (name, value) in extra {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !value.is_empty() {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let mut req = format!("{method} /ws HTTP/1.1\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// The response must accept the upgrade: 101, the right `Sec-WebSocket-Accept`, `Upgrade:
/// websocket`.
pub fn assert_upgraded(resp: &Response) {
    assert_eq!(resp.status, 101, "expected 101, got {resp:?}");
    assert_eq!(
        resp.header("Sec-WebSocket-Accept"),
        Some(ACCEPT),
        "{resp:?}"
    );
    assert!(
        resp.header("Upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{resp:?}"
    );
}

// ------------------------------------------------------------------------------ the client

/// What came next on a raw connection.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// The server closed the connection (clean EOF or reset).
    Closed,
    Timeout,
}

/// A raw TCP client for the WebSocket port: HTTP requests, then frames.
pub struct Ws {
    /// The connection; its buffer holds the bytes not yet decoded.
    pub http: Http,
    /// Every frame decoded so far, for failure messages.
    seen: Vec<String>,
}

impl Ws {
    /// A plain connection to `addr`; nothing sent yet.
    pub fn connect(addr: SocketAddr) -> Ws {
        Ws::from_stream(connect_tcp(addr), addr)
    }

    /// Wraps a stream already connected to `addr`; nothing sent yet.
    pub fn from_stream(stream: TcpStream, addr: SocketAddr) -> Ws {
        Ws {
            http: Http::from_stream(stream, addr),
            seen: Vec::new(),
        }
    }

    /// Connects, sends an upgrade request (see [`upgrade_request`]) plus `early` bytes in the
    /// same write, and reads the response, whatever it is.
    pub fn handshake(addr: SocketAddr, extra: &[(&str, &str)], early: &[u8]) -> (Ws, Response) {
        Ws::connect(addr).upgrade(extra, early)
    }

    pub fn upgrade(mut self, extra: &[(&str, &str)], early: &[u8]) -> (Ws, Response) {
        let host = self.http.addr.to_string();
        let mut bytes = upgrade_request("GET", &host, extra).into_bytes();
        bytes.extend_from_slice(early);
        self.send(&bytes);
        let resp = self.response(false);
        (self, resp)
    }

    /// An upgraded connection, its greeting not yet read.
    pub fn open(addr: SocketAddr) -> Ws {
        Ws::open_on(connect_tcp(addr), addr)
    }

    /// Upgrades a stream already connected to `addr` (e.g. from a chosen local address).
    pub fn open_on(stream: TcpStream, addr: SocketAddr) -> Ws {
        let (ws, resp) = Ws::from_stream(stream, addr).upgrade(&[], b"");
        assert_upgraded(&resp);
        ws
    }

    /// A client past the greeting, with `nick`.
    pub fn user(addr: SocketAddr, nick: &str) -> Ws {
        let mut ws = Ws::open(addr);
        ws.expect_message("the greeting", |t| {
            t.starts_with("Welcome to chat server. There are ")
        });
        ws.send_text(nick);
        ws.expect_message("the thanks", |t| t == thanks(nick));
        ws
    }

    /// A client in `channel` (its own join notices consumed).
    pub fn user_in(addr: SocketAddr, nick: &str, channel: &str) -> Ws {
        let mut ws = Ws::user(addr, nick);
        ws.send_text(&format!("/join {channel}"));
        ws.expect_message("the others-count line", |t| {
            t.starts_with("There are ") && t.ends_with(" other users in this channel.")
        });
        // The replay of the channel's recent messages, if any, is one message.
        let next = ws.next_message();
        let next = if next.starts_with("Recent messages in ") {
            ws.next_message()
        } else {
            next
        };
        assert!(
            is_event(&next, nick, &format!("just joined channel {channel}")),
            "expected the joined notice, got {next:?}; {}",
            ws.context()
        );
        ws
    }

    pub fn stream(&self) -> &TcpStream {
        &self.http.stream
    }

    /// The stream and the bytes read but not yet decoded.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.http.stream, self.http.buf)
    }

    /// Sends bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.http.try_send(bytes) {
            panic!("write failed: {e}; {}", self.context());
        }
    }

    /// Like [`Ws::send`], but a failure is returned.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.http.try_send(bytes)
    }

    /// Sends a final, masked frame with `opcode`.
    pub fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.send(&client_frame(opcode, payload));
    }

    pub fn send_text(&mut self, text: &str) {
        self.send(&text_frame(text));
    }

    /// An HTTP response (see [`Http::response`]).
    pub fn response(&mut self, head_only: bool) -> Response {
        self.http.response(head_only)
    }

    /// What this client has read, for failure messages.
    pub fn context(&self) -> String {
        format!("decoded so far: {:#?}; {}", self.seen, self.http.context())
    }

    // -------------------------------------------------------------------- frame by frame

    /// The next frame, the end of the connection, or a timeout after `deadline`.
    pub fn next_within(&mut self, deadline: Duration) -> Next {
        let end = Instant::now() + deadline;
        loop {
            if let Some(f) = take_frame(&mut self.http.buf) {
                self.seen.push(format!(
                    "frame op {:#x} fin {} {:?}",
                    f.opcode,
                    f.fin,
                    String::from_utf8_lossy(&f.payload)
                ));
                return Next::Frame(f);
            }
            if self.http.eof {
                return Next::Closed;
            }
            if !self.http.fill(end) {
                return Next::Timeout;
            }
        }
    }

    /// The next frame; fails the test after [`DEADLINE`] or at the end of the connection.
    pub fn next_frame(&mut self) -> Frame {
        match self.next_within(DEADLINE) {
            Next::Frame(f) => f,
            other => panic!("expected a frame, got {other:?}; {}", self.context()),
        }
    }

    /// The next frame must be one final text frame with exactly `want`.
    pub fn expect_text(&mut self, want: &str) {
        let f = self.next_frame();
        assert!(
            f.fin && f.text().as_deref() == Some(want),
            "expected the text frame {want:?}, got {f:?}; {}",
            self.context()
        );
    }

    /// The next frame must be a final text frame satisfying `pred`.
    pub fn expect_match(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let f = self.next_frame();
        match f.text() {
            Some(t) if f.fin && pred(&t) => t,
            _ => panic!("expected {what}, got {f:?}; {}", self.context()),
        }
    }

    /// Skips text frames until a close frame; asserts its code, then that the server closes
    /// the TCP connection. Returns the texts skipped.
    pub fn expect_close(&mut self, code: u16) -> Vec<String> {
        let mut texts = Vec::new();
        loop {
            let f = self.next_frame();
            if let Some(t) = f.text() {
                texts.push(t);
                continue;
            }
            assert_eq!(
                f.close_code(),
                Some(code),
                "expected a close frame with code {code}, got {f:?}; {}",
                self.context()
            );
            break;
        }
        self.expect_eof();
        texts
    }

    /// The server must close the TCP connection (nothing more may arrive).
    pub fn expect_eof(&mut self) {
        match self.next_within(DEADLINE) {
            Next::Closed => {}
            other => panic!(
                "expected the server to close the connection, got {other:?}; {}",
                self.context()
            ),
        }
    }

    // -------------------------------------------------------------------- message by message

    /// The next text message within `deadline` (pings are answered, pongs skipped; a line
    /// ending, should the server send one, is dropped), or why there is none: a close frame,
    /// another frame, the end of the connection, the deadline.
    pub fn message_within(&mut self, deadline: Duration) -> Result<String, String> {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next_within(left) {
                Next::Frame(f) if f.opcode == OP_TEXT => {
                    let mut text = f.payload_text();
                    while text.ends_with('\n') || text.ends_with('\r') {
                        text.pop();
                    }
                    return Ok(text);
                }
                Next::Frame(f) if f.opcode == OP_PING => self.send_frame(OP_PONG, &f.payload),
                Next::Frame(f) if f.opcode == OP_PONG => {}
                Next::Frame(f) => return Err(format!("expected a text frame, got {f:?}")),
                Next::Closed => return Err("the server closed the connection".into()),
                Next::Timeout => return Err(format!("no message within {deadline:?}")),
            }
        }
    }

    /// The next text message; fails the test on anything else or after [`DEADLINE`].
    pub fn next_message(&mut self) -> String {
        self.message_within(DEADLINE)
            .unwrap_or_else(|why| panic!("expected a text message: {why}; {}", self.context()))
    }

    /// The next text message must satisfy `pred`.
    pub fn expect_message(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let t = self.next_message();
        assert!(pred(&t), "expected {what}, got {t:?}; {}", self.context());
        t
    }

    /// Skips text messages until one satisfies `pred`; returns it.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut skipped = Vec::new();
        loop {
            match self.message_within(DEADLINE) {
                Ok(t) if pred(&t) => return t,
                Ok(t) => skipped.push(t),
                Err(why) => panic!("WebSocket: waiting for {what}: {why}; skipped {skipped:?}"),
            }
        }
    }
}
