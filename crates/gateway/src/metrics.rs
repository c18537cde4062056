//! Prometheus metrics: the gateway's own families (requests, connections, reloads), and one registry prefix
//! per component, under which each policy module, the upstreams and the reservation engine register their
//! own families (`room/metrics.rs`, `limit/metrics.rs` …). Handles are resolved when a config is built, so
//! the request path only touches atomics. Every family is documented in docs/METRICS.md, and a test holds
//! the two together.
//!
//! ## Metrics
//! Every family, with its labels, is listed in `docs/METRICS.md`; a test holds that page and the catalog in
//! `tests/metric_names.txt` to what a gateway exposes. Each component registers its own families under its
//! prefix (`room/metrics.rs`, `limit/metrics.rs`, `shield/metrics.rs`, `cache/metrics.rs`,
//! `reserve/metrics.rs`, `upstream/metrics.rs`); this file keeps only the request, connection and reload
//! families.
//!
//! There is one Prometheus registry with the prefix `spillway`. It lives for the whole process, so counters
//! do not reset on reload. Handles for each route, address, room and limit are looked up when a Runtime is
//! built, so the request path only touches atomics.
//!
//! The exposition follows OpenMetrics, which adds `_total` to counter names and `_info` to info metrics.
//!
//!
//! Notes on the request metrics:
//!
//! - The latency histogram measures the time from receiving the request to having the response headers
//!   ready. It does not include streaming the body. Its buckets are 0.5 ms, 1, 2, 5, 10, 20, 50, 100,
//!   200, 500 ms, and 1, 2, 5, 10, 30, 60 s.
//! - Requests that match no route (`404 no_route`) are not counted in `spillway_http_requests_total`, because
//!   they have no route label. Neither are requests to the reserved `/_spillway/` endpoints.
//! - A request held by a waiting room is a `503` and is counted under its route as `5xx`.
//!
//! Notes on the room metrics (what each one means is in `docs/WAITING_ROOM.md`):
//!
//! - The three gauges and the six counters from `joined` to `left` come from the model's snapshot. They are
//!   published every second by the room ticker (see `room/mod.rs`) and again on every `/metrics` scrape. Each counter
//!   moves on by what the model's running totals (`Counters`) grew since the last publication, so counters
//!   never go back, not even when a room is reset.
//! - `admitted` counts passes issued: released places that were claimed, plus clients let straight in by
//!   `activation = "threshold"`.
//! - `tokens_refused` and the wait histogram are updated on the request path, by the gate (see `pipeline.rs`).
//! - The wait histogram records the estimated wait shown to a held client that got a ticket. Its buckets are
//!   10, 30 s, 1, 2, 5, 10, 15, 30 min, and 1, 2, 3, 4 h.
//!
//! Notes on the limit metrics (`LimitMetrics`, looked up when a `LimitHandle` is built):
//!
//! - All six `outcome` series of a limit exist from the moment it is built, at 0.
//! - `throttled` is counted once per wait, so a request that waits twice counts twice. A throttled request
//!   is then counted again, as `allowed` or `limited`. A request delayed by a `leaky_bucket` band is counted
//!   only as `allowed`.
//! - `exempt` (the `allow` list) and `denied` (the `deny` list) are counted before any band is consulted.
//! - `spillway_limit_keys` is the sum, over the limit's bands, of the keys each band tracks. It is set by the
//!   sweep that runs every 10 seconds (see `limit/mod.rs`), not on scrape.
//! - A `429` or `403` is also counted under its route as `4xx`. The latency of a held request (throttled, or
//!   delayed by a leaky bucket) includes the time it was held.
//!
//! The access log (`access_log.rs`) is written after the metrics. It records one JSON line per request, sent
//! through a bounded queue to a background writer. When the queue is full, the line is dropped and counted.

use std::any::Any;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use spillway_config::PolicyKind;

use crate::reserve::metrics::ReserveMetrics;
use crate::upstream::metrics::UpstreamFamilies;

/// Upper bounds in seconds: fine-grained below 100 ms, where a healthy proxy lives.
const LATENCY_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_class(status: u16) -> usize {
    ((status / 100).clamp(1, 5) - 1) as usize
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status_class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Every metric the gateway exports. Lives across reloads so counters never reset.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    latency: Family<HttpLabels, Histogram, fn() -> Histogram>,
    /// The public listener's open connections (the only listener counted).
    connections: Gauge,
    /// Applied, rejected.
    reloads: [Counter; 2],
    pub access_log_dropped: Counter,
    accept_failures: Counter,
    pub upstream: UpstreamFamilies,
    pub reserve: ReserveMetrics,
    /// Each policy kind's families, in [`PolicyKind::ALL`] order, as its module registered them.
    policies: Vec<Arc<dyn Any + Send + Sync>>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("spillway");
        let requests = Family::<HttpLabels, Counter>::default();
        let latency: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        let connections = Family::<ListenerLabels, Gauge>::default();
        let reload_family = Family::<OutcomeLabels, Counter>::default();
        let reloads =
            ["applied", "rejected"].map(|outcome| reload_family.get_or_create(&OutcomeLabels { outcome }).clone());
        // Shown from the start, at zero.
        let public = connections.get_or_create(&ListenerLabels { listener: "public" }).clone();
        let (access_log_dropped, accept_failures) = (Counter::default(), Counter::default());
        registry.register("http_requests", "Requests answered, by route and status class", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time from request received to response headers sent, by route and status class",
            latency.clone(),
        );
        registry.register("connections_open", "Client connections open, by listener", connections);
        registry.register("config_reloads", "Configuration reloads by outcome", reload_family);
        registry.register(
            "accept_failures",
            "Connections the public listener failed to accept (usually the file-descriptor limit)",
            accept_failures.clone(),
        );
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            access_log_dropped.clone(),
        );
        let upstream = UpstreamFamilies::register(registry.sub_registry_with_prefix("upstream"));
        let policies = PolicyKind::ALL
            .iter()
            .map(|kind| crate::component::module(*kind).register(registry.sub_registry_with_prefix(kind.as_str())))
            .collect();
        let reserve = ReserveMetrics::register(registry.sub_registry_with_prefix("reserve"));
        registry.register("build", "Build information", Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]));
        Arc::new(Self {
            registry,
            requests,
            latency,
            connections: public,
            reloads,
            access_log_dropped,
            accept_failures,
            upstream,
            reserve,
            policies,
        })
    }

    /// The families `kind`'s module registered.
    pub fn families<T: Any + Send + Sync>(&self, kind: PolicyKind) -> Arc<T> {
        let i = PolicyKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        match self.policies.get(i).cloned().map(Arc::downcast::<T>) {
            Some(Ok(families)) => families,
            // Each module asks for the type it registered: anything else is a bug in that module.
            _ => unreachable!("{kind} metrics requested as the wrong type"),
        }
    }

    /// Prometheus/OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn route(&self, route: &str) -> RouteMetrics {
        let handles = STATUS_CLASSES.map(|status_class| {
            let labels = HttpLabels { route: route.to_string(), status_class };
            (self.requests.get_or_create(&labels).clone(), self.latency.get_or_create(&labels).clone())
        });
        RouteMetrics { handles: Arc::new(handles) }
    }

    /// Counts a connection to the public listener as open until the guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGauge {
        self.connections.inc();
        ConnectionGauge(self.connections.clone())
    }

    pub fn accept_failed(&self) {
        self.accept_failures.inc();
    }

    pub fn reload(&self, applied: bool) {
        self.reloads[usize::from(!applied)].inc();
    }
}

/// One route's counters and histograms, one per status class.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    handles: Arc<[(Counter, Histogram); 5]>,
}

impl RouteMetrics {
    pub fn observe(&self, status: u16, seconds: f64) {
        let (count, latency) = &self.handles[status_class(status)];
        count.inc();
        latency.observe(seconds);
    }
}

/// Decrements the open-connections gauge when the connection ends, however it ends.
#[derive(Debug)]
pub struct ConnectionGauge(Gauge);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A count as a gauge's value: counts are unsigned and a gauge is an `i64`, so a count past `i64::MAX` (a
/// counted stock as large as the type) shows as the largest value instead of wrapping negative.
pub(crate) fn gauge(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}
