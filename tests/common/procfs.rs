//! What the kernel says about the server process: its TCP sockets (`/proc/net/tcp`), its
//! peak resident set size and its open file descriptors.

use super::tools::sleep_ms;
use super::{fd_count, Server};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// One row of `/proc/net/tcp`.
#[derive(Debug, Clone)]
pub struct TcpRow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `01` established, `08` CLOSE_WAIT, `0A` listen, ...
    pub state: u8,
    pub rx_queue: u64,
    /// `tr`: 0 none, 1 retransmit, 2 keepalive (another timer), 3 TIME_WAIT, 4 window probe.
    pub timer: u8,
    /// Clock ticks until the timer fires.
    pub when: u64,
}

pub fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The address is printed as the native-endian value of the network-order bytes.
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(ip.to_ne_bytes())),
        port,
    ))
}

/// The IPv4 TCP sockets of this network namespace.
pub fn tcp_table() -> Vec<TcpRow> {
    let text = std::fs::read_to_string("/proc/net/tcp").expect("cannot read /proc/net/tcp");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (tx_rx, tr_when) = (f.get(4)?, f.get(5)?);
            let (_, rx) = tx_rx.split_once(':')?;
            let (tr, when) = tr_when.split_once(':')?;
            Some(TcpRow {
                local: parse_proc_addr(f.get(1)?)?,
                remote: parse_proc_addr(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                rx_queue: u64::from_str_radix(rx, 16).ok()?,
                timer: u8::from_str_radix(tr, 16).ok()?,
                when: u64::from_str_radix(when, 16).ok()?,
            })
        })
        .collect()
}

/// The server-side row of the connection between the server's `server` address and the
/// client's `client` address.
pub fn server_side_row(server: SocketAddr, client: SocketAddr) -> Option<TcpRow> {
    tcp_table()
        .into_iter()
        .find(|r| r.local == server && r.remote == client)
}

/// Server-side sockets in CLOSE_WAIT on any of `ports` (the peer closed, the server did not).
pub fn close_wait_on(ports: &[SocketAddr]) -> Vec<TcpRow> {
    tcp_table()
        .into_iter()
        .filter(|r| r.state == 0x08 && ports.contains(&r.local))
        .collect()
}

/// VmHWM (peak resident set size) of `pid` in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("no VmHWM in /proc/PID/status")
}

/// Waits until the server holds exactly `want` file descriptors.
pub fn wait_fds(srv: &Server, want: usize, deadline: Duration, what: &str) {
    let end = Instant::now() + deadline;
    loop {
        let n = fd_count(srv.pid());
        if n == want {
            return;
        }
        assert!(
            Instant::now() < end,
            "{what}: the server holds {n} file descriptors {deadline:?} later, expected {want}; \
             server-side sockets:\n{:#?}",
            tcp_table()
                .into_iter()
                .filter(|r| srv.addrs().values().any(|a| *a == r.local))
                .filter(|r| r.state != 0x0A)
                .collect::<Vec<_>>()
        );
        sleep_ms(50);
    }
}
