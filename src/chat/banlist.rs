//! The ban list: bans by nickname, address or CIDR range (IPv4 and IPv6, via `ipnet`), each
//! with an optional end, and their JSON form in the state file.
//!
//! Lookups scan the list: ban lists are short (tens to hundreds of entries), and an address
//! is checked once per accepted connection, so a scan costs less than keeping an index.

use super::nick::Nick;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// What a ban names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BanTarget {
    /// A nickname (as typed; compared case-insensitively).
    Nick(Nick),
    /// An address (a /32 or /128 range) or a CIDR range, host bits cleared.
    Net(IpNet),
}

/// The address a peer is matched as: an IPv4-mapped IPv6 address (`::ffff:203.0.113.7`, as
/// a dual-stack listener reports IPv4 peers) is its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// A range holding exactly this address.
pub fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(canonical(ip))
}

/// Parses `@nick`, an address (`203.0.113.7`, `2001:db8::1`) or a CIDR range
/// (`203.0.113.0/24`, `2001:db8::/32`; host bits are cleared, so `203.0.113.9/24` is
/// `203.0.113.0/24`). `None` for anything else.
pub fn parse_target(text: &str) -> Option<BanTarget> {
    if let Some(nick) = text.strip_prefix('@') {
        return Nick::new(nick).map(BanTarget::Nick);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(BanTarget::Net(host_net(ip)));
    }
    let net: IpNet = text.parse().ok()?;
    let net = match net {
        // An IPv4-mapped range is the IPv4 range it maps.
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).ok()?,
            None => net,
        },
        _ => net,
    };
    Some(BanTarget::Net(net.trunc()))
}

impl BanTarget {
    /// Whether two targets are the same ban (nicknames compared case-insensitively).
    pub fn same(&self, other: &BanTarget) -> bool {
        match (self, other) {
            (BanTarget::Nick(a), BanTarget::Nick(b)) => a.lower() == b.lower(),
            (BanTarget::Net(a), BanTarget::Net(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for BanTarget {
    /// `@nick`, a bare address for a single-address range, else `addr/len`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanTarget::Nick(n) => write!(f, "@{n}"),
            BanTarget::Net(net) if net.prefix_len() == net.max_prefix_len() => {
                write!(f, "{}", net.addr())
            }
            BanTarget::Net(net) => write!(f, "{net}"),
        }
    }
}

/// One ban.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// What it names.
    pub target: BanTarget,
    /// For a ban by nickname: the address the user had when banned (also banned).
    pub addr: Option<IpNet>,
    /// When it ends, Unix ms; `None` is permanent.
    pub until_ms: Option<i64>,
    /// `@op` or `api`.
    pub by: Box<str>,
    /// The reason given, if any.
    pub reason: Option<Box<str>>,
}

impl Ban {
    fn active(&self, now_unix_ms: i64) -> bool {
        self.until_ms.is_none_or(|t| t > now_unix_ms)
    }

    /// Whether this ban refuses the address.
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let net_hit = matches!(self.target, BanTarget::Net(n) if n.contains(&ip));
        net_hit || self.addr.is_some_and(|a| a.contains(&ip))
    }
}

/// Every ban in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BanList {
    bans: Vec<Ban>,
}

impl BanList {
    /// The bans, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.bans.iter()
    }

    /// Adds a ban, replacing an earlier one of the same target.
    pub fn insert(&mut self, ban: Ban) {
        self.bans.retain(|b| !b.target.same(&ban.target));
        self.bans.push(ban);
    }

    /// Removes the ban of this target; false when there was none.
    pub fn remove(&mut self, target: &BanTarget) -> bool {
        let before = self.bans.len();
        self.bans.retain(|b| !b.target.same(target));
        self.bans.len() != before
    }

    /// The first ban in force that refuses this address.
    pub fn find_ip(&self, ip: IpAddr, now_unix_ms: i64) -> Option<&Ban> {
        self.bans
            .iter()
            .find(|b| b.active(now_unix_ms) && b.matches_ip(ip))
    }

    /// Whether a ban in force names this nickname (case-insensitively).
    pub fn nick_banned(&self, nick: &Nick, now_unix_ms: i64) -> bool {
        let key = nick.lower();
        self.bans.iter().any(|b| {
            b.active(now_unix_ms) && matches!(b.target, BanTarget::Nick(n) if n.lower() == key)
        })
    }

    /// Takes out the bans that ended at or before `now_unix_ms`.
    pub fn take_expired(&mut self, now_unix_ms: i64) -> Vec<Ban> {
        let (gone, kept) = std::mem::take(&mut self.bans)
            .into_iter()
            .partition(|b| !b.active(now_unix_ms));
        self.bans = kept;
        gone
    }

    /// The earliest end of a timed ban.
    pub fn next_end(&self) -> Option<i64> {
        self.bans.iter().filter_map(|b| b.until_ms).min()
    }

    /// Number of bans.
    pub fn len(&self) -> usize {
        self.bans.len()
    }
}

/// A ban as stored in the state file.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoredBan {
    /// `@nick`, an address or a CIDR range.
    pub target: String,
    /// For a ban by nickname: the user's address then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// End, Unix ms; absent when permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// `@op` or `api`.
    pub by: String,
    /// The reason, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&Ban> for StoredBan {
    fn from(b: &Ban) -> StoredBan {
        StoredBan {
            target: b.target.to_string(),
            address: b.addr.map(|a| BanTarget::Net(a).to_string()),
            until_ms: b.until_ms,
            by: b.by.to_string(),
            reason: b.reason.as_deref().map(str::to_string),
        }
    }
}

impl TryFrom<&StoredBan> for Ban {
    type Error = String;
    fn try_from(s: &StoredBan) -> Result<Ban, String> {
        let target =
            parse_target(&s.target).ok_or_else(|| format!("invalid ban target {:?}", s.target))?;
        let addr = match &s.address {
            None => None,
            Some(a) => match parse_target(a) {
                Some(BanTarget::Net(n)) => Some(n),
                _ => return Err(format!("invalid ban address {a:?}")),
            },
        };
        Ok(Ban {
            target,
            addr,
            until_ms: s.until_ms,
            by: s.by.as_str().into(),
            reason: s.reason.as_deref().map(Into::into),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        match parse_target(s) {
            Some(BanTarget::Net(n)) => n,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn targets_parse_and_display() {
        assert_eq!(
            parse_target("203.0.113.7").unwrap().to_string(),
            "203.0.113.7"
        );
        assert_eq!(
            parse_target("203.0.113.9/24").unwrap().to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(
            parse_target("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            parse_target("2001:DB8:0:0::1").unwrap().to_string(),
            "2001:db8::1"
        );
        assert_eq!(
            parse_target("::ffff:10.0.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(parse_target("@Bob").unwrap().to_string(), "@Bob");
        for bad in [
            "",
            "@",
            "@9x",
            "bob",
            "203.0.113.7/33",
            "2001:db8::/129",
            "1.2.3",
            "::g",
        ] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }

    #[test]
    fn matching_v4_v6_and_mapped() {
        let v4 = net("203.0.113.0/24");
        assert!(v4.contains(&canonical("203.0.113.200".parse().unwrap())));
        let ban = Ban {
            target: BanTarget::Net(v4),
            addr: None,
            until_ms: None,
            by: "api".into(),
            reason: None,
        };
        assert!(ban.matches_ip("203.0.113.5".parse().unwrap()));
        assert!(ban.matches_ip("::ffff:203.0.113.5".parse().unwrap()));
        assert!(!ban.matches_ip("203.0.114.5".parse().unwrap()));
        let v6 = Ban {
            target: BanTarget::Net(net("2001:db8::/32")),
            ..ban.clone()
        };
        assert!(v6.matches_ip("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.matches_ip("2001:db9::1".parse().unwrap()));
    }

    #[test]
    fn list_replaces_removes_and_expires() {
        let mut list = BanList::default();
        let bob = Ban {
            target: parse_target("@bob").unwrap(),
            addr: Some(net("127.0.0.9")),
            until_ms: Some(1000),
            by: "@op".into(),
            reason: None,
        };
        list.insert(bob.clone());
        list.insert(Ban {
            target: parse_target("@BOB").unwrap(),
            until_ms: None,
            ..bob.clone()
        });
        assert_eq!(list.len(), 1);
        assert!(list.nick_banned(&Nick::new("Bob").unwrap(), 5000));
        assert!(list.find_ip("127.0.0.9".parse().unwrap(), 0).is_some());
        assert!(list.remove(&parse_target("@bob").unwrap()));
        assert_eq!(list.len(), 0);
        list.insert(bob);
        assert_eq!(list.next_end(), Some(1000));
        assert!(list.find_ip("127.0.0.9".parse().unwrap(), 1000).is_none());
        assert_eq!(list.take_expired(1000).len(), 1);
        assert_eq!(list.len(), 0);
    }

    #[test]
    fn stored_form_round_trips() {
        let ban = Ban {
            target: parse_target("@bob").unwrap(),
            addr: Some(net("2001:db8::7")),
            until_ms: Some(5),
            by: "@op".into(),
            reason: Some("spam".into()),
        };
        let stored = StoredBan::from(&ban);
        assert_eq!(stored.address.as_deref(), Some("2001:db8::7"));
        assert_eq!(Ban::try_from(&stored).unwrap(), ban);
    }
}
