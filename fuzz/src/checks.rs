//! Invariant checks shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and the
//! property tests (`tests/properties.rs`, which includes this file with `#[path]`), so that
//! both hold the code to exactly the same rules.
//!
//! Every `check_*` / `run_*` function feeds one input through the public API of the
//! `chat_server` library and panics (with a message saying which rule broke) when an
//! invariant does not hold:
//!
//! - framers: no panic on any input; the same events however the input is split into
//!   chunks; every line/message/request within its limit; decoder memory bounded;
//! - the chat core: every text sent is non-empty, free of control characters other than
//!   `'\n'` (between lines) and TAB, at most [`MAX_MESSAGE`] bytes, sent only to connected
//!   clients that the core has not closed, and a chat/private/announcement text only after
//!   its log record was written (never when the write failed);
//! - the routers: every response encodes to well-formed HTTP/1.1 with a known status, header
//!   values without control characters (no header injection) and a correct
//!   `Content-Length`; JSON bodies parse, and REST ones carry the envelope.
//!
//! Memory is measured with [`CountingAlloc`], a global allocator that counts live heap bytes
//! per thread; the crate that includes this file installs it with `#[global_allocator]`.
//! Where it is not installed the memory checks are skipped.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// The peer address of every simulated connection.
pub(crate) const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000));

#[path = "checks/heap.rs"]
mod heap;
pub use self::heap::*;
#[path = "checks/chunking.rs"]
mod chunking;
pub use self::chunking::*;
#[path = "checks/telnet.rs"]
mod telnet;
pub use self::telnet::*;
#[path = "checks/http.rs"]
mod http;
pub use self::http::*;
#[path = "checks/routing.rs"]
mod routing;
pub use self::routing::*;
#[path = "checks/websocket.rs"]
mod websocket;
pub use self::websocket::*;
#[path = "checks/chat.rs"]
mod chat;
pub use self::chat::*;
