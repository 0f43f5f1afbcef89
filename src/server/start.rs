//! The server: what it owns, and start-up (binding the listeners, opening the poll).

use super::accept::listen_on;
use super::clock::Clock;
use super::http_io::HttpShared;
use super::io::{Entry, Io, ListenKind, Listener};
use super::limits::PerIp;
use super::overload::Overload;
use super::settings::Settings;
use super::shutdown::SIGNAL_TOKEN;
use crate::chat::{ChatCore, CoreConfig, Now};
use crate::config::Config;
use crate::log_store::LogStore;
use crate::proto::input::Inputs;
use mio::{Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io;
use std::net::{IpAddr, SocketAddr};

/// Bytes read from one connection per readiness event before yielding to others.
pub(super) const READ_BUDGET: usize = 16 * 1024;

/// The poll token of a slab entry: its key, and the connection's generation (0 for a
/// listener) so that an event for a closed connection never reaches its slot's next tenant.
pub(super) fn token(key: usize, gen: u32) -> Token {
    Token((gen as usize) << 32 | key)
}

/// The key and generation of a [`token`].
pub(super) fn split_token(t: Token) -> (usize, u32) {
    (t.0 & 0xffff_ffff, (t.0 >> 32) as u32)
}

/// The chat server: listeners, connections, the chat core and the loop that drives them.
pub struct Server {
    pub(super) poll: Poll,
    pub(super) core: ChatCore,
    pub(super) io: Io,
    pub(super) clock: Clock,
    pub(super) signals: Signals,
    pub(super) settings: Settings,
    pub(super) read_buf: Vec<u8>,
    /// What the chat decoders made of the bytes just read, drained at once.
    pub(super) inputs: Inputs,
    pub(super) next_gen: u32,
    pub(super) per_ip: PerIp,
    addrs: Vec<(ListenKind, SocketAddr)>,
    pub(super) shutdown_at: Option<u64>,
    pub(super) accept_warned_ms: Option<u64>,
    /// Log queries in progress and the embedded files' shared chunks.
    pub(super) http: HttpShared,
    /// Whether chat input is paused because the server is behind, and who waits.
    pub(super) overload: Overload,
    /// Spare lists swapped with the dirty and pending-read lists each pass.
    pub(super) spare_dirty: Vec<usize>,
    pub(super) spare_pending: Vec<usize>,
    /// Cluster mode: the broker and its two Redis connections; `None` in one process.
    pub(super) cluster: Option<Box<super::cluster_io::ClusterLink>>,
}

impl Server {
    /// Binds the listeners the config names and opens the poll. Nothing is accepted until
    /// [`Server::run`]. `admin_token` guards the REST admin endpoints.
    pub fn bind(config: &Config, log: LogStore, admin_token: String) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut clock = Clock::new();
        let now = clock.now();
        let mut settings = Settings::from(config);
        settings.rest.admin_token = admin_token;
        settings.log_path = log.path().to_path_buf();
        settings.moderation.trusted_proxies = crate::config_moderation::trusted_proxies(config)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut io = Io::new(log, settings.output, now);
        let ip: IpAddr = config
            .ip
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("ip: {e}")))?;
        let listen = [
            (ListenKind::Telnet, config.telnet_port),
            (ListenKind::Rest, config.rest_port),
            (ListenKind::WebSocket, config.websocket_port),
        ];
        let mut addrs = Vec::new();
        for (kind, port) in listen {
            addrs.push(listen_for(&poll, &mut io, kind, SocketAddr::new(ip, port))?);
        }
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        let mut core = ChatCore::new(CoreConfig {
            nick_timeout_ms: settings.nick_timeout_ms,
            history_size: config.history_size,
            history_channels: config.history_channels,
            history_on_join: config.history_on_join,
        });
        core.set_motd(config.motd.as_deref());
        super::restore::rebuild(&mut core, &settings.log_path, config.history_scan_bytes);
        core.set_presence(settings.presence);
        core.set_operators(crate::config_moderation::operators(config));
        let cluster = match &config.cluster {
            Some(c) => {
                core.enable_cluster(&c.node_id);
                let resume =
                    super::restore::cluster_resume(&settings.log_path, config.history_scan_bytes);
                Some(Box::new(super::cluster_io::ClusterLink::new(c, resume)?))
            }
            None => None,
        };
        Ok(Server {
            poll,
            core,
            io,
            clock,
            signals,
            settings,
            read_buf: vec![0; READ_BUDGET],
            inputs: Inputs::new(),
            next_gen: 1,
            per_ip: PerIp::default(),
            addrs,
            shutdown_at: None,
            accept_warned_ms: None,
            http: HttpShared::default(),
            overload: Overload::default(),
            spare_dirty: Vec::new(),
            spare_pending: Vec::new(),
            cluster,
        })
    }

    /// The bound addresses (port 0 in the config becomes the real port here).
    pub fn local_addrs(&self) -> &[(ListenKind, SocketAddr)] {
        &self.addrs
    }

    /// The most connections this server accepts at once.
    pub fn max_connections(&self) -> usize {
        self.settings.max_connections
    }

    pub(super) fn now(&self) -> Now {
        self.io.now
    }
}

/// Opens one listener and registers it in the slab and the poll; returns its address.
fn listen_for(
    poll: &Poll,
    io: &mut Io,
    kind: ListenKind,
    addr: SocketAddr,
) -> io::Result<(ListenKind, SocketAddr)> {
    let mut socket = listen_on(addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} ({}): {e}", kind.name()),
        )
    })?;
    let entry = io.slab.vacant_entry();
    poll.registry()
        .register(&mut socket, token(entry.key(), 0), Interest::READABLE)?;
    let local = socket.local_addr()?;
    entry.insert(Entry::Listener(Listener {
        socket,
        kind,
        paused: false,
        closed: false,
    }));
    Ok((kind, local))
}
