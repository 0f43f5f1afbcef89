//! Codecs: bytes to frames and back (telnet lines, text rules, RESP2 for the cluster link). Pure: no sockets, no clock.

pub mod http;
pub mod input;
pub mod resp;
pub mod telnet;
pub mod text;
pub mod websocket;
