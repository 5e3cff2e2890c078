//! What each command does, and the process entry point [`main`]: parse the
//! command line, load the configuration, set up logging, run the command,
//! and turn the outcome into an exit code.
//!
//! - [`user`] — `axon user create|list|set-password|deactivate|token`.
//! - `serve` is [`crate::app::run`]; `config show` is below.
//!
//! Exit codes: 0 success, 1 failure, 2 invalid configuration or usage
//! (including a `sequencer.shards` that disagrees with the data directory).

pub mod room;
pub mod user;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::config::{Config, LogConfig};
use crate::data_dir::DataDirError;
use crate::{app, telemetry};

/// Exit code for configuration and usage errors (as clap uses for usage).
pub const EXIT_CONFIG: u8 = 2;

/// Runs the `axon` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.global.config.as_deref(), &cli.global.overrides()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("axon: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let serving = matches!(cli.command, None | Some(Command::Serve));
    // Operator commands print results on stdout and stay quiet on stderr
    // unless a log level was asked for.
    let log = if serving || cli.global.log_level.is_some() {
        config.log.clone()
    } else {
        LogConfig {
            level: "warn".into(),
            ..config.log.clone()
        }
    };
    if let Err(e) = telemetry::init_logging(&log) {
        eprintln!("axon: {e:#}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("axon: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            None | Some(Command::Serve) => app::run(config).await,
            Some(Command::User(cmd)) => user::run(cmd, &config).await,
            Some(Command::Room(cmd)) => room::run(cmd, &config).await,
            Some(Command::Config(ConfigCommand::Show)) => {
                print!("{}", config.to_toml()?);
                Ok(())
            }
        }
    });
    // Tasks still running (a connection past the drain deadline) must not
    // hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if serving {
                tracing::error!("{e:#}");
            } else {
                eprintln!("axon: {e:#}");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    let config_error = e.chain().any(|cause| {
        cause.is::<crate::config::ConfigError>()
            || matches!(
                cause.downcast_ref::<DataDirError>(),
                Some(DataDirError::ShardsMismatch { .. })
            )
    });
    if config_error { EXIT_CONFIG } else { 1 }
}
