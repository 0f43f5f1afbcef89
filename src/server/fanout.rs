//! Encode once, share everywhere: a chat message becomes at most one chunk per wire format,
//! and every recipient's queue holds a reference to it. Pure (no sockets), so the fan-out
//! benchmark drives exactly this code.

use super::buffer::Chunk;
use crate::proto::{telnet, websocket};
use std::rc::Rc;

/// The two chat wire formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// CR LF terminated lines.
    Telnet,
    /// One text frame per message.
    WebSocket,
}

/// Encodes `text` for one wire format, using `buf` as scratch space.
pub fn encode(wire: Wire, text: &str, buf: &mut Vec<u8>) -> Chunk {
    buf.clear();
    match wire {
        Wire::Telnet => telnet::encode_message(text, buf),
        Wire::WebSocket => websocket::encode_text(text, buf),
    }
    Rc::from(&buf[..])
}

/// One message on its way to many recipients: each wire format is encoded on first use
/// and shared after that.
pub struct Encoded<'a> {
    text: &'a str,
    chunks: [Option<Chunk>; 2],
}

impl<'a> Encoded<'a> {
    /// Nothing encoded yet.
    pub fn new(text: &'a str) -> Encoded<'a> {
        Encoded {
            text,
            chunks: [None, None],
        }
    }

    /// The message's bytes for `wire`: a new reference to the shared chunk.
    pub fn chunk(&mut self, wire: Wire, buf: &mut Vec<u8>) -> Chunk {
        let text = self.text;
        self.chunks[wire as usize]
            .get_or_insert_with(|| encode(wire, text, buf))
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
        assert!(Rc::ptr_eq(&a, &b));
        assert_eq!(&*a, b"hi\r\n");
        assert_eq!(&*msg.chunk(Wire::WebSocket, &mut buf), b"\x81\x02hi");
    }
}
