//! HTTP/1.1 request framing with `httparse`, limits, and response encoding. Shared by the
//! REST port and the WebSocket port (whose connections start as HTTP). Pure: no sockets.

use std::fmt::Write as _;

/// Size limits for one request.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Request line plus headers, bytes (431 above it).
    pub max_header: usize,
    /// Body bytes (413 above it).
    pub max_body: usize,
}

/// A complete, parsed request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path part of the target, before any `?` (not percent-decoded).
    pub path: String,
    /// The raw query string after `?` (empty if none).
    pub query: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Headers with lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when the header's comma-separated value list holds `token` (case-insensitive),
    /// e.g. `Connection: keep-alive, Upgrade`.
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// True when the client wants the connection kept open after the response.
    pub fn keep_alive(&self) -> bool {
        if self.version == 0 {
            self.header_has_token("connection", "keep-alive")
        } else {
            !self.header_has_token("connection", "close")
        }
    }
}

/// A response to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (Content-Length, Date-less; Connection is added by [`Response::encode`]).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Close the connection after this response, whatever the client asked.
    pub close: bool,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.as_bytes().to_vec())
    }

    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let body = serde_json::to_vec_pretty(value).unwrap_or_default();
        Response::new(status)
            .header("Content-Type", "application/json")
            .body(body)
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Response {
        self.body = body;
        self
    }

    /// Marks the response as the last one on its connection.
    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// The bytes on the wire. `head_only` leaves the body out (HEAD requests) but keeps its
    /// `Content-Length`; `keep_alive` chooses the `Connection` header.
    pub fn encode(&self, head_only: bool, keep_alive: bool) -> Vec<u8> {
        let mut head = String::with_capacity(128);
        let _ = write!(head, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        let no_body = self.status == 101 || self.status == 204 || self.status == 304;
        if !no_body {
            let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        }
        if self.status != 101 {
            let conn = if keep_alive && !self.close { "keep-alive" } else { "close" };
            let _ = write!(head, "Connection: {conn}\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if !head_only && !no_body {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
