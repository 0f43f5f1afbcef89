//! Cluster mode in the core: proposals go to a sequencer and nothing changes (nobody is told)
//! until their entries are applied; two cores fed the same entries end in the same state and
//! deliver the same lines. The sequencer here plays the Redis scripts: one order, nickname
//! ownership, releases.

use super::*;
use crate::chat::strings;
use crate::cluster::broker::Proposal;
use crate::cluster::entry::{Body, Entry};
use std::collections::HashMap;

struct Node {
    name: &'static str,
    core: ChatCore,
    out: Recorder,
}

/// Two nodes and the shared stream.
struct Cluster {
    nodes: Vec<Node>,
    stream: Vec<Entry>,
    /// folded nick → (node, conn), as the scripts' hash.
    nicks: HashMap<String, (String, String)>,
}

impl Cluster {
    fn new() -> Cluster {
        let nodes = ["a", "b"]
            .into_iter()
            .map(|name| {
                let mut core = ChatCore::new(CoreConfig::default());
                core.enable_cluster(name);
                core.cluster_link(true);
                Node {
                    name,
                    core,
                    out: Recorder::default(),
                }
            })
            .collect();
        Cluster {
            nodes,
            stream: Vec::new(),
            nicks: HashMap::new(),
        }
    }

    fn append(&mut self, node: &str, body: Body) {
        let seq = self.stream.len() as u64 + 1;
        self.stream.push(Entry {
            seq,
            node: node.into(),
            incarnation: format!("{node}-1").into(),
            msg_id: format!("{node}/{seq}").into(),
            ts_ms: 0,
            body,
        });
    }

    /// Sequences every node's proposals (node a's first), then applies the new entries on
    /// every node in order.
    fn run(&mut self) {
        let from = self.stream.len();
        for n in 0..self.nodes.len() {
            let name = self.nodes[n].name;
            for (id, p) in self.nodes[n].core.take_proposals() {
                match p {
                    Proposal::Append(body) => self.append(name, body),
                    Proposal::ClaimNick {
                        folded,
                        nick,
                        conn,
                        old,
                    } => {
                        if self.nicks.contains_key(&*folded) {
                            let node = &mut self.nodes[n];
                            let p = Proposal::ClaimNick {
                                folded,
                                nick,
                                conn,
                                old,
                            };
                            node.core
                                .cluster_refused(now(2), id, &p, "TAKEN", &mut node.out);
                            continue;
                        }
                        if let Some(o) = &old {
                            self.nicks.remove(&**o);
                        }
                        self.nicks
                            .insert(folded.to_string(), (name.into(), conn.to_string()));
                        self.append(name, Body::Nick { nick, conn, old });
                    }
                    Proposal::ReleaseNick {
                        folded,
                        conn,
                        reason,
                    } => {
                        self.nicks.remove(&*folded);
                        self.append(
                            name,
                            Body::Unnick {
                                nick: folded,
                                conn,
                                reason,
                            },
                        );
                    }
                    Proposal::Reap { .. } => {}
                }
            }
        }
        let entries = self.stream[from..].to_vec();
        for node in &mut self.nodes {
            for e in &entries {
                node.core.cluster_apply(now(3), e, &mut node.out);
                node.core.cluster_run_held(now(3), &mut node.out);
            }
        }
        // Applying may have made proposals (held lines, releases).
        if self.nodes.iter().any(|n| n.core.has_proposals()) {
            self.run();
        }
    }

    fn line(&mut self, node: usize, user: u32, line: &str) -> Vec<(u32, String)> {
        let n = &mut self.nodes[node];
        n.core.handle_line(now(1), id(user), line, &mut n.out);
        n.out.sent()
    }

    fn connect(&mut self, node: usize, user: u32) {
        let n = &mut self.nodes[node];
        n.core
            .handle_connect(now(0), id(user), Transport::Telnet, peer(), &mut n.out);
        n.out.sent();
    }

    fn sent(&mut self, node: usize) -> Vec<(u32, String)> {
        self.nodes[node].out.sent()
    }

    /// A user `user` on `node` called `nick`, in `channel`.
    fn user_in(&mut self, node: usize, user: u32, nick: &str, channel: &str) {
        self.connect(node, user);
        self.line(node, user, nick);
        self.line(node, user, &format!("/join {channel}"));
        self.run();
        for n in 0..self.nodes.len() {
            self.sent(n);
        }
    }
}

#[test]
fn a_proposal_is_delivered_only_once_applied_and_to_every_node() {
    let mut c = Cluster::new();
    c.user_in(0, 1, "alice", "#g");
    c.user_in(1, 2, "bob", "#g");
    assert!(c.line(0, 1, "hello").is_empty(), "no local-first delivery");
    assert!(c.sent(1).is_empty());
    c.run();
    assert_eq!(c.sent(0), [s(1, "3:04PM-@alice: hello")]);
    assert_eq!(c.sent(1), [s(2, "3:04PM-@alice: hello")]);
}

#[test]
fn two_cores_fed_one_stream_agree_on_members_and_lines() {
    let mut c = Cluster::new();
    c.user_in(0, 1, "alice", "#g");
    c.user_in(1, 2, "bob", "#g");
    c.user_in(1, 3, "carol", "#other");
    for (node, user, text) in [(0, 1, "one"), (1, 2, "two"), (0, 1, "three")] {
        c.line(node, user, text);
    }
    c.run();
    // The sequencer takes node a's proposals first: one order, whatever it is, everywhere.
    let lines = [
        "3:04PM-@alice: one",
        "3:04PM-@alice: three",
        "3:04PM-@bob: two",
    ];
    assert_eq!(c.sent(0), lines.map(|l| s(1, l)));
    assert_eq!(c.sent(1), lines.map(|l| s(2, l)));
    let sorted = |mut list: Vec<ChannelInfo>| {
        for ch in &mut list {
            ch.members.sort();
        }
        list
    };
    let a = sorted(c.nodes[0].core.channel_list());
    let b = sorted(c.nodes[1].core.channel_list());
    assert_eq!(a, b, "the same membership on both nodes");
    let g = a.iter().find(|ch| ch.name == "#g").expect("#g");
    assert_eq!(g.members, ["alice", "bob"]);
    // Queries answer for the whole cluster.
    assert_eq!(
        c.line(0, 1, "/list"),
        [s(
            1,
            "Here is the list of all users in this channel\n@alice\n@bob"
        )]
    );
    assert_eq!(
        c.line(0, 1, "/whois @carol"),
        [s(
            1,
            "@carol is in #other, connected via telnet for 0s, idle 0s"
        )]
    );
    // A private message reaches its target and the sender's echo only.
    c.line(0, 1, "/msg @carol psst");
    c.run();
    assert_eq!(c.sent(0), [s(1, "3:04PM - *Private to @carol: psst")]);
    assert_eq!(c.sent(1), [s(3, "3:04PM - *Private from @alice: psst")]);
}

#[test]
fn a_nickname_is_unique_across_nodes_and_lines_wait_for_the_claim() {
    let mut c = Cluster::new();
    c.user_in(0, 1, "alice", "#g");
    c.connect(1, 2);
    assert_eq!(
        c.line(1, 2, "ALICE"),
        [s(2, strings::NICK_TAKEN)],
        "known taken: refused at once"
    );
    // Two claims for one name in flight at once: the sequencer gives it to one.
    c.connect(0, 3);
    c.line(0, 3, "bob");
    c.line(0, 3, "/join #g");
    c.line(1, 2, "Bob");
    c.run();
    assert_eq!(
        c.sent(0),
        [
            s(3, &strings::thanks("bob")),
            s(3, "There are 1 other users in this channel."),
            s(1, "3:04PM-@bob just joined channel #g"),
            s(3, "3:04PM-@bob just joined channel #g"),
        ]
    );
    assert_eq!(c.sent(1), [s(2, strings::NICK_TAKEN)]);
}

#[test]
fn leaving_and_link_down() {
    let mut c = Cluster::new();
    c.user_in(0, 1, "alice", "#g");
    c.user_in(1, 2, "bob", "#g");
    // A closed connection leaves when its release comes back from the stream.
    let n = &mut c.nodes[1];
    n.core
        .handle_disconnect(now(4), id(2), CloseReason::Eof, &mut n.out);
    assert!(c.sent(0).is_empty());
    c.run();
    assert_eq!(c.sent(0), [s(1, "3:04PM-@bob left channel #g")]);
    assert_eq!(c.nodes[0].core.cluster_users(), 1);
    assert_eq!(c.nodes[1].core.cluster_users(), 1);
    // Link down: state changes are refused with the notice; /help still works.
    c.nodes[0].core.cluster_link(false);
    assert_eq!(c.line(0, 1, "hi"), [s(1, strings::CLUSTER_DOWN)]);
    assert_eq!(c.line(0, 1, "/join #x"), [s(1, strings::CLUSTER_DOWN)]);
    assert_eq!(c.line(0, 1, "/help").len(), 1);
    assert!(!c.nodes[0].core.has_proposals());
}

#[test]
fn a_dead_node_s_users_leave_everywhere() {
    let mut c = Cluster::new();
    c.user_in(0, 1, "alice", "#g");
    c.user_in(1, 2, "bob", "#g");
    c.append(
        "a",
        Body::NodeDown {
            node: "b".into(),
            incarnation: "b-1".into(),
        },
    );
    let e = c.stream.last().cloned().expect("entry");
    let n = &mut c.nodes[0];
    n.core.cluster_apply(now(5), &e, &mut n.out);
    assert_eq!(c.sent(0), [s(1, "3:04PM-@bob left channel #g")]);
    assert_eq!(c.nodes[0].core.cluster_users(), 1);
    let n = &mut c.nodes[0];
    n.core.cluster_gap(now(6), 5, 9, &mut n.out);
    assert_eq!(c.sent(0), [s(1, &strings::cluster_gap(5, 9))]);
}

#[test]
fn moderation_acts_reach_every_node() {
    let mut c = Cluster::new();
    c.user_in(0, 1, "alice", "#g");
    c.user_in(1, 2, "bob", "#g");
    // A mute typed on node a for a user of node b.
    let n = &mut c.nodes[0];
    let (shown, _) = n
        .core
        .mute(now(2), Actor::Api, "bob", None, &mut n.out)
        .expect("bob is in the cluster");
    assert_eq!(shown, "bob");
    c.run();
    assert_eq!(c.sent(1), [s(2, "You are muted.")]);
    assert_eq!(c.line(1, 2, "hi"), [s(2, "You are muted.")]);
    // A kick typed on node a: node b closes bob's connection.
    let n = &mut c.nodes[0];
    n.core
        .kick(now(3), Actor::Api, "bob", Some("bye"), &mut n.out)
        .expect("bob is in the cluster");
    c.run();
    let acts = std::mem::take(&mut c.nodes[1].out.acts);
    assert!(
        acts.contains(&Act::Send(102, "You were kicked by api: bye".into())),
        "{acts:?}"
    );
    assert!(
        acts.contains(&Act::Close(102, CloseReason::Kicked)),
        "{acts:?}"
    );
    // The link down: the act is refused rather than done on one node only.
    c.nodes[0].core.cluster_link(false);
    let n = &mut c.nodes[0];
    assert_eq!(
        n.core
            .ban(now(4), Actor::Api, "@bob", None, None, &mut n.out),
        Err(ModError::ClusterDown)
    );
}

#[test]
fn a_user_s_lines_after_a_join_wait_for_it() {
    let mut c = Cluster::new();
    c.user_in(0, 1, "alice", "#g");
    assert!(c.line(0, 1, "/join #h").is_empty());
    assert!(
        c.line(0, 1, "/list").is_empty(),
        "held until the join is back"
    );
    c.run();
    assert_eq!(
        c.sent(0),
        [
            s(1, "There are 0 other users in this channel."),
            s(1, "3:04PM-@alice just joined channel #h"),
            s(1, "Here is the list of all users in this channel\n@alice"),
        ]
    );
    // /quit is never held.
    c.line(0, 1, "/topic news");
    let n = &mut c.nodes[0];
    n.core.handle_line(now(4), id(1), "/quit", &mut n.out);
    let acts = std::mem::take(&mut c.nodes[0].out.acts);
    assert!(
        acts.contains(&Act::Close(101, CloseReason::Quit)),
        "{acts:?}"
    );
}
