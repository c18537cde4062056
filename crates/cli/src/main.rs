//! The `spillway` command: a thin shell over the crates that do the work.

mod demo;
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
    /// Run a sample origin to put behind the gateway in rehearsals, examples and benchmarks. With no options
    /// it answers at once; the options make it slow, saturated or failing, and `/_origin/` changes that live.
    Origin {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Time per request: "20ms", "10ms..50ms" (uniform) or "exp:30ms" (exponential with this mean).
        #[arg(long, default_value = "0ms", value_parser = origin::Latency::parse)]
        latency: origin::Latency,
        /// Share of requests answered 500, from 0 to 1.
        #[arg(long, default_value_t = 0.0, value_parser = error_rate)]
        error_rate: f64,
        /// Most requests served at once; past it, see --overflow.
        #[arg(long, value_name = "N")]
        max_concurrency: Option<NonZeroUsize>,
        /// Past --max-concurrency: answer 503 at once, or wait for a slot.
        #[arg(long, value_enum, default_value = "reject")]
        overflow: origin::Overflow,
        /// "text" or "json" logs on stderr.
        #[arg(long, default_value = "text", value_parser = log_format)]
        log_format: spillway_config::LogFormat,
        /// Threads serving, each with its own event loop and listening socket, as `serve --workers` [default:
        /// one per core].
        #[arg(long, value_name = "N")]
        workers: Option<NonZeroUsize>,
    },
    /// Rehearse a surge: an open-model load generator with waiting-room and reservation journeys, writing
    /// report.json and report.html.
    Spike(Box<spike::SpikeArgs>),
    /// The whole story on a fresh machine: a sample shop, the gateway with a waiting room, a rate limit, an
    /// origin shield and an inventory, a surge of users, and the report (sold, oversold, fairness, latency).
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config, workers } => {
            serve::run(&config, workers.map_or_else(Workers::per_core, Workers::Threads))
        }
        Command::Spike(args) => spike::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Origin { listen, latency, error_rate, max_concurrency, overflow, log_format, workers } => {
            origin::run(origin::Options {
                listen,
                log_format,
                workers,
                behaviour: origin::Behaviour { latency, error_rate },
                max_concurrency: max_concurrency.map(NonZeroUsize::get),
                overflow,
            })
        }
    }
}

fn log_format(s: &str) -> Result<spillway_config::LogFormat, String> {
    match s {
        "text" => Ok(spillway_config::LogFormat::Text),
        "json" => Ok(spillway_config::LogFormat::Json),
        _ => Err(format!("{s:?}: \"text\" or \"json\"")),
    }
}

fn error_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?}: a share from 0 to 1, like 0.05")),
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
fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

#[allow(clippy::print_stderr)]
fn config_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
