//! A cache's figures, registered under `spillway_cache_`, every handle resolved when the cache is built.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::gauge;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    cache: String,
    status: &'static str,
}

/// What `x-cache` said of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Hit,
    Miss,
    Stale,
    Bypass,
}

impl Status {
    const ALL: [Self; 4] = [Self::Hit, Self::Miss, Self::Stale, Self::Bypass];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::Bypass => "BYPASS",
        }
    }
}

/// Every cache's families; each cache labels its own.
#[derive(Debug, Default)]
pub struct CacheFamilies {
    requests: Family<StatusLabels, Counter>,
    fetches: Family<CacheLabels, Counter>,
    coalesced: Family<CacheLabels, Counter>,
    waiting: Family<CacheLabels, Gauge>,
    bytes: Family<CacheLabels, Gauge>,
    entries: Family<CacheLabels, Gauge>,
}

impl CacheFamilies {
    pub fn register(registry: &mut Registry) -> Self {
        let f = Self::default();
        registry.register(
            "requests",
            "Requests through a cache by x-cache status: HIT, MISS, STALE, BYPASS",
            f.requests.clone(),
        );
        registry.register("origin_fetches", "Fetches a cache made from the origin", f.fetches.clone());
        registry.register(
            "coalesced",
            "Requests answered from another request's fetch instead of going to the origin",
            f.coalesced.clone(),
        );
        registry.register("waiting", "Requests waiting for another request's fetch of their key", f.waiting.clone());
        registry.register("bytes", "Memory held by a cache's entries", f.bytes.clone());
        registry.register("entries", "Entries a cache holds", f.entries.clone());
        f
    }

    pub fn cache(&self, cache: &str) -> CacheMetrics {
        let labels = CacheLabels { cache: cache.to_string() };
        CacheMetrics {
            requests: Arc::new(Status::ALL.map(|status| {
                self.requests.get_or_create(&StatusLabels { cache: cache.to_string(), status: status.as_str() }).clone()
            })),
            fetches: self.fetches.get_or_create(&labels).clone(),
            coalesced: self.coalesced.get_or_create(&labels).clone(),
            waiting: self.waiting.get_or_create(&labels).clone(),
            bytes: self.bytes.get_or_create(&labels).clone(),
            entries: self.entries.get_or_create(&labels).clone(),
        }
    }
}

/// One cache's figures.
#[derive(Debug, Clone)]
pub struct CacheMetrics {
    requests: Arc<[Counter; 4]>,
    fetches: Counter,
    coalesced: Counter,
    waiting: Gauge,
    bytes: Gauge,
    entries: Gauge,
}

/// Counts a request as waiting for another's fetch until dropped.
#[derive(Debug)]
pub struct Waiting(Gauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl CacheMetrics {
    pub fn request(&self, status: Status) {
        self.requests[status as usize].inc();
    }

    pub fn origin_fetch(&self) {
        self.fetches.inc();
    }

    pub fn coalesced(&self) {
        self.coalesced.inc();
    }

    pub fn waiting(&self) -> Waiting {
        self.waiting.inc();
        Waiting(self.waiting.clone())
    }

    pub fn size(&self, bytes: usize, entries: usize) {
        self.bytes.set(gauge(bytes));
        self.entries.set(gauge(entries));
    }
}
