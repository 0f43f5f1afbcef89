//! Signals (SIGHUP reopens the log; SIGTERM and SIGINT stop the server) and the graceful
//! shutdown: stop accepting, tell everyone, flush within the grace period, log and sync.

use super::conn::ConnState;
use super::io::Entry;
use super::start::Server;
use crate::chat::{ClientId, CloseReason, Outbox};
use crate::record::Record;
use log::{info, warn};
use mio::Token;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::borrow::Cow;
use std::io;

/// The token of the signal pipe (no slab key can produce it).
pub(super) const SIGNAL_TOKEN: Token = Token(usize::MAX);

impl Server {
    pub(super) fn on_signals(&mut self) {
        let signals: Vec<i32> = self.signals.pending().collect();
        for signal in signals {
            match signal {
                SIGHUP => match self.io.log.reopen() {
                    Ok(()) => info!(
                        "SIGHUP: reopened the log file {}",
                        self.io.log.path().display()
                    ),
                    Err(e) => warn!("SIGHUP: cannot reopen the log file: {e}"),
                },
                SIGTERM | SIGINT => self.begin_shutdown(),
                _ => {}
            }
        }
    }

    fn begin_shutdown(&mut self) {
        let now = self.now();
        if self.shutdown_at.is_some() {
            info!("second stop signal: exiting now");
            self.shutdown_at = Some(now.mono_ms);
            return;
        }
        info!(
            "stop signal: telling {} connections and shutting down",
            self.io.metrics.open_total()
        );
        self.shutdown_at = Some(now.mono_ms + self.settings.shutdown_grace_ms);
        // Stop accepting: the listeners are closed (reaped) at the end of this pass, so new
        // connections are refused instead of waiting in the backlog.
        for (key, entry) in self.io.slab.iter_mut() {
            if let Entry::Listener(l) = entry {
                l.closed = true;
                self.io.reap.push(key);
            }
        }
        // Every connection may use the whole grace period to take its last messages.
        let limits = &mut self.io.limits;
        limits.close_flush_ms = limits.close_flush_ms.max(self.settings.shutdown_grace_ms);
        self.core.handle_shutdown(now, &mut self.io);
        let http: Vec<ClientId> = self
            .io
            .slab
            .iter()
            .filter_map(|(_, e)| match e {
                Entry::Conn(c) if !c.proto.is_chat() => Some(c.id),
                _ => None,
            })
            .collect();
        for id in http {
            self.io.close_after_flush(id, CloseReason::Shutdown);
        }
    }

    /// True when a shutdown is under way and its time is up or everything has been said.
    pub(super) fn shutdown_due(&self) -> bool {
        self.shutdown_at
            .is_some_and(|at| self.io.now.mono_ms >= at || self.all_said())
    }

    /// During shutdown: every connection has had all its output written (what is left only
    /// waits for the peer to close, which exiting does as well).
    fn all_said(&self) -> bool {
        let released = self.cluster.as_ref().is_none_or(|c| c.settled());
        released
            && self.io.slab.iter().all(|(_, e)| match e {
                Entry::Conn(c) => matches!(c.state, ConnState::Lingering(_) | ConnState::Dead(_)),
                Entry::Listener(_) | Entry::Redis(_) => true,
            })
    }

    pub(super) fn finish_shutdown(mut self) -> io::Result<()> {
        self.save_moderation_state_at_exit();
        let now = self.clock.now();
        let _ = self.io.log(
            now,
            &Record::ServerStop {
                reason: Cow::Borrowed("signal"),
            },
        );
        if let Err(e) = self.io.log.sync() {
            warn!("cannot sync the log file: {e}");
        }
        info!("stopped");
        Ok(())
    }
}
