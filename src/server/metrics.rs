//! Counters kept by the shell, for `/status` and `/metrics`.

use crate::chat::CloseReason;

/// Running totals since start-up, and current gauges.
#[derive(Default, Debug, Clone)]
pub struct Metrics {
    /// Connections accepted, in total.
    pub accepted: u64,
    /// Open telnet connections.
    pub telnet_open: u64,
    /// Open WebSocket (upgraded) connections.
    pub websocket_open: u64,
    /// Open HTTP connections.
    pub http_open: u64,
    /// Input lines handed to the core.
    pub messages_in: u64,
    /// Messages queued to recipients (one per recipient).
    pub messages_out: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Connections refused at accept (limits).
    pub refused: u64,
    /// Accept errors (EMFILE and others).
    pub accept_errors: u64,
    /// Log queries started.
    pub queries: u64,
    /// Closed connections by reason, indexed like [`CloseReason::ALL`].
    pub disconnects: [u64; CloseReason::ALL.len()],
}

impl Metrics {
    /// Counts one closed connection.
    pub fn count_close(&mut self, reason: CloseReason) {
        if let Some(i) = CloseReason::ALL.iter().position(|r| *r == reason) {
            self.disconnects[i] += 1;
        }
    }

    /// Open connections of every transport.
    pub fn open_total(&self) -> u64 {
        self.telnet_open + self.websocket_open + self.http_open
    }

    /// The open-connections gauge of a transport (`telnet`, `websocket`, `http`).
    pub fn open_mut(&mut self, transport: &str) -> &mut u64 {
        match transport {
            "telnet" => &mut self.telnet_open,
            "websocket" => &mut self.websocket_open,
            _ => &mut self.http_open,
        }
    }
}
