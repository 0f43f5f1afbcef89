//! WebSocket (RFC 6455), server side: the upgrade handshake, client-frame decoding and
//! server-frame encoding. Frame headers are parsed and formatted by `tungstenite`; this
//! module keeps its own small buffer per connection so that an idle connection holds no
//! buffer at all (tungstenite's `WebSocketContext` allocates its read buffer up front).
//! Pure: no sockets.

use super::http::{Request, Response};
use super::input::{Input, Inputs};
use std::io::Cursor;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// Close codes the server sends.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// Unsupported data (binary frames).
    pub const UNSUPPORTED: u16 = 1003;
    /// Invalid payload (text that is not UTF-8).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation (idle timeout).
    pub const POLICY: u16 = 1008;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
}

/// What came out of the client's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEvent<'a> {
    /// A complete text message (one input line).
    Text(&'a str),
    /// A ping: answer with a pong carrying this payload.
    Ping(&'a [u8]),
    /// A pong (the client is alive).
    Pong,
    /// The client closes with this code (1005 when it gave none): echo it and close.
    Close(u16),
    /// The client broke the rules: close with this code. The decoder is dead afterwards.
    Fail(u16),
}

/// Per-connection decoding state.
#[derive(Default, Debug)]
pub struct WsDecoder {
    /// Bytes of an incomplete frame.
    buf: Vec<u8>,
    /// A fragmented text message being assembled. Boxed so that the (rare) state costs an
    /// idle connection 8 bytes instead of 24.
    #[allow(clippy::box_collection)]
    partial: Option<Box<Vec<u8>>>,
    dead: bool,
}

impl WsDecoder {
    /// A decoder with no state.
    pub fn new() -> WsDecoder {
        WsDecoder::default()
    }

    /// Decodes the client's bytes, calling `f` for each event in order: a complete text
    /// message, a ping, a pong, a close, or a failure. Only the bytes of an incomplete frame
    /// are kept for the next call. After a close or a failure the decoder is dead and ignores
    /// whatever follows.
    pub fn feed(&mut self, data: &[u8], max_message: usize, mut f: impl FnMut(WsEvent<'_>)) {
        if self.dead {
            return;
        }
        if self.buf.is_empty() {
            let used = self.frames(data, max_message, &mut f);
            if !self.dead {
                self.buf
                    .extend_from_slice(data.get(used..).unwrap_or_default());
            }
        } else {
            self.buf.extend_from_slice(data);
            let buf = std::mem::take(&mut self.buf);
            let used = self.frames(&buf, max_message, &mut f);
            if !self.dead {
                // Keep only the incomplete frame, in an allocation of its own size: the
                // read that completed earlier frames must not stay allocated with it.
                self.buf = buf.get(used..).unwrap_or_default().to_vec();
            }
        }
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Feeds bytes and appends what they complete to `out`, in order (pull style: the
    /// caller drains `out` afterwards). A text message becomes one line, its line breaks
    /// turned into spaces.
    pub fn decode_into(&mut self, data: &[u8], max_message: usize, out: &mut Inputs) {
        self.feed(data, max_message, |event| match event {
            WsEvent::Text(text) => out.push_message(text),
            WsEvent::Ping(payload) => out.push(Input::Ping(payload)),
            WsEvent::Pong => out.push(Input::Pong),
            WsEvent::Close(code) => out.push(Input::Close(code)),
            WsEvent::Fail(code) => out.push(Input::Fail(code)),
        });
    }

    /// True when nothing is buffered.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.partial.is_none()
    }

    /// Decodes complete frames from `data`; returns the bytes consumed.
    fn frames(&mut self, data: &[u8], max: usize, f: &mut impl FnMut(WsEvent<'_>)) -> usize {
        let mut pos = 0;
        while !self.dead {
            let mut cursor = Cursor::new(data.get(pos..).unwrap_or_default());
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(_) => return self.fail(close::PROTOCOL, f),
            };
            if len > max as u64 {
                return self.fail(close::TOO_BIG, f);
            }
            let start = pos + cursor.position() as usize;
            let end = start + len as usize;
            if data.len() < end {
                break;
            }
            pos = end;
            let Some(mask) = header.mask else {
                return self.fail(close::PROTOCOL, f);
            };
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return self.fail(close::PROTOCOL, f);
            }
            let mut payload = data.get(start..end).unwrap_or_default().to_vec();
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
            self.frame(header.opcode, header.is_final, payload, max, f);
        }
        pos
    }

    fn frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: Vec<u8>,
        max: usize,
        f: &mut impl FnMut(WsEvent<'_>),
    ) {
        match opcode {
            OpCode::Control(ctl) => {
                if !fin || payload.len() > 125 {
                    self.fail(close::PROTOCOL, f);
                    return;
                }
                match ctl {
                    Control::Ping => f(WsEvent::Ping(&payload)),
                    Control::Pong => f(WsEvent::Pong),
                    Control::Close => {
                        let code = match payload.as_slice() {
                            [] => 1005,
                            [a, b, rest @ ..] => {
                                let code = u16::from_be_bytes([*a, *b]);
                                if !valid_close_code(code) {
                                    self.fail(close::PROTOCOL, f);
                                    return;
                                }
                                if std::str::from_utf8(rest).is_err() {
                                    self.fail(close::INVALID_PAYLOAD, f);
                                    return;
                                }
                                code
                            }
                            _ => {
                                self.fail(close::PROTOCOL, f);
                                return;
                            }
                        };
                        self.dead = true;
                        f(WsEvent::Close(code));
                    }
                    Control::Reserved(_) => {
                        self.fail(close::PROTOCOL, f);
                    }
                }
            }
            OpCode::Data(Data::Binary) => {
                self.fail(close::UNSUPPORTED, f);
            }
            OpCode::Data(Data::Text) => {
                if self.partial.is_some() {
                    self.fail(close::PROTOCOL, f);
                } else if fin {
                    self.text(payload, f);
                } else {
                    self.partial = Some(Box::new(payload));
                }
            }
            OpCode::Data(Data::Continue) => {
                let Some(mut partial) = self.partial.take() else {
                    self.fail(close::PROTOCOL, f);
                    return;
                };
                if partial.len() + payload.len() > max {
                    self.fail(close::TOO_BIG, f);
                    return;
                }
                partial.extend_from_slice(&payload);
                if fin {
                    self.text(*partial, f);
                } else {
                    self.partial = Some(partial);
                }
            }
            OpCode::Data(Data::Reserved(_)) => {
                self.fail(close::PROTOCOL, f);
            }
        }
    }

    fn text(&mut self, payload: Vec<u8>, f: &mut impl FnMut(WsEvent<'_>)) {
        match std::str::from_utf8(&payload) {
            Ok(text) => f(WsEvent::Text(text)),
            Err(_) => {
                self.fail(close::INVALID_PAYLOAD, f);
            }
        }
    }

    fn fail(&mut self, code: u16, f: &mut impl FnMut(WsEvent<'_>)) -> usize {
        self.dead = true;
        self.buf = Vec::new();
        self.partial = None;
        f(WsEvent::Fail(code));
        0
    }
}

/// A close code a peer may send (RFC 6455 §7.4): the defined ones that may appear on the wire,
/// and the ranges for libraries and applications.
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn header(opcode: OpCode) -> FrameHeader {
    FrameHeader {
        is_final: true,
        opcode,
        mask: None,
        ..FrameHeader::default()
    }
}

fn encode(opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = header(opcode).format(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// Appends one text frame holding `text` (a server message; no trailing newline).
pub fn encode_text(text: &str, out: &mut Vec<u8>) {
    encode(OpCode::Data(Data::Text), text.as_bytes(), out);
}

/// Appends one text frame holding `utf8`, which must be UTF-8 (e.g. serialized JSON).
pub fn encode_text_bytes(utf8: &[u8], out: &mut Vec<u8>) {
    encode(OpCode::Data(Data::Text), utf8, out);
}

/// The subprotocol of JSON mode (SPEC §13).
pub const JSON_PROTOCOL: &str = "chat.v1.json";

/// True when the upgrade request offers [`JSON_PROTOCOL`] in `Sec-WebSocket-Protocol`.
pub fn wants_json(req: &Request) -> bool {
    req.headers
        .iter()
        .filter(|(name, _)| name == "sec-websocket-protocol")
        .flat_map(|(_, value)| value.split(','))
        .any(|p| p.trim() == JSON_PROTOCOL)
}

/// Appends a close frame with a code and a short reason (cut to fit 125 bytes).
pub fn encode_close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(OpCode::Control(Control::Close), &payload, out);
}

/// Appends a pong frame echoing a ping's payload.
pub fn encode_pong(payload: &[u8], out: &mut Vec<u8>) {
    encode(OpCode::Control(Control::Pong), payload, out);
}

/// Appends a ping frame.
pub fn encode_ping(out: &mut Vec<u8>) {
    encode(OpCode::Control(Control::Ping), b"", out);
}

/// Checks an upgrade request to `/ws` and returns the `101 Switching Protocols` response,
/// or the error response to send before closing. `allowed_origins` are extra origins
/// (`scheme://host[:port]`) besides the page's own host.
pub fn handshake(req: &Request, allowed_origins: &[String]) -> Result<Response, Response> {
    if req.method != "GET" {
        return Err(
            Response::text(405, "Method Not Allowed: use GET to open a WebSocket\n")
                .header("Allow", "GET")
                .closing(),
        );
    }
    if req.version < 1 || req.header("host").is_none_or(str::is_empty) {
        return Err(Response::text(
            400,
            "Bad Request: a WebSocket upgrade needs HTTP/1.1 and a Host header\n",
        )
        .closing());
    }
    if !req.header_has_token("upgrade", "websocket")
        || !req.header_has_token("connection", "upgrade")
    {
        return Err(Response::text(
            400,
            "Bad Request: this is a WebSocket endpoint; send an upgrade request\n",
        )
        .closing());
    }
    let mut versions = req
        .headers
        .iter()
        .filter(|(n, _)| n == "sec-websocket-version");
    let version_ok = versions.next().is_some_and(|(_, v)| v == "13") && versions.next().is_none();
    if !version_ok {
        return Err(
            Response::text(426, "Upgrade Required: WebSocket version 13 only\n")
                .header("Sec-WebSocket-Version", "13")
                .closing(),
        );
    }
    let key = req.header("sec-websocket-key").unwrap_or_default();
    if key.len() != 24 || !key.ends_with("==") {
        return Err(
            Response::text(400, "Bad Request: missing or malformed Sec-WebSocket-Key\n").closing(),
        );
    }
    if let Some(origin) = req.header("origin") {
        if !origin_allowed(origin, req.header("host"), allowed_origins) {
            return Err(Response::text(
                403,
                "Forbidden: this origin may not open the chat socket\n",
            )
            .closing());
        }
    }
    let resp = Response::new(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header(
            "Sec-WebSocket-Accept",
            tungstenite::handshake::derive_accept_key(key.as_bytes()),
        );
    Ok(if wants_json(req) {
        resp.header("Sec-WebSocket-Protocol", JSON_PROTOCOL)
    } else {
        resp
    })
}

/// Same host as the page (the request's `Host`), or listed in `allowed`.
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim().to_ascii_lowercase();
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(&origin)) {
        return true;
    }
    let Some(host) = host.map(|h| h.trim().to_ascii_lowercase()) else {
        return false;
    };
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    rest == host
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Ev {
        Text(String),
        Ping(Vec<u8>),
        Pong,
        Close(u16),
        Fail(u16),
    }

    fn decode_chunks(chunks: &[&[u8]], max: usize) -> Vec<Ev> {
        let mut d = WsDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, max, |e| {
                out.push(match e {
                    WsEvent::Text(t) => Ev::Text(t.to_string()),
                    WsEvent::Ping(p) => Ev::Ping(p.to_vec()),
                    WsEvent::Pong => Ev::Pong,
                    WsEvent::Close(c) => Ev::Close(c),
                    WsEvent::Fail(c) => Ev::Fail(c),
                })
            });
        }
        out
    }

    #[test]
    fn frames_split_anywhere_decode_the_same() {
        let mut input = client_frame(0x81, b"hello");
        input.extend(client_frame(0x89, b"p"));
        input.extend(client_frame(0x01, b"frag"));
        input.extend(client_frame(0x80, b"mented"));
        input.extend(client_frame(0x81, "é".repeat(100).as_bytes()));
        input.extend(client_frame(0x88, &[0x03, 0xe8]));
        let want = vec![
            Ev::Text("hello".into()),
            Ev::Ping(b"p".to_vec()),
            Ev::Text("fragmented".into()),
            Ev::Text("é".repeat(100)),
            Ev::Close(1000),
        ];
        for bad in [999u16, 1004, 1005, 1006, 1015, 2000, 5000] {
            let frame = client_frame(0x88, &bad.to_be_bytes());
            assert_eq!(
                decode_chunks(&[&frame], 4096),
                vec![Ev::Fail(1002)],
                "code {bad}"
            );
        }
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.push(0xff);
        assert_eq!(
            decode_chunks(&[&client_frame(0x88, &bad_reason)], 4096),
            vec![Ev::Fail(1007)]
        );
        assert_eq!(
            decode_chunks(&[&client_frame(0x88, &[])], 4096),
            vec![Ev::Close(1005)]
        );
        assert_eq!(
            decode_chunks(&[&client_frame(0x88, &3000u16.to_be_bytes())], 4096),
            vec![Ev::Close(3000)]
        );
        assert_eq!(decode_chunks(&[&input], 4096), want);
        for split in 0..input.len() {
            assert_eq!(
                decode_chunks(&[&input[..split], &input[split..]], 4096),
                want,
                "split {split}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_chunks(&bytes, 4096), want);
    }

    #[test]
    fn rule_breaking_frames_fail_with_the_right_code() {
        assert_eq!(
            decode_chunks(&[&client_frame(0x82, b"bin")], 4096),
            vec![Ev::Fail(1003)]
        );
        assert_eq!(
            decode_chunks(&[&client_frame(0x81, &[0xff, 0xfe])], 4096),
            vec![Ev::Fail(1007)]
        );
        assert_eq!(
            decode_chunks(&[&client_frame(0x81, &[b'a'; 200])], 100),
            vec![Ev::Fail(1009)]
        );
        // A huge declared length fails before the payload arrives.
        let mut huge = vec![0x81, 0x80 | 127];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        huge.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(decode_chunks(&[&huge], 4096), vec![Ev::Fail(1009)]);
        // Unmasked, reserved bits, continuation without start, long ping, fragmented ping.
        assert_eq!(
            decode_chunks(&[&[0x81, 0x01, b'a']], 4096),
            vec![Ev::Fail(1002)]
        );
        assert_eq!(
            decode_chunks(&[&client_frame(0xC1, b"a")], 4096),
            vec![Ev::Fail(1002)]
        );
        assert_eq!(
            decode_chunks(&[&client_frame(0x80, b"a")], 4096),
            vec![Ev::Fail(1002)]
        );
        assert_eq!(
            decode_chunks(&[&client_frame(0x89, &[0; 126])], 4096),
            vec![Ev::Fail(1002)]
        );
        assert_eq!(
            decode_chunks(&[&client_frame(0x09, b"")], 4096),
            vec![Ev::Fail(1002)]
        );
        // Fragments adding up past the cap.
        let mut frag = client_frame(0x01, &[b'a'; 60]);
        frag.extend(client_frame(0x80, &[b'a'; 60]));
        assert_eq!(decode_chunks(&[&frag], 100), vec![Ev::Fail(1009)]);
        // Nothing after a failure.
        let mut after = client_frame(0x82, b"x");
        after.extend(client_frame(0x81, b"y"));
        assert_eq!(decode_chunks(&[&after], 4096), vec![Ev::Fail(1003)]);
    }

    #[test]
    fn idle_decoder_holds_no_buffer() {
        let mut d = WsDecoder::new();
        let f = client_frame(0x81, b"hi");
        d.feed(&f[..3], 4096, |_| {});
        assert!(!d.is_idle());
        d.feed(&f[3..], 4096, |_| {});
        assert!(d.is_idle());
        assert_eq!(d.buf.capacity(), 0);
    }

    #[test]
    fn server_frames_are_unmasked_and_parse_back() {
        let mut out = Vec::new();
        encode_text("hi\nthere", &mut out);
        assert_eq!(out, b"\x81\x08hi\nthere");
        let long = "x".repeat(300);
        let mut out = Vec::new();
        encode_text(&long, &mut out);
        assert_eq!(&out[..4], &[0x81, 126, 0x01, 0x2c]);
        let mut out = Vec::new();
        encode_close(1001, "bye", &mut out);
        assert_eq!(out, b"\x88\x05\x03\xe9bye");
    }

    fn upgrade(extra: &[(&str, &str)]) -> Request {
        let mut headers: Vec<(String, String)> = [
            ("host", "localhost:4004"),
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        for (name, value) in extra {
            headers.retain(|(n, _)| n != name);
            if !value.is_empty() {
                headers.push((name.to_string(), value.to_string()));
            }
        }
        Request {
            method: "GET".into(),
            path: "/ws".into(),
            version: 1,
            headers,
            ..Request::default()
        }
    }

    #[test]
    fn handshake_answers() {
        let ok = handshake(&upgrade(&[]), &[]).unwrap();
        assert_eq!(ok.status, 101);
        assert!(ok.headers.contains(&(
            "Sec-WebSocket-Accept",
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_string()
        )));
        let status = |extra: &[(&str, &str)]| match handshake(
            &upgrade(extra),
            &["https://chat.example.com".into()],
        ) {
            Ok(r) | Err(r) => r.status,
        };
        assert_eq!(status(&[("upgrade", "")]), 400);
        assert_eq!(status(&[("sec-websocket-key", "")]), 400);
        assert_eq!(status(&[("host", "")]), 400);
        assert_eq!(status(&[("sec-websocket-version", "8")]), 426);
        assert_eq!(status(&[("origin", "http://localhost:4004")]), 101);
        assert_eq!(status(&[("origin", "https://chat.example.com")]), 101);
        assert_eq!(status(&[("origin", "http://evil.example")]), 403);
        assert_eq!(status(&[("origin", "null")]), 403);
        let mut post = upgrade(&[]);
        post.method = "POST".into();
        assert_eq!(handshake(&post, &[]).unwrap_err().status, 405);
    }
}
