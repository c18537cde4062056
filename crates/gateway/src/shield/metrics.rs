//! A shield's figures, registered under `spillway_shield_`. Every handle is resolved when the shield (or,
//! for a breaker's scope, the route using it) is built, so a refusal or a retry touches one atomic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShieldLabels {
    shield: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    shield: String,
    scope: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    shield: String,
    scope: String,
    to: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    shield: String,
    reason: &'static str,
}

/// Why a shield answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    CircuitOpen,
    QueueFull,
    QueueTimeout,
    Memory,
}

impl Refused {
    const ALL: [Self; 4] = [Self::CircuitOpen, Self::QueueFull, Self::QueueTimeout, Self::Memory];

    fn as_str(self) -> &'static str {
        match self {
            Self::CircuitOpen => "circuit_open",
            Self::QueueFull => "queue_full",
            Self::QueueTimeout => "queue_timeout",
            Self::Memory => "memory",
        }
    }
}

/// A retry made, or one the budget refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Attempted,
    BudgetExhausted,
}

impl Retry {
    const ALL: [Self; 2] = [Self::Attempted, Self::BudgetExhausted];

    fn as_str(self) -> &'static str {
        match self {
            Self::Attempted => "attempted",
            Self::BudgetExhausted => "budget_exhausted",
        }
    }
}

/// The breaker states, in the gauge's values: 0 closed, 1 half-open, 2 open.
const STATES: [&str; 3] = ["closed", "half_open", "open"];

/// Every shield's families; each shield labels its own.
#[derive(Debug, Default)]
pub struct ShieldFamilies {
    state: Family<ScopeLabels, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    retries: Family<ReasonLabels, Counter>,
    fallbacks: Family<ShieldLabels, Counter>,
    in_flight: Family<ShieldLabels, Gauge>,
    queued: Family<ShieldLabels, Gauge>,
    limit: Family<ShieldLabels, Gauge>,
}

impl ShieldFamilies {
    pub fn register(registry: &mut Registry) -> Self {
        let f = Self::default();
        registry.register(
            "breaker_state",
            "Circuit breaker state by shield and scope: 0 closed, 1 half-open, 2 open",
            f.state.clone(),
        );
        registry.register(
            "breaker_transitions",
            "Circuit breaker state changes, by the state entered",
            f.transitions.clone(),
        );
        registry.register(
            "refused",
            "Requests a shield answered itself, by reason (circuit_open, queue_full, queue_timeout, memory)",
            f.refused.clone(),
        );
        registry.register(
            "retries",
            "Retries made (attempted) and retries the budget refused (budget_exhausted)",
            f.retries.clone(),
        );
        registry.register("fallbacks", "Fallback answers sent instead of an error", f.fallbacks.clone());
        registry.register("in_flight", "Requests in flight through a shield's bulkhead", f.in_flight.clone());
        registry.register("queued", "Requests waiting in a shield's line for a place in flight", f.queued.clone());
        registry.register("concurrency_limit", "The bulkhead's current limit (moves when adaptive)", f.limit.clone());
        f
    }

    /// One shield's handles. `gate` says whether it has a bulkhead, whose gauges exist only then.
    pub fn shield(self: &Arc<Self>, shield: &str, gate: bool) -> ShieldMetrics {
        let labels = ShieldLabels { shield: shield.to_string() };
        let reason = |family: &Family<ReasonLabels, Counter>, reason| {
            family.get_or_create(&ReasonLabels { shield: shield.to_string(), reason }).clone()
        };
        let gate = gate
            .then(|| [&self.in_flight, &self.queued, &self.limit].map(|family| family.get_or_create(&labels).clone()));
        ShieldMetrics {
            name: Arc::from(shield),
            refused: Arc::new(Refused::ALL.map(|r| reason(&self.refused, r.as_str()))),
            retries: Arc::new(Retry::ALL.map(|r| reason(&self.retries, r.as_str()))),
            fallbacks: self.fallbacks.get_or_create(&labels).clone(),
            gate,
            scopes: Arc::default(),
            families: self.clone(),
        }
    }
}

/// One breaker scope's handles.
#[derive(Debug, Clone)]
pub struct ScopeMetrics {
    shield: Arc<str>,
    scope: Arc<str>,
    state: Gauge,
    /// By the state entered, in [`STATES`] order.
    transitions: Arc<[Counter; 3]>,
}

impl ScopeMetrics {
    pub fn transition(&self, to: &'static str) {
        if let Some(i) = STATES.iter().position(|s| *s == to) {
            self.transitions[i].inc();
        }
        self.state(to);
        tracing::info!(shield = %self.shield, scope = %self.scope, to, "circuit breaker changed state");
    }

    pub fn state(&self, state: &str) {
        self.state.set(STATES.iter().position(|s| *s == state).unwrap_or(0) as i64);
    }
}

/// One shield's figures.
#[derive(Debug, Clone)]
pub struct ShieldMetrics {
    name: Arc<str>,
    refused: Arc<[Counter; 4]>,
    retries: Arc<[Counter; 2]>,
    fallbacks: Counter,
    gate: Option<[Gauge; 3]>,
    /// Each breaker scope's handles, made when a route using the scope is built.
    scopes: Arc<Mutex<HashMap<String, ScopeMetrics>>>,
    families: Arc<ShieldFamilies>,
}

impl ShieldMetrics {
    /// The handles of breaker `scope`, made once per scope.
    pub fn scope(&self, scope: &str) -> ScopeMetrics {
        let mut scopes = self.scopes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        scopes
            .entry(scope.to_string())
            .or_insert_with(|| {
                let f = &self.families;
                let labels = ScopeLabels { shield: self.name.to_string(), scope: scope.to_string() };
                ScopeMetrics {
                    shield: self.name.clone(),
                    scope: Arc::from(scope),
                    state: f.state.get_or_create(&labels).clone(),
                    transitions: Arc::new(STATES.map(|to| {
                        let labels = TransitionLabels { shield: self.name.to_string(), scope: scope.to_string(), to };
                        f.transitions.get_or_create(&labels).clone()
                    })),
                }
            })
            .clone()
    }

    pub fn refused(&self, reason: Refused) {
        self.refused[reason as usize].inc();
    }

    pub fn retry(&self, retry: Retry) {
        self.retries[retry as usize].inc();
    }

    pub fn fallback(&self) {
        self.fallbacks.inc();
    }

    pub fn gate(&self, in_flight: u32, queued: u32, limit: u32) {
        if let Some([f, q, l]) = &self.gate {
            f.set(i64::from(in_flight));
            q.set(i64::from(queued));
            l.set(i64::from(limit));
        }
    }
}
