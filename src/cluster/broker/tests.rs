//! The broker state machine driven by hand: the commands it writes are decoded and checked,
//! and Redis's replies are fed back as frames.

use super::*;
use crate::cluster::config::ClusterConfig;
use crate::cluster::entry::Body;
use crate::proto::resp::encode_frame;

fn cfg(password: Option<&str>) -> BrokerConfig {
    let c = ClusterConfig {
        redis: "127.0.0.1:6379".into(),
        node_id: "n1".into(),
        lease_ms: 3000,
        stream_maxlen: 1000,
        redis_password: password.map(Into::into),
    };
    BrokerConfig::from_cluster(&c)
}

fn bulk(s: &str) -> Frame {
    Frame::BulkString(s.as_bytes().to_vec())
}

fn ok3(status: &str, epoch: &str, seq: i64) -> Frame {
    Frame::Array(vec![bulk(status), bulk(epoch), Frame::Integer(seq)])
}

/// The commands written to `link` since the last call, as strings (script sources elided).
fn cmds(b: &mut Broker, link: Link) -> Vec<Vec<String>> {
    let mut buf = b.output(link).to_vec();
    let n = buf.len();
    b.consume_output(link, n);
    let mut frames = Vec::new();
    RespDecoder::default()
        .drain(&mut buf, &mut frames)
        .expect("commands decode");
    assert!(buf.is_empty(), "a partial command");
    frames
        .into_iter()
        .map(|f| match f {
            Frame::Array(parts) => parts
                .iter()
                .map(|p| {
                    let s = String::from_utf8_lossy(as_bytes(p).expect("bulk")).into_owned();
                    if s.starts_with("-- Prepended") {
                        "<script>".to_string()
                    } else {
                        s
                    }
                })
                .collect(),
            other => panic!("not a command: {other:?}"),
        })
        .collect()
}

fn feed(b: &mut Broker, link: Link, frames: &[Frame], now: u64) {
    let mut bytes = Vec::new();
    for f in frames {
        encode_frame(&mut bytes, f);
    }
    // Byte by byte: the broker must not care how replies are split.
    for byte in bytes {
        b.received(link, &[byte], now);
    }
}

fn events(b: &mut Broker) -> Vec<Event> {
    std::iter::from_fn(|| b.poll_event()).collect()
}

fn entry_frame(seq: u64, msg_id: &str, text: &str) -> Frame {
    let kv = [
        ("n", "n2"),
        ("i", "x"),
        ("m", msg_id),
        ("ts", "1"),
        ("k", "ann"),
        ("text", text),
    ]
    .iter()
    .flat_map(|(k, v)| [bulk(k), bulk(v)])
    .collect();
    Frame::Array(vec![bulk(&format!("0-{seq}")), Frame::Array(kv)])
}

fn xread_reply(entries: Vec<Frame>) -> Frame {
    Frame::Array(vec![Frame::Array(vec![
        bulk("{chat}:log"),
        Frame::Array(entries),
    ])])
}

/// Runs the command link's handshake: answers the loads, the epoch and seq reads (and the
/// last-entry read when `last` is given), and returns the commands sent after it.
fn handshake(
    b: &mut Broker,
    now: u64,
    epoch: &str,
    seq: Option<i64>,
    last: Option<Frame>,
) -> Vec<Vec<String>> {
    b.tick(now);
    assert!(events(b).contains(&Event::Connect(Link::Cmd)));
    b.connected(Link::Cmd, now);
    let sent = cmds(b, Link::Cmd);
    let loads = sent.iter().filter(|c| c[..2] == ["SCRIPT", "LOAD"]).count();
    assert_eq!(loads, scripts::ALL.len());
    let mut replies: Vec<Frame> = (0..loads).map(|i| bulk(&format!("sha{i}"))).collect();
    replies.push(Frame::SimpleString(b"OK".to_vec()));
    replies.push(bulk(epoch));
    replies.push(seq.map_or(Frame::Null, |s| bulk(&s.to_string())));
    if let Some(l) = last {
        assert_eq!(sent.last().map(|c| c[0].as_str()), Some("XRANGE"));
        replies.push(l);
    }
    feed(b, Link::Cmd, &replies, now);
    cmds(b, Link::Cmd)
}

/// A broker that is up: handshake, register, tail reading. Returns it and the epoch.
fn up_broker() -> Broker {
    up_broker_with(cfg(None))
}

fn up_broker_with(c: BrokerConfig) -> Broker {
    let mut b = Broker::new(c, "inc1", "seed", None);
    let after = handshake(&mut b, 0, "E1", None, None);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0][..3], ["EVALSHA", "sha4", "0"]);
    assert_eq!(after[0][3..8], ["{chat}", "E1", "n1", "inc1", "n1/inc1/1"]);
    feed(&mut b, Link::Cmd, &[ok3("ok", "E1", 1)], 0);
    assert!(!b.is_up(), "not before the tail reads");
    b.tick(1);
    assert!(events(&mut b).contains(&Event::Connect(Link::Tail)));
    b.connected(Link::Tail, 1);
    let tail = cmds(&mut b, Link::Tail);
    assert_eq!(
        tail,
        [[
            "XREAD",
            "COUNT",
            "1000",
            "BLOCK",
            "1000",
            "STREAMS",
            "{chat}:log",
            "0-0"
        ]]
    );
    assert!(b.is_up());
    assert_eq!(events(&mut b), [Event::Up { epoch: "E1".into() }]);
    b
}

#[test]
fn handshake_loads_scripts_sets_the_epoch_registers_and_tails() {
    let mut b = Broker::new(cfg(Some("pw")), "inc1", "seed", None);
    b.tick(0);
    assert_eq!(events(&mut b), [Event::Connect(Link::Cmd)]);
    assert_eq!(b.next_deadline(), u64::MAX, "waiting for the connect");
    b.connected(Link::Cmd, 0);
    let sent = cmds(&mut b, Link::Cmd);
    assert_eq!(sent[0], ["AUTH", "pw"]);
    assert_eq!(sent[7], ["SET", "{chat}:epoch", "seed-n1-1", "NX"]);
    assert_eq!(sent[8], ["GET", "{chat}:epoch"]);
    assert_eq!(sent[9], ["GET", "{chat}:seq"]);
    assert_eq!(sent.len(), 10, "no last-entry check on a fresh node");
    // The tail does not connect before the epoch is known.
    b.tick(5000);
    assert!(!events(&mut b).contains(&Event::Connect(Link::Tail)));
    drop(b);
    let b = up_broker();
    assert_eq!(b.epoch(), Some("E1"));
}

#[test]
fn with_a_password_the_tail_reads_once_its_auth_is_answered() {
    let ok = || Frame::SimpleString(b"OK".to_vec());
    let mut b = Broker::new(cfg(Some("pw")), "inc1", "seed", None);
    b.tick(0);
    b.connected(Link::Cmd, 0);
    let sent = cmds(&mut b, Link::Cmd);
    let loads = sent.iter().filter(|c| c[..2] == ["SCRIPT", "LOAD"]).count();
    let mut replies = vec![ok()];
    replies.extend((0..loads).map(|i| bulk(&format!("sha{i}"))));
    replies.extend([ok(), bulk("E1"), Frame::Null]);
    feed(&mut b, Link::Cmd, &replies, 0);
    let after = cmds(&mut b, Link::Cmd);
    assert_eq!(after[0][..2], ["EVALSHA", "sha4"]);
    feed(&mut b, Link::Cmd, &[ok3("ok", "E1", 1)], 0);
    b.tick(1);
    assert!(events(&mut b).contains(&Event::Connect(Link::Tail)));
    b.connected(Link::Tail, 1);
    assert_eq!(cmds(&mut b, Link::Tail), [["AUTH", "pw"]]);
    feed(&mut b, Link::Tail, &[ok()], 1);
    let tail = cmds(&mut b, Link::Tail);
    assert_eq!(tail.len(), 1, "{tail:?}");
    assert_eq!(tail[0][0], "XREAD");
    assert!(b.is_up());
}

#[test]
fn a_refused_password_is_reported_once_although_the_link_was_never_up() {
    let mut b = Broker::new(cfg(Some("wrong")), "inc1", "seed", None);
    for attempt in 0..3u64 {
        let now = attempt * 10_000;
        b.tick(now);
        assert!(events(&mut b).contains(&Event::Connect(Link::Cmd)));
        b.connected(Link::Cmd, now);
        cmds(&mut b, Link::Cmd);
        let refused = Frame::Error("WRONGPASS invalid username-password pair".into());
        feed(&mut b, Link::Cmd, &[refused], now);
        let downs: Vec<Event> = events(&mut b)
            .into_iter()
            .filter(|e| matches!(e, Event::Down { .. }))
            .collect();
        if attempt == 0 {
            assert_eq!(downs.len(), 1, "the reason is reported");
            let Event::Down { why } = &downs[0] else {
                unreachable!()
            };
            assert!(why.contains("WRONGPASS"), "{why}");
        } else {
            assert!(downs.is_empty(), "the same reason once: {downs:?}");
        }
        assert!(!b.is_up());
    }
}

#[test]
fn proposals_are_sent_acknowledged_and_applied_in_seq_order() {
    let mut b = up_broker();
    let m1 = b
        .propose(
            Proposal::Append(Body::Announcement { text: "hi".into() }),
            10,
        )
        .unwrap();
    let m2 = b
        .propose(
            Proposal::ClaimNick {
                folded: "bob".into(),
                nick: "Bob".into(),
                conn: "7".into(),
                old: None,
            },
            10,
        )
        .unwrap();
    assert_eq!((&*m1, &*m2), ("n1/inc1/2", "n1/inc1/3"));
    let sent = cmds(&mut b, Link::Cmd);
    assert_eq!(sent[0][1], "sha0");
    assert_eq!(sent[0][10..], ["k", "ann", "text", "hi"]);
    assert_eq!(sent[1][1], "sha1");
    assert_eq!(sent[1][10..], ["bob", "Bob", "7", ""]);
    feed(
        &mut b,
        Link::Cmd,
        &[ok3("ok", "E1", 2), Frame::Error("TAKEN bob".into())],
        11,
    );
    assert_eq!(
        events(&mut b),
        [
            Event::Accepted {
                msg_id: m1.clone(),
                seq: 2
            },
            Event::Refused {
                msg_id: m2,
                code: "TAKEN".into(),
                detail: "bob".into()
            }
        ]
    );
    assert_eq!(b.pending(), 0);
    // The tail delivers entries; ones already applied are skipped; the next XREAD resumes.
    feed(
        &mut b,
        Link::Tail,
        &[xread_reply(vec![
            entry_frame(1, "n1/inc1/1", "a"),
            entry_frame(2, &m1, "hi"),
        ])],
        12,
    );
    let ev = events(&mut b);
    let seqs: Vec<u64> = ev
        .iter()
        .map(|e| match e {
            Event::Apply(e) => e.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(cmds(&mut b, Link::Tail)[0][7], "0-2");
    feed(
        &mut b,
        Link::Tail,
        &[xread_reply(vec![
            entry_frame(2, &m1, "hi"),
            entry_frame(3, "x", "c"),
        ])],
        13,
    );
    let ev = events(&mut b);
    assert_eq!(ev.len(), 1);
    assert!(matches!(&ev[0], Event::Apply(e) if e.seq == 3));
    // A timeout (nil) simply reads again.
    let _ = cmds(&mut b, Link::Tail);
    feed(&mut b, Link::Tail, &[Frame::Null], 14);
    assert_eq!(cmds(&mut b, Link::Tail)[0][7], "0-3");
    assert_eq!(b.last_applied(), 3);
}

#[test]
fn a_jump_in_seq_is_a_gap_and_a_bad_entry_still_moves_the_cursor() {
    let mut b = up_broker();
    let bad = Frame::Array(vec![
        bulk("0-6"),
        Frame::Array(vec![bulk("k"), bulk("zzz")]),
    ]);
    feed(
        &mut b,
        Link::Tail,
        &[xread_reply(vec![
            entry_frame(5, "m5", "e"),
            bad,
            entry_frame(7, "m7", "g"),
        ])],
        1,
    );
    let ev = events(&mut b);
    assert_eq!(ev[0], Event::Gap { from: 1, to: 4 });
    assert!(matches!(&ev[1], Event::Apply(e) if e.seq == 5));
    assert!(matches!(&ev[2], Event::BadEntry { seq: 6, .. }));
    assert!(matches!(&ev[3], Event::Apply(e) if e.seq == 7));
    assert_eq!(ev.len(), 4);
}

#[test]
fn pending_proposals_survive_a_reconnect_and_are_resent_with_their_msg_id() {
    let mut b = up_broker();
    let m = b
        .propose(Proposal::Append(Body::Announcement { text: "x".into() }), 5)
        .unwrap();
    let first = cmds(&mut b, Link::Cmd);
    b.disconnected(Link::Cmd, 6);
    assert_eq!(
        events(&mut b),
        [Event::Down {
            why: "the connection to Redis was lost".into()
        }]
    );
    assert_eq!(
        b.propose(Proposal::Append(Body::NodeUp), 6),
        Err(ProposeError::Down)
    );
    assert_eq!(b.pending(), 1);
    // Reconnects after the backoff (100 ms), not before.
    b.tick(50);
    assert!(events(&mut b).is_empty());
    assert_eq!(b.next_deadline(), 106);
    let after = handshake(&mut b, 106, "E1", Some(1), None);
    assert_eq!(after.len(), 1, "register first");
    feed(&mut b, Link::Cmd, &[ok3("ok", "E1", 2)], 107);
    let resent = cmds(&mut b, Link::Cmd);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0][7], &*m);
    assert_eq!(resent[0][10..], first[0][10..]);
    assert_eq!(events(&mut b), [Event::Up { epoch: "E1".into() }]);
    feed(&mut b, Link::Cmd, &[ok3("dup", "E1", 2)], 108);
    assert_eq!(events(&mut b), [Event::Accepted { msg_id: m, seq: 2 }]);
}

#[test]
fn noscript_reloads_once_everything_answered_and_resends_in_order() {
    let mut b = up_broker();
    let ids: Vec<Box<str>> = (0..3)
        .map(|i| {
            b.propose(
                Proposal::Append(Body::Announcement {
                    text: format!("{i}").into(),
                }),
                5,
            )
            .unwrap()
        })
        .collect();
    assert_eq!(cmds(&mut b, Link::Cmd).len(), 3);
    // The first executed before the flush; the other two hit NOSCRIPT.
    feed(
        &mut b,
        Link::Cmd,
        &[
            ok3("ok", "E1", 2),
            Frame::Error("NOSCRIPT No matching script".into()),
        ],
        6,
    );
    // A new proposal meanwhile waits for the reload.
    let late = b
        .propose(Proposal::Append(Body::Announcement { text: "3".into() }), 6)
        .unwrap();
    assert!(
        cmds(&mut b, Link::Cmd).is_empty(),
        "nothing while one is in flight"
    );
    feed(
        &mut b,
        Link::Cmd,
        &[Frame::Error("NOSCRIPT No matching script".into())],
        7,
    );
    let reload = cmds(&mut b, Link::Cmd);
    assert_eq!(reload.len(), scripts::ALL.len());
    assert!(reload.iter().all(|c| c[..2] == ["SCRIPT", "LOAD"]));
    let shas: Vec<Frame> = (0..reload.len())
        .map(|i| bulk(&format!("new{i}")))
        .collect();
    feed(&mut b, Link::Cmd, &shas, 8);
    let resent: Vec<String> = cmds(&mut b, Link::Cmd)
        .into_iter()
        .map(|c| {
            assert_eq!(c[1], "new0");
            c[7].clone()
        })
        .collect();
    assert_eq!(resent, [&*ids[1], &*ids[2], &*late]);
    assert_eq!(
        events(&mut b),
        [Event::Accepted {
            msg_id: ids[0].clone(),
            seq: 2
        }]
    );
}

#[test]
fn a_changed_epoch_on_reconnect_is_announced_and_resets_the_cursor() {
    let mut b = up_broker();
    feed(
        &mut b,
        Link::Tail,
        &[xread_reply(vec![
            entry_frame(1, "m1", "a"),
            entry_frame(2, "m2", "b"),
        ])],
        1,
    );
    let m = b
        .propose(Proposal::Append(Body::Announcement { text: "x".into() }), 2)
        .unwrap();
    events(&mut b);
    b.disconnected(Link::Cmd, 3);
    b.disconnected(Link::Tail, 3);
    events(&mut b);
    let after = handshake(&mut b, 200, "E2", None, Some(Frame::Array(vec![])));
    let ev = events(&mut b);
    assert_eq!(
        ev[0],
        Event::EpochChanged {
            old: "E1".into(),
            new: "E2".into(),
            last_seq: 2
        }
    );
    assert_eq!(
        ev[1],
        Event::Refused {
            msg_id: m,
            code: "EPOCH".into(),
            detail: "Redis lost its data before this was sequenced".into()
        }
    );
    assert_eq!(after[0][4], "E2", "registers in the new epoch");
    assert_eq!(after[0][11], "", "as a first registration");
    assert_eq!(b.last_applied(), 0);
    feed(&mut b, Link::Cmd, &[ok3("ok", "E2", 1)], 201);
    b.tick(400);
    assert!(events(&mut b).contains(&Event::Connect(Link::Tail)));
    b.connected(Link::Tail, 400);
    assert_eq!(cmds(&mut b, Link::Tail)[0][7], "0-0");
}

#[test]
fn a_lost_suffix_is_an_epoch_change_and_a_trimmed_one_is_not() {
    let resume = |id: &str| Resume {
        epoch: "E1".into(),
        last_seq: 10,
        last_msg_id: Some(id.into()),
    };
    // The counter is behind what this node applied: Redis lost a suffix.
    let mut b = Broker::new(cfg(None), "i", "s", Some(resume("m10")));
    handshake(&mut b, 0, "E1", Some(7), Some(Frame::Array(vec![])));
    assert!(matches!(
        events(&mut b)[0],
        Event::EpochChanged { last_seq: 10, .. }
    ));
    // Another entry at the node's last position.
    let mut b = Broker::new(cfg(None), "i", "s", Some(resume("m10")));
    let other = Frame::Array(vec![entry_frame(10, "other", "x")]);
    handshake(&mut b, 0, "E1", Some(12), Some(other));
    assert!(matches!(events(&mut b)[0], Event::EpochChanged { .. }));
    // The same entry: no change.
    let mut b = Broker::new(cfg(None), "i", "s", Some(resume("m10")));
    let same = Frame::Array(vec![entry_frame(10, "m10", "x")]);
    handshake(&mut b, 0, "E1", Some(12), Some(same));
    assert!(events(&mut b).is_empty());
    // Trimmed away but the counter is past it: not an epoch change; the tail resumes
    // from 10 and reports the gap when the first entry it sees is later.
    let mut b = Broker::new(cfg(None), "i", "s", Some(resume("m10")));
    handshake(&mut b, 0, "E1", Some(500), Some(Frame::Array(vec![])));
    assert!(events(&mut b).is_empty());
    feed(&mut b, Link::Cmd, &[ok3("ok", "E1", 501)], 1);
    b.tick(2);
    events(&mut b);
    b.connected(Link::Tail, 2);
    assert_eq!(cmds(&mut b, Link::Tail)[0][7], "0-10");
    feed(
        &mut b,
        Link::Tail,
        &[xread_reply(vec![entry_frame(400, "m", "x")])],
        3,
    );
    assert_eq!(events(&mut b)[1], Event::Gap { from: 11, to: 399 });
}

#[test]
fn missed_deadlines_drop_the_link() {
    let mut c = cfg(None);
    c.lease_ms = 6000;
    let mut b = up_broker_with(c);
    // An idle command link sends a heartbeat that reads the epoch every second...
    assert_eq!(b.next_deadline(), 1000);
    b.tick(1000);
    assert_eq!(cmds(&mut b, Link::Cmd), [["GET", "{chat}:epoch"]]);
    feed(&mut b, Link::Cmd, &[bulk("E1")], 1001);
    // ...and refreshes the lease every third of it.
    assert_eq!(b.next_deadline(), 2000);
    b.tick(2000);
    assert_eq!(cmds(&mut b, Link::Cmd)[0][1], "sha3");
    let refreshed = Frame::Array(vec![Frame::Integer(1), bulk("E1"), Frame::Integer(0)]);
    feed(&mut b, Link::Cmd, &[refreshed], 2001);
    assert!(b.is_up());
    // The tail's XREAD (sent at 1) must answer within BLOCK + reply timeout.
    b.tick(3000);
    assert!(events(&mut b).is_empty());
    b.tick(3001);
    assert_eq!(
        events(&mut b),
        [
            Event::Close(Link::Tail),
            Event::Down {
                why: "Redis did not answer in time".into()
            }
        ]
    );
    // A heartbeat showing another epoch (FLUSHALL) drops the command link too.
    let mut c = cfg(None);
    c.lease_ms = 6000;
    let mut b = up_broker_with(c);
    b.tick(1000);
    assert_eq!(cmds(&mut b, Link::Cmd), [["GET", "{chat}:epoch"]]);
    feed(&mut b, Link::Cmd, &[bulk("E9")], 1001);
    assert!(events(&mut b).contains(&Event::Close(Link::Cmd)));
}

#[test]
fn the_lease_is_refreshed_and_its_loss_fences_the_node() {
    let mut b = up_broker();
    let m = b
        .propose(Proposal::Append(Body::Announcement { text: "x".into() }), 1)
        .unwrap();
    cmds(&mut b, Link::Cmd);
    feed(&mut b, Link::Cmd, &[ok3("ok", "E1", 2)], 2);
    let _ = m;
    // Every lease/3 = 1000 ms.
    b.tick(1000);
    let sent = cmds(&mut b, Link::Cmd);
    assert_eq!(sent[0][1], "sha3");
    assert_eq!(sent[0][10..], ["3000"]);
    feed(
        &mut b,
        Link::Cmd,
        &[Frame::Array(vec![
            Frame::Integer(1),
            bulk("E1"),
            Frame::Integer(0),
        ])],
        1001,
    );
    assert!(b.is_up());
    let pending = b
        .propose(
            Proposal::Append(Body::Announcement { text: "y".into() }),
            1500,
        )
        .unwrap();
    b.tick(2000);
    cmds(&mut b, Link::Cmd);
    feed(
        &mut b,
        Link::Cmd,
        &[Frame::Error("FENCED lease".into())],
        2001,
    );
    let ev = events(&mut b);
    assert!(ev.contains(&Event::LeaseLost));
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Refused { .. })),
        "sent, so perhaps sequenced: its fate is read first; {ev:?}"
    );
    assert!(!b.is_up());
    // A new incarnation registers and is up again.
    b.reincarnate("inc2", 2002);
    let reg = cmds(&mut b, Link::Cmd);
    assert!(
        reg.iter().any(|c| c[1] == "sha4" && c[6] == "inc2"),
        "{reg:?}"
    );
    // The fenced proposal's de-dup key was asked for at once (before the registration).
    let key = format!("{{chat}}:dedupe:{pending}");
    assert_eq!(reg[0], ["GET", key.as_str()]);
    // The refresh answered by now (lost lease: 0) is ignored after the new registration; the
    // absent de-dup key says the proposal was never sequenced: refused, before the link is up.
    feed(
        &mut b,
        Link::Cmd,
        &[
            Frame::Array(vec![Frame::Integer(0), bulk("E1"), Frame::Integer(0)]),
            Frame::Null,
            ok3("ok", "E1", 3),
        ],
        2003,
    );
    let ev = events(&mut b);
    assert_eq!(b.incarnation(), "inc2");
    assert!(b.is_up(), "{ev:?}");
    assert_eq!(
        ev[0],
        Event::Refused {
            msg_id: pending,
            code: "FENCED".into(),
            detail: "this node lost its lease before this was sequenced".into()
        },
        "{ev:?}"
    );
    assert_eq!(b.pending(), 0);
}

#[test]
fn garbage_from_redis_and_too_much_output_drop_the_link() {
    let mut b = up_broker();
    b.received(Link::Tail, b"?what\r\n", 1);
    let ev = events(&mut b);
    assert_eq!(ev[0], Event::Close(Link::Tail));
    assert!(matches!(&ev[1], Event::Down { why } if why.contains("unreadable reply")));
    let mut c = cfg(None);
    c.max_output = 64;
    let mut b = Broker::new(c, "i", "s", None);
    b.tick(0);
    events(&mut b);
    b.connected(Link::Cmd, 0);
    assert!(events(&mut b).contains(&Event::Close(Link::Cmd)));
    assert!(b.output(Link::Cmd).is_empty());
    // An unsolicited reply is a protocol error too.
    let mut b = up_broker();
    feed(&mut b, Link::Cmd, &[bulk("surprise")], 1);
    assert!(events(&mut b).contains(&Event::Close(Link::Cmd)));
}

#[test]
fn a_busy_node_id_retries_registration_after_the_backoff() {
    let mut b = Broker::new(cfg(None), "i", "s", None);
    handshake(&mut b, 0, "E1", None, None);
    feed(
        &mut b,
        Link::Cmd,
        &[Frame::Error("NODEBUSY n1/old".into())],
        1,
    );
    let ev = events(&mut b);
    assert_eq!(ev[0], Event::Close(Link::Cmd));
    b.tick(100);
    assert!(!events(&mut b).contains(&Event::Connect(Link::Cmd)));
    assert!(b.next_deadline() <= 101);
    b.tick(101);
    assert!(events(&mut b).contains(&Event::Connect(Link::Cmd)));
}

#[test]
fn after_a_lost_lease_a_reconnect_waits_for_a_new_incarnation() {
    let mut b = up_broker();
    b.tick(1000);
    cmds(&mut b, Link::Cmd);
    let lost = Frame::Array(vec![Frame::Integer(0), bulk("E1"), Frame::Integer(0)]);
    feed(&mut b, Link::Cmd, &[lost], 1001);
    assert!(events(&mut b).contains(&Event::LeaseLost));
    b.disconnected(Link::Cmd, 1002);
    events(&mut b);
    // The handshake runs, but the lost incarnation does not register again.
    let after = handshake(&mut b, 1200, "E1", Some(1), None);
    assert!(after.is_empty(), "{after:?}");
    assert!(!b.is_up());
    b.reincarnate("inc2", 1201);
    let reg = cmds(&mut b, Link::Cmd);
    assert_eq!(reg.len(), 1);
    assert_eq!((reg[0][1].as_str(), reg[0][6].as_str()), ("sha4", "inc2"));
    feed(&mut b, Link::Cmd, &[ok3("ok", "E1", 2)], 1202);
    assert!(b.is_up());
    // The tail kept its connection; it reads on from where it was.
    assert_eq!(b.last_applied(), 0);
}

#[test]
fn a_lease_that_expired_during_an_outage_is_not_silently_renewed() {
    let mut b = up_broker();
    b.disconnected(Link::Cmd, 10);
    events(&mut b);
    let after = handshake(&mut b, 200, "E1", Some(1), None);
    // The same incarnation registers again as a renewal...
    assert_eq!(after.len(), 1);
    assert_eq!(after[0][1], "sha4");
    assert_eq!(after[0][10..], ["3000", "1"]);
    // ...which Redis refuses if the lease expired meanwhile: the node is fenced.
    feed(
        &mut b,
        Link::Cmd,
        &[Frame::Error("FENCED lease expired".into())],
        201,
    );
    assert!(events(&mut b).contains(&Event::LeaseLost));
    assert!(!b.is_up());
    // A new incarnation registers for the first time.
    b.reincarnate("inc2", 202);
    let reg = cmds(&mut b, Link::Cmd);
    assert_eq!(reg[0][10..], ["3000", ""]);
}

#[test]
fn a_proposal_read_back_from_the_stream_is_not_refused_when_the_lease_is_lost() {
    // Redis ran the scripts but their answers never came (Redis stopped in between); the
    // tail read the first entry; the lease then expired. Both were sequenced (the first one
    // shown already): the lost lease must not refuse them.
    let mut b = up_broker();
    let seen = b
        .propose(Proposal::Append(Body::Announcement { text: "a".into() }), 5)
        .unwrap();
    let lost = b
        .propose(Proposal::Append(Body::Announcement { text: "b".into() }), 5)
        .unwrap();
    cmds(&mut b, Link::Cmd);
    let mut e = entry_frame(1, &seen, "a");
    if let Frame::Array(parts) = &mut e {
        if let Some(Frame::Array(kv)) = parts.get_mut(1) {
            kv[1] = bulk("n1");
            kv[3] = bulk("inc1");
        }
    }
    feed(&mut b, Link::Tail, &[xread_reply(vec![e])], 6);
    let ev = events(&mut b);
    assert_eq!(
        ev[0],
        Event::Accepted {
            msg_id: seen.clone(),
            seq: 1
        }
    );
    assert!(matches!(&ev[1], Event::Apply(e) if e.msg_id == seen));
    assert_eq!(b.pending(), 1);
    b.disconnected(Link::Cmd, 10);
    events(&mut b);
    handshake(&mut b, 4000, "E1", Some(2), Some(Frame::Array(vec![])));
    feed(
        &mut b,
        Link::Cmd,
        &[Frame::Error("FENCED lease expired".into())],
        4001,
    );
    let ev = events(&mut b);
    assert!(ev.contains(&Event::LeaseLost));
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::Accepted { .. } | Event::Refused { .. })),
        "{ev:?}"
    );
    // The node reads the other one's de-dup key: Redis ran it too (its answer and its entry
    // not read yet), so it is sequenced, not refused.
    b.reincarnate("inc2", 4002);
    let key = format!("{{chat}}:dedupe:{lost}");
    let sent = cmds(&mut b, Link::Cmd);
    assert_eq!(sent[0], ["GET", key.as_str()]);
    assert_eq!(sent[1][1], "sha4");
    feed(&mut b, Link::Cmd, &[bulk("2"), ok3("ok", "E1", 3)], 4003);
    let ev = events(&mut b);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Accepted { .. } | Event::Refused { .. }))
            .collect::<Vec<_>>(),
        [&Event::Accepted {
            msg_id: lost,
            seq: 2
        }],
        "{ev:?}"
    );
    assert_eq!(b.pending(), 0);
}

fn entry_from(seq: u64, node: &str, inc: &str, kv: &[(&str, &str)]) -> Frame {
    let mut fields = vec![("n", node), ("i", inc), ("m", "mm"), ("ts", "1")];
    fields.extend_from_slice(kv);
    let kv = fields
        .iter()
        .flat_map(|(k, v)| [bulk(k), bulk(v)])
        .collect();
    Frame::Array(vec![bulk(&format!("0-{seq}")), Frame::Array(kv)])
}

#[test]
fn a_peer_whose_lease_is_gone_is_reaped_once_and_forgotten() {
    let mut b = up_broker();
    feed(
        &mut b,
        Link::Tail,
        &[xread_reply(vec![
            entry_from(1, "n1", "inc1", &[("k", "node_up")]),
            entry_from(2, "n2", "x", &[("k", "node_up")]),
        ])],
        1,
    );
    events(&mut b);
    cmds(&mut b, Link::Tail);
    // Answers the heartbeat, refreshes and peer lease reads with n2's lease holder.
    let answer = |b: &mut Broker, now: u64, holder: Frame| -> Vec<Vec<String>> {
        let sent = cmds(b, Link::Cmd);
        let replies: Vec<Frame> = sent
            .iter()
            .map(|c| match c[1].as_str() {
                "{chat}:node:n2" => holder.clone(),
                "{chat}:epoch" => bulk("E1"),
                _ => Frame::Array(vec![Frame::Integer(1), bulk("E1"), Frame::Integer(0)]),
            })
            .collect();
        feed(b, Link::Cmd, &replies, now);
        // The tail's XREAD times out (nil) and is sent again.
        feed(b, Link::Tail, &[Frame::Null], now);
        cmds(b, Link::Tail);
        sent
    };
    // Right away and then every lease_ms: the peer's lease key is read; this node's is not.
    b.tick(1000);
    let peek = answer(&mut b, 1001, bulk("x"));
    assert!(
        peek.contains(&vec!["GET".to_string(), "{chat}:node:n2".to_string()]),
        "{peek:?}"
    );
    assert!(!peek.iter().any(|c| c[1] == "{chat}:node:n1"));
    // Still held by x: nothing happens.
    assert!(cmds(&mut b, Link::Cmd).is_empty());
    // An error reply says nothing.
    b.tick(4000);
    answer(&mut b, 4001, Frame::Error("LOADING".into()));
    assert!(cmds(&mut b, Link::Cmd).is_empty());
    // Next check: expired. The broker proposes the reap itself, answered without events.
    b.tick(7000);
    answer(&mut b, 7001, Frame::Null);
    let reap = cmds(&mut b, Link::Cmd);
    assert_eq!(reap.len(), 1);
    assert_eq!(reap[0][1], "sha5");
    assert_eq!(reap[0][10..], ["n2", "x"]);
    feed(&mut b, Link::Cmd, &[ok3("ok", "E1", 3)], 7002);
    assert!(events(&mut b).is_empty(), "an internal proposal");
    assert_eq!(b.pending(), 0);
    // The node_down entry arrives: n2/x is forgotten, no more checks for it.
    feed(
        &mut b,
        Link::Tail,
        &[xread_reply(vec![entry_from(
            3,
            "n1",
            "inc1",
            &[("k", "node_down"), ("node", "n2"), ("inc", "x")],
        )])],
        7003,
    );
    assert!(matches!(&events(&mut b)[0], Event::Apply(e) if e.seq == 3));
    b.tick(10_000);
    let later = cmds(&mut b, Link::Cmd);
    assert!(later.iter().all(|c| c[1] != "{chat}:node:n2"), "{later:?}");
}
