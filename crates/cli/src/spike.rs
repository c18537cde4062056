//! `spillway spike`: flags or a scenario file in, a rehearsal run by `spillway-loadgen`, reports out. The
//! flags are written into a scenario document and parsed like a file, so both are checked the same way and
//! an error names the scenario key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use spillway_loadgen::{Scenario, Spike, progress};
use toml::{Table, Value};

#[derive(Debug, Args)]
pub struct SpikeArgs {
    /// A scenario file (TOML; see docs/SPIKE.md). Flags below are ignored when it is given, except --out and
    /// --quiet.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// The URL each user requests (the page behind the room, for --surge).
    #[arg(long)]
    url: Option<String>,
    /// N users at once.
    #[arg(long, value_name = "N", group = "arrival")]
    burst: Option<u64>,
    /// A constant number of new users per second (needs --duration).
    #[arg(long, value_name = "PER_SECOND", group = "arrival")]
    rate: Option<f64>,
    /// A ramp of new users per second: FROM:TO:OVER, such as 0:500:30s.
    #[arg(long, value_name = "FROM:TO:OVER", group = "arrival")]
    ramp: Option<String>,
    /// Arrivals stop, and --until-end loops end, after this long ("30s").
    #[arg(long)]
    duration: Option<String>,
    /// How long journeys under way may continue after --duration.
    #[arg(long)]
    grace: Option<String>,
    #[arg(long, value_name = "N")]
    max_users: Option<u64>,
    /// Most requests in flight (HTTP/1.1 connections).
    #[arg(long, value_name = "N")]
    connections: Option<u64>,
    /// HTTP/2 with prior knowledge (h2c).
    #[arg(long)]
    http2: bool,
    /// Per attempt ("10s").
    #[arg(long)]
    timeout: Option<String>,
    /// none, immediate:ATTEMPTS or backoff:ATTEMPTS[:BASE[:CAP]].
    #[arg(long)]
    retry: Option<String>,
    /// Seed of the run's randomness (retry jitter, the run id), so two runs jitter alike.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Pause between one user's requests ("500ms").
    #[arg(long)]
    think_time: Option<String>,
    #[arg(long, default_value = "GET")]
    method: String,
    #[arg(long)]
    body: Option<String>,
    /// NAME:VALUE, repeatable.
    #[arg(long, value_name = "NAME:VALUE")]
    header: Vec<String>,
    /// Requests each user sends.
    #[arg(long, value_name = "N")]
    requests_per_user: Option<u64>,
    /// Each user loops until --duration ends (with --burst N: N connections hammering, like wrk -cN).
    #[arg(long)]
    until_end: bool,
    /// The surge journey: wait in --room, then claim from --inventory on the reservation route --reserve.
    #[arg(long, requires_all = ["room", "reserve", "inventory"])]
    surge: bool,
    #[arg(long)]
    room: Option<String>,
    /// The reservation route's base URL, such as http://127.0.0.1:8080/api/reserve.
    #[arg(long)]
    reserve: Option<String>,
    #[arg(long)]
    inventory: Option<String>,
    /// Do not confirm held claims.
    #[arg(long)]
    no_confirm: bool,
    /// Allow targets that are not loopback addresses.
    #[arg(long)]
    allow_remote: bool,
    /// Where report.json and report.html go.
    #[arg(long, default_value = "spike-report")]
    out: PathBuf,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Threads running the users, each its own event loop [default: one per core]. 1 runs everything on the
    /// main thread.
    #[arg(long, value_name = "N")]
    threads: Option<std::num::NonZeroUsize>,
}

/// Exit codes: 0 fine, 1 runtime failure or the rehearsal found stock oversold or a user served twice, 2 a
/// bad scenario.
pub fn run(args: &SpikeArgs) -> ExitCode {
    let scenario = match &args.scenario {
        Some(path) => Scenario::load(path),
        None => from_flags(args).and_then(|text| Scenario::parse(&text)),
    };
    let scenario = match scenario {
        Ok(s) => s,
        Err(e) => return crate::config_error(&e),
    };
    let spike = match Spike::new(scenario) {
        Ok(s) => s,
        Err(e) => return crate::config_error(&e),
    };
    // The main thread only starts users on schedule and prints progress; the users run on their own threads.
    let threads = args.threads.or_else(|| std::thread::available_parallelism().ok()).map_or(1, |n| n.get());
    let spike = if threads > 1 { spike.threads(threads) } else { spike };
    let spike = match args.seed {
        Some(seed) => spike.seed(seed),
        None => spike,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return failure(&format!("cannot start the async runtime: {e}")),
    };
    let report = runtime.block_on(async {
        let line = (!args.quiet).then(|| progress::spawn_stderr(spike.live(), Duration::from_secs(1)));
        let report = spike.run().await;
        if let Some(line) = line {
            progress::finish(line);
        }
        report
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => return failure(&e.to_string()),
    };
    let written = report.write(&args.out);
    print_summary(&report.summary(), written.as_ref().ok().map(|(j, h)| (j.as_path(), h.as_path())));
    if let Err(e) = written {
        return failure(&e.to_string());
    }
    match &report.surge {
        Some(s) if s.claims.oversold > 0 || s.claims.duplicate_users > 0 => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

/// Written without `print!`, which panics when stdout is a closed pipe (`spillway spike ... | head`).
fn print_summary(summary: &str, files: Option<(&Path, &Path)>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{summary}");
    if let Some((json, html)) = files {
        let _ = writeln!(out, "reports: {} {}", json.display(), html.display());
    }
}

#[allow(clippy::print_stderr)]
fn failure(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// The flags as a scenario document. Only shapes are checked here; the scenario parser checks the values.
fn from_flags(a: &SpikeArgs) -> Result<String, spillway_loadgen::LoadgenError> {
    use spillway_loadgen::LoadgenError as E;
    let mut t = Table::new();
    let mut arrival = Table::new();
    if let Some(n) = a.burst {
        arrival.insert("kind".into(), "burst".into());
        arrival.insert("users".into(), int(n));
    } else if let Some(r) = a.rate {
        arrival.insert("kind".into(), "constant".into());
        arrival.insert("rate".into(), r.into());
    } else if let Some(ramp) = &a.ramp {
        let parts: Vec<&str> = ramp.split(':').collect();
        let [from, to, over] = parts[..] else {
            return Err(E::invalid("arrival (--ramp)", "write FROM:TO:OVER, such as 0:500:30s"));
        };
        let rate =
            |s: &str| s.parse::<f64>().map_err(|_| E::invalid("arrival (--ramp)", format!("{s:?} is not a rate")));
        arrival.insert("kind".into(), "ramp".into());
        arrival.insert("from".into(), rate(from)?.into());
        arrival.insert("to".into(), rate(to)?.into());
        arrival.insert("over".into(), over.into());
    } else {
        return Err(E::invalid(
            "arrival",
            "say how users arrive: --burst N, --rate R, --ramp FROM:TO:OVER or --scenario FILE",
        ));
    }
    t.insert("arrival".into(), Value::Table(arrival));
    for (key, value) in
        [("duration", &a.duration), ("grace", &a.grace), ("timeout", &a.timeout), ("think_time", &a.think_time)]
    {
        if let Some(v) = value {
            t.insert(key.into(), v.as_str().into());
        }
    }
    if let Some(n) = a.max_users {
        t.insert("max_users".into(), int(n));
    }
    if let Some(n) = a.connections {
        t.insert("connections".into(), int(n));
    }
    t.insert("http2".into(), a.http2.into());
    t.insert("allow_remote".into(), a.allow_remote.into());
    if let Some(retry) = &a.retry {
        t.insert("retry".into(), Value::Table(retry_table(retry)?));
    }
    let url = a.url.clone().ok_or_else(|| E::invalid("journey.url", "--url is required"))?;
    let mut journey = Table::new();
    journey.insert("url".into(), url.into());
    if a.surge {
        journey.insert("kind".into(), "surge".into());
        for (key, value) in [("room", &a.room), ("reserve", &a.reserve), ("inventory", &a.inventory)] {
            journey.insert(key.into(), value.clone().unwrap_or_default().into());
        }
        journey.insert("confirm".into(), (!a.no_confirm).into());
    } else {
        journey.insert("kind".into(), "requests".into());
        journey.insert("method".into(), a.method.as_str().into());
        if let Some(body) = &a.body {
            journey.insert("body".into(), body.as_str().into());
        }
        let mut headers = Table::new();
        for h in &a.header {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| E::invalid("journey.headers (--header)", format!("{h:?}: write NAME:VALUE")))?;
            headers.insert(name.trim().into(), value.trim().into());
        }
        journey.insert("headers".into(), Value::Table(headers));
        if let Some(n) = a.requests_per_user {
            journey.insert("requests_per_user".into(), int(n));
        }
        journey.insert("until_end".into(), a.until_end.into());
    }
    t.insert("journey".into(), Value::Table(journey));
    toml::to_string(&t).map_err(|e| E::invalid("(flags)", e.to_string()))
}

fn int(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn retry_table(spec: &str) -> Result<Table, spillway_loadgen::LoadgenError> {
    let bad = || {
        spillway_loadgen::LoadgenError::invalid(
            "retry (--retry)",
            format!("{spec:?}: write none, immediate:N or backoff:N[:BASE[:CAP]]"),
        )
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let mut t = Table::new();
    t.insert("policy".into(), parts[0].into());
    match parts[..] {
        ["none"] => {}
        ["immediate", n] => {
            t.insert("attempts".into(), int(n.parse().map_err(|_| bad())?));
        }
        ["backoff", n, ref rest @ ..] if rest.len() <= 2 => {
            t.insert("attempts".into(), int(n.parse().map_err(|_| bad())?));
            if let Some(base) = rest.first() {
                t.insert("base".into(), (*base).into());
            }
            if let Some(cap) = rest.get(1) {
                t.insert("cap".into(), (*cap).into());
            }
        }
        _ => return Err(bad()),
    }
    Ok(t)
}
