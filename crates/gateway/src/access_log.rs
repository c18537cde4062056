//! One JSON line per request, written off the request path by a background task.
//!
//! The request path only formats the line and hands it over; if the writer falls behind (a slow disk
//! during a surge), lines are dropped and counted rather than slowing every request down.

use std::path::Path;

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use spillway_config::AccessLog as Target;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

const QUEUE: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<String>>,
    dropped: Counter,
}

/// The fields of a line; stable names, since log pipelines parse them.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub ts: String,
    pub client: std::net::IpAddr,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub version: &'static str,
    pub status: u16,
    pub duration_ms: f64,
    pub route: &'a str,
    pub request_id: &'a str,
}

impl AccessLog {
    pub fn off() -> Self {
        Self { tx: None, dropped: Counter::default() }
    }

    /// Opens the target (appending to a file) and starts its writer. Must run inside a tokio runtime.
    pub async fn open(target: &Target, dropped: Counter) -> std::io::Result<Self> {
        let out: Box<dyn AsyncWrite + Send + Unpin> = match target {
            Target::Off => return Ok(Self::off()),
            Target::Stdout => Box::new(tokio::io::stdout()),
            Target::Stderr => Box::new(tokio::io::stderr()),
            Target::File(path) => Box::new(open_file(path).await?),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_lines(rx, BufWriter::new(out)));
        Ok(Self { tx: Some(tx), dropped })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn record(&self, entry: &Entry<'_>) {
        let Some(tx) = &self.tx else { return };
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        if tx.try_send(line).is_err() {
            self.dropped.inc();
        }
    }
}

async fn open_file(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new().create(true).append(true).open(path).await
}

/// Writes until every sender is gone (the config that opened it was replaced and its requests finished),
/// flushing whenever the queue runs dry.
async fn write_lines(mut rx: mpsc::Receiver<String>, mut out: BufWriter<Box<dyn AsyncWrite + Send + Unpin>>) {
    while let Some(line) = rx.recv().await {
        let mut result = out.write_all(line.as_bytes()).await;
        while let (Ok(()), Ok(line)) = (&result, rx.try_recv()) {
            result = out.write_all(line.as_bytes()).await;
        }
        if let Err(e) = result.and(out.flush().await) {
            tracing::error!(error = %e, "access log write failed");
        }
    }
    let _ = out.flush().await;
}
