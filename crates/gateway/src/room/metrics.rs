//! A room's figures, registered under `spillway_room_`: gauges from the model's snapshot, counters moved on
//! by the model's running totals, and the refusals and waits the gateway sees.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use spillway_core::token::Refusal;

use crate::metrics::gauge;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoomLabels {
    room: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    room: String,
    reason: &'static str,
}

/// Upper bounds in seconds for estimated waits shown to clients: ten seconds to four hours.
const WAIT_BUCKETS: [f64; 12] =
    [10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0];

/// The counters exported from the model's running totals: name, help.
const COUNTERS: [(&str, &str); 8] = [
    ("joined", "Clients who took a place in the room's line"),
    ("released", "Places released for admission"),
    ("admitted", "Passes issued: released places claimed plus clients let straight in"),
    ("abandoned", "Waiting clients who stopped polling and lost their place"),
    ("no_shows", "Released clients who never came back for their pass"),
    ("left", "Clients who left the line themselves"),
    ("sessions_ended", "Sessions their clients ended before the pass ran out (leaving with a pass)"),
    ("sessions_expired", "Sessions whose pass ran out"),
];

/// Every room's families; each room labels its own.
#[derive(Debug)]
pub struct RoomFamilies {
    waiting: Family<RoomLabels, Gauge>,
    active: Family<RoomLabels, Gauge>,
    unclaimed: Family<RoomLabels, Gauge>,
    counters: [Family<RoomLabels, Counter>; 8],
    refused: Family<RefusalLabels, Counter>,
    wait: Family<RoomLabels, Histogram, fn() -> Histogram>,
}

impl RoomFamilies {
    pub fn register(registry: &mut Registry) -> Self {
        let f = Self {
            waiting: Family::default(),
            active: Family::default(),
            unclaimed: Family::default(),
            counters: Default::default(),
            refused: Family::default(),
            wait: Family::new_with_constructor(|| Histogram::new(WAIT_BUCKETS)),
        };
        registry.register("waiting", "Clients waiting in the room", f.waiting.clone());
        registry.register("active_sessions", "Sessions admitted and not yet expired", f.active.clone());
        registry.register(
            "unclaimed",
            "Places released whose clients have not yet come for their pass",
            f.unclaimed.clone(),
        );
        for ((name, help), family) in COUNTERS.iter().zip(&f.counters) {
            registry.register(*name, *help, family.clone());
        }
        registry.register(
            "tokens_refused",
            "Tickets and passes that did not count, by reason; their holders were treated as new",
            f.refused.clone(),
        );
        registry.register("estimated_wait_seconds", "Estimated waits shown to waiting clients", f.wait.clone());
        f
    }

    /// One room's handles.
    pub fn room(&self, room: &str) -> RoomMetrics {
        let labels = RoomLabels { room: room.to_string() };
        RoomMetrics {
            waiting: self.waiting.get_or_create(&labels).clone(),
            active: self.active.get_or_create(&labels).clone(),
            unclaimed: self.unclaimed.get_or_create(&labels).clone(),
            counters: Arc::new(self.counters.each_ref().map(|f| f.get_or_create(&labels).clone())),
            refused: Arc::new(Refusal::ALL.map(|reason| {
                let labels = RefusalLabels { room: room.to_string(), reason: reason.as_str() };
                self.refused.get_or_create(&labels).clone()
            })),
            wait: self.wait.get_or_create(&labels).clone(),
        }
    }
}

/// One room's figures.
#[derive(Debug, Clone)]
pub struct RoomMetrics {
    waiting: Gauge,
    active: Gauge,
    unclaimed: Gauge,
    counters: Arc<[Counter; 8]>,
    /// One counter per refusal reason, in `Refusal::ALL` order.
    refused: Arc<[Counter; Refusal::ALL.len()]>,
    wait: Histogram,
}

impl RoomMetrics {
    pub fn refused(&self, reason: Refusal) {
        if let Some(i) = Refusal::ALL.iter().position(|r| *r == reason) {
            self.refused[i].inc();
        }
    }

    pub fn observe_wait(&self, eta_seconds: Option<u64>) {
        if let Some(eta) = eta_seconds {
            self.wait.observe(eta as f64);
        }
    }

    /// Sets the gauges from a snapshot and moves the counters on by what the model counted since `last`.
    pub fn publish(&self, s: &spillway_core::room::Snapshot, last: &spillway_core::room::Counters) {
        self.waiting.set(gauge(s.waiting));
        self.active.set(gauge(s.active_sessions));
        self.unclaimed.set(gauge(s.unclaimed));
        let (now, before) = (&s.counters, last);
        let deltas = [
            now.joined.saturating_sub(before.joined),
            now.released.saturating_sub(before.released),
            now.entered.saturating_sub(before.entered),
            now.abandoned.saturating_sub(before.abandoned),
            now.no_shows.saturating_sub(before.no_shows),
            now.left.saturating_sub(before.left),
            now.ended.saturating_sub(before.ended),
            now.expired.saturating_sub(before.expired),
        ];
        for (counter, delta) in self.counters.iter().zip(deltas) {
            counter.inc_by(delta);
        }
    }
}
