//! Moderation (SPEC §14) against the real binary over real sockets: operators and `/oper`,
//! every moderation command and error string over telnet and WebSocket, bans by nickname,
//! address and CIDR range refusing connections at accept, expiry by the server's timer, the
//! state file across restarts (and SIGKILL never tearing it), X-Forwarded-For from trusted
//! proxies, the REST endpoints and their parity with the commands, and the audit records.
//!
//! Clients that must look like different machines bind distinct loopback addresses
//! (127.0.0.x) before connecting. Every wait loops on a condition with a generous deadline.

mod common;

use common::http::{request, Http};
use common::ws::{upgrade_request, Ws};
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

const TOKEN: &str = "moderation-test-token-0123";
/// The argon2id hash of `s3cret-pass` (made with `chat-server --hash-password`).
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$gpPaiqn4dCcdGZKbF9W5Lg$dFg9J7W8xhFUjFPDtHo5b1cUaaFRiqLZF8maLHrIIuI";
const PASSWORD: &str = "s3cret-pass";

const OPER_OK: &str = "You are now a server operator.";
const OPER_FAILED: &str = "Invalid operator credentials.";
const BANNED_HERE: &str = "You are banned from this server.";

fn config(extra: Value) -> Value {
    let mut c = json!({
        "admin_token": TOKEN,
        "operators": [{"name": "alice", "password_hash": HASH}],
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn start(extra: Value) -> Server {
    Server::start_expecting(config(extra), &["telnet", "websocket", "rest"])
}

/// A TCP connection from the loopback address `from` (e.g. `127.0.0.7`).
fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect_timeout(&addr.into(), DEADLINE).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true).unwrap();
    stream
}

fn telnet_from(server: &Server, from: &str) -> Telnet {
    Telnet::from_stream(connect_from(from, server.telnet_addr()))
}

/// A telnet user from `from` that chose `nick`.
fn user_from(server: &Server, from: &str, nick: &str) -> Telnet {
    let mut t = telnet_from(server, from);
    t.expect_match("the greeting", |l| l.starts_with("Welcome to chat server."));
    t.send_line(nick);
    t.expect(&thanks(nick));
    t
}

fn join(t: &mut Telnet, nick: &str, channel: &str) {
    t.send_line(&format!("/join {channel}"));
    t.expect_match("the others line", |l| l.starts_with("There are "));
    t.expect_match("the joined notice", |l| {
        is_event(l, nick, &format!("just joined channel {channel}"))
    });
}

/// An operator `nick` from 127.0.0.1.
fn operator(server: &Server, nick: &str) -> Telnet {
    let mut op = user_from(server, "127.0.0.1", nick);
    op.send_line(&format!("/oper alice {PASSWORD}"));
    op.expect(OPER_OK);
    op
}

fn is_until(line: &str, prefix: &str) -> bool {
    line.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix("Z."))
        .is_some_and(|ts| ts.len() == 19 && ts.as_bytes()[10] == b'T')
}

/// `METHOD target` on the REST port with the token and an optional JSON body.
fn api(
    server: &mut Server,
    method: &str,
    target: &str,
    body: Option<Value>,
) -> common::http::Response {
    let addr = server.addr("rest");
    let auth = format!("Bearer {TOKEN}");
    let body = body.map(|b| b.to_string());
    let mut headers = vec![("Authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    request(
        addr,
        method,
        target,
        &headers,
        body.as_deref().map(str::as_bytes),
    )
}

/// Reads until the server closes; the bytes.
fn read_to_close(mut stream: TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

fn assert_refused_telnet(server: &Server, from: &str) {
    let bytes = read_to_close(connect_from(from, server.telnet_addr()));
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(text, format!("{BANNED_HERE}\r\n"), "from {from}");
}

fn ws_upgrade_status(server: &mut Server, from: &str, extra: &[(&str, &str)]) -> String {
    let addr = server.addr("websocket");
    let mut stream = connect_from(from, addr);
    stream
        .write_all(upgrade_request("GET", &addr.to_string(), extra).as_bytes())
        .unwrap();
    let bytes = read_to_close(stream);
    let text = String::from_utf8_lossy(&bytes);
    text.lines().next().unwrap_or_default().to_string()
}

fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn non_operators_are_refused_and_oper_checks_credentials() {
    let server = start(json!({}));
    let mut bob = user_from(&server, "127.0.0.1", "bob");
    for cmd in ["/kick", "/ban", "/unban", "/bans", "/mute", "/unmute"] {
        bob.send_line(&format!("{cmd} @carol"));
        bob.expect(&format!("You need to be a server operator to use {cmd}."));
    }
    bob.send_line("/oper");
    bob.expect(
        "Could not find the required name and password in the input, use /oper name password",
    );
    bob.send_line("/oper alice wrong");
    bob.expect(OPER_FAILED);
    bob.send_line("/oper mallory s3cret-pass");
    bob.expect(OPER_FAILED);
    bob.send_line(&format!("/oper alice {PASSWORD}"));
    bob.expect(OPER_OK);
    bob.send_line("/bans");
    bob.expect("There are no bans.");
    // Logged as `oper` records, never with the password.
    let opers = server.log_kind("oper");
    assert_eq!(opers.len(), 3, "{opers:?}");
    assert_eq!(opers[2]["ok"], true);
    assert_eq!(opers[2]["name"], "alice");
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(!log.contains(PASSWORD) && !log.contains("wrong"));
    // /help lists the moderation commands after the others.
    bob.send_line("/help");
    let (_, last) = bob.wait_for("the last help line", |l| l.starts_with("/unmute @nickname"));
    assert!(last.contains('\t'));
}

#[test]
fn five_oper_failures_close_the_connection() {
    let server = start(json!({}));
    let mut eve = user_from(&server, "127.0.0.1", "eve");
    for _ in 0..4 {
        eve.send_line("/oper alice guess");
        eve.expect(OPER_FAILED);
    }
    eve.send_line("/oper alice guess");
    let closed = eve.assert_closed_within(DEADLINE);
    assert_eq!(closed.lines(), vec![OPER_FAILED.to_string()]);
}

#[test]
fn kick_mute_and_ban_by_nick_with_every_string() {
    let server = start(json!({}));
    let mut op = operator(&server, "op");
    join(&mut op, "op", "#general");
    let mut bob = user_from(&server, "127.0.0.2", "bob");
    join(&mut bob, "bob", "#general");
    op.expect_match("bob's join", |l| {
        is_event(l, "bob", "just joined channel #general")
    });
    let mut carol = user_from(&server, "127.0.0.3", "carol");
    join(&mut carol, "carol", "#general");
    op.expect_match("carol's join", |l| {
        is_event(l, "carol", "just joined channel #general")
    });
    bob.expect_match("carol's join", |l| {
        is_event(l, "carol", "just joined channel #general")
    });

    // Kick errors, then a kick with a reason.
    op.send_line("/kick");
    op.expect("Could not find the required @nickname in the input, use /kick @nickname [reason]");
    op.send_line("/kick @nobody");
    op.expect("User @nobody is not connected to this server.");
    op.send_line("/kick @op");
    op.expect("You can not kick yourself.");
    op.send_line("/kick @bob flooding the channel");
    let closed = bob.assert_closed_within(DEADLINE);
    assert_eq!(
        closed.lines(),
        vec!["You were kicked by @op: flooding the channel".to_string()]
    );
    let line = carol.expect_match("the kick notice", |l| {
        is_event(l, "bob", "was kicked by @op: flooding the channel")
    });
    assert!(!line.contains("left channel"));
    op.expect_match("the kick notice", |l| {
        is_event(l, "bob", "was kicked by @op: flooding the channel")
    });
    op.expect("Kicked @bob.");

    // Mute: errors, then chat, /msg and /me refused, then unmute.
    op.send_line("/mute");
    op.expect("Could not find the required @nickname in the input, use /mute @nickname [duration]");
    op.send_line("/mute @carol 5x");
    op.expect(
        "Invalid duration 5x: use a number followed by s, m, h, d or w, such as 30m, 12h or 7d.",
    );
    op.send_line("/mute @carol 30m");
    op.expect_match("the mute answer", |l| is_until(l, "@carol is muted until "));
    carol.expect_match("the mute notice", |l| is_until(l, "You are muted until "));
    for line in ["hello", "/msg @op hi", "/me waves"] {
        carol.send_line(line);
        carol.expect_match("the refusal", |l| is_until(l, "You are muted until "));
    }
    carol.send_line("/list");
    carol.expect("Here is the list of all users in this channel");
    carol.expect("@op");
    carol.expect("@carol");
    op.send_line("/mute @carol");
    op.expect("@carol is muted.");
    carol.expect("You are muted.");
    carol.send_line("still here");
    carol.expect("You are muted.");
    op.send_line("/unmute @carol");
    op.expect("@carol is no longer muted.");
    carol.expect_match("the unmute notice", |l| l == "You are no longer muted.");
    op.send_line("/unmute @carol");
    op.expect("@carol is not muted.");
    op.send_line("/unmute");
    op.expect("Could not find the required @nickname in the input, use /unmute @nickname");
    carol.send_line("free again");
    carol.expect_match("her chat", |l| is_chat(l, "carol", "free again"));
    op.expect_match("her chat", |l| is_chat(l, "carol", "free again"));

    // Ban errors, a ban by nickname of an offline user, the nickname refused, /bans, /unban.
    op.send_line("/ban");
    op.expect("Could not find the required target in the input, use /ban @nickname|address|CIDR [duration] [reason]");
    op.send_line("/ban bob");
    op.expect("Invalid ban target bob: use @nickname, an address such as 203.0.113.7 or a CIDR range such as 203.0.113.0/24.");
    op.send_line("/ban @dave 0d");
    op.expect(
        "Invalid duration 0d: use a number followed by s, m, h, d or w, such as 30m, 12h or 7d.",
    );
    op.send_line("/ban @op");
    op.expect("You can not ban yourself.");
    op.send_line("/ban @dave 12h spam bot");
    op.expect_match("the ban answer", |l| is_until(l, "Banned @dave until "));
    let mut dave = telnet_from(&server, "127.0.0.4");
    dave.expect_match("the greeting", |l| l.starts_with("Welcome"));
    dave.send_line("Dave");
    dave.expect("This nickname is banned.");
    dave.send_line("dave2");
    dave.expect(&thanks("dave2"));
    op.send_line("/ban @carol");
    op.expect_match("the kick notice", |l| {
        is_event(l, "carol", "was kicked by @op")
    });
    op.expect("Banned @carol permanently.");
    let closed = carol.assert_closed_within(DEADLINE);
    assert_eq!(closed.lines(), vec!["You were kicked by @op.".to_string()]);
    // carol's address is banned with her nickname.
    assert_refused_telnet(&server, "127.0.0.3");
    op.send_line("/bans");
    op.expect("Here is the list of all bans");
    op.expect_match("dave's ban", |l| {
        l.starts_with("@dave until ") && l.ends_with(" by @op: spam bot")
    });
    op.expect("@carol permanent by @op");
    op.send_line("/unban @dave");
    op.expect("Removed the ban on @dave.");
    op.send_line("/unban @dave");
    op.expect("There is no ban on @dave.");
    op.send_line("/unban");
    op.expect("Could not find the required target in the input, use /unban @nickname|address|CIDR");
    op.send_line("/unban @carol");
    op.expect("Removed the ban on @carol.");
    op.send_line("/bans");
    op.expect("There are no bans.");
    user_from(&server, "127.0.0.3", "carol");

    // Every act is an audit record.
    let acts: Vec<(String, String, String)> = server
        .log_kind("moderation")
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
                r["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        acts,
        vec![
            expect("@op", "kick", "@bob"),
            expect("@op", "mute", "@carol"),
            expect("@op", "mute", "@carol"),
            expect("@op", "unmute", "@carol"),
            expect("@op", "ban", "@dave"),
            expect("@op", "ban", "@carol"),
            expect("@op", "unban", "@dave"),
            expect("@op", "unban", "@carol"),
        ]
    );
    let kick = &server.log_kind("moderation")[0];
    assert_eq!(kick["reason"], "flooding the channel");
    assert_eq!(kick["until"], Value::Null);
    let ban = &server.log_kind("moderation")[4];
    assert!(ban["until"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ban["reason"], "spam bot");
    let closes = server.log_kind("close");
    assert!(closes
        .iter()
        .any(|c| c["nick"] == "bob" && c["reason"] == "kicked"));
}

#[test]
fn nick_to_a_banned_name_is_refused() {
    let server = start(json!({}));
    let mut op = operator(&server, "op");
    let mut bob = user_from(&server, "127.0.0.2", "bob");
    op.send_line("/ban @mallory spam");
    op.expect("Banned @mallory permanently.");
    bob.send_line("/nick Mallory");
    bob.expect("This nickname is banned.");
    // Nothing changed: bob is still bob, and can take another name.
    bob.send_line("/nick robert");
    bob.expect("You are now known as @robert");
    op.send_line("/unban @mallory");
    op.expect("Removed the ban on @mallory.");
    bob.send_line("/nick mallory");
    bob.expect("You are now known as @mallory");
}

#[test]
fn whois_shows_the_address_to_operators_only() {
    let server = start(json!({}));
    let mut ann = user_from(&server, "127.0.0.1", "ann");
    let mut bob = user_from(&server, "127.0.0.2", "bob");
    let whois_of = |t: &mut Telnet, nick: &str| {
        t.send_line(&format!("/whois @{nick}"));
        t.expect_match("the whois answer", |l| {
            l.starts_with(&format!("@{nick} is "))
        })
    };
    let line = whois_of(&mut bob, "ann");
    assert!(!line.contains(", from "), "{line}");
    let line = whois_of(&mut ann, "bob");
    assert!(!line.contains(", from "), "before /oper: {line}");
    ann.send_line(&format!("/oper alice {PASSWORD}"));
    ann.expect(OPER_OK);
    let line = whois_of(&mut ann, "ann");
    assert!(line.ends_with(", from 127.0.0.1"), "{line}");
    let line = whois_of(&mut ann, "bob");
    assert!(line.ends_with(", from 127.0.0.2"), "{line}");
    let line = whois_of(&mut bob, "ann");
    assert!(!line.contains(", from "), "{line}");
}

#[test]
fn cidr_ban_kicks_every_match_and_refuses_new_connections() {
    let mut server = start(json!({}));
    let mut op = operator(&server, "op");
    let mut u1 = user_from(&server, "127.0.0.10", "u1");
    let mut u2 = user_from(&server, "127.0.0.11", "u2");
    let mut outside = user_from(&server, "127.0.0.20", "outside");
    op.send_line("/ban 127.0.0.9/29 2h raid");
    op.expect_match("the ban answer", |l| {
        is_until(l, "Banned 127.0.0.8/29 until ")
    });
    for (t, _) in [(&mut u1, "u1"), (&mut u2, "u2")] {
        let closed = t.assert_closed_within(DEADLINE);
        assert_eq!(
            closed.lines(),
            vec!["You were kicked by @op: raid".to_string()]
        );
    }
    assert_refused_telnet(&server, "127.0.0.12");
    assert_eq!(
        ws_upgrade_status(&mut server, "127.0.0.13", &[]),
        "HTTP/1.1 403 Forbidden"
    );
    // Outside the range: still there, and new connections are welcome.
    outside.send_line("/help");
    outside.expect(HELP_HEADER);
    user_from(&server, "127.0.0.16", "fine");
    // A range holding the operator's own address is refused.
    op.send_line("/ban 127.0.0.0/8");
    op.expect("You can not ban yourself.");
    op.send_line("/ban 2001:db8::/32 ipv6 range");
    op.expect("Banned 2001:db8::/32 permanently.");
    op.send_line("/bans");
    op.expect("Here is the list of all bans");
    op.expect_match("the range", |l| {
        l.starts_with("127.0.0.8/29 until ") && l.ends_with(" by @op: raid")
    });
    op.expect("2001:db8::/32 permanent by @op: ipv6 range");
}

#[test]
fn a_one_second_ban_is_lifted_by_its_timer() {
    let server = start(json!({}));
    let mut op = operator(&server, "op");
    op.send_line("/ban 127.0.0.30 1s");
    op.expect_match("the ban answer", |l| {
        is_until(l, "Banned 127.0.0.30 until ")
    });
    // Refused while it lasts (unless this machine was slower than the second itself).
    let bytes = read_to_close(connect_from("127.0.0.30", server.telnet_addr()));
    let refused = bytes == format!("{BANNED_HERE}\r\n").into_bytes();
    let expired = !server
        .log_kind("moderation")
        .iter()
        .all(|r| r["action"] != "unban");
    assert!(refused || expired, "{:?}", String::from_utf8_lossy(&bytes));
    // The server's own timer lifts it: an `unban` record by `server`, with nobody asking.
    let record = server.wait_log("the expiry record", DEADLINE, |r| {
        r["kind"] == "moderation" && r["action"] == "unban"
    });
    assert_eq!(record["actor"], "server");
    assert_eq!(record["target"], "127.0.0.30");
    user_from(&server, "127.0.0.30", "back");
    op.send_line("/bans");
    op.expect("There are no bans.");
    // Mutes expire the same way.
    let mut m = user_from(&server, "127.0.0.31", "mutey");
    op.send_line("/mute @mutey 1s");
    op.expect_match("the mute answer", |l| is_until(l, "@mutey is muted until "));
    m.expect_match("the mute notice", |l| is_until(l, "You are muted until "));
    m.expect("You are no longer muted.");
}

fn state_of(server: &Server) -> Value {
    let path = server.dir().join("chat.log.state.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn bans_and_mutes_survive_a_restart_and_expired_ones_are_dropped() {
    let dir = TempDir::new("moderation-state");
    let state = dir.path().join("state.json");
    let state_str = state.to_str().unwrap().to_string();
    let mut server = start(json!({"state_file": state_str}));
    let mut op = operator(&server, "op");
    op.send_line("/ban 127.0.0.40 7d troll");
    op.expect_match("ban", |l| is_until(l, "Banned 127.0.0.40 until "));
    op.send_line("/ban @mallory");
    op.expect("Banned @mallory permanently.");
    let _muted = user_from(&server, "127.0.0.41", "loud");
    op.send_line("/mute @loud 12h");
    op.expect_match("mute", |l| is_until(l, "@loud is muted until "));
    wait_until("the state file", DEADLINE, || {
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("loud"))
    });
    server.sigterm();
    server.wait_exit(DEADLINE).expect("the server stops");

    // Add an ended ban by hand: it is dropped at load.
    let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    saved["bans"].as_array_mut().unwrap().push(json!({
        "target": "127.0.0.42", "until_ms": 1_000_000_000_000i64, "by": "api"
    }));
    std::fs::write(&state, saved.to_string()).unwrap();

    let server = start(json!({"state_file": state_str}));
    assert_refused_telnet(&server, "127.0.0.40");
    user_from(&server, "127.0.0.42", "expired");
    let mut again = telnet_from(&server, "127.0.0.43");
    again.expect_match("greeting", |l| l.starts_with("Welcome"));
    again.send_line("mallory");
    again.expect("This nickname is banned.");
    let mut loud = user_from(&server, "127.0.0.41", "loud");
    join(&mut loud, "loud", "#x");
    loud.send_line("hi");
    loud.expect_match("still muted", |l| is_until(l, "You are muted until "));
    let mut op = operator(&server, "op");
    op.send_line("/bans");
    op.expect("Here is the list of all bans");
    op.expect_match("the address ban", |l| {
        l.starts_with("127.0.0.40 until ") && l.ends_with("by @op: troll")
    });
    op.expect("@mallory permanent by @op");
    // The file was rewritten without the ended ban.
    wait_until("the rewrite", DEADLINE, || {
        !std::fs::read_to_string(&state)
            .unwrap()
            .contains("127.0.0.42")
    });
}

/// Regression: a failed state file write was retried only when something else woke the
/// event loop, so a quiet server never wrote it; and shutdown made no last attempt.
#[test]
fn a_failed_state_write_is_retried_on_a_quiet_server_and_at_shutdown() {
    let dir = TempDir::new("moderation-retry");
    let state = dir.path().join("state.json");
    // A directory where the temporary file goes makes every write fail, even as root.
    let blocker = dir.path().join("state.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    // The HTTP deadline is long, so no timer of the API connection wakes the loop either.
    let mut server = start(json!({
        "state_file": state.to_str().unwrap(),
        "http_header_timeout_s": 120.0,
    }));
    let ban = api(
        &mut server,
        "POST",
        "/v1/api/bans",
        Some(json!({"target": "198.51.100.0/24"})),
    );
    assert_eq!(ban.status, 200);
    wait_until("the write failure warning", DEADLINE, || {
        server.stderr_text().contains("cannot write the state file")
    });
    std::fs::remove_dir(&blocker).unwrap();
    // Nothing else happens: the retry alone writes the file.
    wait_until("the retried write", DEADLINE, || {
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("198.51.100.0/24"))
    });
    std::fs::create_dir(&blocker).unwrap();
    let ban = api(
        &mut server,
        "POST",
        "/v1/api/bans",
        Some(json!({"target": "192.0.2.0/24"})),
    );
    assert_eq!(ban.status, 200);
    server.sigterm();
    server.wait_exit(DEADLINE).expect("the server stops");
    let stderr = server.stderr_text();
    assert!(
        stderr.contains("before stopping") && stderr.contains("state.json"),
        "{stderr}"
    );
    assert!(!std::fs::read_to_string(&state)
        .unwrap()
        .contains("192.0.2.0/24"));
}

#[test]
fn a_corrupt_state_file_stops_start_up_naming_it() {
    let dir = TempDir::new("moderation-corrupt");
    let state = dir.write("bans.json", "{\"version\": 1, \"bans\": [");
    let config_path = dir.write(
        "config.json",
        serde_json::to_vec(&json!({
            "ip": "127.0.0.1", "telnet_port": 0, "rest_port": 0, "websocket_port": 0,
            "log_file": dir.path().join("chat.log").to_str().unwrap(),
            "state_file": state.to_str().unwrap(),
        }))
        .unwrap(),
    );
    for bad in [
        "{\"version\": 1, \"bans\": [",
        "{\"version\": 1, \"bans\": [{\"target\": \"bob\", \"by\": \"api\"}], \"mutes\": []}",
        "{\"version\": 9, \"bans\": [], \"mutes\": []}",
    ] {
        std::fs::write(&state, bad).unwrap();
        let out = std::process::Command::new(server_bin())
            .arg("-c")
            .arg(&config_path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("bans.json") && stderr.contains("corrupt"),
            "{stderr}"
        );
        // The file is left as it was.
        assert_eq!(std::fs::read_to_string(&state).unwrap(), bad);
    }
}

#[test]
fn sigkill_during_ban_changes_never_tears_the_state_file() {
    for round in 0..4 {
        let mut server = start(json!({}));
        let rest = server.addr("rest");
        let auth = format!("Bearer {TOKEN}");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let auth = auth.clone();
            thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let target = format!("198.51.{}.{}", n / 250 % 250, n % 250);
                    let body = json!({"target": target, "reason": "x".repeat(200)}).to_string();
                    let Ok(stream) = TcpStream::connect(rest) else {
                        break;
                    };
                    let mut http = Http::from_stream(stream, rest);
                    let bytes = http.request_bytes(
                        "POST",
                        "/v1/api/bans",
                        &[
                            ("Authorization", &auth),
                            ("Content-Type", "application/json"),
                        ],
                        Some(body.as_bytes()),
                    );
                    n += 1;
                    if http.try_send(&bytes).is_err() {
                        break;
                    }
                    let _ = http.try_response(false, Duration::from_secs(2));
                }
                n
            })
        };
        let path = server.dir().join("chat.log.state.json");
        wait_until("a few writes", DEADLINE, || {
            std::fs::read_to_string(&path)
                .is_ok_and(|s| s.matches("198.51").count() > 5 + round * 20)
        });
        server.signal("KILL");
        server.wait_exit(DEADLINE).expect("killed");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.join().unwrap();
        let state = state_of(&server);
        let bans = state["bans"].as_array().unwrap().len();
        assert!(
            bans > 0 && bans <= written as usize,
            "round {round}: {bans} of {written}"
        );
    }
}

#[test]
fn websocket_users_get_the_same_strings() {
    let mut server = start(json!({}));
    let addr = server.addr("websocket");
    let mut op = Ws::user(addr, "wsop");
    op.send_text("/kick @x");
    op.expect_message("refusal", |t| {
        t == "You need to be a server operator to use /kick."
    });
    op.send_text("/oper alice nope");
    op.expect_message("failure", |t| t == OPER_FAILED);
    op.send_text(&format!("/oper alice {PASSWORD}"));
    op.expect_message("success", |t| t == OPER_OK);
    op.send_text("/bans");
    op.expect_message("no bans", |t| t == "There are no bans.");
    let stream = connect_from("127.0.0.50", addr);
    let mut target = Ws::open_on(stream, addr);
    target.expect_message("greeting", |t| t.starts_with("Welcome"));
    target.send_text("wsuser");
    target.expect_message("thanks", |t| t == thanks("wsuser"));
    op.send_text("/mute @wsuser 1h");
    op.expect_message("muted", |t| is_until(t, "@wsuser is muted until "));
    target.expect_message("notice", |t| is_until(t, "You are muted until "));
    target.send_text("/msg @wsop hi");
    target.expect_message("refusal", |t| is_until(t, "You are muted until "));
    op.send_text("/ban @wsuser 1h go away");
    op.expect_message("banned", |t| is_until(t, "Banned @wsuser until "));
    let texts = target.expect_close(1008);
    assert_eq!(texts, vec!["You were kicked by @wsop: go away".to_string()]);
    assert_eq!(
        ws_upgrade_status(&mut server, "127.0.0.50", &[]),
        "HTTP/1.1 403 Forbidden"
    );
    op.send_text("/bans");
    let list = op.expect_message("the list", |t| {
        t.starts_with("Here is the list of all bans")
    });
    assert!(
        list.contains("\n@wsuser until ") && list.ends_with(" by @wsop: go away"),
        "{list}"
    );
    op.send_text("/unban @wsuser");
    op.expect_message("unbanned", |t| t == "Removed the ban on @wsuser.");
}

#[test]
fn rest_endpoints_match_the_commands() {
    let mut server = start(json!({}));
    let mut op = operator(&server, "op");
    join(&mut op, "op", "#ops");
    let mut bob = user_from(&server, "127.0.0.60", "bob");
    join(&mut bob, "bob", "#ops");
    op.expect_match("bob's join", |l| {
        is_event(l, "bob", "just joined channel #ops")
    });

    // Without the token: 401.
    let rest = server.addr("rest");
    for (method, path) in [
        ("GET", "/v1/api/users"),
        ("POST", "/v1/api/kick"),
        ("DELETE", "/v1/api/bans?target=x"),
    ] {
        let body = (method == "POST").then_some(&b"{}"[..]);
        assert_eq!(
            request(rest, method, path, &[], body).status,
            401,
            "{method} {path}"
        );
    }

    let users = api(&mut server, "GET", "/v1/api/users", None);
    assert_eq!(users.status, 200);
    let list = users.json()["Data"]["users"].clone();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["nick"], "bob");
    assert_eq!(list[0]["address"], "127.0.0.60");
    assert_eq!(list[0]["transport"], "telnet");
    assert_eq!(list[0]["channel"], "#ops");
    assert_eq!(list[0]["operator"], false);
    assert_eq!(list[0]["away"], Value::Null);
    assert_eq!(list[0]["muted"], false);
    assert!(list[0]["idle_s"].as_u64().is_some());
    assert!(list[0]["connected_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(list[1]["operator"], true);

    let channels = api(&mut server, "GET", "/v1/api/channels", None).json();
    assert_eq!(
        channels["Data"]["channels"],
        json!([{"name": "#ops", "members": ["op", "bob"], "topic": null}])
    );

    let muted = api(
        &mut server,
        "POST",
        "/v1/api/mute",
        Some(json!({"nick": "@bob", "duration_s": 600})),
    );
    assert_eq!(muted.status, 200);
    assert!(muted.json()["Data"]["muted_until"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    bob.expect_match("mute notice", |l| is_until(l, "You are muted until "));
    let users = api(&mut server, "GET", "/v1/api/users", None).json();
    assert_eq!(users["Data"]["users"][0]["muted"], true);
    assert_eq!(
        api(&mut server, "DELETE", "/v1/api/mute?nick=bob", None).status,
        200
    );
    bob.expect("You are no longer muted.");
    let again = api(&mut server, "DELETE", "/v1/api/mute?nick=bob", None);
    assert_eq!(
        (again.status, again.short_message()),
        (404, "not-muted".to_string())
    );
    let unknown = api(
        &mut server,
        "POST",
        "/v1/api/mute",
        Some(json!({"nick": "nobody"})),
    );
    assert_eq!(
        (unknown.status, unknown.short_message()),
        (404, "unknown-user".to_string())
    );

    let bad = api(
        &mut server,
        "POST",
        "/v1/api/bans",
        Some(json!({"target": "not an address"})),
    );
    assert_eq!(
        (bad.status, bad.short_message()),
        (400, "invalid-target".to_string())
    );
    let bad = api(
        &mut server,
        "POST",
        "/v1/api/bans",
        Some(json!({"target": "10.0.0.1", "duration_s": 0})),
    );
    assert_eq!(
        (bad.status, bad.short_message()),
        (400, "invalid-duration".to_string())
    );
    let ban = api(
        &mut server,
        "POST",
        "/v1/api/bans",
        Some(json!({"target": "10.9.0.0/16", "duration_s": 3600, "reason": "abuse"})),
    );
    assert_eq!(ban.status, 200);
    assert_eq!(ban.json()["Data"]["ban"]["target"], "10.9.0.0/16");
    assert_eq!(ban.json()["Data"]["ban"]["by"], "api");
    // The REST ban is in /bans, "by api".
    op.send_line("/bans");
    op.expect("Here is the list of all bans");
    op.expect_match("the REST ban", |l| {
        l.starts_with("10.9.0.0/16 until ") && l.ends_with(" by api: abuse")
    });
    let bans = api(&mut server, "GET", "/v1/api/bans", None).json();
    assert_eq!(bans["Data"]["bans"][0]["reason"], "abuse");
    let gone = api(
        &mut server,
        "DELETE",
        "/v1/api/bans?target=10.9.0.0%2F16",
        None,
    );
    assert_eq!(gone.status, 200);
    assert_eq!(gone.json()["Data"]["removed"], "10.9.0.0/16");
    let gone = api(
        &mut server,
        "DELETE",
        "/v1/api/bans?target=10.9.0.0%2F16",
        None,
    );
    assert_eq!(
        (gone.status, gone.short_message()),
        (404, "not-banned".to_string())
    );

    let kick = api(
        &mut server,
        "POST",
        "/v1/api/kick",
        Some(json!({"nick": "bob", "reason": "bye"})),
    );
    assert_eq!(kick.status, 200);
    let closed = bob.assert_closed_within(DEADLINE);
    assert_eq!(
        closed.lines(),
        vec!["You were kicked by api: bye".to_string()]
    );
    op.expect_match("the kick notice", |l| {
        is_event(l, "bob", "was kicked by api: bye")
    });
    let kick = api(
        &mut server,
        "POST",
        "/v1/api/kick",
        Some(json!({"nick": "bob"})),
    );
    assert_eq!(kick.status, 404);
    let acts: Vec<Value> = server.log_kind("moderation");
    assert!(acts
        .iter()
        .any(|r| r["actor"] == "api" && r["action"] == "kick" && r["target"] == "@bob"));
    assert!(acts
        .iter()
        .any(|r| r["actor"] == "api" && r["action"] == "ban" && r["reason"] == "abuse"));
}

#[test]
fn trusted_proxies_forward_the_client_address() {
    let mut server = start(json!({"trusted_proxies": ["127.0.0.1"]}));
    let addr = server.addr("websocket");
    let forwarded = [("X-Forwarded-For", "198.51.100.9, 203.0.113.7")];
    let (mut ws, resp) = Ws::handshake(addr, &forwarded, b"");
    common::ws::assert_upgraded(&resp);
    ws.expect_message("greeting", |t| t.starts_with("Welcome"));
    ws.send_text("proxied");
    ws.expect_message("thanks", |t| t == thanks("proxied"));
    // From an untrusted peer the header is ignored.
    let stream = connect_from("127.0.0.70", addr);
    let (mut direct, resp) =
        Ws::from_stream(stream, addr).upgrade(&[("X-Forwarded-For", "203.0.113.8")], b"");
    common::ws::assert_upgraded(&resp);
    direct.expect_message("greeting", |t| t.starts_with("Welcome"));
    direct.send_text("direct");
    direct.expect_message("thanks", |t| t == thanks("direct"));
    let users = api(&mut server, "GET", "/v1/api/users", None).json();
    let addresses: Vec<(String, String)> = users["Data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["nick"].as_str().unwrap().into(),
                u["address"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        addresses,
        vec![
            ("direct".into(), "127.0.0.70".into()),
            ("proxied".into(), "203.0.113.7".into())
        ]
    );
    let connects = server.log_kind("connect");
    assert!(connects
        .iter()
        .any(|c| c["peer"].as_str().unwrap().starts_with("203.0.113.7")));
    // A ban of the forwarded range kicks the proxied user and refuses its next upgrade.
    let ban = api(
        &mut server,
        "POST",
        "/v1/api/bans",
        Some(json!({"target": "203.0.113.0/24"})),
    );
    assert_eq!(ban.status, 200);
    ws.expect_close(1008);
    let (_, resp) = Ws::handshake(addr, &forwarded, b"");
    assert_eq!(resp.status, 403);
    assert_eq!(resp.text(), format!("{BANNED_HERE}\n"));
    // Other clients of the proxy are still welcome.
    let (_, resp) = Ws::handshake(addr, &[("X-Forwarded-For", "192.0.2.1")], b"");
    common::ws::assert_upgraded(&resp);
    direct.send_text("/help");
    direct.expect_message("help", |t| t.starts_with(HELP_HEADER));
}

/// Regression: one unreadable `X-Forwarded-For` hop used to make the whole header ignored,
/// so a banned client behind a trusted proxy was let in with the proxy's address.
#[test]
fn unparseable_forwarded_hop_does_not_let_a_banned_client_in() {
    let mut server = start(json!({"trusted_proxies": ["127.0.0.0/8"]}));
    let addr = server.addr("websocket");
    let ban = api(
        &mut server,
        "POST",
        "/v1/api/bans",
        Some(json!({"target": "203.0.113.7"})),
    );
    assert_eq!(ban.status, 200);
    for xff in [
        "garbage, 203.0.113.7",
        "203.0.113.7:1234",
        "203.0.113.7:1234, 127.0.0.9",
        "[::ffff:203.0.113.7]:1234",
    ] {
        let (_, resp) = Ws::handshake(addr, &[("X-Forwarded-For", xff)], b"");
        assert_eq!(resp.status, 403, "X-Forwarded-For: {xff}");
        assert_eq!(resp.text(), format!("{BANNED_HERE}\n"));
    }
    // The hop that would be the client cannot be read: refused with a clear error.
    for xff in ["203.0.113.7, garbage", "unknown"] {
        let (_, resp) = Ws::handshake(addr, &[("X-Forwarded-For", xff)], b"");
        assert_eq!(resp.status, 400, "X-Forwarded-For: {xff}");
        assert!(
            resp.text().starts_with("Bad X-Forwarded-For"),
            "{}",
            resp.text()
        );
    }
    // Another client of the proxy, with a port, is welcome under its own address.
    let (mut ws, resp) = Ws::handshake(addr, &[("X-Forwarded-For", "192.0.2.1:5555")], b"");
    common::ws::assert_upgraded(&resp);
    ws.expect_message("greeting", |t| t.starts_with("Welcome"));
    ws.send_text("proxied");
    ws.expect_message("thanks", |t| t == thanks("proxied"));
    let users = api(&mut server, "GET", "/v1/api/users", None).json();
    assert_eq!(users["Data"]["users"][0]["address"], "192.0.2.1");
}

#[test]
fn hash_password_prints_a_hash_that_oper_accepts() {
    let mut child = std::process::Command::new(server_bin())
        .arg("--hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    let server = Server::start(json!({"operators": [{"name": "root", "password_hash": hash}]}));
    let mut t = server.user("admin");
    t.send_line("/oper root correct horse");
    t.expect(OPER_OK);
}

/// Every error string of the moderation commands, the same over telnet and WebSocket.
#[test]
fn every_error_string_over_both_transports() {
    let mut server = start(json!({}));
    let ws_addr = server.addr("websocket");
    let mut tel = user_from(&server, "127.0.0.1", "teluser");
    let mut ws = Ws::user(ws_addr, "wsuser");
    let cmds = ["/kick", "/ban", "/unban", "/bans", "/mute", "/unmute"];
    for cmd in cmds {
        let want = format!("You need to be a server operator to use {cmd}.");
        tel.send_line(&format!("{cmd} @x"));
        tel.expect(&want);
        ws.send_text(&format!("{cmd} @x"));
        ws.expect_message("the refusal", |t| t == want);
    }
    tel.send_line(&format!("/oper alice {PASSWORD}"));
    tel.expect(OPER_OK);
    ws.send_text(&format!("/oper alice {PASSWORD}"));
    ws.expect_message("oper", |t| t == OPER_OK);
    let table = |me: &str| -> Vec<(String, String)> {
        [
            ("/oper", "Could not find the required name and password in the input, use /oper name password"),
            ("/oper alice", "Could not find the required name and password in the input, use /oper name password"),
            ("/kick", "Could not find the required @nickname in the input, use /kick @nickname [reason]"),
            ("/kick nobody", "Could not find the required @nickname in the input, use /kick @nickname [reason]"),
            ("/kick @nobody", "User @nobody is not connected to this server."),
            ("/kick @ME", "You can not kick yourself."),
            ("/ban", "Could not find the required target in the input, use /ban @nickname|address|CIDR [duration] [reason]"),
            ("/ban bob", "Invalid ban target bob: use @nickname, an address such as 203.0.113.7 or a CIDR range such as 203.0.113.0/24."),
            ("/ban 10.0.0.0/33", "Invalid ban target 10.0.0.0/33: use @nickname, an address such as 203.0.113.7 or a CIDR range such as 203.0.113.0/24."),
            ("/ban @dave 0d", "Invalid duration 0d: use a number followed by s, m, h, d or w, such as 30m, 12h or 7d."),
            ("/ban @dave 12x spam", "Invalid duration 12x: use a number followed by s, m, h, d or w, such as 30m, 12h or 7d."),
            ("/ban @ME", "You can not ban yourself."),
            ("/unban", "Could not find the required target in the input, use /unban @nickname|address|CIDR"),
            ("/unban 192.0.2.1", "There is no ban on 192.0.2.1."),
            ("/unban 2001:db8::/32", "There is no ban on 2001:db8::/32."),
            ("/unban what", "Invalid ban target what: use @nickname, an address such as 203.0.113.7 or a CIDR range such as 203.0.113.0/24."),
            ("/bans", "There are no bans."),
            ("/mute", "Could not find the required @nickname in the input, use /mute @nickname [duration]"),
            ("/mute @nobody", "User @nobody is not connected to this server."),
            ("/mute @nobody 5x", "Invalid duration 5x: use a number followed by s, m, h, d or w, such as 30m, 12h or 7d."),
            ("/mute @ME", "You can not mute yourself."),
            ("/unmute", "Could not find the required @nickname in the input, use /unmute @nickname"),
            ("/unmute @nobody", "@nobody is not muted."),
        ]
        .iter()
        .map(|(line, want)| (line.replace("ME", me), want.to_string()))
        .collect()
    };
    for (line, want) in table("teluser") {
        tel.send_line(&line);
        tel.expect(&want);
    }
    for (line, want) in table("wsuser") {
        ws.send_text(&line);
        ws.expect_message(&line, |t| t == want);
    }
    // Failures are logged as errors, like other commands' errors.
    let errors = server.log_kind("error");
    assert!(errors
        .iter()
        .any(|e| e["error"] == "You can not mute yourself."));
}

/// Setting a topic reaches everyone in the channel, so a muted user may not do it; showing
/// the topic and renaming stay allowed (a rename keeps the mute).
#[test]
fn muted_user_cannot_set_a_channel_topic() {
    let server = start(json!({}));
    let mut op = operator(&server, "op");
    join(&mut op, "op", "#general");
    let mut carol = user_from(&server, "127.0.0.3", "carol");
    join(&mut carol, "carol", "#general");
    op.expect_match("carol's join", |l| {
        is_event(l, "carol", "just joined channel #general")
    });
    op.send_line("/mute @carol");
    op.expect("@carol is muted.");
    carol.expect("You are muted.");
    carol.send_line("/topic secret plans");
    carol.expect("You are muted.");
    carol.send_line("/topic");
    carol.expect("#general has no topic.");
    carol.send_line("/nick carla");
    carol.wait_for("the rename", |l| l.contains("@carla"));
    carol.send_line("/topic still secret");
    carol.expect("You are muted.");
    // The op saw the rename and no topic: the topic is still unset.
    op.send_line("/topic");
    let (before, _) = op.wait_for("the topic answer", |l| l == "#general has no topic.");
    assert!(
        before.iter().all(|l| !l.contains("set the topic")),
        "a muted user's topic reached the channel: {before:?}"
    );
}
