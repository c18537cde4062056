//! Wall-clock time for the gateway's rooms and tokens, which tests can hold still and step.
//!
//! Tokens carry Unix times, so the gateway needs wall time. The system clock reads the system time once and
//! adds tokio's monotonic elapsed time to it, so it never jumps backwards. A manual clock moves only when a
//! test says so, which lets tests over real sockets check admission rates and expiries exactly, with no
//! sleeps and no dependence on how fast the machine is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Clock(Source);

#[derive(Debug, Clone)]
enum Source {
    System { unix_ms: u64, at: Instant },
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn system() -> Self {
        let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Self(Source::System { unix_ms, at: Instant::now() })
    }

    /// A clock standing at `unix_ms` until [`Clock::advance`] moves it.
    pub fn manual(unix_ms: u64) -> Self {
        Self(Source::Manual(Arc::new(AtomicU64::new(unix_ms))))
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Source::System { unix_ms, at } => unix_ms + at.elapsed().as_millis() as u64,
            Source::Manual(now) => now.load(Ordering::SeqCst),
        }
    }

    /// Unix nanoseconds, for rate limits whose intervals are finer than a millisecond.
    pub fn now_ns(&self) -> u64 {
        match &self.0 {
            Source::System { unix_ms, at } => unix_ms * 1_000_000 + at.elapsed().as_nanos() as u64,
            Source::Manual(now) => now.load(Ordering::SeqCst) * 1_000_000,
        }
    }

    /// Moves a manual clock forward; a system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(now) = &self.0 {
            now.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
        }
    }
}

/// Randomness for the gateway's shells (lottery seeds, request ids, jitter), injected as time is: from the
/// operating system in production, from one seed in a test or a simulation, so a run can be replayed.
#[derive(Debug, Clone)]
pub struct Entropy(Option<Arc<std::sync::Mutex<fastrand::Rng>>>);

impl Entropy {
    /// Seeded by the operating system; each thread draws from its own generator, with no lock.
    pub fn system() -> Self {
        Self(None)
    }

    /// One sequence from `seed`, the same on every run.
    pub fn seeded(seed: u64) -> Self {
        Self(Some(Arc::new(std::sync::Mutex::new(fastrand::Rng::with_seed(seed)))))
    }

    fn seeded_or<T>(&self, f: impl FnOnce(&mut fastrand::Rng) -> T, system: impl FnOnce() -> T) -> T {
        match &self.0 {
            None => system(),
            Some(rng) => f(&mut rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner)),
        }
    }

    pub fn u64(&self) -> u64 {
        self.seeded_or(|r| r.u64(..), || fastrand::u64(..))
    }

    pub fn u128(&self) -> u128 {
        self.seeded_or(|r| r.u128(..), || fastrand::u128(..))
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&self) -> f64 {
        self.seeded_or(fastrand::Rng::f64, fastrand::f64)
    }
}
