//! Telnet line protocol: bytes from the socket to lines, and messages back to bytes.
//!
//! [`TelnetDecoder`] splits the input into lines and strips telnet negotiation,
//! refusing every option (except that `IAC DO TIMING-MARK` is answered with
//! `IAC WILL TIMING-MARK`, which Linux `telnet` waits for after Ctrl-C).
//!
//! Line ends: LF, CR LF, CR NUL, and a bare CR (the byte after a bare CR is
//! processed normally). The decoder emits a line as soon as its CR or LF
//! arrives, then swallows one LF or NUL right after a CR. The events are the
//! same however the input is split into chunks.
//!
//! The decoder is small (it is kept per connection) and owns no heap memory
//! while no partial line is buffered; limits are passed on every call.

use super::input::{Input, Inputs};

/// Interpret As Command: starts every telnet command.
pub const IAC: u8 = 255;
/// Refuse to perform an option / confirm it is off.
pub const DONT: u8 = 254;
/// Ask the peer to perform an option.
pub const DO: u8 = 253;
/// Refuse to perform an option.
pub const WONT: u8 = 252;
/// Offer to perform an option.
pub const WILL: u8 = 251;
/// Start of subnegotiation.
pub const SB: u8 = 250;
/// Interrupt Process (sent by `telnet` on Ctrl-C).
pub const IP: u8 = 244;
/// End of subnegotiation.
pub const SE: u8 = 240;
/// The TIMING-MARK option (RFC 860).
pub const TIMING_MARK: u8 = 6;
/// Reply to `IAC DO TIMING-MARK`: `IAC WILL TIMING-MARK`.
pub const WILL_TIMING_MARK: [u8; 3] = [IAC, WILL, TIMING_MARK];

/// Per-call limits, so the decoder itself stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelnetLimits {
    /// Longest accepted line in bytes (after IAC/CR/LF removal); longer ones give [`TelnetEvent::TooLong`].
    pub max_line: usize,
    /// Most bytes accepted without a line end; more give [`TelnetEvent::InputOverflow`].
    pub max_input: usize,
}

impl Default for TelnetLimits {
    fn default() -> Self {
        TelnetLimits {
            max_line: 512,
            max_input: 4096,
        }
    }
}

/// What the decoder found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum TelnetEvent<'a> {
    /// Raw bytes of one complete line, IAC/CR/LF removed (not yet UTF-8 checked).
    Line(&'a [u8]),
    /// Bytes to send back at once (a refusal, or `IAC WILL TIMING-MARK`).
    Reply([u8; 3]),
    /// A complete line exceeded `max_line`; nothing of it is delivered.
    TooLong,
    /// More than `max_input` bytes arrived without a line end; the decoder is now dead.
    InputOverflow,
}

/// Where the decoder is between two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Ordinary line data.
    #[default]
    Data,
    /// A CR just ended a line; one LF or NUL right after it is swallowed.
    AfterCr,
    /// Saw IAC in data.
    Iac,
    /// Saw IAC WILL/WONT/DO/DONT (the verb is kept); waiting for the option byte.
    Option(u8),
    /// Inside IAC SB ... IAC SE.
    Sub,
    /// Saw IAC inside a subnegotiation.
    SubIac,
    /// Input overflowed: everything else is ignored.
    Dead,
}

/// Incremental telnet decoder, one per connection.
#[derive(Debug, Default)]
pub struct TelnetDecoder {
    /// The partial line; at most `max_line + 1` bytes, empty (no capacity) between calls when no line is pending.
    line: Vec<u8>,
    /// Bytes received since the last line end (line ends themselves not counted).
    pending: usize,
    state: State,
}

impl TelnetDecoder {
    /// A fresh decoder (owns no heap memory).
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; calls `f` for each event in order.
    pub fn feed(&mut self, data: &[u8], limits: &TelnetLimits, mut f: impl FnMut(TelnetEvent<'_>)) {
        for (i, &byte) in data.iter().enumerate() {
            if self.state == State::Dead {
                break;
            }
            if self.is_line_end(byte) {
                self.pending = 0;
            } else {
                self.pending = self.pending.saturating_add(1);
                if self.pending > limits.max_input {
                    self.state = State::Dead;
                    f(TelnetEvent::InputOverflow);
                    break;
                }
            }
            let rest = data.len() - i;
            self.step(byte, limits, rest, &mut f);
        }
        if self.line.is_empty() || self.state == State::Dead {
            self.line = Vec::new();
        }
    }

    /// Feeds bytes and appends what they complete to `out`, in order (pull style: the
    /// caller drains `out` afterwards).
    pub fn decode_into(&mut self, data: &[u8], limits: &TelnetLimits, out: &mut Inputs) {
        self.feed(data, limits, |event| match event {
            TelnetEvent::Line(line) => out.push(Input::Line(line)),
            TelnetEvent::Reply(bytes) => out.push(Input::Reply(&bytes)),
            TelnetEvent::TooLong => out.push(Input::TooLong),
            TelnetEvent::InputOverflow => out.push(Input::Overflow),
        });
    }

    /// No partial line and no pending negotiation state.
    ///
    /// Just after a CR counts as idle: nothing is buffered, only a following
    /// LF or NUL would be swallowed. A dead decoder is not idle.
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && matches!(self.state, State::Data | State::AfterCr)
    }

    /// Whether `byte`, in the current state, ends a line (or completes a CR LF / CR NUL).
    fn is_line_end(&self, byte: u8) -> bool {
        match self.state {
            State::Data => byte == b'\n' || byte == b'\r',
            State::AfterCr => byte == b'\n' || byte == b'\r' || byte == 0,
            _ => false,
        }
    }

    /// Process one byte. `rest` is how many bytes of this chunk remain, counting this one.
    fn step(
        &mut self,
        byte: u8,
        limits: &TelnetLimits,
        rest: usize,
        f: &mut impl FnMut(TelnetEvent<'_>),
    ) {
        match self.state {
            State::Data => self.data_byte(byte, limits, rest, f),
            State::AfterCr => {
                self.state = State::Data;
                if byte != b'\n' && byte != 0 {
                    self.data_byte(byte, limits, rest, f);
                }
            }
            State::Iac => self.command(byte, limits, rest),
            State::Option(verb) => {
                self.state = State::Data;
                match verb {
                    DO if byte == TIMING_MARK => f(TelnetEvent::Reply(WILL_TIMING_MARK)),
                    DO => f(TelnetEvent::Reply([IAC, WONT, byte])),
                    WILL => f(TelnetEvent::Reply([IAC, DONT, byte])),
                    _ => {}
                }
            }
            State::Sub => {
                if byte == IAC {
                    self.state = State::SubIac;
                }
            }
            State::SubIac => match byte {
                SE => self.state = State::Data,
                IAC => self.state = State::Sub,
                // Malformed: end the subnegotiation and take this as a command.
                _ => self.command(byte, limits, rest),
            },
            State::Dead => {}
        }
    }

    /// A byte in the data state: line end, start of a command, or line content.
    fn data_byte(
        &mut self,
        byte: u8,
        limits: &TelnetLimits,
        rest: usize,
        f: &mut impl FnMut(TelnetEvent<'_>),
    ) {
        match byte {
            b'\n' => self.end_line(limits, f),
            b'\r' => {
                self.end_line(limits, f);
                self.state = State::AfterCr;
            }
            IAC => self.state = State::Iac,
            _ => self.push(byte, limits, rest),
        }
    }

    /// The byte after an IAC.
    fn command(&mut self, byte: u8, limits: &TelnetLimits, rest: usize) {
        self.state = State::Data;
        match byte {
            IAC => self.push(IAC, limits, rest),
            WILL | WONT | DO | DONT => self.state = State::Option(byte),
            SB => self.state = State::Sub,
            IP => self.line.clear(),
            // NOP, DM, BRK, AO, AYT, EC, EL, GA, stray SE, anything else: ignored.
            _ => {}
        }
    }

    /// Append a data byte, buffering at most `max_line + 1` bytes of a line.
    fn push(&mut self, byte: u8, limits: &TelnetLimits, rest: usize) {
        if self.line.len() <= limits.max_line {
            if self.line.capacity() == 0 {
                // Usually the whole line is in this chunk: allocate once.
                self.line
                    .reserve(rest.min(limits.max_line.saturating_add(1)));
            }
            self.line.push(byte);
        }
    }

    /// A line end arrived: deliver the line (or TooLong) and start a new one.
    fn end_line(&mut self, limits: &TelnetLimits, f: &mut impl FnMut(TelnetEvent<'_>)) {
        if self.line.len() > limits.max_line {
            f(TelnetEvent::TooLong);
        } else {
            f(TelnetEvent::Line(&self.line));
        }
        self.line.clear();
    }

    #[cfg(test)]
    fn line_capacity(&self) -> usize {
        self.line.capacity()
    }
}

/// True when a (cleaned) first line looks like an HTTP request line, e.g. `GET / HTTP/1.1`:
/// METHOD SP target SP `HTTP/` digit `.` digit, with METHOD one of GET HEAD POST PUT
/// DELETE OPTIONS PATCH CONNECT TRACE.
pub fn looks_like_http_request(line: &str) -> bool {
    const METHODS: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let version_ok = match version.as_bytes() {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] => {
            major.is_ascii_digit() && minor.is_ascii_digit()
        }
        _ => false,
    };
    METHODS.contains(&method) && !target.is_empty() && version_ok
}

/// Encode one outgoing message for telnet, appending to `out`.
///
/// Each `'\n'`-separated line is followed by `"\r\n"` (a final `'\n'` ends the
/// last line rather than adding an empty one; an empty message is one empty
/// line). A bare CR becomes CR NUL and any 0xFF byte is doubled (IAC IAC), as
/// the telnet NVT requires; UTF-8 text never holds 0xFF, but this stays correct.
pub fn encode_message(text: &str, out: &mut Vec<u8>) {
    let body = text.strip_suffix('\n').unwrap_or(text);
    out.reserve(body.len() + 2);
    for line in body.split('\n') {
        for &byte in line.as_bytes() {
            match byte {
                IAC => out.extend_from_slice(&[IAC, IAC]),
                b'\r' => out.extend_from_slice(b"\r\0"),
                _ => out.push(byte),
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An owned copy of an event, to collect and compare.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Line(Vec<u8>),
        Reply([u8; 3]),
        TooLong,
        InputOverflow,
    }

    fn owned(ev: TelnetEvent<'_>) -> Ev {
        match ev {
            TelnetEvent::Line(l) => Ev::Line(l.to_vec()),
            TelnetEvent::Reply(r) => Ev::Reply(r),
            TelnetEvent::TooLong => Ev::TooLong,
            TelnetEvent::InputOverflow => Ev::InputOverflow,
        }
    }

    fn line(s: &[u8]) -> Ev {
        Ev::Line(s.to_vec())
    }

    /// Decode `chunks` in order with one decoder.
    fn decode_chunks<'a>(
        chunks: impl IntoIterator<Item = &'a [u8]>,
        limits: &TelnetLimits,
    ) -> (Vec<Ev>, TelnetDecoder) {
        let mut dec = TelnetDecoder::new();
        let mut evs = Vec::new();
        for chunk in chunks {
            dec.feed(chunk, limits, |e| evs.push(owned(e)));
        }
        (evs, dec)
    }

    fn decode(input: &[u8], limits: &TelnetLimits) -> Vec<Ev> {
        decode_chunks([input], limits).0
    }

    /// Decode in one piece, byte by byte, and split at every point (into two and three
    /// chunks); all must agree. Returns the events.
    fn decode_all_splits(input: &[u8], limits: &TelnetLimits) -> Vec<Ev> {
        let whole = decode(input, limits);
        let bytewise = decode_chunks(input.chunks(1), limits).0;
        assert_eq!(bytewise, whole, "byte by byte: {input:?}");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(
                decode_chunks([a, b], limits).0,
                whole,
                "split at {i}: {input:?}"
            );
            for j in i..=input.len() {
                let (b1, b2) = input.split_at(j);
                let three = [&b1[..i], &b1[i..], b2];
                assert_eq!(decode_chunks(three, limits).0, whole, "split at {i},{j}");
            }
        }
        whole
    }

    const LIMITS: TelnetLimits = TelnetLimits {
        max_line: 512,
        max_input: 4096,
    };

    #[test]
    fn decoder_is_small() {
        assert!(std::mem::size_of::<TelnetDecoder>() <= 40);
    }

    #[test]
    fn line_ends() {
        let evs = decode_all_splits(b"a\r\nb\r\0c\rd\ne\r\r\n", &LIMITS);
        assert_eq!(
            evs,
            [
                line(b"a"),
                line(b"b"),
                line(b"c"),
                line(b"d"),
                line(b"e"),
                line(b"")
            ]
        );
        assert_eq!(decode_all_splits(b"\n\n", &LIMITS), [line(b""), line(b"")]);
        assert_eq!(
            decode_all_splits(b"\r\0\0x\n", &LIMITS),
            [line(b""), line(b"\0x")]
        );
    }

    #[test]
    fn negotiation_refused_and_stripped() {
        let input = b"h\xff\xfd\x01i\xff\xfb\x03\xff\xfc\x05\xff\xfe\x07\r\n";
        let evs = decode_all_splits(input, &LIMITS);
        assert_eq!(
            evs,
            [
                Ev::Reply([IAC, WONT, 1]),
                Ev::Reply([IAC, DONT, 3]),
                line(b"hi")
            ]
        );
    }

    #[test]
    fn subnegotiation_skipped() {
        let input = b"a\xff\xfa\x18\x00xterm\xff\xff\r\n\xff\xf0b\n";
        assert_eq!(decode_all_splits(input, &LIMITS), [line(b"ab")]);
        // A malformed SB ends at the next command.
        let input = b"a\xff\xfa\x18junk\xff\xfd\x01b\n";
        assert_eq!(
            decode_all_splits(input, &LIMITS),
            [Ev::Reply([IAC, WONT, 1]), line(b"ab")]
        );
    }

    #[test]
    fn iac_iac_is_data_and_other_commands_ignored() {
        let input = b"a\xff\xffb\xff\xf1\xff\xf9\xff\xf6\xff\xf0c\n";
        assert_eq!(decode_all_splits(input, &LIMITS), [line(b"a\xffbc")]);
    }

    #[test]
    fn ctrl_c_discards_partial_line_and_answers_timing_mark() {
        let input = b"one\r\npartial\xff\xf4\xff\xfd\x06two\r\n\xff\xfb\x06";
        let evs = decode_all_splits(input, &LIMITS);
        assert_eq!(
            evs,
            [
                line(b"one"),
                Ev::Reply([0xff, 0xfb, 0x06]),
                line(b"two"),
                Ev::Reply([IAC, DONT, TIMING_MARK]),
            ]
        );
    }

    #[test]
    fn mixed_input_every_split() {
        let input =
            b"\xff\xfd\x18\xff\xfa\x1f\x00\x50\xff\xff\xff\xf0hi\xff\xff\r\0x\ry\xff\xf4z\r\n";
        assert_eq!(
            decode_all_splits(input, &LIMITS),
            [
                Ev::Reply([IAC, WONT, 0x18]),
                line(b"hi\xff"),
                line(b"x"),
                line(b"z"),
            ]
        );
    }

    #[test]
    fn too_long_at_max_line_plus_one() {
        let limits = TelnetLimits {
            max_line: 8,
            max_input: 100,
        };
        let mut input = vec![b'x'; 8];
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(&[b'y'; 9]);
        input.extend_from_slice(b"\nok\n");
        let evs = decode_all_splits(&input, &limits);
        assert_eq!(evs, [line(&[b'x'; 8]), Ev::TooLong, line(b"ok")]);

        // Never buffers more than max_line + 1 bytes.
        let mut dec = TelnetDecoder::new();
        dec.feed(&[b'z'; 50], &limits, |_| {});
        assert_eq!(dec.line.len(), 9);
        assert!(!dec.is_idle());
    }

    #[test]
    fn input_overflow_after_max_input() {
        let limits = TelnetLimits {
            max_line: 4,
            max_input: 10,
        };
        // Exactly max_input bytes (negotiation included) then a line end: fine.
        let input = b"abcdef\xff\xf1gh\r\nok\n";
        assert_eq!(
            decode_all_splits(input, &limits),
            [Ev::TooLong, line(b"ok")]
        );
        // One more: overflow, once, and nothing after it.
        let input = b"abcdef\xff\xf1ghi\r\nok\n\xff\xfd\x01";
        assert_eq!(decode_all_splits(input, &limits), [Ev::InputOverflow]);
        let (evs, mut dec) = decode_chunks([&input[..]], &limits);
        assert_eq!(evs, [Ev::InputOverflow]);
        assert_eq!(dec.line_capacity(), 0);
        let mut more = 0;
        dec.feed(b"x\n", &limits, |_| more += 1);
        assert_eq!(more, 0);
        // Line ends reset the count.
        let input = b"abcdefghij\nabcdefghij\r\0abcdefghij\n";
        assert_eq!(decode_all_splits(input, &limits).len(), 3);
    }

    #[test]
    fn idle_decoder_owns_no_heap() {
        let mut dec = TelnetDecoder::new();
        assert!(dec.is_idle());
        assert_eq!(dec.line_capacity(), 0);
        dec.feed(b"hel", &LIMITS, |_| {});
        assert!(!dec.is_idle());
        assert!(dec.line_capacity() > 0);
        let mut got = Vec::new();
        dec.feed(b"lo\r\n", &LIMITS, |e| got.push(owned(e)));
        assert_eq!(got, [line(b"hello")]);
        assert!(dec.is_idle());
        assert_eq!(dec.line_capacity(), 0);
        dec.feed(b"\xff", &LIMITS, |_| {});
        assert!(!dec.is_idle());
        assert_eq!(dec.line_capacity(), 0);
        dec.feed(b"\xfa\x01", &LIMITS, |_| {});
        assert!(!dec.is_idle());
        dec.feed(b"\xff\xf0", &LIMITS, |_| {});
        assert!(dec.is_idle());
    }

    #[test]
    fn http_request_lines() {
        assert!(looks_like_http_request("GET / HTTP/1.1"));
        assert!(looks_like_http_request("POST /api/x?y=1 HTTP/1.0"));
        assert!(looks_like_http_request("OPTIONS * HTTP/1.1"));
        assert!(!looks_like_http_request("get / HTTP/1.1"));
        assert!(!looks_like_http_request("GET /"));
        assert!(!looks_like_http_request("GET  / HTTP/1.1"));
        assert!(!looks_like_http_request("GET / HTTP/1.1 x"));
        assert!(!looks_like_http_request("GET / HTTP/11"));
        assert!(!looks_like_http_request("FETCH / HTTP/1.1"));
        assert!(!looks_like_http_request("hello there"));
    }

    #[test]
    fn encode() {
        let mut out = Vec::new();
        encode_message("a\nb", &mut out);
        encode_message("c\n", &mut out);
        encode_message("", &mut out);
        encode_message("x\ry", &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\n\r\nx\r\0y\r\n");
    }

    fn chunked(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts {
            chunks.push(input[start..cut].to_vec());
            start = cut;
        }
        chunks.push(input[start..].to_vec());
        chunks
    }

    proptest! {
        #[test]
        fn any_chunking_gives_same_events(
            input in proptest::collection::vec(
                prop_oneof![
                    Just(b'\r'), Just(b'\n'), Just(0u8), Just(IAC), Just(DO), Just(WILL),
                    Just(SB), Just(SE), Just(IP), Just(TIMING_MARK), b'a'..=b'e',
                ],
                0..200,
            ),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
            max_line in 0usize..20,
            max_input in 0usize..300,
        ) {
            let limits = TelnetLimits { max_line, max_input };
            let whole = decode(&input, &limits);
            let chunks = chunked(&input, &cuts);
            let (evs, dec) = decode_chunks(chunks.iter().map(Vec::as_slice), &limits);
            prop_assert_eq!(evs, whole);
            prop_assert!(dec.line.len() <= max_line + 1);
            if dec.line.is_empty() {
                prop_assert_eq!(dec.line_capacity(), 0);
            }
        }
    }
}
