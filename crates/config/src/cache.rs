use serde::{Deserialize, Serialize};

use crate::{ByteSize, Seconds};

/// A response cache for GET and HEAD, with request coalescing and stale serving. Every key is described in
/// docs/SHIELD.md.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Freshness for responses whose `Cache-Control` says nothing; absent: only what the origin marks
    /// cacheable (`max-age`, `s-maxage`) is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Seconds>,
    /// Each entry's freshness is shortened by up to this share at random, so entries stored together do not
    /// expire together.
    #[serde(default = "defaults::ttl_jitter")]
    pub ttl_jitter: f64,
    /// After freshness, serve the stale entry while one request revalidates (unless the origin says otherwise).
    #[serde(default = "defaults::stale_while_revalidate")]
    pub stale_while_revalidate: Seconds,
    /// After freshness, serve the stale entry when the origin fails or its breaker is open.
    #[serde(default = "defaults::stale_if_error")]
    pub stale_if_error: Seconds,
    /// Probabilistic early refresh of hot entries (XFetch): 1 is the paper's eagerness, 0 turns it off.
    #[serde(default = "defaults::xfetch_beta")]
    pub xfetch_beta: f64,
    /// Memory for all entries of this cache; the least recently used go first.
    #[serde(default = "defaults::max_memory")]
    pub max_memory: ByteSize,
    /// Larger responses pass through uncached.
    #[serde(default = "defaults::max_object")]
    pub max_object: ByteSize,
    /// Request headers that are part of the key besides method, host, path and query (`accept-encoding`).
    #[serde(default = "defaults::key_headers")]
    pub key_headers: Vec<String>,
    /// Whether the query string is part of the key.
    #[serde(default = "defaults::yes")]
    pub key_query: bool,
    /// How long a request waits for the one fetch of its key already under way before going to the origin
    /// itself.
    #[serde(default = "defaults::coalesce_wait")]
    pub coalesce_wait: Seconds,
}

mod defaults {
    use crate::{ByteSize, Seconds};

    pub fn ttl_jitter() -> f64 {
        0.1
    }
    pub fn stale_while_revalidate() -> Seconds {
        Seconds::secs(10)
    }
    pub fn stale_if_error() -> Seconds {
        Seconds::secs(300)
    }
    pub fn xfetch_beta() -> f64 {
        1.0
    }
    pub fn max_memory() -> ByteSize {
        ByteSize(64 * 1024 * 1024)
    }
    pub fn max_object() -> ByteSize {
        ByteSize(1024 * 1024)
    }
    pub fn key_headers() -> Vec<String> {
        vec!["accept-encoding".into()]
    }
    pub fn yes() -> bool {
        true
    }
    pub fn coalesce_wait() -> Seconds {
        Seconds::secs(10)
    }
}
