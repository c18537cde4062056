//! `spillway demo`: the whole story in one command. It starts a sample shop origin and a gateway with a
//! waiting room, a per-user rate limit, an origin shield and an inventory, sends a surge of users through
//! the room to the reservation API, prints what happened (admission rate, latency, items sold, oversold,
//! duplicates, fairness), writes the HTML report, and shuts everything down.
//!
//! Everything runs in this one process on 127.0.0.1, on ports the system picks, with a ledger in a fresh
//! temporary directory, so it works on a fresh machine and leaves nothing behind but the report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use spillway_config::Config;
use spillway_gateway::Workers;
use spillway_loadgen::{Scenario, Spike, progress};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Users in the surge: they all arrive in the first instant.
    #[arg(long, default_value_t = 20_000)]
    users: u64,
    /// Items in the inventory; one per user.
    #[arg(long, default_value_t = 1_000)]
    items: u64,
    /// How long the line takes to drain: the room admits users ÷ this a second.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    line_seconds: u64,
    /// Where the report goes.
    #[arg(long, default_value = "spillway-demo")]
    out: PathBuf,
    /// Leave the gateway running afterwards, to open the waiting page in a browser (Ctrl-C stops it).
    #[arg(long)]
    keep_running: bool,
}

pub fn run(args: &DemoArgs) -> ExitCode {
    crate::logging::init(&spillway_config::LogConfig { level: "warn".into(), ..Default::default() });
    if args.users == 0 || args.items == 0 || args.line_seconds == 0 {
        return crate::usage_error("--users, --items and --line-seconds must be at least 1");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(code) => code,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("demo failed: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
async fn demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    // A shop that takes 20 ms on average and serves 200 requests at once: a real origin's shape.
    let origin_options = crate::origin::Options {
        listen: ([127, 0, 0, 1], 0).into(),
        log_format: spillway_config::LogFormat::Text,
        // Served on the demo's own runtime, not on threads of its own.
        workers: None,
        behaviour: crate::origin::Behaviour {
            latency: crate::origin::Latency::parse("exp:20ms").map_err(anyhow::Error::msg)?,
            error_rate: 0.0,
        },
        max_concurrency: Some(200),
        overflow: crate::origin::Overflow::Wait,
    };
    let (origin_addr, origin) = crate::origin::spawn(&origin_options).await?;
    let token = format!("{:032x}", spillway_gateway::Entropy::system().u128());
    let config = Config::parse(&gateway_config(args, origin_addr, dir.path(), &token))?;
    let gateway = spillway_gateway::start_with(config, Workers::Caller).await?;
    let base = format!("http://{}", gateway.public_addr);
    let per_minute = per_minute(args);
    eprintln!(
        "spillway demo: {} users arrive at once for {} items; the waiting room admits {} a minute\n\
         shop {base}/   reservations {base}/api/reserve   admin http://{} (token {token})",
        args.users, args.items, per_minute, gateway.admin_addr
    );

    let scenario = Scenario::parse(&format!(
        r#"
name = "spillway demo"
max_users = {users}
connections = 512
timeout = "30s"
grace = "5m"
[arrival]
kind = "burst"
users = {users}
[journey]
kind = "surge"
url = "{base}/"
room = "sale"
reserve = "{base}/api/reserve"
inventory = "drop"
"#,
        users = args.users
    ))?;
    let spike = Spike::new(scenario)?;
    // Live on a terminal; a line every few seconds in a log.
    let every = if std::io::stderr().is_terminal() { Duration::from_millis(250) } else { Duration::from_secs(5) };
    let shown = progress::spawn_stderr(spike.live(), every);
    let report = spike.run().await;
    progress::finish(shown);
    let report = report?;

    std::fs::create_dir_all(&args.out)?;
    let (json, html) = report.write(&args.out)?;
    println!("\n{}", report.summary());
    if let Some(surge) = &report.surge {
        let took = surge.waiting_ms.max / 1000.0;
        println!(
            "the room admitted {} users in {took:.0} s: {:.0} a second, as configured ({per_minute} a minute), in arrival \
             order up to the polling interval (Kendall tau {})",
            surge.admitted,
            if took > 0.0 { surge.admitted as f64 / took } else { 0.0 },
            surge.fairness.kendall_tau.map_or("n/a".into(), |t| format!("{t:.3}")),
        );
    }
    let verdict = verdict(&report, args.items);
    println!("{verdict}");
    println!("report: {}  (data: {})", html.display(), json.display());

    if args.keep_running {
        println!(
            "\nthe gateway keeps running: open {base}/ in a browser. To see the waiting page, pause the room:\n  \
             curl -X POST -H 'Authorization: Bearer {token}' http://{}/rooms/sale/pause\n\
             Ctrl-C stops it.",
            gateway.admin_addr
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    let drained = gateway.shutdown().await;
    origin.abort();
    drop(dir);
    Ok(if drained.clean && verdict.starts_with("OK") { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Admissions a minute that drain the line in `line_seconds`.
fn per_minute(args: &DemoArgs) -> u64 {
    (args.users * 60).div_ceil(args.line_seconds).max(1)
}

/// One line a newcomer can read: did the drop sell exactly its stock, to distinct users, in order?
fn verdict(report: &spillway_loadgen::Report, items: u64) -> String {
    let Some(surge) = &report.surge else { return "no surge results".into() };
    let c = &surge.claims;
    let sold = c.confirmed;
    let ok = sold == items && c.oversold == 0 && c.duplicate_users == 0;
    format!(
        "{}: {sold} of {items} items sold, {} oversold, {} duplicate users",
        if ok { "OK" } else { "PROBLEM" },
        c.oversold,
        c.duplicate_users
    )
}

fn gateway_config(args: &DemoArgs, origin: std::net::SocketAddr, dir: &Path, token: &str) -> String {
    let entropy = spillway_gateway::Entropy::system();
    let secret = format!("{:032x}{:032x}", entropy.u128(), entropy.u128());
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
admin_token = "{token}"
[log]
level = "warn"
[[keys]]
id = "demo"
secret = "{secret}"
[upstreams.shop]
addresses = ["{origin}"]
[rooms.sale]
new_users_per_minute = {per_minute}
queue_grace = "2m"
session_duration = "10m"
title = "Spillway demo sale"
# Once admitted, one user may try a few claims a second, not hammer the API.
[limits.per_user]
key = "pass:sale"
rate = "5/s"
[shields.shop]
timeout = "10s"
max_concurrency = 150
max_queue = 1000
queue_timeout = "10s"
[reservations]
ledger = "{ledger}"
[inventories.drop]
stock = {items}
per_user_limit = 1
[[routes]]
name = "reserve"
path = "/api/reserve"
target = "reservations"
policies = ["room:sale", "limit:per_user"]
priority = "critical"
[[routes]]
name = "shop"
path = "/"
upstream = "shop"
policies = ["room:sale", "shield:shop"]
"#,
        per_minute = per_minute(args),
        ledger = dir.join("ledger.db").display(),
        items = args.items,
    )
}
