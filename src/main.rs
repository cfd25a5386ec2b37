//! The `leadx` command: parses the command line, loads the config, starts
//! logging and hands over to the library. Exit codes (contract §1): 0
//! success, 2 usage or configuration error, 1 anything else.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const USAGE: &str = "usage:
  leadx serve [--config PATH]          run the exchange (PATH: $LEADX_CONFIG, else /etc/leadx/leadx.toml)
  leadx demo [--listen ADDR]           run with a demo config and simulated buyers (ADDR: 127.0.0.1:8080)
  leadx check-config [--config PATH]   validate a config file (exit 0 valid, 2 invalid)
  leadx reseal [--config PATH]         seal stored PII again under privacy.data_key (leadx stopped)
  leadx hash-key                       read a secret on stdin, print the hash the config stores";

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("leadx: {msg}\n{USAGE}");
    ExitCode::from(2)
}

/// `[--NAME VALUE]` or `[--NAME=VALUE]`, and nothing else.
fn one_option(args: &[String], name: &str) -> Result<Option<String>, String> {
    let inline = args
        .first()
        .and_then(|a| a.strip_prefix(name))
        .and_then(|r| r.strip_prefix('='));
    match args {
        [] => Ok(None),
        [flag, value] if flag == name => Ok(Some(value.clone())),
        [flag] if flag == name => Err(format!("{name} needs a value")),
        [_] if inline.is_some() => Ok(inline.map(String::from)),
        [other, ..] => Err(format!("unexpected argument {other:?}")),
    }
}

fn config_path(args: &[String]) -> Result<PathBuf, String> {
    let explicit = one_option(args, "--config")?;
    Ok(PathBuf::from(
        explicit
            .or_else(|| std::env::var("LEADX_CONFIG").ok())
            .unwrap_or_else(|| "/etc/leadx/leadx.toml".into()),
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage_error("a command is required");
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "serve" => serve(rest),
        "demo" => demo(rest),
        "check-config" => check_config(rest),
        "reseal" => reseal(rest),
        "hash-key" if rest.is_empty() => hash_key(),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        "hash-key" => usage_error("hash-key takes no arguments"),
        other => usage_error(&format!("unknown command {other:?}")),
    }
}

fn load(args: &[String]) -> Result<(PathBuf, leadx::config::Config), ExitCode> {
    let path = config_path(args).map_err(|e| usage_error(&e))?;
    match leadx::config::load(&path) {
        Ok(c) => Ok((path, c)),
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            Err(ExitCode::from(2))
        }
    }
}

fn serve(args: &[String]) -> ExitCode {
    leadx::logging::init();
    let (path, config) = match load(args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let result = leadx::daemon::run(config, path);
    log::logger().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ leadx::daemon::StartError::Config(_)) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("leadx: {e}");
            ExitCode::from(1)
        }
    }
}

fn demo(args: &[String]) -> ExitCode {
    leadx::logging::init();
    let listen = match one_option(args, "--listen") {
        Ok(v) => v.unwrap_or_else(|| "127.0.0.1:8080".into()),
        Err(e) => return usage_error(&e),
    };
    let Ok(listen) = listen.parse::<SocketAddr>() else {
        return usage_error(&format!("--listen: not an address: {listen:?}"));
    };
    let result = leadx::demo::run(listen);
    log::logger().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leadx: {e}");
            ExitCode::from(1)
        }
    }
}

fn check_config(args: &[String]) -> ExitCode {
    match load(args) {
        Ok((path, config)) => {
            // Allowed but unwise: said on stderr, the exit code stays 0.
            for w in config.warnings() {
                eprintln!("warning: {w}");
            }
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Re-seals a stopped leadx's store (`exchange::reseal::offline`): exit 0
/// when every lead opened, 1 when some failed (logged by lead id) or the
/// store is held by a running leadx, 2 for a config error.
fn reseal(args: &[String]) -> ExitCode {
    leadx::logging::init();
    let (_, config) = match load(args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let result = leadx::exchange::reseal::offline(&config, |_| {});
    log::logger().flush();
    match result {
        Ok(p) => {
            println!(
                "scanned={} resealed={} failed={}",
                p.scanned, p.resealed, p.failed
            );
            if p.failed == 0 {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "leadx: {} leads could not be opened (see the log for their ids)",
                    p.failed
                );
                ExitCode::from(1)
            }
        }
        Err(e @ leadx::exchange::reseal::OfflineError::NoDataKey) => {
            eprintln!("leadx: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("leadx: {e}");
            ExitCode::from(1)
        }
    }
}

fn hash_key() -> ExitCode {
    let mut secret = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut secret) {
        eprintln!("leadx: reading stdin: {e}");
        return ExitCode::from(1);
    }
    println!("{}", leadx::config::hash_key(&secret));
    ExitCode::SUCCESS
}
