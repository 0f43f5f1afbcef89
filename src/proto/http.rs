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
    /// The body: owned, or a file embedded in the binary (shared, never copied per response).
    pub body: std::borrow::Cow<'static, [u8]>,
    /// Close the connection after this response, whatever the client asked.
    pub close: bool,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: std::borrow::Cow::Borrowed(&[]),
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
        self.body = std::borrow::Cow::Owned(body);
        self
    }

    /// Sets the body to a file embedded in the binary.
    pub fn static_body(mut self, body: &'static [u8]) -> Response {
        self.body = std::borrow::Cow::Borrowed(body);
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
        let mut out = self.encode_head(keep_alive);
        if !head_only && self.has_body() {
            out.extend_from_slice(&self.body);
        }
        out
    }

    /// True when the status allows a body on the wire.
    pub fn has_body(&self) -> bool {
        !matches!(self.status, 101 | 204 | 304)
    }

    /// The status line and headers only (with the body's `Content-Length`).
    pub fn encode_head(&self, keep_alive: bool) -> Vec<u8> {
        let mut head = String::with_capacity(128);
        let _ = write!(head, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if self.has_body() {
            let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        }
        if self.status != 101 {
            let conn = if keep_alive && !self.close {
                "keep-alive"
            } else {
                "close"
            };
            let _ = write!(head, "Connection: {conn}\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
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

/// What the decoder found in the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpParse {
    /// More bytes are needed.
    Partial,
    /// One complete request; bytes after it stay in the decoder.
    Request(Request),
    /// The request is invalid: answer with this status and close.
    Error(u16, &'static str),
}

/// Most headers accepted in one request (431 above).
const MAX_HEADERS: usize = 48;

/// Incremental request framing: bytes go in with [`HttpDecoder::push`], requests come out of
/// [`HttpDecoder::parse`]. The buffer is released whenever it becomes empty.
#[derive(Default, Debug)]
pub struct HttpDecoder {
    buf: Vec<u8>,
    /// Parsed head of a request whose body is still arriving, and the body length.
    head: Option<(Request, usize)>,
}

impl HttpDecoder {
    /// A decoder with no bytes.
    pub fn new() -> HttpDecoder {
        HttpDecoder::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received and not yet consumed by a request.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True while a request head was parsed and its body is incomplete.
    pub fn in_body(&self) -> bool {
        self.head.is_some()
    }

    /// Takes the bytes that followed the last request (e.g. the first WebSocket frames that
    /// arrived with the upgrade request).
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Tries to frame one request from the buffered bytes.
    pub fn parse(&mut self, limits: &HttpLimits) -> HttpParse {
        if self.head.is_none() {
            match parse_head(&self.buf, limits) {
                Head::Partial => {
                    return if self.buf.len() > limits.max_header {
                        HttpParse::Error(431, "request header too large")
                    } else {
                        HttpParse::Partial
                    };
                }
                Head::Error(status, why) => return HttpParse::Error(status, why),
                Head::Done(req, head_len, body_len) => {
                    self.buf.drain(..head_len);
                    self.head = Some((req, body_len));
                }
            }
        }
        let Some((_, body_len)) = &self.head else {
            return HttpParse::Partial;
        };
        let body_len = *body_len;
        if self.buf.len() < body_len {
            return HttpParse::Partial;
        }
        let Some((mut req, _)) = self.head.take() else {
            return HttpParse::Partial;
        };
        req.body = self.buf.drain(..body_len).collect();
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        HttpParse::Request(req)
    }
}

enum Head {
    Partial,
    Error(u16, &'static str),
    Done(Request, usize, usize),
}

fn parse_head(buf: &[u8], limits: &HttpLimits) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Partial) => return Head::Partial,
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::TooManyHeaders) => {
            return Head::Error(431, "too many request headers")
        }
        Err(httparse::Error::Version) => return Head::Error(505, "HTTP version not supported"),
        Err(_) => return Head::Error(400, "malformed request"),
    };
    if head_len > limits.max_header {
        return Head::Error(431, "request header too large");
    }
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Head::Error(400, "malformed request line");
    };
    let mut req = Request {
        method: method.to_string(),
        version,
        ..Request::default()
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    req.path = path.to_string();
    req.query = query.to_string();
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in parsed.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Head::Error(400, "header value is not UTF-8");
        };
        let name = h.name.to_ascii_lowercase();
        if name == "content-length" {
            if content_length.is_some() {
                return Head::Error(400, "duplicate Content-Length");
            }
            let v = value.trim();
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Head::Error(400, "malformed Content-Length");
            }
            match v.parse::<usize>() {
                Ok(n) => content_length = Some(n),
                Err(_) => return Head::Error(400, "malformed Content-Length"),
            }
        } else if name == "transfer-encoding" {
            chunked = true;
        }
        req.headers.push((name, value.trim().to_string()));
    }
    if chunked && content_length.is_some() {
        return Head::Error(400, "both Content-Length and Transfer-Encoding");
    }
    if chunked {
        return Head::Error(411, "chunked bodies are not supported; send Content-Length");
    }
    let body_len = match content_length {
        Some(n) => n,
        None if matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") => {
            return Head::Error(411, "Content-Length required")
        }
        None => 0,
    };
    if body_len > limits.max_body {
        return Head::Error(413, "request body too large");
    }
    Head::Done(req, head_len, body_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HttpLimits = HttpLimits {
        max_header: 1024,
        max_body: 64,
    };

    fn parse_all(input: &[u8]) -> Vec<HttpParse> {
        let mut d = HttpDecoder::new();
        d.push(input);
        let mut out = Vec::new();
        loop {
            match d.parse(&LIMITS) {
                HttpParse::Partial => break,
                other => {
                    let stop = matches!(other, HttpParse::Error(..));
                    out.push(other);
                    if stop {
                        break;
                    }
                }
            }
        }
        out
    }

    fn status_of(input: &str) -> Option<u16> {
        match parse_all(input.as_bytes()).pop() {
            Some(HttpParse::Error(s, _)) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn same_request_for_every_split() {
        let input = b"POST /v1/api/message?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
        let whole = parse_all(input);
        assert_eq!(whole.len(), 2);
        for split in 0..input.len() {
            let mut d = HttpDecoder::new();
            let mut got = Vec::new();
            for part in [&input[..split], &input[split..]] {
                d.push(part);
                while let HttpParse::Request(r) = d.parse(&LIMITS) {
                    got.push(HttpParse::Request(r));
                }
            }
            assert_eq!(got, whole, "split at {split}");
        }
        let HttpParse::Request(r) = &whole[0] else {
            panic!()
        };
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str()),
            ("POST", "/v1/api/message", "x=1")
        );
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("host"), Some("a"));
    }

    #[test]
    fn one_byte_at_a_time() {
        let input = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut d = HttpDecoder::new();
        for (i, b) in input.iter().enumerate() {
            d.push(&[*b]);
            let r = d.parse(&LIMITS);
            if i + 1 < input.len() {
                assert_eq!(r, HttpParse::Partial);
            } else {
                assert!(matches!(r, HttpParse::Request(_)));
            }
        }
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn framing_errors() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(status_of(&big), Some(431));
        let endless = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2000));
        assert_eq!(status_of(&endless), Some(431));
        let many: String = (0..60).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            status_of(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Some(431)
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n"),
            Some(413)
        );
        assert_eq!(status_of("POST / HTTP/1.1\r\n\r\n"), Some(411));
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(411)
        );
        assert_eq!(
            status_of(
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nx"
            ),
            Some(400)
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"),
            Some(400)
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx"),
            Some(400)
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\nx"),
            Some(400)
        );
        assert_eq!(status_of("GARBAGE\r\n\r\n"), Some(400));
        assert_eq!(status_of("GET / HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn keep_alive_rules() {
        let mut r = Request {
            version: 1,
            ..Request::default()
        };
        assert!(r.keep_alive());
        r.headers.push(("connection".into(), "Close".into()));
        assert!(!r.keep_alive());
        let mut r = Request {
            version: 0,
            ..Request::default()
        };
        assert!(!r.keep_alive());
        r.headers.push(("connection".into(), "keep-alive".into()));
        assert!(r.keep_alive());
        let r = Request {
            headers: vec![("connection".into(), "keep-alive, Upgrade".into())],
            ..Request::default()
        };
        assert!(r.header_has_token("connection", "upgrade"));
    }

    #[test]
    fn response_encoding() {
        let r = Response::text(404, "nope").header("X-A", "b");
        let bytes = String::from_utf8(r.encode(false, true)).unwrap();
        assert_eq!(
            bytes,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-A: b\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nnope"
        );
        let head = String::from_utf8(r.closing().encode(true, true)).unwrap();
        assert!(
            head.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"),
            "{head}"
        );
    }
}
