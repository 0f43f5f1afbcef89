//! chat-server: an IRC-like chat server that people reach with `telnet` or a browser over
//! WebSocket, and that administrators drive over HTTP.
//!
//! # Architecture
//!
//! One thread runs one `mio::Poll` loop ([`server`]). Listeners and every connection live in
//! one `slab::Slab`; a connection is a protocol variant (telnet, HTTP, WebSocket) with its own
//! bounded input state and a bounded output queue of shared byte chunks. Readable bytes go
//! through a per-protocol framer ([`proto`]) into one pure chat core ([`chat`]) that returns
//! actions (send, close, log) through an [`chat::Outbox`]. A message to a channel is encoded
//! once per protocol and its bytes shared by every recipient's queue; each connection with
//! queued output is written once per loop pass with a vectored write. The chat log
//! ([`log_store`]) is a JSON Lines file: a message is appended there before any copy is queued.
//!
//! # Invariants
//!
//! 1. Only [`server`] (and `main`) reads the clock or touches the network; the chat log file
//!    is opened, written and read only through [`log_store`] (for the shell, and for the log
//!    search the shell drives, which is handed an open [`log_store::LogReader`]) and the
//!    start-up scan of its tail; [`proto`] and [`chat`] are pure.
//! 2. Every readable edge is drained to `WouldBlock`/EOF or remembered as pending.
//! 3. Every non-empty output queue is either marked dirty or waiting for a writable edge.
//! 4. Slab entries are removed in one place only (the reap step of the loop).
//! 5. Every buffer is bounded; exceeding a bound closes that one connection, never panics.
#![forbid(unsafe_code)]

pub mod chat;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod config_moderation;
pub mod log_store;
pub mod proto;
pub mod record;
pub mod rest;
pub mod server;
pub mod timefmt;
pub mod web;
