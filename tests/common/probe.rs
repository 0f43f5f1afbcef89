//! The server's own account of itself over HTTP: `/metrics` samples and `/status` health.

use super::http::request;
use serde_json::Value;
use std::net::SocketAddr;

/// `GET path` with `Connection: close`; returns `(status, body)`.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = request(addr, "GET", path, &[("Connection", "close")], None);
    (r.status, r.text())
}

/// The value of one sample of `GET /metrics`, e.g.
/// `chat_disconnects_total{reason="output_overflow"}`.
pub fn metric(rest: SocketAddr, sample: &str) -> u64 {
    let (status, body) = http_get(rest, "/metrics");
    assert_eq!(status, 200, "GET /metrics: {body}");
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no sample {sample} in /metrics:\n{body}"))
}

/// `Data.health` of `GET /status`.
pub fn health(rest: SocketAddr) -> String {
    let (status, body) = http_get(rest, "/status");
    assert_eq!(status, 200, "GET /status: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["Data"]["health"]
        .as_str()
        .unwrap_or_else(|| panic!("no Data.health: {body}"))
        .to_owned()
}
