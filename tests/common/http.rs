//! A raw HTTP/1.1 client: request bytes written by hand, responses parsed from the status
//! line, the headers and a `Content-Length` body. Bytes read past a response stay buffered for
//! the next one (keep-alive, pipelining) or for the frames behind a `101` ([`super::ws`]).

use super::{connect_tcp, read_more, DEADLINE};
use serde_json::Value;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A response as read back.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header called `name` (any case).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; fails the test when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}): status {}, headers {:?}, body {:?}",
                self.status,
                self.headers,
                self.text()
            )
        })
    }

    /// `errors[0].short_message` of an envelope.
    pub fn short_message(&self) -> String {
        self.json()["errors"][0]["short_message"]
            .as_str()
            .unwrap_or_else(|| panic!("no errors[0].short_message in {}", self.text()))
            .to_string()
    }

    /// Whether the response says `Connection: close`.
    pub fn connection_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// One raw HTTP/1.1 connection. Keeps bytes read past a response for the next one.
pub struct Http {
    pub stream: TcpStream,
    /// The server's address, sent as `Host`.
    pub addr: SocketAddr,
    /// Bytes read but not yet consumed.
    pub buf: Vec<u8>,
    /// Whether the server closed the connection (EOF or reset).
    pub eof: bool,
    /// Every response read so far, for failure messages and leak checks.
    pub seen: Vec<Response>,
}

impl Http {
    /// Connects to `addr` (see [`connect_tcp`]).
    pub fn connect(addr: SocketAddr) -> Http {
        Http::from_stream(connect_tcp(addr), addr)
    }

    /// Wraps a stream already connected to `addr` (e.g. from a chosen local address).
    pub fn from_stream(stream: TcpStream, addr: SocketAddr) -> Http {
        Http {
            stream,
            addr,
            buf: Vec::new(),
            eof: false,
            seen: Vec::new(),
        }
    }

    /// What this connection has read, for failure messages.
    pub fn context(&self) -> String {
        format!(
            "responses so far: {:?}; unconsumed bytes: {:?}; eof: {}",
            self.seen
                .iter()
                .map(|r| format!("{} {:?}", r.status, r.headers))
                .collect::<Vec<_>>(),
            String::from_utf8_lossy(&self.buf[..self.buf.len().min(2000)]),
            self.eof
        )
    }

    /// Sends bytes as they are; fails the test when the write fails.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes)
            .unwrap_or_else(|e| panic!("write failed: {e}; {}", self.context()));
    }

    /// Like [`Http::send`], but a failure is returned (for peers the server may close).
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// The bytes of a request: request line, `Host`, the `headers`, `Content-Length` when
    /// there is a body, the body.
    pub fn request_bytes(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        bytes
    }

    /// Sends one request and reads its response (without a body for `HEAD`).
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let bytes = self.request_bytes(method, target, headers, body);
        self.send(&bytes);
        self.response(method == "HEAD")
    }

    /// `GET target` on this connection.
    pub fn get(&mut self, target: &str) -> Response {
        self.request("GET", target, &[], None)
    }

    /// Reads once more, waiting at most until `end` (see [`read_more`]). False on timeout;
    /// true when bytes came or the connection ended (EOF or reset; `eof` is then set).
    pub fn fill(&mut self, end: Instant) -> bool {
        read_more(&mut self.stream, &mut self.buf, &mut self.eof, end).unwrap_or(true)
    }

    /// The next response, or why there is none by `deadline`. Strict: one `Content-Length`
    /// (none only on 101, 204 and 304), no `Transfer-Encoding`. The body is left unread for
    /// `head_only` (a `HEAD`) and for a `101`, whose bytes behind the head stay buffered.
    pub fn try_response(
        &mut self,
        head_only: bool,
        deadline: Duration,
    ) -> Result<Response, String> {
        let end = Instant::now() + deadline;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.eof {
                return Err("the server closed the connection before a response head".into());
            }
            if !self.fill(end) {
                return Err(format!("no response head within {deadline:?}"));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        if parts.next() != Some("HTTP/1.1") {
            return Err(format!("bad status line {status_line:?}"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| format!("bad header line {line:?}"))?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        self.buf.drain(..head_end);
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let lengths = resp.headers_named("content-length");
        if lengths.len() > 1 {
            return Err(format!("several Content-Length headers: {lengths:?}"));
        }
        if resp.header("transfer-encoding").is_some() {
            return Err(format!("unexpected Transfer-Encoding: {:?}", resp.headers));
        }
        let len: usize = match lengths.first() {
            Some(l) => l
                .parse()
                .map_err(|_| format!("Content-Length {l:?} is not a number"))?,
            None if status == 101 || status == 204 || status == 304 => 0,
            None => return Err(format!("a {status} response without Content-Length")),
        };
        if !head_only && status != 101 {
            while self.buf.len() < len {
                if self.eof || !self.fill(end) {
                    return Err(format!(
                        "the body ended after {} of {len} bytes (eof {})",
                        self.buf.len(),
                        self.eof
                    ));
                }
            }
            resp.body = self.buf.drain(..len).collect();
        }
        self.seen.push(resp.clone());
        Ok(resp)
    }

    /// The next response within [`DEADLINE`]; fails the test when there is none.
    pub fn response(&mut self, head_only: bool) -> Response {
        match self.try_response(head_only, DEADLINE) {
            Ok(r) => r,
            Err(why) => panic!("expected a response: {why}; {}", self.context()),
        }
    }

    /// True when the server closes the connection (EOF or reset) within `deadline` with no
    /// more bytes; false when it is still open then. Bytes that do arrive fail the test.
    pub fn closes_within(&mut self, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        while !self.eof {
            if !self.fill(end) {
                break;
            }
        }
        assert!(
            self.buf.is_empty(),
            "unexpected bytes after the response: {}",
            self.context()
        );
        self.eof
    }

    /// The server must close the connection within [`DEADLINE`], sending nothing more.
    pub fn assert_closed(&mut self) {
        assert!(
            self.closes_within(DEADLINE),
            "the server kept the connection open for {DEADLINE:?}; {}",
            self.context()
        );
    }

    /// The connection still serves requests: `GET /healthz` answers `200 ok`.
    pub fn assert_open(&mut self) {
        let bytes = self.request_bytes("GET", "/healthz", &[], None);
        if let Err(e) = self.try_send(&bytes) {
            panic!("the connection is no longer open ({e}); {}", self.context());
        }
        match self.try_response(false, DEADLINE) {
            Ok(r) if r.status == 200 && r.body == b"ok" => {}
            Ok(r) => panic!("GET /healthz on the kept connection: {r:?}"),
            Err(why) => panic!(
                "the connection is no longer usable: {why}; {}",
                self.context()
            ),
        }
    }
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    Http::connect(addr).request(method, target, headers, body)
}

/// `GET target` on a fresh connection.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    request(addr, "GET", target, &[], None)
}
