//! Coalesced presence notices for big channels. Joining a channel of N members costs N join
//! notices, so N joins cost O(N²). Above a member count, a channel's join and leave notices
//! are counted instead and summed up in at most one line per interval:
//! `<K>-12 users joined and 3 left #channel`. The joiner still gets its own lines, and the log
//! still gets one record per join and leave. Pure: the core feeds it and asks what is due.

/// When notices are coalesced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresenceConfig {
    /// Channels with more members than this get coalesced notices.
    pub max_members: usize,
    /// At most one summary line per channel per this many milliseconds.
    pub interval_ms: u64,
}

impl Default for PresenceConfig {
    /// 500 members, 10 seconds.
    fn default() -> Self {
        PresenceConfig {
            max_members: 500,
            interval_ms: 10_000,
        }
    }
}

/// Joins and leaves counted for one channel, summed up at `due_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    channel: u32,
    joined: u32,
    left: u32,
    due_ms: u64,
}

/// The counts of every big channel with a summary to come.
#[derive(Debug, Default)]
pub(crate) struct PresenceNotices {
    config: PresenceConfig,
    /// Few entries (only big channels with recent joins or leaves): a list is enough.
    pending: Vec<Pending>,
}

/// One channel's summary, due now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Due {
    pub channel: u32,
    pub joined: u32,
    pub left: u32,
}

impl PresenceNotices {
    /// No counts yet.
    pub fn new(config: PresenceConfig) -> PresenceNotices {
        PresenceNotices {
            config,
            pending: Vec::new(),
        }
    }

    /// A join (`joined`) or leave in `channel`, which now has `members` members: `true` when
    /// it is counted for a summary instead of announced to every member at once.
    pub fn note(&mut self, channel: u32, members: usize, joined: bool, now_ms: u64) -> bool {
        if members <= self.config.max_members {
            return false;
        }
        let i = match self.pending.iter().position(|p| p.channel == channel) {
            Some(i) => i,
            None => {
                self.pending.push(Pending {
                    channel,
                    joined: 0,
                    left: 0,
                    due_ms: now_ms + self.config.interval_ms,
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[i];
        if joined {
            p.joined = p.joined.saturating_add(1);
        } else {
            p.left = p.left.saturating_add(1);
        }
        true
    }

    /// The channel is gone: its counts are dropped (its key may be reused).
    pub fn forget(&mut self, channel: u32) {
        self.pending.retain(|p| p.channel != channel);
    }

    /// Drops every count (the server is shutting down).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// When the next summary is due.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.due_ms).min()
    }

    /// Removes and returns one summary that is due at `now_ms`.
    pub fn take_due(&mut self, now_ms: u64) -> Option<Due> {
        let i = self.pending.iter().position(|p| p.due_ms <= now_ms)?;
        let p = self.pending.swap_remove(i);
        Some(Due {
            channel: p.channel,
            joined: p.joined,
            left: p.left,
        })
    }
}

/// `<K>-12 users joined and 3 left #channel`; `1 user joined`; a zero half is left out
/// (`<K>-3 users left #channel`).
pub fn summary(kitchen: &str, joined: u32, left: u32, channel: &str) -> String {
    let users = |n: u32| if n == 1 { "user" } else { "users" };
    let what = match (joined, left) {
        (0, l) => format!("{l} {} left", users(l)),
        (j, 0) => format!("{j} {} joined", users(j)),
        (j, l) => format!("{j} {} joined and {l} left", users(j)),
    };
    format!("{kitchen}-{what} {channel}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatCore, ClientId, CloseReason, CoreConfig, LogFailed, Now, Outbox};
    use crate::record::Record;
    use std::net::SocketAddr;

    #[test]
    fn summary_lines() {
        assert_eq!(
            summary("3:04PM", 12, 3, "#big"),
            "3:04PM-12 users joined and 3 left #big"
        );
        assert_eq!(summary("3:04PM", 1, 0, "#big"), "3:04PM-1 user joined #big");
        assert_eq!(summary("3:04PM", 0, 1, "#big"), "3:04PM-1 user left #big");
        assert_eq!(summary("3:04PM", 0, 3, "#big"), "3:04PM-3 users left #big");
        assert_eq!(
            summary("3:04PM", 1, 1, "#big"),
            "3:04PM-1 user joined and 1 left #big"
        );
    }

    #[test]
    fn small_channels_are_not_counted_and_big_ones_are_summed_per_interval() {
        let mut p = PresenceNotices::new(PresenceConfig {
            max_members: 3,
            interval_ms: 1000,
        });
        assert!(!p.note(7, 3, true, 0));
        assert_eq!(p.next_deadline(), None);
        assert!(p.note(7, 4, true, 100));
        assert!(p.note(7, 5, true, 200));
        assert!(p.note(7, 4, false, 900));
        assert!(p.note(8, 9, false, 950));
        assert_eq!(p.next_deadline(), Some(1100));
        assert_eq!(p.take_due(1099), None);
        let due = p.take_due(1100);
        assert_eq!(
            due,
            Some(Due {
                channel: 7,
                joined: 2,
                left: 1
            })
        );
        assert_eq!(p.next_deadline(), Some(1950));
        p.forget(8);
        assert_eq!(p.next_deadline(), None);
    }

    /// Every message sent: (connection generation, text).
    #[derive(Default)]
    struct Sent(Vec<(u32, String)>, usize);

    impl Outbox for Sent {
        fn log(&mut self, _now: Now, record: &Record<'_>) -> Result<u64, LogFailed> {
            if matches!(record, Record::Join { .. } | Record::Leave { .. }) {
                self.1 += 1;
            }
            Ok(self.1 as u64)
        }
        fn send(&mut self, to: ClientId, text: &str) {
            self.0.push((to.gen, text.to_owned()));
        }
        fn send_many(&mut self, to: &[ClientId], text: &str) {
            for id in to {
                self.send(*id, text);
            }
        }
        fn close(&mut self, _id: ClientId, _reason: CloseReason) {}
    }

    fn at(ms: u64) -> Now {
        Now {
            mono_ms: ms,
            unix_ms: 1_795_000_000_000 + ms as i64,
            utc_offset_s: 0,
        }
    }

    fn user(core: &mut ChatCore, out: &mut Sent, n: u32, now: Now) -> ClientId {
        let id = ClientId { key: n, gen: n + 1 };
        let peer = SocketAddr::from(([127, 0, 0, 1], 5000));
        core.handle_connect(now, id, crate::chat::Transport::Telnet, peer, out);
        core.handle_line(now, id, &format!("u{n}"), out);
        id
    }

    #[test]
    fn the_core_coalesces_big_channels_and_the_joiner_still_gets_its_lines() {
        let mut core = ChatCore::new(CoreConfig {
            nick_timeout_ms: 60_000,
            ..CoreConfig::default()
        });
        core.set_presence(PresenceConfig {
            max_members: 3,
            interval_ms: 10_000,
        });
        let mut out = Sent::default();
        let ids: Vec<ClientId> = (0..6)
            .map(|n| user(&mut core, &mut out, n, at(0)))
            .collect();
        for &id in &ids[..3] {
            core.handle_line(at(0), id, "/join #big", &mut out);
        }
        out.0.clear();
        // The 4th and 5th members: only they hear of their joins, at once.
        core.handle_line(at(1000), ids[3], "/join #big", &mut out);
        core.handle_line(at(2000), ids[4], "/join #big", &mut out);
        let joined4 = out
            .0
            .iter()
            .filter(|(_, t)| t.contains("just joined"))
            .count();
        assert_eq!(joined4, 2, "{:?}", out.0);
        assert!(out
            .0
            .iter()
            .any(|(to, t)| *to == ids[3].gen && t == "There are 3 other users in this channel."));
        assert!(out
            .0
            .iter()
            .any(|(to, t)| *to == ids[4].gen && t.ends_with("-@u4 just joined channel #big")));
        // A leave while big: counted too.
        core.handle_line(at(3000), ids[0], "/join #other", &mut out);
        out.0.clear();
        assert_eq!(core.next_deadline(), Some(11_000));
        core.handle_tick(at(10_999), &mut out);
        assert!(out.0.is_empty());
        core.handle_tick(at(11_000), &mut out);
        let lines: Vec<&(u32, String)> = out.0.iter().collect();
        assert_eq!(
            lines.len(),
            4,
            "one summary to each of the 4 members: {lines:?}"
        );
        for (_, text) in &lines {
            assert!(text.ends_with("-2 users joined and 1 left #big"), "{text}");
        }
        // One record per join and leave, as before.
        assert_eq!(out.1, 3 + 2 + 2, "joins and leaves logged");
        assert!(core.next_deadline().is_none_or(|t| t > 11_000));
    }
}
