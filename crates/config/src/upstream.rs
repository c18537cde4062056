use serde::{Deserialize, Serialize};

use crate::Seconds;

/// An origin Spillway forwards to: one or more addresses sharing a keep-alive pool policy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `host:port` of each instance, plain HTTP/1.1.
    pub addresses: Vec<String>,
    #[serde(default)]
    pub balance: Balance,
    /// Time to establish a TCP connection before the address counts as failed.
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Seconds,
    /// Time from sending the request to receiving the response headers; after it the client gets 504.
    #[serde(default = "defaults::request_timeout")]
    pub request_timeout: Seconds,
    /// A pooled connection unused for this long is closed.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Seconds,
    /// Idle keep-alive connections kept per address, by each worker thread.
    #[serde(default = "defaults::max_idle_per_address")]
    pub max_idle_per_address: usize,
    /// Consecutive connect failures that eject an address.
    #[serde(default = "defaults::eject_after")]
    pub eject_after: u32,
    /// How long an ejected address is skipped before it is tried again.
    #[serde(default = "defaults::eject_for")]
    pub eject_for: Seconds,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each address in turn.
    #[default]
    RoundRobin,
    /// The address with the fewest requests in flight; ties go round-robin.
    LeastConnections,
}

mod defaults {
    use crate::Seconds;

    pub fn connect_timeout() -> Seconds {
        Seconds::secs(2)
    }
    pub fn request_timeout() -> Seconds {
        Seconds::secs(30)
    }
    pub fn idle_timeout() -> Seconds {
        Seconds::secs(60)
    }
    pub fn max_idle_per_address() -> usize {
        256
    }
    pub fn eject_after() -> u32 {
        1
    }
    pub fn eject_for() -> Seconds {
        Seconds::secs(10)
    }
}
