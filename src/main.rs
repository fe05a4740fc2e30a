//! `pat-rotator`: see the crate docs (`src/lib.rs`) and README.md.

use std::process::ExitCode;

use clap::Parser;
use pat_rotator::cli::{self, Cli, Command};
use pat_rotator::config::Config;
use pat_rotator::{handler, logging};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return cli::parse_error(e),
    };
    match cli.command {
        Command::Serve { port } => serve(port),
        Command::Rotate { targets, force, revoke_superseded, take_ownership, dry_run, json } => {
            logging::init_cli();
            cli::rotate(&targets, cli::RotateArgs { force, revoke_superseded, take_ownership, dry_run, json })
        }
        Command::Status { targets, json } => {
            logging::init_cli();
            cli::status(&targets, json)
        }
        Command::Tokens { targets, json, revoke } => {
            logging::init_cli();
            cli::tokens(&targets, json, &revoke)
        }
        Command::CheckConfig { json, offline } => {
            logging::init_cli();
            cli::check_config(json, offline)
        }
    }
}

fn serve(port: Option<u16>) -> ExitCode {
    logging::init_serve();
    let port = match cli::port_from_env(port) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = Config::from_env_for_host(std::path::Path::new("host.json"));
    if let Ok(c) = &config {
        for w in cli::config_warnings(c) {
            tracing::warn!("configuration: {w}");
        }
    }
    if let Err(e) = &config {
        // Keep serving: every invocation answers with this error, so the host does not
        // crash-loop and the problem is visible where the invocations are logged.
        tracing::error!("configuration invalid: {e}");
    }
    let state = handler::State::new(config);
    match actix_web::rt::System::new().block_on(handler::serve(port, state)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("cannot serve on 127.0.0.1:{port}: {e}");
            ExitCode::from(1)
        }
    }
}
