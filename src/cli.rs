//! Command-line parsing.
//!
//! ```text
//! chat-server [-c FILE] [--check-config]
//! ```
//!
//! [`parse_args`] turns the arguments (without `argv[0]`) into a [`CliAction`]; it does no I/O,
//! so `main` decides what to print and which exit status to use.

use std::ffi::OsString;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum CliAction {
    /// Start the server with the config file at `config`.
    Run {
        /// Path of the JSON config file.
        config: PathBuf,
    },
    /// Validate the config file and exit: status 0 when valid, 2 when not.
    CheckConfig {
        /// Path of the JSON config file.
        config: PathBuf,
    },
    /// Print [`USAGE`] and exit.
    Help,
    /// Print the version and exit.
    Version,
    /// Read a password line from stdin and print its argon2id PHC string (for `operators`).
    HashPassword,
}

/// Config file used when no `-c`/`--config` flag is given.
pub const DEFAULT_CONFIG: &str = "config.json";

/// The `--help` text.
pub const USAGE: &str = "\
chat-server: an IRC-like chat server for telnet, WebSocket and HTTP clients

Usage:
    chat-server [-c FILE] [--check-config]
    chat-server --hash-password < password.txt

Example:
    chat-server -c config.json

Options:
    -c, --config FILE   read settings from FILE (default: config.json)
        --check-config  validate the config file and exit (0 valid, 2 invalid)
        --hash-password read a password line from stdin, print its argon2id hash
                        (for the config's \"operators\") and exit
    -h, --help          print this help and exit
    -V, --version       print the version and exit

--config=FILE and the Go original's -config FILE also work.

The config file is a JSON object and every key in it is optional;
its keys and their defaults are documented in the README.
";

/// Parses the command line; `args` excludes `argv[0]`.
///
/// `-h`/`--help` wins over everything else, then `-V`/`--version`; otherwise every argument
/// must be understood. The error is one line naming the argument at fault.
pub fn parse_args(args: Vec<OsString>) -> Result<CliAction, String> {
    let mut args = pico_args::Arguments::from_vec(normalize(args)?);
    if args.contains(["-h", "--help"]) {
        return Ok(CliAction::Help);
    }
    if args.contains(["-V", "--version"]) {
        return Ok(CliAction::Version);
    }
    if args.contains("--hash-password") {
        if let Some(extra) = args.finish().first() {
            return Err(format!(
                "unexpected argument {:?} with --hash-password; try --help",
                extra.to_string_lossy()
            ));
        }
        return Ok(CliAction::HashPassword);
    }
    let mut check = false;
    while args.contains("--check-config") {
        check = true;
    }
    let config = config_value(&mut args)?;
    if config_value(&mut args)?.is_some() {
        return Err("the config file is given more than once; give one -c FILE".to_owned());
    }
    if let Some(unexpected) = args.finish().first() {
        return Err(format!(
            "unexpected argument {:?}; try --help",
            unexpected.to_string_lossy()
        ));
    }
    let config = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    Ok(if check {
        CliAction::CheckConfig { config }
    } else {
        CliAction::Run { config }
    })
}

/// Takes one `-c FILE`/`--config FILE` pair out of `args`, if there is one.
fn config_value(args: &mut pico_args::Arguments) -> Result<Option<PathBuf>, String> {
    let value = args
        .opt_value_from_os_str(["-c", "--config"], |value| -> Result<OsString, String> {
            Ok(value.to_owned())
        })
        .map_err(|e| match e {
            pico_args::Error::OptionWithoutAValue(flag) => missing_value(flag),
            other => other.to_string(),
        })?;
    match value {
        // A flag where the file name should be means the file name was left out.
        Some(value) if value.to_string_lossy().starts_with('-') => Err(format!(
            "-c/--config needs a file name, got {:?}; try --help",
            value.to_string_lossy()
        )),
        Some(value) if value.is_empty() => Err(missing_value("--config")),
        Some(value) => Ok(Some(PathBuf::from(value))),
        None => Ok(None),
    }
}

fn missing_value(flag: &str) -> String {
    format!("{flag} needs a file name: {flag} FILE")
}

/// Rewrites the spellings pico-args does not know into `--config FILE`: the Go original's
/// `-config FILE`, and `--config=FILE` / `-config=FILE`.
fn normalize(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut out = Vec::with_capacity(args.len() + 1);
    for arg in args {
        match arg.to_str() {
            Some("-config") => out.push(OsString::from("--config")),
            Some(text) => {
                let value = text
                    .strip_prefix("--config=")
                    .or_else(|| text.strip_prefix("-config="));
                match value {
                    Some("") => return Err(missing_value("--config=")),
                    Some(value) => {
                        out.push(OsString::from("--config"));
                        // Keep a value that starts with '-' a file name: pico-args would take
                        // it anyway, and config_value() only rejects it as a missing value,
                        // so make it a relative path instead.
                        if value.starts_with('-') {
                            out.push(OsString::from(format!("./{value}")));
                        } else {
                            out.push(OsString::from(value));
                        }
                    }
                    None => out.push(arg),
                }
            }
            None => out.push(arg),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<CliAction, String> {
        parse_args(args.iter().map(OsString::from).collect())
    }

    fn run(path: &str) -> Result<CliAction, String> {
        Ok(CliAction::Run {
            config: PathBuf::from(path),
        })
    }

    fn check(path: &str) -> Result<CliAction, String> {
        Ok(CliAction::CheckConfig {
            config: PathBuf::from(path),
        })
    }

    #[test]
    fn no_arguments_runs_with_config_json() {
        assert_eq!(parse(&[]), run("config.json"));
    }

    #[test]
    fn config_flag_forms() {
        assert_eq!(parse(&["-c", "a.json"]), run("a.json"));
        assert_eq!(parse(&["--config", "a.json"]), run("a.json"));
        assert_eq!(parse(&["-config", "a.json"]), run("a.json"));
        assert_eq!(parse(&["--config=a.json"]), run("a.json"));
        assert_eq!(parse(&["-config=a.json"]), run("a.json"));
        assert_eq!(
            parse(&["--config=dir/with=sign.json"]),
            run("dir/with=sign.json")
        );
        assert_eq!(parse(&["--config=-odd.json"]), run("./-odd.json"));
        assert_eq!(
            parse(&["-c", "/etc/chat server/config.json"]),
            run("/etc/chat server/config.json")
        );
    }

    #[test]
    fn check_config() {
        assert_eq!(parse(&["--check-config"]), check("config.json"));
        assert_eq!(parse(&["--check-config", "-c", "x.json"]), check("x.json"));
        assert_eq!(parse(&["-c", "x.json", "--check-config"]), check("x.json"));
        assert_eq!(
            parse(&["-config", "x.json", "--check-config"]),
            check("x.json")
        );
        assert_eq!(
            parse(&["--check-config", "--check-config"]),
            check("config.json")
        );
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(&["-h"]), Ok(CliAction::Help));
        assert_eq!(parse(&["--help"]), Ok(CliAction::Help));
        assert_eq!(parse(&["-V"]), Ok(CliAction::Version));
        assert_eq!(parse(&["--version"]), Ok(CliAction::Version));
        // Help wins over everything, version over everything but help.
        assert_eq!(parse(&["--version", "--help"]), Ok(CliAction::Help));
        assert_eq!(parse(&["--foo", "-h"]), Ok(CliAction::Help));
        assert_eq!(parse(&["-c", "x.json", "-V"]), Ok(CliAction::Version));
    }

    #[test]
    fn unexpected_arguments() {
        assert_eq!(
            parse(&["--foo"]),
            Err("unexpected argument \"--foo\"; try --help".to_owned())
        );
        assert_eq!(
            parse(&["config.json"]),
            Err("unexpected argument \"config.json\"; try --help".to_owned())
        );
        assert_eq!(
            parse(&["-c", "a.json", "extra"]),
            Err("unexpected argument \"extra\"; try --help".to_owned())
        );
        assert_eq!(
            parse(&["--check"]),
            Err("unexpected argument \"--check\"; try --help".to_owned())
        );
        assert_eq!(
            parse(&["-cx.json"]),
            Err("unexpected argument \"-cx.json\"; try --help".to_owned())
        );
        assert_eq!(
            parse(&["--"]),
            Err("unexpected argument \"--\"; try --help".to_owned())
        );
    }

    #[test]
    fn missing_values() {
        assert_eq!(
            parse(&["-c"]),
            Err("-c needs a file name: -c FILE".to_owned())
        );
        assert_eq!(
            parse(&["--config"]),
            Err("--config needs a file name: --config FILE".to_owned())
        );
        assert_eq!(
            parse(&["-config"]),
            Err("--config needs a file name: --config FILE".to_owned())
        );
        assert_eq!(
            parse(&["--config="]),
            Err("--config= needs a file name: --config= FILE".to_owned())
        );
        let e = parse(&["-c", "--foo"]).unwrap_err();
        assert!(
            e.starts_with("-c/--config needs a file name, got \"--foo\""),
            "{e}"
        );
        // --check-config is taken first, which leaves -c without a value.
        assert_eq!(
            parse(&["-c", "--check-config"]),
            Err("-c needs a file name: -c FILE".to_owned())
        );
        let e = parse(&["--config", ""]).unwrap_err();
        assert!(e.contains("needs a file name"), "{e}");
    }

    #[test]
    fn config_given_twice() {
        let e = parse(&["-c", "a.json", "--config", "b.json"]).unwrap_err();
        assert!(e.contains("more than once"), "{e}");
        let e = parse(&["--config=a.json", "-config", "b.json"]).unwrap_err();
        assert!(e.contains("more than once"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_config_path() {
        use std::os::unix::ffi::OsStringExt;
        let path = OsString::from_vec(b"caf\xe9.json".to_vec());
        assert_eq!(
            parse_args(vec![OsString::from("-c"), path.clone()]),
            Ok(CliAction::Run {
                config: PathBuf::from(path)
            })
        );
    }

    #[test]
    fn usage_text() {
        assert!(USAGE.contains("chat-server -c config.json"));
        for flag in [
            "-c, --config FILE",
            "--check-config",
            "-h, --help",
            "-V, --version",
        ] {
            assert!(USAGE.contains(flag), "{flag}");
        }
        assert!(USAGE.contains("README"));
        assert!(USAGE.lines().all(|line| line.len() <= 80));
    }
}
