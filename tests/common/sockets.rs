//! Raw TCP sockets for the robustness tests: a chosen source address, a small receive
//! window, a reset instead of a close, and non-blocking reads of CRLF lines.

use super::DEADLINE;
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// A TCP connection to `dst` from the local address `src` (bound before connecting, which
/// `std` cannot do).
pub fn connect_from(src: IpAddr, dst: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
    socket.connect_timeout(&SockAddr::from(dst), DEADLINE)?;
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A TCP connection whose receive buffer is set small before connecting, so the advertised
/// window stays small: a peer that never reads then backs data up into the server quickly.
pub fn connect_small_rcvbuf(dst: SocketAddr, bytes: usize) -> TcpStream {
    let socket =
        Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
    socket
        .connect_timeout(&SockAddr::from(dst), DEADLINE)
        .unwrap_or_else(|e| panic!("cannot connect to {dst}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Closes a connection with a reset (RST) instead of a FIN: `SO_LINGER` 0, then close.
pub fn reset(stream: TcpStream) {
    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Reads whatever is there without blocking: `Ok(true)` at EOF, `Err` on reset.
pub fn read_available(stream: &mut TcpStream, into: &mut Vec<u8>) -> io::Result<bool> {
    stream.set_nonblocking(true)?;
    let mut chunk = [0u8; 16384];
    let result = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break Ok(true),
            Ok(n) => into.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    result
}

/// Splits CRLF-terminated lines off the front of `buf`.
pub fn split_lines(buf: &mut Vec<u8>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(i) = buf[start..].windows(2).position(|w| w == b"\r\n") {
        lines.push(String::from_utf8_lossy(&buf[start..start + i]).into_owned());
        start += i + 2;
    }
    buf.drain(..start);
    lines
}
