//! Rate-limit algorithms, one per file, each a small state machine over `now` in nanoseconds.
//!
//! Every algorithm answers the same question the same way: may one more request through at `now`, and if
//! not, when may it? The [`Decision`] carries what the IETF `RateLimit` headers need (remaining quota and time
//! to reset) so the gateway never recomputes it. State is a few bytes per key and never allocates, except the
//! exact sliding log, which holds one timestamp per request in its window and is for small limits only.
//!
//! Which to pick (docs/RATE_LIMITING.md has the long form):
//! - [`gcra`]: the default. Smooth rate with a burst allowance, 8 bytes a key, exact.
//! - [`token_bucket`]: the same idea stated as tokens; `interval` refill adds the whole quota once a period.
//! - [`leaky_bucket`]: shaping: requests are spaced out at the rate (delayed, not refused, up to a depth).
//! - [`fixed_window`]: "1000 per calendar day" quotas; cheap, but allows 2x at a window boundary.
//! - [`sliding_window`]: a window that slides, interpolating the previous window's count; or an exact log.

pub mod fixed_window;
pub mod gcra;
pub mod leaky_bucket;
pub mod sliding_window;
pub mod token_bucket;

#[cfg(test)]
mod tests;

pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// `limit` requests per `period` nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub period_ns: u64,
}

impl Quota {
    pub fn per_second(limit: u64) -> Self {
        Self { limit, period_ns: NANOS_PER_SEC }
    }

    /// Nanoseconds between requests at an even pace.
    pub fn interval_ns(&self) -> u64 {
        (self.period_ns / self.limit.max(1)).max(1)
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests that would still be allowed right now after this one.
    pub remaining: u64,
    /// Nanoseconds until the quota is whole again (the `t` of the `RateLimit` header).
    pub reset_ns: u64,
    /// When refused: nanoseconds until a request would be allowed. 0 when allowed.
    pub retry_after_ns: u64,
    /// When allowed by a shaping algorithm: nanoseconds to hold the request before passing it on.
    pub delay_ns: u64,
}

impl Decision {
    pub fn allow(remaining: u64, reset_ns: u64) -> Self {
        Self { allowed: true, remaining, reset_ns, retry_after_ns: 0, delay_ns: 0 }
    }

    pub fn refuse(reset_ns: u64, retry_after_ns: u64) -> Self {
        Self { allowed: false, remaining: 0, reset_ns, retry_after_ns: retry_after_ns.max(1), delay_ns: 0 }
    }
}

/// Which algorithm, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `quota` on average, up to `burst` at once.
    Gcra {
        quota: Quota,
        burst: u64,
    },
    /// `capacity` tokens, refilled with `quota` continuously (greedy) or all at once each period (interval).
    TokenBucket {
        capacity: u64,
        quota: Quota,
        interval: bool,
    },
    /// Requests leave at `quota`'s pace; up to `capacity` may wait their turn.
    LeakyBucket {
        capacity: u64,
        quota: Quota,
    },
    FixedWindow {
        quota: Quota,
    },
    /// `exact`: a log of timestamps (memory grows with the limit); otherwise the interpolated counter.
    SlidingWindow {
        quota: Quota,
        exact: bool,
    },
}

impl Algorithm {
    /// Most requests the algorithm admits at once: the `q` of the `RateLimit-Policy` header.
    pub fn quota(&self) -> Quota {
        match *self {
            Self::Gcra { quota, burst } => Quota { limit: burst.max(1), period_ns: quota.interval_ns() * burst.max(1) },
            Self::TokenBucket { capacity, quota, .. } => {
                Quota { limit: capacity, period_ns: quota.period_ns.saturating_mul(capacity) / quota.limit.max(1) }
            }
            Self::LeakyBucket { quota, .. } | Self::FixedWindow { quota } | Self::SlidingWindow { quota, .. } => quota,
        }
    }
}

/// One key's state for any algorithm. Sized by its largest variant (32 bytes) except the exact log, which
/// points to its timestamps.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Gcra(gcra::Gcra),
    TokenBucket(token_bucket::TokenBucket),
    LeakyBucket(leaky_bucket::LeakyBucket),
    FixedWindow(fixed_window::FixedWindow),
    Sliding(sliding_window::SlidingWindow),
    Log(sliding_window::SlidingLog),
}

impl State {
    pub fn new(algorithm: &Algorithm, now: u64) -> Self {
        match *algorithm {
            Algorithm::Gcra { .. } => Self::Gcra(gcra::Gcra::default()),
            Algorithm::TokenBucket { capacity, .. } => {
                Self::TokenBucket(token_bucket::TokenBucket::full(capacity, now))
            }
            Algorithm::LeakyBucket { .. } => Self::LeakyBucket(leaky_bucket::LeakyBucket::default()),
            Algorithm::FixedWindow { .. } => Self::FixedWindow(fixed_window::FixedWindow::default()),
            Algorithm::SlidingWindow { exact: false, .. } => Self::Sliding(sliding_window::SlidingWindow::default()),
            Algorithm::SlidingWindow { exact: true, .. } => Self::Log(sliding_window::SlidingLog::default()),
        }
    }

    /// Decides one request at `now` and, if allowed, counts it.
    pub fn check(&mut self, algorithm: &Algorithm, now: u64) -> Decision {
        match (self, *algorithm) {
            (Self::Gcra(s), Algorithm::Gcra { quota, burst }) => s.check(quota, burst, now),
            (Self::TokenBucket(s), Algorithm::TokenBucket { capacity, quota, interval }) => {
                s.check(capacity, quota, interval, now)
            }
            (Self::LeakyBucket(s), Algorithm::LeakyBucket { capacity, quota }) => s.check(capacity, quota, now),
            (Self::FixedWindow(s), Algorithm::FixedWindow { quota }) => s.check(quota, now),
            (Self::Sliding(s), Algorithm::SlidingWindow { quota, .. }) => s.check(quota, now),
            (Self::Log(s), Algorithm::SlidingWindow { quota, .. }) => s.check(quota, now),
            // The algorithm changed under this key (a reload): start it afresh.
            (state, algorithm) => {
                *state = Self::new(&algorithm, now);
                state.check(&algorithm, now)
            }
        }
    }

    /// Gives back a request counted by [`State::check`] that a later limit on the same route refused, so
    /// that a refused request costs no quota anywhere.
    pub fn undo(&mut self, algorithm: &Algorithm, now: u64) {
        match (self, *algorithm) {
            (Self::Gcra(s), Algorithm::Gcra { quota, .. }) => s.undo(quota),
            (Self::TokenBucket(s), Algorithm::TokenBucket { capacity, .. }) => s.undo(capacity),
            (Self::LeakyBucket(s), Algorithm::LeakyBucket { quota, .. }) => s.undo(quota),
            (Self::FixedWindow(s), Algorithm::FixedWindow { .. }) => s.undo(),
            (Self::Sliding(s), Algorithm::SlidingWindow { .. }) => s.undo(),
            (Self::Log(s), Algorithm::SlidingWindow { .. }) => s.undo(now),
            _ => {}
        }
    }

    /// Whether this key can be forgotten at `now`: a fresh state would decide exactly the same.
    pub fn idle(&self, algorithm: &Algorithm, now: u64) -> bool {
        match (self, *algorithm) {
            (Self::Gcra(s), _) => s.tat <= now,
            (Self::TokenBucket(s), Algorithm::TokenBucket { capacity, quota, interval }) => {
                s.clone().tokens_at(capacity, quota, interval, now) >= capacity as f64
            }
            (Self::LeakyBucket(s), _) => s.next_free <= now,
            (Self::FixedWindow(s), Algorithm::FixedWindow { quota }) => now >= s.start.saturating_add(quota.period_ns),
            (Self::Sliding(s), Algorithm::SlidingWindow { quota, .. }) => {
                now >= s.start.saturating_add(quota.period_ns.saturating_mul(2))
            }
            (Self::Log(s), Algorithm::SlidingWindow { quota, .. }) => {
                s.newest().is_none_or(|t| now >= t.saturating_add(quota.period_ns))
            }
            _ => true,
        }
    }
}
