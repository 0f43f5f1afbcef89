//! The other nodes' incarnations and whether their leases still hold (CLUSTER.md §3).
//!
//! Every node learns the live incarnations from the entries it applies (their origin), or
//! from [`Peers::watch`] (entries replayed from its own log at start-up). The broker checks
//! each one's lease every `lease_ms`; once a lease no longer holds that incarnation, the
//! node proposes `reap` — every node may, the script appends one `node_down` — and forgets
//! the incarnation when that entry is applied.

use super::entry::{Body, Entry};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    node: Box<str>,
    incarnation: Box<str>,
    /// A reap was proposed and has not been refused.
    reaping: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    me: Box<str>,
    known: Vec<Peer>,
}

impl Peers {
    /// Peers of node `me` (whose own incarnations are never watched here).
    pub fn new(me: &str) -> Peers {
        Peers {
            me: me.into(),
            known: Vec::new(),
        }
    }

    /// An applied entry: its origin is alive (as of then); a `node_down` ends an incarnation.
    pub fn observe(&mut self, e: &Entry) {
        if let Body::NodeDown { node, incarnation } = &e.body {
            self.known
                .retain(|p| !(p.node == *node && p.incarnation == *incarnation));
            if e.node == *node && e.incarnation == *incarnation {
                return;
            }
        }
        self.watch(&e.node, &e.incarnation);
    }

    /// Watches an incarnation (no effect for this node's own, or one already known).
    pub fn watch(&mut self, node: &str, incarnation: &str) {
        if *node == *self.me || self.is_known(node, incarnation) {
            return;
        }
        self.known.push(Peer {
            node: node.into(),
            incarnation: incarnation.into(),
            reaping: false,
        });
    }

    pub fn is_known(&self, node: &str, incarnation: &str) -> bool {
        self.known
            .iter()
            .any(|p| *p.node == *node && *p.incarnation == *incarnation)
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The incarnations whose lease should be read now (those not being reaped).
    pub fn to_check(&self) -> Vec<(Box<str>, Box<str>)> {
        self.known
            .iter()
            .filter(|p| !p.reaping)
            .map(|p| (p.node.clone(), p.incarnation.clone()))
            .collect()
    }

    /// The value of `node`'s lease key was read: true when `incarnation` is dead and should
    /// be reaped now (it is then marked as being reaped).
    pub fn lease_seen(&mut self, node: &str, incarnation: &str, holder: Option<&[u8]>) -> bool {
        if holder == Some(incarnation.as_bytes()) {
            return false;
        }
        match self
            .known
            .iter_mut()
            .find(|p| *p.node == *node && *p.incarnation == *incarnation && !p.reaping)
        {
            Some(p) => {
                p.reaping = true;
                true
            }
            None => false,
        }
    }

    /// A reap was refused (its lease was back, or this node lost its own): check again later.
    pub fn reap_failed(&mut self, node: &str, incarnation: &str) {
        for p in &mut self.known {
            if *p.node == *node && *p.incarnation == *incarnation {
                p.reaping = false;
            }
        }
    }

    /// Forgets everything (a new epoch: the history that named them is gone).
    pub fn clear(&mut self) {
        self.known.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(node: &str, inc: &str, body: Body) -> Entry {
        Entry {
            seq: 1,
            node: node.into(),
            incarnation: inc.into(),
            msg_id: "m".into(),
            ts_ms: 0,
            body,
        }
    }

    #[test]
    fn learns_from_entries_and_forgets_on_node_down() {
        let mut p = Peers::new("me");
        p.observe(&entry("me", "1", Body::NodeUp));
        assert!(p.is_empty(), "never itself");
        p.observe(&entry("b", "x", Body::NodeUp));
        p.observe(&entry("b", "x", Body::Announcement { text: "t".into() }));
        p.observe(&entry("c", "y", Body::NodeUp));
        assert_eq!(p.len(), 2);
        // c reaps b: b/x is gone, c stays.
        let down = Body::NodeDown {
            node: "b".into(),
            incarnation: "x".into(),
        };
        p.observe(&entry("c", "y", down));
        assert!(!p.is_known("b", "x"));
        assert!(p.is_known("c", "y"));
    }

    #[test]
    fn a_dead_lease_is_reaped_once_until_refused() {
        let mut p = Peers::new("me");
        p.watch("b", "x");
        assert!(!p.lease_seen("b", "x", Some(b"x")), "alive");
        assert!(p.lease_seen("b", "x", None), "expired");
        assert!(p.to_check().is_empty(), "being reaped");
        assert!(!p.lease_seen("b", "x", None), "not twice");
        p.reap_failed("b", "x");
        assert!(
            p.lease_seen("b", "x", Some(b"newer")),
            "another incarnation holds it"
        );
        p.clear();
        assert!(p.is_empty());
    }
}
