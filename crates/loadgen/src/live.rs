//! Counters the run updates as it goes, for a progress line or a dashboard to read while it runs.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Live {
    pub(crate) users_started: AtomicU64,
    pub(crate) users_done: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) waiting: AtomicI64,
    pub(crate) admitted: AtomicU64,
    pub(crate) claimed: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub users_started: u64,
    pub users_done: u64,
    /// Attempts sent, retries included.
    pub sent: u64,
    /// Attempts with no answer or a 5xx that is not a room holding the user.
    pub errors: u64,
    /// Users in the waiting room right now.
    pub waiting: u64,
    pub admitted: u64,
    /// Claims confirmed or held.
    pub claimed: u64,
}

impl Live {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            users_started: self.users_started.load(Relaxed),
            users_done: self.users_done.load(Relaxed),
            sent: self.sent.load(Relaxed),
            errors: self.errors.load(Relaxed),
            waiting: u64::try_from(self.waiting.load(Relaxed)).unwrap_or(0),
            admitted: self.admitted.load(Relaxed),
            claimed: self.claimed.load(Relaxed),
        }
    }
}
