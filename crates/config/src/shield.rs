use serde::{Deserialize, Serialize};

use crate::{ByteSize, Seconds};

/// An origin shield: timeouts, retries within a budget, a circuit breaker and a bulkhead, in that order
/// around each call to the origin (Retry → CircuitBreaker → Timeout, seed 000 §7). Every key is described in
/// docs/SHIELD.md.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldConfig {
    /// Time for one attempt, from sending the request to the response headers.
    #[serde(default = "defaults::timeout")]
    pub timeout: Seconds,

    /// Retries after the first attempt, for idempotent methods and requests with an `Idempotency-Key`.
    #[serde(default)]
    pub retries: u32,
    /// Full-jitter exponential backoff: a wait drawn from 0 to `retry_backoff × 2^attempt`, at most `retry_backoff_max`.
    #[serde(default = "defaults::retry_backoff")]
    pub retry_backoff: Seconds,
    #[serde(default = "defaults::retry_backoff_max")]
    pub retry_backoff_max: Seconds,
    /// Retries allowed as a share of requests over the last 10 s (plus one a second), so retries cannot
    /// multiply the load on a failing origin.
    #[serde(default = "defaults::retry_budget")]
    pub retry_budget: f64,

    /// What counts as a failed call, for the breaker and for retries: `"5xx"`, `"4xx"`, a status such as
    /// `"429"`, `"timeout"`, `"connect"` (the origin could not be reached).
    #[serde(default = "defaults::failure_on")]
    pub failure_on: Vec<String>,
    /// The breaker's memory: `"100 calls"` (the last N calls) or a duration such as `"60s"`.
    #[serde(default = "defaults::window")]
    pub window: String,
    /// Open at or above this share of failed calls in the window.
    #[serde(default = "defaults::failure_rate")]
    pub failure_rate: f64,
    /// Open at or above this share of slow calls in the window (1.0: only when every call is slow).
    #[serde(default = "defaults::one")]
    pub slow_call_rate: f64,
    /// A call at least this long is slow.
    #[serde(default = "defaults::slow_call")]
    pub slow_call: Seconds,
    /// No verdict on fewer calls than this in the window.
    #[serde(default = "defaults::minimum_calls")]
    pub minimum_calls: u32,
    #[serde(default = "defaults::open_for")]
    pub open_for: Seconds,
    /// Trial calls let through when the open time is up; their outcome closes or reopens the breaker.
    #[serde(default = "defaults::half_open_calls")]
    pub half_open_calls: u32,
    /// `"upstream"`: one breaker per upstream, shared by the routes this shield is on; `"route"`: one per route.
    #[serde(default)]
    pub breaker_scope: BreakerScope,

    /// Most requests in flight to the origin at once (a bulkhead); absent: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Find the cap by itself, between `min_concurrency` and `max_concurrency`: `"gradient"` or `"aimd"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveAlgorithm>,
    #[serde(default = "defaults::min_concurrency")]
    pub min_concurrency: u32,
    /// Requests that may wait for a free slot; beyond it, the lowest priorities are shed first.
    #[serde(default = "defaults::max_queue")]
    pub max_queue: u32,
    /// Longest wait for a slot before the request is shed.
    #[serde(default = "defaults::queue_timeout")]
    pub queue_timeout: Seconds,
    /// Shed everything but `high` and `critical` routes while the process uses more memory than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shed_above_memory: Option<ByteSize>,

    /// Answer with this when the origin cannot be used (breaker open, shed, failed) instead of an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerScope {
    #[default]
    Upstream,
    Route,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdaptiveAlgorithm {
    Gradient,
    Aimd,
}

/// A static answer for when the origin is unavailable.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    #[serde(default = "defaults::fallback_status")]
    pub status: u16,
    #[serde(default = "defaults::fallback_type")]
    pub content_type: String,
    pub body: String,
}

/// How much a route matters when the shield must shed: the lowest go first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Critical,
}

mod defaults {
    use crate::Seconds;

    pub fn timeout() -> Seconds {
        Seconds::secs(30)
    }
    pub fn retry_backoff() -> Seconds {
        Seconds::millis(50)
    }
    pub fn retry_backoff_max() -> Seconds {
        Seconds::secs(2)
    }
    pub fn retry_budget() -> f64 {
        0.2
    }
    pub fn failure_on() -> Vec<String> {
        vec!["5xx".into(), "timeout".into(), "connect".into()]
    }
    pub fn window() -> String {
        "100 calls".into()
    }
    pub fn failure_rate() -> f64 {
        0.5
    }
    pub fn one() -> f64 {
        1.0
    }
    pub fn slow_call() -> Seconds {
        Seconds::secs(5)
    }
    pub fn minimum_calls() -> u32 {
        20
    }
    pub fn open_for() -> Seconds {
        Seconds::secs(30)
    }
    pub fn half_open_calls() -> u32 {
        5
    }
    pub fn min_concurrency() -> u32 {
        4
    }
    pub fn max_queue() -> u32 {
        100
    }
    pub fn queue_timeout() -> Seconds {
        Seconds::secs(1)
    }
    pub fn fallback_status() -> u16 {
        503
    }
    pub fn fallback_type() -> String {
        "application/json".into()
    }
}

/// A parsed `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShieldWindow {
    Calls(u32),
    Seconds(u32),
}

impl ShieldConfig {
    pub fn parsed_window(&self) -> Result<ShieldWindow, String> {
        let w = self.window.trim();
        if let Some(n) = w.strip_suffix("calls").map(str::trim) {
            return match n.parse::<u32>() {
                Ok(n) if (1..=100_000).contains(&n) => Ok(ShieldWindow::Calls(n)),
                _ => Err(format!("{w:?}: between \"1 calls\" and \"100000 calls\"")),
            };
        }
        match humantime::parse_duration(w) {
            Ok(d) if (1..=3600).contains(&d.as_secs()) => Ok(ShieldWindow::Seconds(d.as_secs() as u32)),
            _ => Err(format!("{w:?}: write \"100 calls\" or a duration from \"1s\" to \"1h\"")),
        }
    }
}
