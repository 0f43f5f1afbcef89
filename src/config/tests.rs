//! Unit tests of the config parser and its validation.

use super::*;

/// The config file the original Go project shipped.
const SHIPPED: &str = r#"{"telnet_port": 4000, "rest_port": 4001, "websocket_port": 4004, "log_file": "chat-server.log", "ip": "0.0.0.0"}"#;

fn parse_err(text: &str) -> String {
    match Config::from_json_str(text) {
        Ok(config) => panic!("expected an error for {text}, got {config:?}"),
        Err(e) => e,
    }
}

/// Validates `Config::default()` changed by `change`, expecting an error naming `key`.
fn invalid(key: &str, change: impl FnOnce(&mut Config)) -> String {
    let mut config = Config::default();
    change(&mut config);
    match config.validate() {
        Ok(()) => panic!("expected {key} to be rejected: {config:?}"),
        Err(e) => {
            assert!(
                e.contains(&format!("\"{key}\"")),
                "{e:?} does not name {key}"
            );
            assert!(!e.contains('\n'));
            e
        }
    }
}

#[test]
fn shipped_file_is_the_default() {
    assert_eq!(Config::from_json_str(SHIPPED), Ok(Config::default()));
}

#[test]
fn empty_object_is_the_default() {
    assert_eq!(Config::from_json_str("{}"), Ok(Config::default()));
    assert_eq!(Config::from_json_str(" \n{ }\n"), Ok(Config::default()));
    assert_eq!(Config::from_json_str("\u{feff}{}"), Ok(Config::default()));
    assert!(Config::default().validate().is_ok());
}

#[test]
fn known_keys_match_the_struct() {
    let documented = [
        "ip",
        "telnet_port",
        "rest_port",
        "websocket_port",
        "log_file",
        "admin_token",
        "allowed_origins",
        "max_line_bytes",
        "max_input_bytes",
        "nick_timeout_s",
        "output_hard_limit_bytes",
        "output_soft_limit_bytes",
        "output_soft_limit_s",
        "backlog_high_bytes",
        "presence_notice_max_members",
        "presence_notice_interval_s",
        "lines_burst",
        "lines_per_s",
        "max_connections",
        "max_connections_per_ip",
        "limit_loopback",
        "ws_max_message_bytes",
        "ws_read_buffer_bytes",
        "ws_handshake_timeout_s",
        "ws_ping_interval_s",
        "ws_idle_timeout_s",
        "http_max_header_bytes",
        "http_max_body_bytes",
        "http_header_timeout_s",
        "http_body_timeout_s",
        "tcp_keepalive_s",
        "shutdown_grace_s",
        "motd",
        "history_size",
        "history_channels",
        "history_on_join",
        "history_scan_bytes",
        "operators",
        "state_file",
        "trusted_proxies",
        "cluster",
    ];
    assert_eq!(KNOWN_KEYS, &documented[..]);
    // Every known key is a field that set_field accepts.
    for key in KNOWN_KEYS {
        let e = Config::default()
            .set_field(key, Value::Object(Default::default()))
            .unwrap_err();
        assert!(!e.contains("unknown key"), "{key}: {e}");
    }
}

#[test]
fn every_key_parses() {
    let text = r#"{
        "ip": "::1", "telnet_port": 0, "rest_port": 0, "websocket_port": 0,
        "log_file": "x.log", "admin_token": "0123456789abcdef",
        "allowed_origins": ["https://chat.example.com", "http://localhost:8080"],
        "max_line_bytes": 100, "max_input_bytes": 200, "nick_timeout_s": 0.2,
        "output_hard_limit_bytes": 2048, "output_soft_limit_bytes": 1024,
        "output_soft_limit_s": 1.5, "backlog_high_bytes": 4096,
        "presence_notice_max_members": 7, "presence_notice_interval_s": 0.5, "lines_burst": 1, "lines_per_s": 0.5,
        "max_connections": 10, "max_connections_per_ip": 2, "limit_loopback": true,
        "ws_max_message_bytes": 125, "ws_read_buffer_bytes": 1024,
        "ws_handshake_timeout_s": 1, "ws_ping_interval_s": 2, "ws_idle_timeout_s": 3,
        "http_max_header_bytes": 1024, "http_max_body_bytes": 0,
        "http_header_timeout_s": 4, "http_body_timeout_s": 5, "tcp_keepalive_s": 6,
        "shutdown_grace_s": 0.25, "motd": "hi", "history_size": 50,
        "history_channels": 7, "history_on_join": 0, "history_scan_bytes": 1000,
        "operators": [{"name": "alice", "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$gpPaiqn4dCcdGZKbF9W5Lg$dFg9J7W8xhFUjFPDtHo5b1cUaaFRiqLZF8maLHrIIuI"}],
        "state_file": "x.state.json", "trusted_proxies": ["10.0.0.0/8", "::1"]
    }"#;
    let config = Config::from_json_str(text).unwrap();
    let expected = Config {
        ip: "::1".into(),
        telnet_port: 0,
        rest_port: 0,
        websocket_port: 0,
        log_file: "x.log".into(),
        admin_token: Some("0123456789abcdef".into()),
        allowed_origins: vec![
            "https://chat.example.com".into(),
            "http://localhost:8080".into(),
        ],
        max_line_bytes: 100,
        max_input_bytes: 200,
        nick_timeout_s: 0.2,
        output_hard_limit_bytes: 2048,
        output_soft_limit_bytes: 1024,
        output_soft_limit_s: 1.5,
        backlog_high_bytes: 4096,
        presence_notice_max_members: 7,
        presence_notice_interval_s: 0.5,
        lines_burst: 1,
        lines_per_s: 0.5,
        max_connections: Some(10),
        max_connections_per_ip: 2,
        limit_loopback: true,
        ws_max_message_bytes: 125,
        ws_read_buffer_bytes: 1024,
        ws_handshake_timeout_s: 1.0,
        ws_ping_interval_s: 2.0,
        ws_idle_timeout_s: 3.0,
        http_max_header_bytes: 1024,
        http_max_body_bytes: 0,
        http_header_timeout_s: 4.0,
        http_body_timeout_s: 5.0,
        tcp_keepalive_s: 6.0,
        shutdown_grace_s: 0.25,
        motd: Some("hi".into()),
        history_size: 50,
        history_channels: 7,
        history_on_join: 0,
        history_scan_bytes: 1000,
        operators: vec![crate::config_moderation::OperatorEntry {
            name: "alice".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$gpPaiqn4dCcdGZKbF9W5Lg$dFg9J7W8xhFUjFPDtHo5b1cUaaFRiqLZF8maLHrIIuI".into(),
        }],
        state_file: Some("x.state.json".into()),
        trusted_proxies: vec!["10.0.0.0/8".into(), "::1".into()],
        cluster: None,
    };
    assert_eq!(config, expected);
}

#[test]
fn port_zero_and_nulls_accepted() {
    let config =
        Config::from_json_str(r#"{"telnet_port": 0, "rest_port": 0, "websocket_port": 0}"#)
            .unwrap();
    assert_eq!(
        (config.telnet_port, config.rest_port, config.websocket_port),
        (0, 0, 0)
    );
    let config =
        Config::from_json_str(r#"{"admin_token": null, "max_connections": null}"#).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn fractional_seconds_accepted() {
    let config =
        Config::from_json_str(r#"{"nick_timeout_s": 0.2, "ws_ping_interval_s": 0.05}"#).unwrap();
    assert_eq!(config.nick_timeout_s, 0.2);
    assert_eq!(duration(config.nick_timeout_s), Duration::from_millis(200));
    assert_eq!(
        duration(config.ws_ping_interval_s),
        Duration::from_millis(50)
    );
}

#[test]
fn unknown_key_rejected_naming_it() {
    let e = parse_err("{\n  \"telnet_port\": 4000,\n  \"foo\": 1\n}");
    assert!(e.starts_with("unknown key \"foo\" at line 3 column"), "{e}");
    assert!(
        e.contains("(known keys: ip, telnet_port, rest_port,"),
        "{e}"
    );
    assert!(e.contains("shutdown_grace_s, motd, history_size,"), "{e}");
    assert!(e.contains("history_scan_bytes, operators"), "{e}");
    assert!(e.contains("trusted_proxies, cluster)"), "{e}");
    assert!(!e.contains('\n'));
    // Case matters: the Go-era keys are exact.
    let e = parse_err(r#"{"Telnet_Port": 4000}"#);
    assert!(e.starts_with("unknown key \"Telnet_Port\""), "{e}");
    // A key with a newline in it stays on one line.
    let e = parse_err("{\"a\\nb\": 1}");
    assert!(e.starts_with(r#"unknown key "a\nb""#), "{e}");
}

#[test]
fn bad_value_rejected_naming_it() {
    let e = parse_err(r#"{"telnet_port": 70000}"#);
    assert!(
        e.starts_with("bad value for \"telnet_port\": invalid value: integer `70000`, expected u16 at line 1 column"),
        "{e}"
    );
    let e = parse_err(r#"{"nick_timeout_s": "60"}"#);
    assert!(
        e.starts_with("bad value for \"nick_timeout_s\": invalid type: string \"60\""),
        "{e}"
    );
    let e = parse_err(r#"{"limit_loopback": 1}"#);
    assert!(e.starts_with("bad value for \"limit_loopback\":"), "{e}");
    let e = parse_err(r#"{"allowed_origins": "https://a.example"}"#);
    assert!(e.starts_with("bad value for \"allowed_origins\":"), "{e}");
    let e = parse_err(r#"{"max_line_bytes": -1}"#);
    assert!(e.starts_with("bad value for \"max_line_bytes\":"), "{e}");
    let e = parse_err(r#"{"ip": null}"#);
    assert!(e.starts_with("bad value for \"ip\":"), "{e}");
    let e = parse_err(r#"{"rest_port": 4001.0}"#);
    assert!(e.starts_with("bad value for \"rest_port\":"), "{e}");
}

#[test]
fn duplicate_key_rejected() {
    let e = parse_err(r#"{"ip": "0.0.0.0", "ip": "127.0.0.1"}"#);
    assert!(
        e.starts_with("duplicate key \"ip\" at line 1 column"),
        "{e}"
    );
}

#[test]
fn invalid_json_rejected_with_position() {
    let e = parse_err("{\n  \"ip\": \"0.0.0.0\",\n  }");
    assert!(e.starts_with("invalid JSON at line 3 column 3: "), "{e}");
    let e = parse_err("");
    assert!(e.starts_with("invalid JSON at line 1 column 0: EOF"), "{e}");
    let e = parse_err("{} {}");
    assert!(
        e.starts_with("invalid JSON at line 1 column 4: trailing characters"),
        "{e}"
    );
    let e = parse_err("[1]");
    assert!(e.contains("expected a JSON object of settings"), "{e}");
    let e = parse_err("null");
    assert!(e.contains("expected a JSON object of settings"), "{e}");
}

#[test]
fn validation_runs_on_parse() {
    let e = parse_err(r#"{"nick_timeout_s": -1}"#);
    assert_eq!(
        e,
        "\"nick_timeout_s\" must be a positive number of seconds, got -1"
    );
}

#[test]
fn rejects_bad_ip_and_log_file() {
    invalid("ip", |c| c.ip = "localhost".into());
    invalid("ip", |c| c.ip = String::new());
    invalid("ip", |c| c.ip = "0.0.0.0:4000".into());
    invalid("log_file", |c| c.log_file = String::new());
}

#[test]
fn rejects_clashing_ports() {
    let e = invalid("telnet_port", |c| c.rest_port = c.telnet_port);
    assert!(e.contains("\"rest_port\""), "{e}");
    invalid("websocket_port", |c| c.websocket_port = c.rest_port);
}

#[test]
fn rejects_bad_line_limits() {
    invalid("max_line_bytes", |c| c.max_line_bytes = 0);
    let e = invalid("max_line_bytes", |c| {
        c.max_line_bytes = c.max_input_bytes + 1
    });
    assert!(e.contains("\"max_input_bytes\""), "{e}");
    invalid("max_input_bytes", |c| {
        c.max_input_bytes = MAX_INPUT_LIMIT + 1
    });
    let mut ok = Config {
        max_line_bytes: MAX_INPUT_LIMIT,
        max_input_bytes: MAX_INPUT_LIMIT,
        ..Config::default()
    };
    assert!(ok.validate().is_ok());
    ok.max_line_bytes = 1;
    assert!(ok.validate().is_ok());
}

#[test]
fn rejects_bad_seconds() {
    let keys = [
        "nick_timeout_s",
        "output_soft_limit_s",
        "ws_handshake_timeout_s",
        "ws_ping_interval_s",
        "ws_idle_timeout_s",
        "http_header_timeout_s",
        "http_body_timeout_s",
        "tcp_keepalive_s",
        "shutdown_grace_s",
        "presence_notice_interval_s",
    ];
    for key in keys {
        for bad in ["0", "-1", "1000000.5", "1e300"] {
            let e = parse_err(&format!("{{{key:?}: {bad}}}"));
            assert!(e.starts_with(&format!("{key:?} must be ")), "{e}");
        }
        assert!(Config::from_json_str(&format!("{{{key:?}: 1000000}}")).is_ok());
        assert!(Config::from_json_str(&format!("{{{key:?}: 0.001}}")).is_ok());
    }
    let e = invalid("nick_timeout_s", |c| c.nick_timeout_s = f64::NAN);
    assert!(e.ends_with("got NaN"), "{e}");
    invalid("shutdown_grace_s", |c| c.shutdown_grace_s = f64::INFINITY);
    let e = invalid("tcp_keepalive_s", |c| c.tcp_keepalive_s = 1e300);
    assert!(e.ends_with("got 1e300"), "{e}");
}

#[test]
fn motd_is_checked() {
    let ok = Config::from_json_str(r#"{"motd": "Welcome!\nBe nice.\tThanks"}"#).unwrap();
    assert_eq!(ok.motd.as_deref(), Some("Welcome!\nBe nice.\tThanks"));
    let e = invalid("motd", |c| c.motd = Some("x".repeat(4097)));
    assert!(e.ends_with("got 4097"), "{e}");
    let e = invalid("motd", |c| c.motd = Some("\u{1b}[2Jhi".to_owned()));
    assert!(e.contains("control characters"), "{e}");
    let e = parse_err(r#"{"history_scan_bytes": -1}"#);
    assert!(e.contains("history_scan_bytes"), "{e}");
}

#[test]
fn rejects_bad_history_settings() {
    invalid("history_size", |c| c.history_size = 0);
    invalid("history_size", |c| c.history_size = 100_001);
    invalid("history_channels", |c| c.history_channels = 0);
    invalid("history_scan_bytes", |c| {
        c.history_scan_bytes = (1 << 30) + 1
    });
    assert!(Config::from_json_str(r#"{"history_on_join": 0, "history_scan_bytes": 0}"#).is_ok());
}

#[test]
fn rejects_bad_output_limits() {
    invalid("output_soft_limit_bytes", |c| {
        c.output_soft_limit_bytes = 1023
    });
    invalid("output_hard_limit_bytes", |c| {
        c.output_soft_limit_bytes = 1024;
        c.output_hard_limit_bytes = 1023;
    });
    let e = invalid("output_soft_limit_bytes", |c| {
        c.output_soft_limit_bytes = c.output_hard_limit_bytes + 1
    });
    assert!(e.contains("\"output_hard_limit_bytes\""), "{e}");
    invalid("backlog_high_bytes", |c| c.backlog_high_bytes = 1023);
    let ok = Config {
        output_soft_limit_bytes: 1024,
        output_hard_limit_bytes: 1024,
        ..Config::default()
    };
    assert!(ok.validate().is_ok());
}

#[test]
fn rejects_bad_line_rate() {
    invalid("lines_burst", |c| c.lines_burst = 0);
    invalid("lines_per_s", |c| c.lines_per_s = 0.0);
    invalid("lines_per_s", |c| c.lines_per_s = -5.0);
    invalid("lines_per_s", |c| c.lines_per_s = f64::NAN);
    invalid("lines_per_s", |c| c.lines_per_s = 2e6);
    let ok = Config {
        lines_per_s: 0.1,
        ..Config::default()
    };
    assert!(ok.validate().is_ok());
}

#[test]
fn rejects_bad_connection_limits() {
    invalid("max_connections", |c| c.max_connections = Some(0));
    invalid("max_connections_per_ip", |c| c.max_connections_per_ip = 0);
    let ok = Config {
        max_connections: Some(1),
        max_connections_per_ip: 1,
        ..Config::default()
    };
    assert!(ok.validate().is_ok());
}

#[test]
fn rejects_bad_websocket_sizes() {
    invalid("ws_max_message_bytes", |c| c.ws_max_message_bytes = 124);
    invalid("ws_max_message_bytes", |c| {
        c.ws_max_message_bytes = MAX_INPUT_LIMIT + 1
    });
    invalid("ws_read_buffer_bytes", |c| c.ws_read_buffer_bytes = 1023);
    invalid("ws_read_buffer_bytes", |c| c.ws_read_buffer_bytes = 65_537);
    let ok = Config {
        ws_max_message_bytes: MAX_INPUT_LIMIT,
        ws_read_buffer_bytes: 65_536,
        ..Config::default()
    };
    assert!(ok.validate().is_ok());
}

#[test]
fn rejects_bad_http_sizes() {
    invalid("http_max_header_bytes", |c| c.http_max_header_bytes = 1023);
    invalid("http_max_header_bytes", |c| {
        c.http_max_header_bytes = MAX_INPUT_LIMIT + 1
    });
    invalid("http_max_body_bytes", |c| {
        c.http_max_body_bytes = MAX_HTTP_BODY + 1
    });
    let ok = Config {
        http_max_body_bytes: MAX_HTTP_BODY,
        ..Config::default()
    };
    assert!(ok.validate().is_ok());
}

#[test]
fn rejects_bad_admin_token_without_echoing_it() {
    let e = invalid("admin_token", |c| {
        c.admin_token = Some("short-secret".into())
    });
    assert!(!e.contains("short-secret"), "{e}");
    let e = invalid("admin_token", |c| {
        c.admin_token = Some("0123456789 abcdef".into())
    });
    assert!(!e.contains("0123456789"), "{e}");
    invalid("admin_token", |c| {
        c.admin_token = Some("0123456789abcdef\t".into())
    });
    invalid("admin_token", |c| c.admin_token = Some(String::new()));
}

#[test]
fn origins() {
    for good in [
        "https://chat.example.com",
        "http://localhost",
        "http://localhost:8080",
        "https://127.0.0.1:443",
        "http://[::1]",
        "https://[2001:db8::1]:8443",
        "https://xn--bcher-kva.example",
    ] {
        assert_eq!(check_origin(good), Ok(()), "{good}");
    }
    for bad in [
        "chat.example.com",
        "ftp://chat.example.com",
        "HTTPS://chat.example.com",
        "https://Chat.Example.com",
        "https://chat.example.com/",
        "https://chat.example.com/path",
        "https://chat.example.com?x",
        "https://user@chat.example.com",
        "https://",
        "https://:8080",
        "https://chat.example.com:",
        "https://chat.example.com:0",
        "https://chat.example.com:65536",
        "https://chat.example.com:+80",
        "https://[::1",
        "https://[zz]",
        "https://[::1]8080",
        "https://*.example.com",
        "null",
        "",
    ] {
        assert!(check_origin(bad).is_err(), "{bad}");
        invalid("allowed_origins", |c| {
            c.allowed_origins = vec!["https://ok.example".into(), bad.into()]
        });
    }
    let e = parse_err(r#"{"allowed_origins": ["https://a.example/"]}"#);
    assert!(
        e.starts_with(r#""allowed_origins" entry "https://a.example/" must not have a path"#),
        "{e}"
    );
}

#[test]
fn duration_saturates() {
    assert_eq!(duration(0.2), Duration::from_millis(200));
    assert_eq!(duration(60.0), Duration::from_secs(60));
    assert_eq!(duration(0.0), Duration::ZERO);
    assert_eq!(duration(-1.0), Duration::ZERO);
    assert_eq!(duration(f64::NAN), Duration::ZERO);
    assert_eq!(duration(f64::INFINITY), Duration::MAX);
    assert_eq!(duration(1e300), Duration::MAX);
}

#[test]
fn load_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("chat-server-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("missing.json");
    let e = Config::load(&missing).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "config file {:?}: cannot read: ",
            missing.display().to_string()
        )),
        "{e}"
    );

    let good = dir.join("good.json");
    std::fs::write(&good, SHIPPED).unwrap();
    assert_eq!(Config::load(&good), Ok(Config::default()));

    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\n  \"ip\": \"0.0.0.0\",\n  \"foo\": true\n}\n").unwrap();
    let e = Config::load(&bad).unwrap_err();
    let expected_prefix = format!(
        "config file {:?}: unknown key \"foo\" at line 3",
        bad.display().to_string()
    );
    assert!(e.0.starts_with(&expected_prefix), "{e}");

    let binary = dir.join("binary.json");
    std::fs::write(&binary, b"{\"ip\": \"\xff\"}").unwrap();
    let e = Config::load(&binary).unwrap_err().to_string();
    assert!(e.contains(": not UTF-8 text: "), "{e}");

    let e = Config::load(&dir).unwrap_err().to_string();
    assert!(e.contains(": cannot read: "), "{e}");

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_error_is_an_error() {
    let e: Box<dyn std::error::Error> = Box::new(ConfigError("config file \"x\": oops".into()));
    assert_eq!(e.to_string(), "config file \"x\": oops");
}

#[test]
fn one_line_joins_lines() {
    assert_eq!(one_line("a\nb\r\nc"), "a b c");
    assert_eq!(fmt_num(-1.0), "-1");
    assert_eq!(fmt_num(0.2), "0.2");
    assert_eq!(fmt_num(1e300), "1e300");
}

#[test]
fn the_operator_token_comes_from_the_config_then_the_environment() {
    let env = |s: &str| Some(std::ffi::OsString::from(s));
    let mut config = Config::default();
    assert_eq!(operator_admin_token(&config, None), Ok(None));
    assert_eq!(
        operator_admin_token(&config, env("0123456789abcdef")),
        Ok(Some("0123456789abcdef".to_owned()))
    );
    config.admin_token = Some("fedcba9876543210".into());
    assert_eq!(
        operator_admin_token(&config, env("0123456789abcdef")),
        Ok(Some("fedcba9876543210".to_owned()))
    );
}

#[test]
fn a_bad_environment_token_is_an_error_naming_the_variable_and_the_rule() {
    let config = Config::default();
    for (token, rule) in [
        ("short-secret", "at least 16 characters"),
        ("", "at least 16 characters"),
        ("0123456789 abcdef", "whitespace"),
        // Sixteen characters, more bytes: the rule counts characters.
        ("ééééééééééééééé", "at least 16 characters"),
    ] {
        let e = operator_admin_token(&config, Some(token.into())).unwrap_err();
        assert!(e.contains(ADMIN_TOKEN_ENV), "{e}");
        assert!(e.contains(rule), "{token:?}: {e}");
        assert!(
            token.is_empty() || !e.contains(token),
            "echoes the token: {e}"
        );
    }
    assert_eq!(
        operator_admin_token(&config, Some("éééééééééééééééé".into())),
        Ok(Some("éééééééééééééééé".to_owned()))
    );
}

#[test]
fn cluster_section_is_parsed_and_validated_naming_the_key() {
    let c = Config::from_json_str(
        r#"{"cluster": {"redis": "127.0.0.1:6379", "node_id": "n1", "lease_ms": 1500}}"#,
    )
    .expect("valid");
    let cluster = c.cluster.expect("cluster section");
    assert_eq!(cluster.node_id, "n1");
    assert_eq!(cluster.lease_ms, 1500);
    assert!(Config::from_json_str("{}")
        .expect("valid")
        .cluster
        .is_none());
    for (json, key) in [
        (
            r#"{"cluster": {"redis": "localhost:1", "node_id": "n"}}"#,
            "cluster.redis",
        ),
        (
            r#"{"cluster": {"redis": "127.0.0.1:1", "node_id": "a b"}}"#,
            "cluster.node_id",
        ),
        (
            r#"{"cluster": {"redis": "127.0.0.1:1", "node_id": "n", "lease_ms": 5}}"#,
            "cluster.lease_ms",
        ),
        (r#"{"cluster": {"redis": "127.0.0.1:1"}}"#, "cluster"),
        (
            r#"{"cluster": {"redis": "127.0.0.1:1", "node_id": "n", "x": 1}}"#,
            "cluster",
        ),
    ] {
        let e = parse_err(json);
        assert!(e.contains(key), "{json}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
