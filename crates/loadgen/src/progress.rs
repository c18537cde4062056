//! The progress line on stderr: a rehearsal runs for minutes, and whoever runs it wants to see the crowd
//! build up and the room fill and drain without waiting for the report.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::Live;

/// Prints a line every `every` until the task is aborted: rewritten in place on a terminal, one line each
/// time otherwise (a CI log).
pub fn spawn_stderr(live: Arc<Live>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let terminal = std::io::stderr().is_terminal();
        let mut last = live.snapshot();
        let mut interval = tokio::time::interval_at(start + every, every);
        loop {
            interval.tick().await;
            let now = live.snapshot();
            let rate = (now.sent - last.sent) as f64 / every.as_secs_f64();
            let line = format!(
                "[{:>6.1}s] users {}/{} sent {} rate {:.0}/s errors {} waiting {} admitted {} claimed {}",
                start.elapsed().as_secs_f64(),
                now.users_done,
                now.users_started,
                now.sent,
                rate,
                now.errors,
                now.waiting,
                now.admitted,
                now.claimed,
            );
            let mut err = std::io::stderr().lock();
            let _ = if terminal { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
            let _ = err.flush();
            last = now;
        }
    })
}

/// Ends the progress line so the summary starts on a fresh one.
pub fn finish(task: tokio::task::JoinHandle<()>) {
    task.abort();
    if std::io::stderr().is_terminal() {
        let _ = writeln!(std::io::stderr());
    }
}
