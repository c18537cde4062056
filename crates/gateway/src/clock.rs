//! Wall-clock time that follows tokio's clock.
//!
//! Tokens carry Unix times, so the gateway needs wall time; tests run on paused tokio time, so that wall time
//! must advance with tokio's clock rather than the system's. The clock reads the system time once and adds
//! tokio's elapsed time to it from then on.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

struct Base {
    unix_ms: u64,
    at: Instant,
}

static BASE: OnceLock<Base> = OnceLock::new();

/// Unix milliseconds, monotonic.
pub fn now_ms() -> u64 {
    let base = BASE.get_or_init(|| Base {
        unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        at: Instant::now(),
    });
    base.unix_ms + base.at.elapsed().as_millis() as u64
}
