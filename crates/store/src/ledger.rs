//! The reservation engine's durable log: events appended in order, read back in order after a restart.

use std::sync::atomic::AtomicU64;

use futures_util::future::BoxFuture;
use spillway_core::reserve::Event;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {reason}")]
    Open { path: String, reason: String },
    /// A write failed. The writer stops: events decided after the failed ones may depend on them, so the only
    /// safe continuation is a restart that rebuilds the state from what is really on disk.
    #[error("ledger write failed: {0}")]
    Write(String),
}

/// An append-only, ordered, durable event log.
pub trait Ledger: Send + Sync + std::fmt::Debug {
    /// Resolves once `events`, and everything appended before them, are durable. An empty append is a barrier:
    /// it resolves once everything appended before it is durable.
    fn append(&self, events: Vec<Event>) -> BoxFuture<'static, Result<(), LedgerError>>;

    /// Whether everything appended so far is already durable, so that a caller who needs only a barrier (an
    /// answer decided on the state so far, which changed nothing) can give it at once instead of waiting a
    /// round trip to the writer. It must never say `true` while an earlier append is not yet durable or has
    /// failed; `false` is always safe, and is what a ledger that cannot tell cheaply says.
    fn all_durable(&self) -> bool {
        false
    }

    /// The write failure that stopped the ledger, if one did. A stopped ledger takes nothing more until the
    /// process restarts and rebuilds its state from what is really on disk, so health checks report it.
    fn failure(&self) -> Option<LedgerError> {
        None
    }

    /// Writes what is queued, then lets go of the log (its file, its lock) before returning, however many
    /// holders the ledger still has; later appends fail. For a server that stops and may be started again in
    /// the same process. Blocks for at most one commit.
    fn close(&self) {}
}

/// Counters a ledger's writer keeps, for metrics and benchmarks; the same for every backend.
#[derive(Debug, Default)]
pub struct LedgerStats {
    pub commits: AtomicU64,
    pub appends: AtomicU64,
    pub events: AtomicU64,
    /// Total time spent committing, in microseconds.
    pub commit_micros: AtomicU64,
    /// Told of each commit, for distributions the totals cannot give (a slow fsync now and then).
    pub on_commit: std::sync::OnceLock<CommitObserver>,
}

/// Called by the writer thread after each commit with how long it took and how many appends it made durable.
/// It runs between commits, so it must be quick: a histogram's observe, not I/O.
pub struct CommitObserver(pub Box<dyn Fn(std::time::Duration, usize) + Send + Sync>);

impl std::fmt::Debug for CommitObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitObserver")
    }
}
