//! Connection limits: the process's file-descriptor limit, and connections per peer address.

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

    #[test]
    fn reads_the_fd_limit() {
        assert!(fd_limit().is_some_and(|n| n > 0));
    }
}
