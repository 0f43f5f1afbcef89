//! The moderation core driven with a fake clock: the `/oper` queue (one check per tick),
//! expiry by `handle_tick`, deadlines, and the state's round trip.

use super::*;
use std::net::SocketAddr;

/// The argon2id hash of `s3cret-pass`.
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$gpPaiqn4dCcdGZKbF9W5Lg$dFg9J7W8xhFUjFPDtHo5b1cUaaFRiqLZF8maLHrIIuI";

#[derive(Default)]
struct Rec {
    sent: Vec<(u32, String)>,
    logs: Vec<String>,
    closed: Vec<(u32, CloseReason)>,
}

impl Outbox for Rec {
    fn log(&mut self, _now: Now, record: &Record<'_>) -> Result<u64, LogFailed> {
        self.logs.push(serde_json::to_string(record).unwrap());
        Ok(self.logs.len() as u64)
    }
    fn send(&mut self, to: ClientId, text: &str) {
        self.sent.push((to.gen, text.to_string()));
    }
    fn send_many(&mut self, to: &[ClientId], text: &str) {
        for id in to {
            self.send(*id, text);
        }
    }
    fn close(&mut self, id: ClientId, reason: CloseReason) {
        self.closed.push((id.gen, reason));
    }
}

fn at(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        unix_ms: 1_796_000_000_000 + ms as i64,
        utc_offset_s: 0,
    }
}

fn id(n: u32) -> ClientId {
    ClientId { key: n, gen: n }
}

fn core_with_users(out: &mut Rec, users: &[(&str, [u8; 4])]) -> ChatCore {
    let mut core = ChatCore::new(CoreConfig {
        nick_timeout_ms: 60_000,
        ..CoreConfig::default()
    });
    core.set_operators(vec![Operator {
        name: "alice".into(),
        password_hash: HASH.into(),
    }]);
    for (i, (nick, ip)) in users.iter().enumerate() {
        let n = i as u32 + 1;
        let peer = SocketAddr::from((*ip, 4000));
        core.handle_connect(at(0), id(n), Transport::Telnet, peer, out);
        core.handle_line(at(0), id(n), nick, out);
    }
    out.sent.clear();
    out.logs.clear();
    core
}

#[test]
fn oper_attempts_are_checked_one_per_call() {
    let mut out = Rec::default();
    let mut core = core_with_users(&mut out, &[("a", [10, 0, 0, 1]), ("b", [10, 0, 0, 2])]);
    core.handle_line(at(1), id(1), "/oper alice wrong", &mut out);
    core.handle_line(at(1), id(2), "/oper alice s3cret-pass", &mut out);
    assert!(out.sent.is_empty(), "nothing is checked inside handle_line");
    assert_eq!(
        core.next_deadline(),
        Some(1),
        "a queued check is due at once"
    );
    core.handle_tick(at(2), &mut out);
    assert!(out.sent.is_empty(), "nor inside handle_tick");
    core.handle_oper_check(at(2), &mut out);
    assert_eq!(
        out.sent,
        vec![(1, "Invalid operator credentials.".to_string())]
    );
    core.handle_oper_check(at(50), &mut out);
    assert_eq!(out.sent.len(), 1, "checks are spaced");
    assert_eq!(core.next_deadline(), Some(102));
    core.handle_oper_check(at(102), &mut out);
    assert_eq!(
        out.sent[1],
        (2, "You are now a server operator.".to_string())
    );
    assert!(core.is_operator(id(2)) && !core.is_operator(id(1)));
    assert!(out
        .logs
        .iter()
        .all(|l| !l.contains("s3cret") && !l.contains("wrong")));
}

#[test]
fn timed_bans_and_mutes_end_on_the_tick() {
    let mut out = Rec::default();
    let mut core = core_with_users(&mut out, &[("op", [10, 0, 0, 1]), ("m", [10, 0, 0, 2])]);
    let ban = core
        .ban(
            at(10),
            Actor::Api,
            "192.0.2.0/24",
            Some(1_000),
            None,
            &mut out,
        )
        .unwrap();
    assert_eq!(ban.target, "192.0.2.0/24");
    core.mute(at(10), Actor::Api, "m", Some(2_000), &mut out)
        .unwrap();
    assert!(core.is_address_banned(at(500), "192.0.2.9".parse().unwrap()));
    assert_eq!(core.next_deadline(), Some(1_010));
    core.handle_tick(at(1_010), &mut out);
    assert!(!core.is_address_banned(at(1_010), "192.0.2.9".parse().unwrap()));
    assert_eq!(core.next_deadline(), Some(2_010));
    out.sent.clear();
    core.handle_line(at(1_500), id(2), "hi", &mut out);
    assert!(out.sent[0].1.starts_with("You are muted until "));
    core.handle_tick(at(2_010), &mut out);
    assert_eq!(out.sent.last().unwrap().1, "You are no longer muted.");
    assert_eq!(core.next_deadline(), Some(60_000)); // only the nick deadlines remain
    let expiries = out
        .logs
        .iter()
        .filter(|l| l.contains("\"actor\":\"server\""))
        .count();
    assert_eq!(expiries, 2);
}

#[test]
fn state_round_trips_and_drops_ended_entries() {
    let mut out = Rec::default();
    let mut core = core_with_users(&mut out, &[("op", [10, 0, 0, 1]), ("bob", [10, 0, 0, 2])]);
    assert_eq!(core.take_moderation_state(), None);
    core.ban(at(0), Actor::Api, "@bob", None, Some("spam"), &mut out)
        .unwrap();
    core.ban(
        at(0),
        Actor::Api,
        "2001:db8::/32",
        Some(5_000),
        None,
        &mut out,
    )
    .unwrap();
    let state = core.take_moderation_state().unwrap();
    assert_eq!(core.take_moderation_state(), None, "taken once per change");
    let mut fresh = ChatCore::new(CoreConfig {
        nick_timeout_ms: 1,
        ..CoreConfig::default()
    });
    assert_eq!(fresh.load_moderation_state(at(1), &state), Ok(0));
    assert_eq!(fresh.bans(at(1)), core.bans(at(1)));
    assert!(fresh.is_address_banned(at(1), "10.0.0.2".parse().unwrap()));
    assert!(fresh.is_nick_banned(at(1), "BOB"));
    let mut later = ChatCore::new(CoreConfig {
        nick_timeout_ms: 1,
        ..CoreConfig::default()
    });
    assert_eq!(later.load_moderation_state(at(6_000), &state), Ok(1));
    assert_eq!(later.bans(at(6_000)).len(), 1);
    assert!(
        later.take_moderation_state().is_some(),
        "rewritten without it"
    );
    assert!(later.load_moderation_state(at(0), "{").is_err());
}

#[test]
fn nick_to_a_banned_name_is_refused() {
    let mut out = Rec::default();
    let mut core = core_with_users(&mut out, &[("op", [10, 0, 0, 1]), ("bob", [10, 0, 0, 2])]);
    core.ban(at(1), Actor::Api, "@mallory", None, None, &mut out)
        .unwrap();
    out.sent.clear();
    core.handle_line(at(2), id(2), "/nick MALLORY", &mut out);
    assert_eq!(out.sent, vec![(2, "This nickname is banned.".to_string())]);
    assert_eq!(core.nick_of(id(2)), Some("bob"));
    assert!(out.logs.last().unwrap().contains("\"kind\":\"error\""));
    // A case-only change is not a new name: it is not checked against the bans.
    core.handle_line(at(3), id(2), "/nick Bob", &mut out);
    assert_eq!(core.nick_of(id(2)), Some("Bob"));
}

#[test]
fn a_mute_follows_a_rename() {
    let mut out = Rec::default();
    let mut core = core_with_users(&mut out, &[("op", [10, 0, 0, 1]), ("loud", [10, 0, 0, 2])]);
    core.mute(at(1), Actor::Api, "loud", None, &mut out)
        .unwrap();
    assert!(core.take_moderation_state().is_some());
    core.handle_line(at(2), id(2), "/nick quiet", &mut out);
    assert_eq!(core.nick_of(id(2)), Some("quiet"));
    out.sent.clear();
    core.handle_line(at(3), id(2), "/me shouts", &mut out);
    assert_eq!(out.sent, vec![(2, "You are muted.".to_string())]);
    let state = core.take_moderation_state().unwrap();
    assert!(
        state.contains("\"quiet\"") && !state.contains("\"loud\""),
        "{state}"
    );
    assert_eq!(
        core.unmute(at(4), Actor::Api, "quiet", &mut out),
        Ok("quiet".into())
    );
}

/// Regression: one connection could queue many `/oper` attempts, and the attempts of closed
/// connections still cost a check slot each, so a legitimate `/oper` waited seconds.
#[test]
fn oper_queue_holds_one_attempt_per_connection_and_drops_closed_ones() {
    let mut out = Rec::default();
    let users = [
        ("a", [10, 0, 0, 1]),
        ("b", [10, 0, 0, 2]),
        ("c", [10, 0, 0, 3]),
    ];
    let mut core = core_with_users(&mut out, &users);
    core.handle_line(at(1), id(1), "/oper alice wrong", &mut out);
    for _ in 0..10 {
        core.handle_line(at(1), id(1), "/oper alice wrong-again", &mut out);
    }
    let pending = "Your previous /oper attempt is still being checked, please wait for its answer.";
    assert_eq!(out.sent.len(), 10);
    assert!(out.sent.iter().all(|(to, t)| *to == 1 && t == pending));
    out.sent.clear();
    // `b` queues behind `a`, then `a` closes: its attempt goes with it.
    core.handle_line(at(2), id(2), "/oper alice wrong", &mut out);
    core.handle_line(at(3), id(3), "/oper alice s3cret-pass", &mut out);
    core.handle_disconnect(at(4), id(1), CloseReason::Eof, &mut out);
    out.sent.clear();
    core.handle_oper_check(at(5), &mut out);
    assert_eq!(
        out.sent,
        vec![(2, "Invalid operator credentials.".to_string())]
    );
    // `b` may try again once answered.
    core.handle_line(at(6), id(2), "/oper alice wrong", &mut out);
    assert_eq!(
        out.sent.len(),
        1,
        "no notice: the first attempt was answered"
    );
    // `c` closes before its check: the slot is not spent on it, `b` is checked at once.
    core.handle_disconnect(at(7), id(3), CloseReason::Eof, &mut out);
    core.handle_oper_check(at(105), &mut out);
    assert_eq!(
        out.sent[1],
        (2, "Invalid operator credentials.".to_string())
    );
    core.handle_oper_check(at(300), &mut out);
    assert_eq!(out.sent.len(), 2, "nothing left queued");
}

/// A queued attempt of a closed connection costs no check slot: the next user's attempt is
/// checked at once.
#[test]
fn a_gone_attempt_does_not_spend_the_check_slot() {
    let mut out = Rec::default();
    let mut core = core_with_users(&mut out, &[("a", [10, 0, 0, 1]), ("b", [10, 0, 0, 2])]);
    core.handle_line(at(1), id(1), "/oper alice wrong", &mut out);
    core.handle_disconnect(at(2), id(1), CloseReason::Eof, &mut out);
    core.handle_line(at(3), id(2), "/oper alice s3cret-pass", &mut out);
    core.handle_oper_check(at(4), &mut out);
    assert!(core.is_operator(id(2)));
}

/// Regression: renaming a muted user onto a nickname with its own mute overwrote that
/// mute, so a permanent mute could be shortened by someone else's timed one.
#[test]
fn rename_onto_a_muted_nick_keeps_the_longer_mute() {
    let mut out = Rec::default();
    let users = [
        ("op", [10, 0, 0, 1]),
        ("loud", [10, 0, 0, 2]),
        ("quiet", [10, 0, 0, 3]),
        ("brief", [10, 0, 0, 4]),
    ];
    let mut core = core_with_users(&mut out, &users);
    core.mute(at(1), Actor::Api, "quiet", None, &mut out)
        .unwrap();
    core.mute(at(1), Actor::Api, "loud", Some(3_600_000), &mut out)
        .unwrap();
    core.mute(at(1), Actor::Api, "brief", Some(60_000), &mut out)
        .unwrap();
    core.handle_disconnect(at(2), id(3), CloseReason::Eof, &mut out);
    // A timed mute renamed onto a permanently muted nickname: the permanent one stays.
    core.handle_line(at(3), id(2), "/nick quiet", &mut out);
    assert_eq!(core.nick_of(id(2)), Some("quiet"));
    out.sent.clear();
    core.handle_line(at(4), id(2), "/me shouts", &mut out);
    assert_eq!(out.sent, vec![(2, "You are muted.".to_string())]);
    // A shorter mute renamed onto a longer one keeps the longer; the longer renamed onto
    // the shorter replaces it.
    core.handle_line(at(5), id(2), "/nick other", &mut out);
    core.handle_disconnect(at(6), id(2), CloseReason::Eof, &mut out);
    core.handle_line(at(7), id(4), "/nick other", &mut out);
    assert_eq!(core.nick_of(id(4)), Some("other"));
    out.sent.clear();
    core.handle_line(at(8), id(4), "/me whispers", &mut out);
    assert_eq!(out.sent, vec![(4, "You are muted.".to_string())]);
    let state = core.take_moderation_state().unwrap();
    assert!(
        !state.contains("\"brief\"") && !state.contains("\"loud\""),
        "{state}"
    );
}
