//! Connection limits: the process's file-descriptor limit, and connections per peer address.

use super::io::ListenKind;
use std::collections::HashMap;
use std::net::IpAddr;

/// The soft limit on open files (`RLIMIT_NOFILE`), read from `/proc/self/limits`.
pub fn fd_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Open connections per peer address.
#[derive(Default)]
pub struct PerIp {
    counts: HashMap<IpAddr, u32>,
}

impl PerIp {
    /// Connections open from this address.
    pub fn get(&self, ip: IpAddr) -> u32 {
        self.counts.get(&ip).copied().unwrap_or(0)
    }

    /// One more connection from `ip`.
    pub fn add(&mut self, ip: IpAddr) {
        *self.counts.entry(ip).or_insert(0) += 1;
    }

    /// One connection from `ip` closed.
    pub fn remove(&mut self, ip: IpAddr) {
        if let Some(n) = self.counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&ip);
            }
        }
    }
}

/// Whether a connection accepted from `ip` on a `kind` port skips the per-address limit:
/// loopback (unless `limit_loopback`), and a trusted proxy on the WebSocket port, whose
/// connections carry many clients and are limited per forwarded client at the upgrade.
pub fn exempt_at_accept(
    kind: ListenKind,
    ip: IpAddr,
    limit_loopback: bool,
    trusted_proxy: bool,
) -> bool {
    (ip.is_loopback() && !limit_loopback) || (trusted_proxy && kind == ListenKind::WebSocket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address() {
        let mut p = PerIp::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        p.add(a);
        p.add(a);
        assert_eq!(p.get(a), 2);
        p.remove(a);
        p.remove(a);
        assert_eq!(p.get(a), 0);
        assert!(p.counts.is_empty());
    }

    /// Regression: a non-loopback trusted proxy counted against the per-address limit at
    /// accept, so a proxy carrying many clients was refused before any upgrade.
    #[test]
    fn trusted_proxy_is_not_limited_per_address_at_accept() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(exempt_at_accept(ListenKind::WebSocket, proxy, true, true));
        assert!(exempt_at_accept(ListenKind::WebSocket, proxy, false, true));
        // Only the WebSocket port reads `X-Forwarded-For`; elsewhere the proxy is one peer.
        assert!(!exempt_at_accept(ListenKind::Telnet, proxy, false, true));
        assert!(!exempt_at_accept(ListenKind::Rest, proxy, false, true));
        assert!(!exempt_at_accept(
            ListenKind::WebSocket,
            proxy,
            false,
            false
        ));
        let lo: IpAddr = "127.0.0.3".parse().unwrap();
        assert!(exempt_at_accept(ListenKind::Telnet, lo, false, false));
        assert!(!exempt_at_accept(ListenKind::Telnet, lo, true, false));
        assert!(!exempt_at_accept(ListenKind::WebSocket, lo, true, false));
    }

    #[test]
    fn reads_the_fd_limit() {
        assert!(fd_limit().is_some_and(|n| n > 0));
    }
}
