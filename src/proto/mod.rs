//! Codecs: bytes to frames and back (telnet lines, text rules). Pure: no sockets, no clock.

pub mod http;
pub mod input;
pub mod telnet;
pub mod text;
pub mod websocket;
