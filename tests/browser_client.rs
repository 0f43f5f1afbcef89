//! The browser chat page (SPEC §5, `GET /client`) in a real browser: Debian's `chromium`,
//! driven by `tests/browser/chat.spec.mjs` through `playwright-core`, talks to a telnet user on
//! a real `chat-server` (nickname, /join, public and private messages both ways, a dropped
//! WebSocket that the page must reconnect, /quit).
//!
//! Needs `chromium` (`$CHROMIUM`, default `/usr/bin/chromium`), `node`, and the npm packages
//! in `tests/browser/node_modules` (`make test` installs them; `.ci/run` installs chromium).
//! Without them the test prints a loud `SKIPPED:` and passes, except under `CI`, where it fails.
//!
//! A second script, `tests/browser/history.spec.mjs`, runs the server itself to restart it:
//! JSON mode, history on join, the members panel and recovery of what was said while the
//! page was away.
//!
//! With `CHAT_SCREENSHOT=path` it saves a screenshot of the conversation there; the README's
//! `docs/client.png` is made with
//! `CHAT_SCREENSHOT=docs/client.png cargo test --test browser_client recovers`.

mod common;

use common::{server_bin, Server, TempDir};
use serde_json::json;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a node script may run (each gives up by itself after 80 s).
const NODE_DEADLINE: Duration = Duration::from_secs(90);

/// `name` found in one of the `PATH` directories.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// What the test needs and is missing, one reason per item.
fn missing_prerequisites(browser_dir: &Path, chromium: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!(
            "chromium not found at {} (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    if on_path("node").is_none() {
        missing.push("node not found on PATH (install Node.js 20 or later)".to_string());
    }
    let playwright = browser_dir.join("node_modules").join("playwright-core");
    if !playwright.is_dir() {
        missing.push(format!(
            "{} is missing (run `make browser-deps`, or `npm ci` in {})",
            playwright.display(),
            browser_dir.display()
        ));
    }
    missing
}

/// The browser and the script directory, or `None` (after a loud notice) when something
/// the browser tests need is missing outside CI.
fn browser_setup() -> Option<(PathBuf, PathBuf)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = repo.join("tests").join("browser");
    let chromium = std::env::var_os("CHROMIUM")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);

    let missing = missing_prerequisites(&browser_dir, &chromium);
    if missing.is_empty() {
        return Some((browser_dir, chromium));
    }
    let why = missing.join("; ");
    if std::env::var_os("CI").is_some() {
        panic!("the browser test must run under CI, but: {why}");
    }
    eprintln!();
    eprintln!("************************************************************************");
    eprintln!("*** SKIPPED: browser_client (the chat page in chromium) did NOT run:");
    for m in &missing {
        eprintln!("***   - {m}");
    }
    eprintln!("************************************************************************");
    None
}

/// Runs `node script` with `envs` until it exits or [`NODE_DEADLINE`] passes; its output goes
/// to `out_path`. Fails the test with that output (and `context()`) unless it succeeds.
fn run_node(
    script: &Path,
    envs: &[(&str, &std::ffi::OsStr)],
    out_path: &Path,
    context: impl FnOnce() -> String,
) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = File::create(out_path).expect("cannot create the output file");
    let mut command = Command::new("node");
    command.arg(script).current_dir(repo);
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut node = command
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("cannot clone a file handle"))
        .stderr(out)
        .spawn()
        .expect("cannot start node");

    let end = Instant::now() + NODE_DEADLINE;
    let status = loop {
        if let Some(status) = node.try_wait().expect("try_wait on node failed") {
            break Some(status);
        }
        if Instant::now() >= end {
            // Our own child only, by its PID.
            let _ = node.kill();
            let _ = node.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(out_path).unwrap_or_default();
    let name = script.display();
    match status {
        Some(s) if s.success() => eprintln!("{output}"),
        Some(s) => panic!("{name} failed ({s}); its output:\n{output}\n{}", context()),
        None => panic!(
            "{name} ran past {NODE_DEADLINE:?} and was killed; its output:\n{output}\n{}",
            context()
        ),
    }
}

#[test]
fn browser_page_chats_with_a_telnet_user() {
    let Some((browser_dir, chromium)) = browser_setup() else {
        return;
    };
    let mut server = Server::start_expecting(json!({}), &["telnet", "websocket"]);
    let ws = format!("http://{}", server.addr("websocket"));
    let telnet = server.addr("telnet").port().to_string();
    let out_path = server.dir().join("chat.spec.out");
    run_node(
        &browser_dir.join("chat.spec.mjs"),
        &[
            ("CHAT_WS_URL", ws.as_ref()),
            ("CHAT_TELNET_PORT", telnet.as_ref()),
            ("CHROMIUM", chromium.as_os_str()),
        ],
        &out_path,
        || format!("server stderr:\n{}", server.stderr_text()),
    );
}

/// JSON mode in the page: history on join, the members panel, and a reconnect across a real
/// restart of the server (which the script runs itself, on the same ports and log).
#[test]
fn browser_page_recovers_what_it_missed_across_a_restart() {
    let Some((browser_dir, chromium)) = browser_setup() else {
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Only on request, so that a test run leaves the working tree as it was.
    let screenshot = match std::env::var("CHAT_SCREENSHOT") {
        Ok(path) if !path.is_empty() => repo.join(path).to_string_lossy().into_owned(),
        _ => String::new(),
    };
    let dir = TempDir::new("browser-history");
    let out_path = dir.path().join("history.spec.out");
    run_node(
        &browser_dir.join("history.spec.mjs"),
        &[
            ("CHAT_SERVER_BIN", server_bin().as_ref()),
            ("CHAT_DIR", dir.path().as_os_str()),
            ("CHROMIUM", chromium.as_os_str()),
            ("CHAT_SCREENSHOT", screenshot.as_ref()),
        ],
        &out_path,
        || {
            let log = std::fs::read_to_string(dir.path().join("chat.log")).unwrap_or_default();
            format!("chat log:\n{log}")
        },
    );
}
