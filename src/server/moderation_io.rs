//! The shell's side of moderation: loading and saving the state file, refusing banned
//! addresses at accept, and the client address behind a trusted reverse proxy.

use super::http_io::View;
use super::io::ListenKind;
use super::start::Server;
use super::state_file;
use crate::chat::{Actor, BanInfo, ChannelInfo, ClientId, ModError, UserInfo};
use crate::proto::http::{Request, Response};
use crate::proto::telnet;
use crate::rest::ModerationApi;
use ipnet::IpNet;
use log::{error, info, warn};
use mio::net::TcpStream;
use std::io::Write;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::path::PathBuf;

/// How long to wait before retrying a state file write that failed.
const RETRY_MS: u64 = 1_000;

/// The shell's moderation settings and state.
#[derive(Default)]
pub(crate) struct ModerationShell {
    /// The state file.
    pub state_path: PathBuf,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// A state that could not be written yet, and when to try again.
    pub unsaved: Option<(String, u64)>,
    /// A write failure was reported (and not yet its recovery).
    pub warned: bool,
}

impl ModerationShell {
    pub(super) fn trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

/// The client's address from `X-Forwarded-For` (every such header, in order): walking the
/// hops from the right, trusted proxies are skipped and the first other hop is the client.
/// A hop may be `ip`, `ip:port`, `[v6]` or `[v6]:port`; empty list elements are ignored.
/// `Ok(None)` when every hop is trusted (or there is none); `Err(hop)` when the hop that would
/// be the client cannot be read, so the caller refuses rather than guessing.
pub(crate) fn forwarded_client<'r>(
    req: &'r Request,
    trusted: &[IpNet],
) -> Result<Option<IpAddr>, &'r str> {
    let hops: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n == "x-forwarded-for")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    for hop in hops.into_iter().rev() {
        let ip = parse_hop(hop).ok_or(hop)?;
        if !trusted.iter().any(|n| n.contains(&ip)) {
            return Ok(Some(ip));
        }
    }
    Ok(None)
}

/// One `X-Forwarded-For` hop: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// The `400` refusing an upgrade whose forwarded client address cannot be read.
fn bad_forwarded_response(hop: &str) -> Response {
    let shown: String = hop.chars().take(64).filter(|c| !c.is_control()).collect();
    Response::text(
        400,
        &format!(
            "Bad X-Forwarded-For: the client address {shown:?} is not an IP address \
             (expected ip, ip:port or [ipv6]:port).\n"
        ),
    )
    .closing()
}

impl Server {
    /// Loads the state file into the core (start-up). The error names the file.
    pub fn load_moderation_state(&mut self) -> Result<(), String> {
        let path = self.settings.moderation.state_path.clone();
        let Some(text) = state_file::read(&path)? else {
            return Ok(());
        };
        let now = self.now();
        let dropped = self.core.load_moderation_state(now, &text).map_err(|e| {
            format!(
                "state file {:?} is corrupt: {e} (fix or remove it; bans are never dropped silently)",
                path.display().to_string()
            )
        })?;
        info!(
            "moderation state loaded from {} ({dropped} expired entries dropped)",
            path.display()
        );
        Ok(())
    }

    /// The end of a loop pass, after its output is written: one queued `/oper` check (the
    /// CPU-heavy argon2 verification), then the state file if the bans or mutes changed. What
    /// they queue is written next pass (the poll does not wait while output is queued).
    pub(super) fn moderation_pass(&mut self) {
        let now = self.now();
        self.core.handle_oper_check(now, &mut self.io);
        self.save_moderation_state();
    }

    /// Writes the state file when the bans or mutes changed (once per loop pass at most).
    fn save_moderation_state(&mut self) {
        let now = self.now().mono_ms;
        let shell = &mut self.settings.moderation;
        let text = match (self.core.take_moderation_state(), shell.unsaved.take()) {
            (Some(text), _) => text,
            (None, Some((text, at))) if now >= at => text,
            (None, waiting) => {
                shell.unsaved = waiting;
                return;
            }
        };
        match state_file::write_atomic(&shell.state_path, &text) {
            Ok(()) => {
                if shell.warned {
                    info!(
                        "the state file {} is written again",
                        shell.state_path.display()
                    );
                }
                shell.warned = false;
            }
            Err(e) => {
                if !shell.warned {
                    warn!(
                        "cannot write the state file {}: {e}; retrying",
                        shell.state_path.display()
                    );
                }
                shell.warned = true;
                shell.unsaved = Some((text, now + RETRY_MS));
            }
        }
    }

    /// When a state file write that failed is to be tried again (a poll deadline).
    pub(super) fn state_retry_at(&self) -> Option<u64> {
        self.settings.moderation.unsaved.as_ref().map(|(_, at)| *at)
    }

    /// At shutdown: one last write of a state the file does not hold yet, whatever the
    /// retry time; an error when even that fails (those changes are lost).
    pub(super) fn save_moderation_state_at_exit(&mut self) {
        let shell = &mut self.settings.moderation;
        let Some(text) = self
            .core
            .take_moderation_state()
            .or_else(|| shell.unsaved.take().map(|(text, _)| text))
        else {
            return;
        };
        match state_file::write_atomic(&shell.state_path, &text) {
            Ok(()) if shell.warned => info!(
                "the state file {} is written again",
                shell.state_path.display()
            ),
            Ok(()) => {}
            Err(e) => error!(
                "cannot write the state file {} before stopping: {e}; the ban and mute changes \
                 since its last write are lost",
                shell.state_path.display()
            ),
        }
    }

    /// At accept: a banned address gets `You are banned from this server.` (telnet) or a
    /// `403` (WebSocket port) and is closed. True when refused. A trusted proxy's
    /// connections are judged at the WebSocket upgrade instead, by the forwarded address.
    pub(super) fn refuse_banned(
        &mut self,
        kind: ListenKind,
        stream: &mut TcpStream,
        peer: SocketAddr,
    ) -> bool {
        if kind == ListenKind::Rest || self.settings.moderation.trusted(peer.ip()) {
            return false;
        }
        if !self.core.is_address_banned(self.now(), peer.ip()) {
            return false;
        }
        self.io.metrics.refused += 1;
        let bytes = match kind {
            ListenKind::Telnet => {
                let mut b = Vec::new();
                telnet::encode_message(crate::chat::BANNED_HERE, &mut b);
                b
            }
            _ => banned_response().encode(false, false),
        };
        let _ = stream.write(&bytes);
        let _ = stream.shutdown(Shutdown::Both);
        true
    }

    /// Before a WebSocket upgrade: behind a trusted proxy the connection takes the
    /// forwarded client address (for bans, the per-IP limit, `/whois`, the REST users list
    /// and the log); then a banned address gets `403`. `Some(response)` refuses the upgrade.
    pub(super) fn check_upgrade(&mut self, id: ClientId, req: &Request) -> Option<Response> {
        let now = self.now();
        let peer = self.io.conn_mut(id)?.peer;
        let mut addr = peer.ip();
        if self.settings.moderation.trusted(addr) {
            let forwarded = forwarded_client(req, &self.settings.moderation.trusted_proxies);
            let client = match forwarded {
                Ok(client) => client,
                Err(hop) => {
                    self.io.metrics.refused += 1;
                    return Some(bad_forwarded_response(hop));
                }
            };
            if let Some(client) = client {
                let exempt = client.is_loopback() && !self.settings.limit_loopback;
                if !exempt && self.per_ip.get(client) >= self.settings.max_per_ip {
                    self.io.metrics.refused += 1;
                    return Some(
                        Response::text(
                            503,
                            "Too many connections from your address, please try again later.\n",
                        )
                        .header("Retry-After", "5")
                        .closing(),
                    );
                }
                self.per_ip.remove(addr);
                self.per_ip.add(client);
                addr = client;
                if let Some(conn) = self.io.conn_mut(id) {
                    conn.peer = SocketAddr::new(client, 0);
                }
            }
        }
        if self.core.is_address_banned(now, addr) {
            self.io.metrics.refused += 1;
            return Some(banned_response());
        }
        None
    }
}

impl ModerationApi for View<'_> {
    fn users(&self) -> Vec<UserInfo> {
        self.core.users(self.io.now)
    }
    fn channels(&self) -> Vec<ChannelInfo> {
        self.core.channel_list()
    }
    fn kick(&mut self, nick: &str, reason: Option<&str>) -> Result<String, ModError> {
        let now = self.io.now;
        self.core.kick(now, Actor::Api, nick, reason, self.io)
    }
    fn ban(
        &mut self,
        target: &str,
        duration_ms: Option<u64>,
        reason: Option<&str>,
    ) -> Result<BanInfo, ModError> {
        let now = self.io.now;
        self.core
            .ban(now, Actor::Api, target, duration_ms, reason, self.io)
    }
    fn unban(&mut self, target: &str) -> Result<String, ModError> {
        let now = self.io.now;
        self.core.unban(now, Actor::Api, target, self.io)
    }
    fn bans(&self) -> Vec<BanInfo> {
        self.core.bans(self.io.now)
    }
    fn mute(
        &mut self,
        nick: &str,
        duration_ms: Option<u64>,
    ) -> Result<(String, Option<String>), ModError> {
        let now = self.io.now;
        self.core
            .mute(now, Actor::Api, nick, duration_ms, self.io)
            .map(|(n, until)| (n, until.map(crate::chat::duration::format_until)))
    }
    fn unmute(&mut self, nick: &str) -> Result<String, ModError> {
        let now = self.io.now;
        self.core.unmute(now, Actor::Api, nick, self.io)
    }
}

fn banned_response() -> Response {
    Response::text(403, &format!("{}\n", crate::chat::BANNED_HERE)).closing()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(values: &[&str]) -> Request {
        Request {
            headers: values
                .iter()
                .map(|v| ("x-forwarded-for".to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn last_untrusted_hop_is_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| Ok(Some(s.parse::<IpAddr>().unwrap()));
        assert_eq!(
            forwarded_client(&req(&["203.0.113.7"]), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_client(&req(&["198.51.100.1, 203.0.113.7", "10.1.1.1"]), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(forwarded_client(&req(&["10.2.2.2"]), &trusted), Ok(None));
        assert_eq!(forwarded_client(&req(&[]), &trusted), Ok(None));
        assert_eq!(
            forwarded_client(&req(&["2001:db8::1"]), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            forwarded_client(&req(&["::ffff:203.0.113.7"]), &trusted),
            ip("203.0.113.7")
        );
    }

    /// Regression: one unreadable hop used to make the whole header ignored, so a banned
    /// client behind a trusted proxy got the proxy's address by adding garbage or a port.
    #[test]
    fn unparseable_forwarded_hop_does_not_hide_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| Ok(Some(s.parse::<IpAddr>().unwrap()));
        // Hops left of the client are never read.
        assert_eq!(
            forwarded_client(&req(&["garbage, 203.0.113.7"]), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_client(&req(&["garbage", "203.0.113.7, 10.0.0.1"]), &trusted),
            ip("203.0.113.7")
        );
        // Ports are accepted, bracketed IPv6 too.
        assert_eq!(
            forwarded_client(&req(&["203.0.113.7:1234"]), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            forwarded_client(&req(&["[2001:db8::1]:443"]), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            forwarded_client(&req(&["[2001:db8::1]"]), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            forwarded_client(&req(&["203.0.113.7, 10.0.0.1:80"]), &trusted),
            ip("203.0.113.7")
        );
        // Empty list elements are skipped.
        assert_eq!(
            forwarded_client(&req(&["203.0.113.7, ,"]), &trusted),
            ip("203.0.113.7")
        );
        // The hop that would be the client cannot be read: an error, never the proxy.
        assert_eq!(
            forwarded_client(&req(&["garbage"]), &trusted),
            Err("garbage")
        );
        assert_eq!(
            forwarded_client(&req(&["203.0.113.7, unknown, 10.0.0.1"]), &trusted),
            Err("unknown")
        );
        assert_eq!(
            forwarded_client(&req(&["203.0.113.7:99999"]), &trusted),
            Err("203.0.113.7:99999")
        );
    }
}
