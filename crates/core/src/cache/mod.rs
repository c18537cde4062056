//! The response cache's decisions, with no I/O: what may be stored and for how long, where a stored
//! response stands at a given age, and when a hot entry should be refreshed before it expires.

pub mod control;
pub mod xfetch;

pub use control::{Directives, Lifetime, Standing, jittered_ms};
pub use xfetch::should_refresh;
