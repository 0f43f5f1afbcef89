//! The I/O shell: one mio `Poll` loop over one slab of listeners and connections. The only
//! part of the crate that touches sockets, signals or the clock (the chat log's file is the
//! log store's, driven from here).

mod accept;
mod buffer;
mod chat_input;
mod clock;
mod cluster_io;
mod conn;
mod event_loop;
mod fanout;
mod http_io;
mod io;
mod limits;
mod metrics;
mod moderation_io;
mod output;
mod overload;
mod restore;
mod settings;
mod shutdown;
mod start;
mod state_file;
mod timers;
mod ws_io;

pub use self::buffer::{Chunk, OutQueue, Written};
pub use self::fanout::{encode, encode_event, Encoded, Wire};
pub use self::io::ListenKind;
pub use self::metrics::Metrics;
pub use self::output::{Caps, Output, Pushed};
pub use self::restore::{restore, Restored};
pub use self::start::Server;
