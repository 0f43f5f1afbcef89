//! The moderation keys of the config (§14): `operators`, `state_file`, `trusted_proxies`.

use crate::chat::{is_valid_hash, Operator};
use crate::config::Config;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// One entry of `operators`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    /// The name given to `/oper`.
    pub name: String,
    /// The password's argon2 PHC string (`chat-server --hash-password` prints one).
    pub password_hash: String,
}

/// Checks the moderation keys; the error names the key.
pub fn validate(config: &Config) -> Result<(), String> {
    for (i, op) in config.operators.iter().enumerate() {
        if op.name.is_empty() || op.name.chars().any(char::is_whitespace) {
            return Err(format!(
                "\"operators\" entry {i}: \"name\" must be a non-empty word, got {:?}",
                op.name
            ));
        }
        if config.operators[..i].iter().any(|o| o.name == op.name) {
            return Err(format!(
                "\"operators\" entry {i}: the name {:?} is given twice",
                op.name
            ));
        }
        if !is_valid_hash(&op.password_hash) {
            // The hash is not a secret, but keep the line short.
            return Err(format!(
                "\"operators\" entry {i} ({:?}): \"password_hash\" must be an argon2 PHC string ($argon2id$...); make one with chat-server --hash-password",
                op.name
            ));
        }
    }
    if config.state_file.as_deref() == Some("") {
        return Err("\"state_file\" must not be empty (leave it out for the default)".to_owned());
    }
    trusted_proxies(config).map(|_| ())
}

/// The operators, for the chat core.
pub fn operators(config: &Config) -> Vec<Operator> {
    config
        .operators
        .iter()
        .map(|o| Operator {
            name: o.name.clone(),
            password_hash: o.password_hash.clone(),
        })
        .collect()
}

/// Where bans and mutes are kept: `state_file`, else the log's path with `.state.json`.
pub fn state_path(config: &Config) -> PathBuf {
    match &config.state_file {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(format!("{}.state.json", config.log_file)),
    }
}

/// `trusted_proxies` parsed: each an address or a CIDR range.
pub fn trusted_proxies(config: &Config) -> Result<Vec<IpNet>, String> {
    config
        .trusted_proxies
        .iter()
        .map(|p| {
            p.parse::<IpAddr>()
                .map(IpNet::from)
                .or_else(|_| p.parse::<IpNet>().map(|n| n.trunc()))
                .map_err(|_| {
                    format!(
                        "\"trusted_proxies\" entry {p:?} must be an address or a CIDR range such as 10.0.0.0/8"
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        let ok = Config::from_json_str(
            r#"{"trusted_proxies": ["10.0.0.0/8", "::1"], "state_file": "s.json"}"#,
        )
        .unwrap();
        assert_eq!(trusted_proxies(&ok).unwrap().len(), 2);
        assert_eq!(state_path(&ok), PathBuf::from("s.json"));
        assert_eq!(
            state_path(&Config::default()),
            PathBuf::from("chat-server.log.state.json")
        );
        let bad = Config::from_json_str(r#"{"trusted_proxies": ["10.0.0.0/33"]}"#).unwrap_err();
        assert!(bad.contains("trusted_proxies"), "{bad}");
        let bad = Config::from_json_str(
            r#"{"operators": [{"name": "alice", "password_hash": "secret"}]}"#,
        )
        .unwrap_err();
        assert!(
            bad.contains("password_hash") && !bad.contains("secret\""),
            "{bad}"
        );
        let bad = Config::from_json_str(r#"{"operators": [{"name": "a", "password": "x"}]}"#)
            .unwrap_err();
        assert!(bad.contains("operators"), "{bad}");
    }
}
