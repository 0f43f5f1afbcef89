//! The `cluster` section of the configuration (SPEC §15): absent means one process.
//!
//! ```json
//! "cluster": { "redis": "127.0.0.1:6379", "node_id": "n1", "lease_ms": 15000,
//!              "stream_maxlen": 1000000, "redis_password": "..." }
//! ```
//!
//! Only `redis` and `node_id` are required. Validation gives one message naming the key.

use serde::Deserialize;
use std::net::SocketAddr;

/// Default lease: a node silent this long is declared dead (CLUSTER.md §3).
pub const DEFAULT_LEASE_MS: u64 = 15_000;
/// Default stream length kept in Redis: the catch-up window × ingress (CLUSTER.md §5).
pub const DEFAULT_STREAM_MAXLEN: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Redis address, `host:port` with a literal IP (no DNS lookup in the event loop).
    pub redis: String,
    /// This node's name, unique in the cluster: 1–64 of `A-Z a-z 0-9 _ -`.
    pub node_id: String,
    /// Lease length in ms, refreshed every third of it; 300 to 600,000.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Approximate number of entries Redis keeps in the stream; at least 100.
    #[serde(default = "default_stream_maxlen")]
    pub stream_maxlen: u64,
    /// Sent with `AUTH` on every connection when set.
    #[serde(default)]
    pub redis_password: Option<String>,
}

fn default_lease_ms() -> u64 {
    DEFAULT_LEASE_MS
}

fn default_stream_maxlen() -> u64 {
    DEFAULT_STREAM_MAXLEN
}

impl ClusterConfig {
    /// The Redis address (after [`ClusterConfig::validate`] this cannot fail).
    pub fn redis_addr(&self) -> Result<SocketAddr, String> {
        self.redis.parse().map_err(|_| {
            format!(
                "\"cluster.redis\" must be an IP address and port like \"127.0.0.1:6379\", got {:?}",
                self.redis
            )
        })
    }

    pub fn validate(&self) -> Result<(), String> {
        self.redis_addr()?;
        let id = &self.node_id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "\"cluster.node_id\" must be 1 to 64 letters, digits, '_' or '-', got {id:?}"
            ));
        }
        if !(300..=600_000).contains(&self.lease_ms) {
            return Err(format!(
                "\"cluster.lease_ms\" must be from 300 to 600000, got {}",
                self.lease_ms
            ));
        }
        if self.stream_maxlen < 100 {
            return Err(format!(
                "\"cluster.stream_maxlen\" must be at least 100, got {}",
                self.stream_maxlen
            ));
        }
        if let Some(p) = &self.redis_password {
            if p.is_empty() || p.contains(['\r', '\n']) {
                return Err(
                    "\"cluster.redis_password\" must be non-empty and on one line".to_string(),
                );
            }
        }
        Ok(())
    }

    /// How often the lease is refreshed: a third of it.
    pub fn refresh_every_ms(&self) -> u64 {
        self.lease_ms / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ClusterConfig, String> {
        let c: ClusterConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn minimal_section_takes_the_defaults() {
        let c = parse(r#"{"redis": "127.0.0.1:6379", "node_id": "n-1"}"#).unwrap();
        assert_eq!(c.lease_ms, DEFAULT_LEASE_MS);
        assert_eq!(c.stream_maxlen, DEFAULT_STREAM_MAXLEN);
        assert_eq!(c.redis_password, None);
        assert_eq!(c.refresh_every_ms(), 5000);
        assert_eq!(c.redis_addr().unwrap().port(), 6379);
    }

    #[test]
    fn full_section_and_ipv6() {
        let c = parse(
            r#"{"redis": "[::1]:7000", "node_id": "a_B9", "lease_ms": 1500,
                "stream_maxlen": 100, "redis_password": "s3cret"}"#,
        )
        .unwrap();
        assert_eq!(c.lease_ms, 1500);
        assert_eq!(c.redis_password.as_deref(), Some("s3cret"));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (json, key) in [
            (
                r#"{"redis": "localhost:6379", "node_id": "n"}"#,
                "cluster.redis",
            ),
            (r#"{"redis": "127.0.0.1", "node_id": "n"}"#, "cluster.redis"),
            (
                r#"{"redis": "127.0.0.1:1", "node_id": ""}"#,
                "cluster.node_id",
            ),
            (
                r#"{"redis": "127.0.0.1:1", "node_id": "a/b"}"#,
                "cluster.node_id",
            ),
            (
                r#"{"redis": "127.0.0.1:1", "node_id": "n", "lease_ms": 10}"#,
                "cluster.lease_ms",
            ),
            (
                r#"{"redis": "127.0.0.1:1", "node_id": "n", "stream_maxlen": 5}"#,
                "cluster.stream_maxlen",
            ),
            (
                r#"{"redis": "127.0.0.1:1", "node_id": "n", "redis_password": "a\nb"}"#,
                "cluster.redis_password",
            ),
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.contains(key), "{json}: {e}");
        }
    }

    #[test]
    fn unknown_and_missing_keys_are_errors() {
        let e = parse(r#"{"redis": "127.0.0.1:1", "node_id": "n", "leas_ms": 1}"#).unwrap_err();
        assert!(e.contains("leas_ms"), "{e}");
        let e = parse(r#"{"redis": "127.0.0.1:1"}"#).unwrap_err();
        assert!(e.contains("node_id"), "{e}");
    }
}
