//! Encode once, share everywhere: a chat message becomes at most one chunk per wire format,
//! and every recipient's queue holds a reference to it. Pure (no sockets), so the fan-out
//! benchmark drives exactly this code.

use super::buffer::Chunk;
use crate::chat::Event;
use crate::proto::{telnet, websocket};

/// The chat wire formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// CR LF terminated lines.
    Telnet,
    /// One text frame per message.
    WebSocket,
    /// One text frame per message holding one JSON object (subprotocol `chat.v1.json`).
    Json,
}

/// Encodes `text` for one wire format, using `buf` as scratch space. In JSON mode the text
/// is a `notice` event.
pub fn encode(wire: Wire, text: &str, buf: &mut Vec<u8>) -> Chunk {
    encode_event(wire, &Event::notice(text), buf)
}

/// Encodes an event for one wire format: its `line` for text clients, its JSON object in a
/// text frame for JSON clients.
pub fn encode_event(wire: Wire, event: &Event<'_>, buf: &mut Vec<u8>) -> Chunk {
    buf.clear();
    match wire {
        Wire::Telnet => telnet::encode_message(event.line, buf),
        Wire::WebSocket => websocket::encode_text(event.line, buf),
        Wire::Json => {
            let mut json = Vec::with_capacity(event.line.len() + 64);
            event.write_json(&mut json);
            websocket::encode_text_bytes(&json, buf);
        }
    }
    Chunk::from(&buf[..])
}

/// One message on its way to many recipients: each wire format is encoded on first use
/// and shared after that.
pub struct Encoded<'a> {
    event: Event<'a>,
    chunks: [Option<Chunk>; 3],
}

impl<'a> Encoded<'a> {
    /// A plain message (a `notice` in JSON mode); nothing encoded yet.
    pub fn new(text: &'a str) -> Encoded<'a> {
        Encoded::event(Event::notice(text))
    }

    /// A typed event; nothing encoded yet.
    pub fn event(event: Event<'a>) -> Encoded<'a> {
        Encoded {
            event,
            chunks: [None, None, None],
        }
    }

    /// The message's bytes for `wire`: a new reference to the shared chunk.
    pub fn chunk(&mut self, wire: Wire, buf: &mut Vec<u8>) -> Chunk {
        let event = &self.event;
        self.chunks[wire as usize]
            .get_or_insert_with(|| encode_event(wire, event, buf))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wire_is_encoded_once_and_shared() {
        let mut buf = Vec::new();
        let mut msg = Encoded::new("hi");
        let a = msg.chunk(Wire::Telnet, &mut buf);
        let b = msg.chunk(Wire::Telnet, &mut buf);
        assert!(Chunk::ptr_eq(&a, &b));
        assert_eq!(&*a, b"hi\r\n");
        assert_eq!(&*msg.chunk(Wire::WebSocket, &mut buf), b"\x81\x02hi");
        let json = msg.chunk(Wire::Json, &mut buf);
        assert!(Chunk::ptr_eq(&json, &msg.chunk(Wire::Json, &mut buf)));
        assert_eq!(&json[2..], br#"{"type":"notice","line":"hi"}"#);
    }
}
