//! A limit's figures, registered under `spillway_limit_`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::gauge;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    limit: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
}

/// Every limit's families; each limit labels its own.
#[derive(Debug, Default)]
pub struct LimitFamilies {
    requests: Family<OutcomeLabels, Counter>,
    keys: Family<LimitLabels, Gauge>,
}

impl LimitFamilies {
    pub fn register(registry: &mut Registry) -> Self {
        let f = Self::default();
        registry.register(
            "requests",
            "Requests seen by each rate limit, by outcome (allowed, limited, shadow_limited, throttled, denied, exempt)",
            f.requests.clone(),
        );
        registry.register("keys", "Keys each rate limit tracks", f.keys.clone());
        f
    }

    pub fn limit(&self, limit: &str) -> LimitMetrics {
        let counters = LimitOutcome::ALL.map(|outcome| {
            self.requests.get_or_create(&OutcomeLabels { limit: limit.to_string(), outcome: outcome.as_str() }).clone()
        });
        let keys = self.keys.get_or_create(&LimitLabels { limit: limit.to_string() }).clone();
        LimitMetrics { counters: Arc::new(counters), keys }
    }
}

/// What a rate limit did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitOutcome {
    Allowed,
    Limited,
    ShadowLimited,
    /// Held for a while (counted once per wait; the request is then counted again as allowed or limited).
    Throttled,
    Denied,
    Exempt,
}

impl LimitOutcome {
    const ALL: [Self; 6] =
        [Self::Allowed, Self::Limited, Self::ShadowLimited, Self::Throttled, Self::Denied, Self::Exempt];

    fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Limited => "limited",
            Self::ShadowLimited => "shadow_limited",
            Self::Throttled => "throttled",
            Self::Denied => "denied",
            Self::Exempt => "exempt",
        }
    }
}

/// One limit's counters, looked up once so a request only touches atomics.
#[derive(Debug, Clone)]
pub struct LimitMetrics {
    counters: Arc<[Counter; 6]>,
    keys: Gauge,
}

impl LimitMetrics {
    pub fn count(&self, outcome: LimitOutcome) {
        self.counters[outcome as usize].inc();
    }

    pub fn keys(&self, tracked: u64) {
        self.keys.set(gauge(tracked));
    }
}
