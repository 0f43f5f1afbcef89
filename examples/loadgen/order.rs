//! The cross-node order check (`--order-check`).
//!
//! Every member records the id of each message of the step it receives, in arrival order. After
//! the step, the members of each channel are compared with a reference member (see
//! [`check_channel`]): each member's messages are mapped to their positions in the reference,
//! and every consecutive pair whose positions go backwards is one order violation. A member has
//! no violation exactly when the messages it shares with the reference arrived in the
//! reference's order; when every member agrees with the reference, any two members agree with
//! each other on the messages they both received. Loss is what a member never received of what
//! was published in its channel.

use std::collections::{HashMap, HashSet};

/// A message's id: its sender (high 32 bits) and the sender's sequence number (low 32 bits).
pub fn msg_id(sender: u64, seq: u64) -> u64 {
    (sender << 32) | (seq & 0xffff_ffff)
}

/// The reference order of one channel: each message's position in one member's sequence.
pub struct Reference {
    pos: HashMap<u64, u32>,
}

impl Reference {
    /// Positions of the first arrival of each message in `seq`.
    pub fn new(seq: &[u64]) -> Reference {
        let mut pos = HashMap::with_capacity(seq.len());
        for &id in seq {
            let next = pos.len() as u32;
            pos.entry(id).or_insert(next);
        }
        Reference { pos }
    }

    /// Distinct messages in the reference.
    pub fn len(&self) -> usize {
        self.pos.len()
    }
}

/// One member's sequence checked against the reference.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Consecutive pairs of its messages (first arrivals, known to the reference) that arrived
    /// in the opposite order to the reference's.
    pub violations: u64,
    /// Distinct messages received.
    pub distinct: u64,
    /// Distinct messages the reference never received: their order could not be checked.
    pub unchecked: u64,
}

/// Checks `seq` against `r`. `seen` is scratch space, reused between calls.
pub fn check(r: &Reference, seq: &[u64], seen: &mut Vec<bool>) -> Check {
    seen.clear();
    seen.resize(r.len(), false);
    let mut unknown: HashSet<u64> = HashSet::new();
    let mut out = Check::default();
    let mut last: Option<u32> = None;
    for id in seq {
        match r.pos.get(id) {
            Some(&p) => {
                let slot = &mut seen[p as usize];
                if *slot {
                    continue; // a duplicate: counted by the per-sender sequence check
                }
                *slot = true;
                out.distinct += 1;
                if last.is_some_and(|l| p < l) {
                    out.violations += 1;
                }
                last = Some(p);
            }
            None => {
                if unknown.insert(*id) {
                    out.distinct += 1;
                    out.unchecked += 1;
                }
            }
        }
    }
    out
}

/// The check of every member of one channel. `sent`: messages published in the channel.
/// Returns each member's check and loss (`sent` less the distinct messages it received), in
/// the order of `members`.
///
/// The reference is first the member that received the most; when some members disagree with
/// it, the first of them is tried as the reference too, and the comparison with fewer members
/// out of order is kept (one reordered member counts once, even when it received the most).
pub fn check_channel(members: &[&[u64]], sent: u64) -> Vec<(Check, u64)> {
    let mut longest = 0;
    for (i, m) in members.iter().enumerate() {
        if m.len() > members[longest].len() {
            longest = i;
        }
    }
    if members.is_empty() {
        return Vec::new();
    }
    let mut seen = Vec::new();
    let mut against = |r: usize| -> Vec<Check> {
        let r = Reference::new(members[r]);
        members.iter().map(|m| check(&r, m, &mut seen)).collect()
    };
    let out_of_order = |v: &[Check]| v.iter().filter(|c| c.violations > 0).count();
    let mut best = against(longest);
    if let Some(other) = best.iter().position(|c| c.violations > 0) {
        let alt = against(other);
        if out_of_order(&alt) < out_of_order(&best) {
            best = alt;
        }
    }
    best.into_iter()
        .map(|c| (c, sent.saturating_sub(c.distinct)))
        .collect()
}

/// Totals over members.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub members: u64,
    pub out_of_order: u64,
    pub violations: u64,
    pub unchecked: u64,
    pub missing: u64,
}

impl Totals {
    pub fn add(&mut self, c: &Check, missing: u64) {
        self.members += 1;
        self.out_of_order += u64::from(c.violations > 0);
        self.violations += c.violations;
        self.unchecked += c.unchecked;
        self.missing += missing;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[(u64, u64)]) -> Vec<u64> {
        v.iter().map(|&(s, n)| msg_id(s, n)).collect()
    }

    fn totals(members: &[&[u64]], sent: u64) -> Totals {
        let mut t = Totals::default();
        for (c, missing) in check_channel(members, sent) {
            t.add(&c, missing);
        }
        t
    }

    #[test]
    fn identical_orders_have_no_violation_and_no_loss() {
        let a = ids(&[(0, 0), (1, 0), (0, 1), (2, 0), (1, 1)]);
        let t = totals(&[&a, &a.clone(), &a.clone()], 5);
        assert_eq!(
            t,
            Totals {
                members: 3,
                ..Totals::default()
            }
        );
    }

    #[test]
    fn two_messages_swapped_on_one_member_are_a_violation() {
        // Same messages, and each sender's own messages still in order (the per-sender check
        // sees nothing): only the interleaving of two senders differs.
        let a = ids(&[(0, 0), (1, 0), (0, 1), (1, 1)]);
        let b = ids(&[(0, 0), (0, 1), (1, 0), (1, 1)]);
        let t = totals(&[&a, &a.clone(), &b], 4);
        assert_eq!(t.violations, 1);
        assert_eq!(t.out_of_order, 1);
        assert_eq!(t.missing, 0);
    }

    #[test]
    fn a_reordered_member_that_received_the_most_counts_once() {
        let a = ids(&[(0, 0), (1, 0), (0, 1)]);
        let b = ids(&[(1, 0), (0, 0), (0, 1), (2, 0)]);
        let t = totals(&[&a, &a.clone(), &a.clone(), &b], 4);
        assert_eq!((t.out_of_order, t.violations), (1, 1));
        assert_eq!(t.missing, 3);
    }

    #[test]
    fn a_message_moved_far_is_found_whichever_member_is_the_reference() {
        let a = ids(&[(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)]);
        let b = ids(&[(1, 0), (2, 0), (3, 0), (4, 0), (0, 0)]);
        assert_eq!(totals(&[&a, &b], 5).out_of_order, 1);
        assert_eq!(totals(&[&b, &a], 5).out_of_order, 1);
        // The reference is the longest sequence: the member missing one is judged against it.
        let c = ids(&[(1, 0), (3, 0), (2, 0)]);
        let t = totals(&[&a, &c], 5);
        assert_eq!((t.violations, t.out_of_order, t.missing), (1, 1, 2));
    }

    #[test]
    fn loss_and_duplicates_are_not_order_violations() {
        let a = ids(&[(0, 0), (1, 0), (0, 1), (1, 1)]);
        let lost = ids(&[(0, 0), (0, 1), (1, 1)]);
        let dup = ids(&[(0, 0), (1, 0), (0, 0), (0, 1), (1, 1)]);
        let t = totals(&[&a, &lost, &dup], 4);
        assert_eq!(t.violations, 0);
        assert_eq!(t.missing, 1);
        // Nothing received at all: everything is missing, nothing is out of order.
        let t = totals(&[&a, &[]], 4);
        assert_eq!((t.violations, t.missing), (0, 4));
    }

    #[test]
    fn messages_the_reference_lacks_are_unchecked_not_violations() {
        let a = ids(&[(0, 0), (0, 1), (0, 2)]);
        let b = ids(&[(0, 0), (9, 9), (0, 2), (9, 9)]);
        let t = totals(&[&a, &b], 4);
        assert_eq!(t.unchecked, 1);
        assert_eq!(t.violations, 0);
        // a misses (9, 9); b misses (0, 1).
        assert_eq!(t.missing, 2);
    }

    #[test]
    fn ids_keep_sender_and_sequence_apart() {
        assert_ne!(msg_id(1, 0), msg_id(0, 1));
        assert_eq!(msg_id(3, 7) >> 32, 3);
        assert_eq!(msg_id(3, 7) & 0xffff_ffff, 7);
    }
}
