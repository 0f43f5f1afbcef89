//! Several processes, one chat, through Redis (SPEC §15, CLUSTER.md): the pure parts.
//!
//! - [`config`]: the `cluster` configuration section.
//! - [`scripts`]: the Lua scripts that make Redis the sequencer (epoch and lease fencing,
//!   dense `seq`, de-duplication by `msg_id`, nick leases, reaping of dead nodes).
//! - [`entry`]: a cluster entry and its stream fields.
//! - [`peers`]: the other nodes' incarnations, watched so dead ones are reaped.
//! - [`broker`]: the sans-IO client of the two Redis connections: bytes and time in, bytes
//!   to write and events out.
//!
//! Nothing here does I/O or reads the clock; the event loop owns the sockets and the time.

pub mod broker;
pub mod config;
pub mod entry;
pub mod peers;
pub mod scripts;

/// Every key starts with this hash tag, so one script may touch them all (one slot).
pub const PREFIX: &str = "{chat}";
