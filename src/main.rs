//! The `chat-server` binary: command line, configuration, logging set-up, then the loop.
//! Exit codes: 0 after a clean shutdown, 2 for a bad command line or configuration, 1 when
//! the server cannot start (a port in use, the log file unwritable).

use chat_server::cli::{parse_args, CliAction, USAGE};
use chat_server::config::Config;
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
    init_logging();
    let log = match LogStore::open(Path::new(&config.log_file)) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot open the log file {:?}: {e}", config.log_file);
            return ExitCode::from(1);
        }
    };
    let server = match Server::bind(&config, log) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    log::info!("chat-server {} starting", env!("CARGO_PKG_VERSION"));
    log::info!("chat log: {}", config.log_file);
    for (kind, addr) in server.local_addrs() {
        match kind {
            ListenKind::Telnet => {
                log::info!(
                    "telnet listening on {addr} (connect with: telnet {} {})",
                    shown_host(addr),
                    addr.port()
                )
            }
        }
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

/// The host to show in "how to connect" hints: the wildcard address means this machine.
fn shown_host(addr: &std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    }
}
