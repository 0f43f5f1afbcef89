//! The Lua scripts that make Redis the cluster's sequencer (CLUSTER.md §2–§3), and the
//! argument lists that call them.
//!
//! Every state change is one script run: it checks the epoch and the caller's lease
//! (fencing at the resource), de-duplicates by `msg_id`, takes the next dense `seq` with
//! `INCR` and appends the entry to the stream with id `0-<seq>`. The scripts share one
//! preamble (`lua/common.lua`) and one calling convention, described there: seven common
//! arguments ([`CallContext`]) followed by the script's own.

/// One script: its name (for errors and metrics) and its full source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! script {
    ($name:literal) => {
        Script {
            name: $name,
            source: concat!(
                include_str!("lua/common.lua"),
                include_str!(concat!("lua/", $name, ".lua"))
            ),
        }
    };
}

/// Appends an entry: own arguments are the entry's field/value pairs.
pub const APPEND: Script = script!("append");
/// Claims a nick (releasing the connection's old one): nick folded, as typed, conn, old.
pub const NICK_CLAIM: Script = script!("nick_claim");
/// Releases a nick the caller owns: nick folded, conn, reason.
pub const NICK_RELEASE: Script = script!("nick_release");
/// Extends the caller's lease if it still holds it: lease ms.
pub const LEASE_REFRESH: Script = script!("lease_refresh");
/// Takes the node's lease (appending `node_up` the first time): lease ms, renew flag.
pub const REGISTER: Script = script!("register");
/// Frees a dead incarnation's nicks and appends one `node_down`: node id, incarnation.
pub const REAP: Script = script!("reap");

/// Every script, in the order a connection loads them.
pub const ALL: [Script; 6] = [
    APPEND,
    NICK_CLAIM,
    NICK_RELEASE,
    LEASE_REFRESH,
    REGISTER,
    REAP,
];

/// How long a `msg_id` is remembered for de-duplication: the retry window.
pub const DEDUPE_MS: u64 = 10 * 60 * 1000;

/// The common arguments of every script call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext<'a> {
    /// Key prefix, a hash tag: [`crate::cluster::PREFIX`].
    pub prefix: &'a str,
    pub epoch: &'a str,
    pub node: &'a str,
    pub incarnation: &'a str,
    /// `node/incarnation/counter`, or "" for calls that append nothing to de-duplicate.
    pub msg_id: &'a str,
    pub stream_maxlen: u64,
}

impl CallContext<'_> {
    /// `EVALSHA sha 0 <common> <own...>`, as arguments for [`crate::proto::resp::encode_command`].
    pub fn evalsha<A: AsRef<[u8]>>(&self, sha: &str, own: &[A]) -> Vec<Vec<u8>> {
        self.command(b"EVALSHA", sha.as_bytes(), own)
    }

    /// `EVAL source 0 <common> <own...>` (tests, and a fallback that needs no loaded script).
    pub fn eval<A: AsRef<[u8]>>(&self, script: &Script, own: &[A]) -> Vec<Vec<u8>> {
        self.command(b"EVAL", script.source.as_bytes(), own)
    }

    fn command<A: AsRef<[u8]>>(&self, verb: &[u8], body: &[u8], own: &[A]) -> Vec<Vec<u8>> {
        let mut args: Vec<Vec<u8>> = Vec::with_capacity(10 + own.len());
        args.push(verb.to_vec());
        args.push(body.to_vec());
        args.push(b"0".to_vec());
        args.push(self.prefix.as_bytes().to_vec());
        args.push(self.epoch.as_bytes().to_vec());
        args.push(self.node.as_bytes().to_vec());
        args.push(self.incarnation.as_bytes().to_vec());
        args.push(self.msg_id.as_bytes().to_vec());
        args.push(self.stream_maxlen.to_string().into_bytes());
        args.push(DEDUPE_MS.to_string().into_bytes());
        args.extend(own.iter().map(|a| a.as_ref().to_vec()));
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_has_the_preamble_and_its_body() {
        for s in ALL {
            assert!(s.source.starts_with("-- Prepended to every cluster script"));
            assert!(s.source.contains(&format!("-- {}:", s.name)), "{}", s.name);
        }
    }

    #[test]
    fn call_arguments_follow_the_convention() {
        let ctx = CallContext {
            prefix: "{chat}",
            epoch: "e1",
            node: "n1",
            incarnation: "i1",
            msg_id: "n1/i1/7",
            stream_maxlen: 1000,
        };
        let args = ctx.evalsha("abc", &["k", "msg"]);
        let text: Vec<&str> = args
            .iter()
            .map(|a| std::str::from_utf8(a).unwrap())
            .collect();
        assert_eq!(
            text,
            [
                "EVALSHA", "abc", "0", "{chat}", "e1", "n1", "i1", "n1/i1/7", "1000", "600000",
                "k", "msg"
            ]
        );
    }
}
