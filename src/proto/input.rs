//! What the chat framers decode, in one form for both chat transports: the decoders append
//! their inputs to an [`Inputs`] list (pull style: feed bytes, then drain the list), so the
//! shell applies the line rules in one place and the decoder never calls back into it.

/// One thing a chat client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// One line of chat input: raw bytes, not yet checked as UTF-8 or cleaned.
    Line(&'a [u8]),
    /// A telnet line longer than the line limit arrived; nothing of it is kept.
    TooLong,
    /// More telnet bytes than the input limit arrived without a line end; the decoder is dead.
    Overflow,
    /// Bytes to send back as they are (a telnet option refusal or timing mark).
    Reply(&'a [u8]),
    /// A WebSocket ping: answer with a pong carrying this payload.
    Ping(&'a [u8]),
    /// A WebSocket pong.
    Pong,
    /// The WebSocket client closes with this code (1005 when it gave none).
    Close(u16),
    /// The WebSocket client broke the protocol: close with this code.
    Fail(u16),
}

/// Where an input's bytes lie in [`Inputs`]' buffer.
type Span = (u32, u32);

/// [`Input`] with its bytes stored in the list's one buffer.
#[derive(Clone, Copy, Debug)]
enum Item {
    Line(Span),
    TooLong,
    Overflow,
    Reply(Span),
    Ping(Span),
    Pong,
    Close(u16),
    Fail(u16),
}

/// A list of decoded inputs sharing one byte buffer. The shell owns one and reuses it for
/// every read, so decoding allocates nothing in steady state.
#[derive(Debug, Default)]
pub struct Inputs {
    bytes: Vec<u8>,
    items: Vec<Item>,
}

impl Inputs {
    /// An empty list (owns no heap memory).
    pub fn new() -> Inputs {
        Inputs::default()
    }

    /// Appends an input, copying its bytes.
    pub fn push(&mut self, input: Input<'_>) {
        let item = match input {
            Input::Line(bytes) => Item::Line(self.store(bytes)),
            Input::TooLong => Item::TooLong,
            Input::Overflow => Item::Overflow,
            Input::Reply(bytes) => Item::Reply(self.store(bytes)),
            Input::Ping(bytes) => Item::Ping(self.store(bytes)),
            Input::Pong => Item::Pong,
            Input::Close(code) => Item::Close(code),
            Input::Fail(code) => Item::Fail(code),
        };
        self.items.push(item);
    }

    /// Appends `text` as one line, its line breaks (CR, LF) turned into spaces: one WebSocket
    /// message is one line of chat.
    pub fn push_message(&mut self, text: &str) {
        let start = self.bytes.len();
        self.bytes.extend(
            text.bytes()
                .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
        self.items
            .push(Item::Line((offset(start), offset(self.bytes.len()))));
    }

    fn store(&mut self, bytes: &[u8]) -> Span {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        (offset(start), offset(self.bytes.len()))
    }

    fn span(&self, (start, end): Span) -> &[u8] {
        self.bytes
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// The number of inputs.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The inputs in the order they arrived.
    pub fn iter(&self) -> impl Iterator<Item = Input<'_>> {
        self.items.iter().map(|item| match *item {
            Item::Line(span) => Input::Line(self.span(span)),
            Item::TooLong => Input::TooLong,
            Item::Overflow => Input::Overflow,
            Item::Reply(span) => Input::Reply(self.span(span)),
            Item::Ping(span) => Input::Ping(self.span(span)),
            Item::Pong => Input::Pong,
            Item::Close(code) => Input::Close(code),
            Item::Fail(code) => Input::Fail(code),
        })
    }

    /// Forgets every input, keeping the buffers for the next read.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
    }
}

/// A buffer offset in 32 bits: the list holds what one read decodes (kilobytes).
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_come_back_in_order_with_their_bytes() {
        let mut list = Inputs::new();
        list.push(Input::Line(b"hello"));
        list.push(Input::Reply(&[255, 252, 1]));
        list.push(Input::TooLong);
        list.push_message("two\r\nlines\n");
        list.push(Input::Ping(b""));
        list.push(Input::Close(1000));
        assert_eq!(list.len(), 6);
        let got: Vec<Input<'_>> = list.iter().collect();
        assert_eq!(
            got,
            [
                Input::Line(b"hello"),
                Input::Reply(&[255, 252, 1]),
                Input::TooLong,
                Input::Line(b"two  lines "),
                Input::Ping(b""),
                Input::Close(1000),
            ]
        );
        list.clear();
        assert!(list.is_empty());
        assert_eq!(list.iter().count(), 0);
    }

    #[test]
    fn both_decoders_append_to_one_list_in_order() {
        use crate::proto::telnet::{TelnetDecoder, TelnetLimits, IAC, WONT};
        use crate::proto::websocket::WsDecoder;
        let mut list = Inputs::new();
        let limits = TelnetLimits {
            max_line: 8,
            max_input: 64,
        };
        let mut telnet = TelnetDecoder::new();
        telnet.decode_into(b"hi\r\n\xff\xfd\x01toolongline\n", &limits, &mut list);
        // A masked text frame "a\nb" (mask 0), then a ping with payload "p".
        let mut ws = WsDecoder::new();
        let frames = [
            &[0x81, 0x83, 0, 0, 0, 0, b'a', b'\n', b'b'][..],
            &[0x89, 0x81, 0, 0, 0, 0, b'p'][..],
        ]
        .concat();
        ws.decode_into(&frames, 4096, &mut list);
        let got: Vec<Input<'_>> = list.iter().collect();
        assert_eq!(
            got,
            [
                Input::Line(b"hi"),
                Input::Reply(&[IAC, WONT, 1]),
                Input::TooLong,
                Input::Line(b"a b"),
                Input::Ping(b"p"),
            ]
        );
    }
}
