//! The `spillway` command: a thin shell over the crates that do the work.

mod logging;
mod origin;
mod serve;
mod spike;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spillway_config::Config;
use spillway_gateway::Workers;

#[derive(Debug, Parser)]
#[command(name = "spillway", version, about = "Keeps web services alive through traffic surges, fairly.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway. SIGHUP reloads the config file; SIGTERM or SIGINT drains and exits.
    Serve {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Threads serving the public listener, each with its own event loop and listening socket [default:
        /// one per core].
        #[arg(long, value_name = "N")]
        workers: Option<NonZeroUsize>,
    },
    /// Validate a config file and print the effective settings (defaults filled in, secrets redacted).
    Check {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a small sample origin to put behind the gateway in rehearsals and examples.
    Origin {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
    },
    /// Rehearse a surge: an open-model load generator with waiting-room and reservation journeys, writing
    /// report.json and report.html.
    Spike(Box<spike::SpikeArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config, workers } => {
            serve::run(&config, workers.map_or_else(Workers::per_core, Workers::Threads))
        }
        Command::Origin { listen } => origin::run(listen),
        Command::Spike(args) => spike::run(&args),
    }
}

/// Exit codes: 0 fine, 1 runtime failure, 2 bad configuration.
fn check(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    let effective = config.to_effective_toml();
    if let Err(e) = spillway_gateway::check(config) {
        return config_error(&e);
    }
    #[allow(clippy::print_stdout)]
    {
        print!("{effective}");
    }
    ExitCode::SUCCESS
}

#[allow(clippy::print_stderr)]
fn config_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
