//! Codecs: bytes to frames and back (telnet lines, text rules). Pure: no sockets, no clock.

pub mod telnet;
pub mod text;
