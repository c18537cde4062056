//! `spillway serve`: run the gateway until a signal says stop; reload on SIGHUP.

use std::path::Path;
use std::process::ExitCode;

use spillway_config::Config;
use spillway_gateway::Workers;
use tokio::signal::unix::{SignalKind, signal};

pub fn run(path: &Path, workers: Workers) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return crate::config_error(&e),
    };
    crate::logging::init(&config.log);
    // The public listener has threads of its own; this one is left signals, reloads and the admin listener.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(path, config, workers))
}

async fn serve(path: &Path, config: Config, workers: Workers) -> ExitCode {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let handle = match spillway_gateway::start_with(config, workers).await {
        Ok(h) => h,
        // A config-derived failure (a certificate that does not load, say) exits 2 like `check` does;
        // anything else, such as a port already taken, exits 1.
        Err(e @ spillway_gateway::StartError::Config(_)) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::from(2);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); break }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); break }
            _ = hup.recv() => reload(&handle, path).await,
        }
    }
    handle.shutdown().await;
    ExitCode::SUCCESS
}

/// Validates the file first; a bad file leaves the running config untouched.
async fn reload(handle: &spillway_gateway::Handle, path: &Path) {
    let result = match Config::load(path) {
        Ok(config) => handle.reload(config).await.map_err(|e| e.to_string()),
        Err(e) => {
            handle.record_rejected_reload();
            Err(e.to_string())
        }
    };
    match result {
        Ok(()) => tracing::info!(config = %path.display(), "reload applied"),
        Err(error) => {
            tracing::error!(config = %path.display(), %error, "reload rejected; keeping the running config")
        }
    }
}
