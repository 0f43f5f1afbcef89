//! The command line (SPEC §2): help, version, `--check-config`, and clear one-line errors
//! with exit status 2 for bad arguments and bad config files.

mod common;

use common::{server_bin, TempDir, DEADLINE};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(server_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", server_bin()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Exit 2 with a short, clear error on stderr that contains every one of `needles`; no panic,
/// no backtrace.
fn assert_usage_error(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "{}", describe(out));
    let err = text(&out.stderr);
    for needle in needles {
        assert!(
            err.contains(needle),
            "stderr lacks {needle:?}: {}",
            describe(out)
        );
    }
    assert!(!err.contains("panicked"), "{}", describe(out));
    assert!(!err.contains("RUST_BACKTRACE"), "{}", describe(out));
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "the error should be one line: {}",
        describe(out)
    );
}

fn check_config(dir: &TempDir, name: &str, contents: &str) -> Output {
    let path = dir.write(name, contents);
    run(
        &["--check-config", "-c", path.to_str().unwrap()],
        dir.path(),
    )
}

#[test]
fn help_exits_zero_and_shows_usage() {
    let dir = TempDir::new("cli");
    for flag in ["--help", "-h"] {
        let out = run(&[flag], dir.path());
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", describe(&out));
        let stdout = text(&out.stdout);
        for needle in ["-c", "--config", "--check-config", "--version"] {
            assert!(stdout.contains(needle), "{flag} lacks {needle}: {stdout}");
        }
    }
}

#[test]
fn version_exits_zero_and_prints_the_version() {
    let dir = TempDir::new("cli");
    let out = run(&["--version"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        describe(&out)
    );
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = TempDir::new("cli");
    let out = check_config(
        &dir,
        "good.json",
        r#"{
            "ip": "127.0.0.1",
            "telnet_port": 0,
            "rest_port": 0,
            "websocket_port": 0,
            "log_file": "chat.log",
            "max_line_bytes": 256,
            "nick_timeout_s": 0.5,
            "lines_burst": 3,
            "lines_per_s": 2
        }"#,
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // The check does not start a server: no log file appears.
    assert!(!dir.path().join("chat.log").exists());

    let out = check_config(&dir, "empty.json", "{}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{{}} is a valid config: {}",
        describe(&out)
    );
}

#[test]
fn the_shipped_config_passes_check_config() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.json");
    let dir = TempDir::new("cli");
    let out = run(
        &["--check-config", "-c", shipped.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // And it holds the documented original keys and ports.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&shipped).unwrap()).unwrap();
    assert_eq!(v["telnet_port"], 4000);
    assert_eq!(v["rest_port"], 4001);
    assert_eq!(v["websocket_port"], 4004);
    assert_eq!(v["log_file"], "chat-server.log");
}

#[test]
fn an_unknown_key_is_rejected_by_name() {
    let dir = TempDir::new("cli");
    let out = check_config(
        &dir,
        "unknown.json",
        r#"{"telnet_port": 0, "bogus_key": 1}"#,
    );
    assert_usage_error(&out, &["bogus_key", "unknown.json"]);

    // Also when starting the server, not only with --check-config.
    let path = dir.path().join("unknown.json");
    let out = run(&["-c", path.to_str().unwrap()], dir.path());
    assert_usage_error(&out, &["bogus_key"]);
}

#[test]
fn a_missing_file_is_rejected_by_name() {
    let dir = TempDir::new("cli");
    let missing = dir.path().join("no-such-config.json");
    let out = run(
        &["--check-config", "-c", missing.to_str().unwrap()],
        dir.path(),
    );
    assert_usage_error(&out, &["no-such-config.json"]);
    let out = run(&["-c", missing.to_str().unwrap()], dir.path());
    assert_usage_error(&out, &["no-such-config.json"]);
}

#[test]
fn bad_json_is_rejected() {
    let dir = TempDir::new("cli");
    for (name, contents) in [
        ("trailing-comma.json", r#"{"telnet_port": 4000,}"#),
        ("truncated.json", r#"{"telnet_port": 40"#),
        ("not-an-object.json", "[1, 2, 3]"),
        ("empty-file.json", ""),
    ] {
        let out = check_config(&dir, name, contents);
        assert_usage_error(&out, &[name]);
    }
}

#[test]
fn a_bad_value_is_rejected_naming_the_key() {
    let dir = TempDir::new("cli");
    for (key, value) in [
        ("telnet_port", "70000"),
        ("telnet_port", "\"4000\""),
        ("ip", "\"not-an-ip\""),
        ("nick_timeout_s", "-1"),
        ("max_line_bytes", "0"),
    ] {
        let out = check_config(&dir, "bad.json", &format!("{{\"{key}\": {value}}}"));
        assert_usage_error(&out, &[key]);
    }
}

#[test]
fn an_unexpected_argument_is_rejected() {
    let dir = TempDir::new("cli");
    let out = run(&["--frobnicate"], dir.path());
    assert_usage_error(&out, &["--frobnicate"]);
    let out = run(&["-c", "a.json", "extra"], dir.path());
    assert_usage_error(&out, &["extra"]);
    let out = run(&["-c"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

/// A token from `CHAT_ADMIN_TOKEN` that breaks the rule stops start-up (exit 2) with an error
/// that names the variable and the rule and does not echo the secret; it is never silently
/// replaced by a random token.
#[test]
fn a_bad_admin_token_in_the_environment_stops_start_up() {
    let dir = TempDir::new("cli");
    let config = dir.write(
        "config.json",
        r#"{"ip": "127.0.0.1", "telnet_port": 0, "rest_port": 0, "websocket_port": 0, "log_file": "chat.log"}"#,
    );
    for (token, rule) in [
        ("short-secret", "at least 16 characters"),
        ("secret with spaces in it", "must not contain whitespace"),
    ] {
        let mut child = Command::new(server_bin())
            .args(["-c", config.to_str().unwrap()])
            .env("CHAT_ADMIN_TOKEN", token)
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", server_bin()));
        // A server that started anyway would run until killed: wait with a deadline.
        let end = Instant::now() + DEADLINE;
        while child.try_wait().unwrap().is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert_usage_error(&out, &["CHAT_ADMIN_TOKEN", rule]);
        assert!(!text(&out.stderr).contains(token), "{}", describe(&out));
        assert!(!dir.path().join("chat.log").exists(), "the server started");
    }
}
