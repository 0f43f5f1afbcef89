//! The `chat-server` binary: command line, configuration, logging set-up, then the loop.
//! Exit codes: 0 after a clean shutdown, 2 for a bad command line or configuration, 1 when
//! the server cannot start (a port in use, the log file unwritable).

use chat_server::cli::{parse_args, CliAction, USAGE};
use chat_server::config::{self, Config, ADMIN_TOKEN_ENV};
use chat_server::log_store::LogStore;
use chat_server::server::{ListenKind, Server};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let action = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::from(2);
        }
    };
    match action {
        CliAction::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        CliAction::Version => {
            println!("chat-server {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        CliAction::CheckConfig { config } => match Config::load(&config) {
            Ok(_) => {
                println!("config file {:?} is valid", config.display().to_string());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("chat-server: {e}");
                ExitCode::from(2)
            }
        },
        CliAction::Run { config } => run(&config),
    }
}

fn init_logging() {
    let result = fern::Dispatch::new()
        .format(|out, message, record| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
            out.finish(format_args!(
                "{} {:<5} {}",
                chat_server::timefmt::rfc3339_ms(now),
                record.level(),
                message
            ))
        })
        .level(log::LevelFilter::Info)
        .chain(std::io::stderr())
        .apply();
    if let Err(e) = result {
        eprintln!("chat-server: cannot set up logging: {e}");
    }
}

fn run(config_path: &Path) -> ExitCode {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::from(2);
        }
    };
    // A token the operator set and got wrong stops start-up, like any other config error.
    let token = match config::operator_admin_token(&config, std::env::var_os(ADMIN_TOKEN_ENV)) {
        Ok(token) => token,
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging();
    let log = match LogStore::open(Path::new(&config.log_file)) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot open the log file {:?}: {e}", config.log_file);
            return ExitCode::from(1);
        }
    };
    let token = token.unwrap_or_else(generated_admin_token);
    let server = match Server::bind(&config, log, token) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    log::info!("chat-server {} starting", env!("CARGO_PKG_VERSION"));
    log::info!("chat log: {}", config.log_file);
    for (kind, addr) in server.local_addrs() {
        let host = shown_host(addr);
        let port = addr.port();
        let hint = match kind {
            ListenKind::Telnet => format!("connect with: telnet {host} {port}"),
            ListenKind::WebSocket => format!("chat in a browser: http://{host}:{port}/client"),
            ListenKind::Rest => format!("API docs: http://{host}:{port}/docs"),
        };
        log::info!("{} listening on {addr} ({hint})", kind.name());
    }
    log::info!("accepting up to {} connections", server.max_connections());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("the event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// The admin token when the operator set none: a random one, printed once.
fn generated_admin_token() -> String {
    let token = random_token();
    // Printed once, to stderr only; never written to the chat log.
    eprintln!(
        "admin token for the REST API (set admin_token or CHAT_ADMIN_TOKEN to choose one): {token}"
    );
    token
}

/// 32 hex digits from the kernel's random source.
fn random_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No /dev/urandom: fall back to the clock and the process id, hashed.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        let a = h.finish();
        h.write_u64(a);
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The host to show in "how to connect" hints: the wildcard address means this machine.
fn shown_host(addr: &std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    }
}
