//! The origin shield's decisions, with no I/O: the circuit breaker and its sliding windows, the adaptive
//! concurrency limit, and the retry budget with jittered backoff. The gateway wraps them around real calls.

pub mod adaptive;
pub mod breaker;
pub mod retry;
pub mod window;

pub use adaptive::{AdaptiveKind, AdaptiveLimit, AdaptiveSettings};
pub use breaker::{Breaker, BreakerSettings, Permit, Refused, State, Transition};
pub use retry::{BudgetSettings, RetryBudget, backoff_ms};
pub use window::{Totals, WindowKind};
