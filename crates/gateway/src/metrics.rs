//! Prometheus metrics. Handles for each route and address are looked up once when the config is built, so
//! the request path only touches atomics.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

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
pub struct AddressLabels {
    pub upstream: String,
    pub address: String,
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
    pub upstream_connections: Family<AddressLabels, Gauge>,
    pub upstream_in_flight: Family<AddressLabels, Gauge>,
    pub upstream_connect_failures: Family<AddressLabels, Counter>,
    pub upstream_ejections: Family<AddressLabels, Counter>,
    connections: Family<ListenerLabels, Gauge>,
    reloads: Family<OutcomeLabels, Counter>,
    pub access_log_dropped: Counter,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("spillway");
        let requests = Family::<HttpLabels, Counter>::default();
        let latency: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        let m = Self {
            requests,
            latency,
            upstream_connections: Family::default(),
            upstream_in_flight: Family::default(),
            upstream_connect_failures: Family::default(),
            upstream_ejections: Family::default(),
            connections: Family::default(),
            reloads: Family::default(),
            access_log_dropped: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("http_requests", "Requests answered, by route and status class", m.requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time from request received to response headers sent, by route and status class",
            m.latency.clone(),
        );
        registry.register(
            "upstream_connections",
            "Open connections to each upstream address",
            m.upstream_connections.clone(),
        );
        registry.register(
            "upstream_in_flight",
            "Requests in flight to each upstream address",
            m.upstream_in_flight.clone(),
        );
        registry.register(
            "upstream_connect_failures",
            "Failed connection attempts to each upstream address",
            m.upstream_connect_failures.clone(),
        );
        registry.register("upstream_ejections", "Times an upstream address was ejected", m.upstream_ejections.clone());
        registry.register("connections_open", "Client connections open, by listener", m.connections.clone());
        registry.register("config_reloads", "Configuration reloads by outcome", m.reloads.clone());
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            m.access_log_dropped.clone(),
        );
        registry.register("build", "Build information", Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]));
        Arc::new(Self { registry, ..m })
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

    pub fn connection_opened(&self, listener: &'static str) -> ConnectionGauge {
        let gauge = self.connections.get_or_create(&ListenerLabels { listener }).clone();
        gauge.inc();
        ConnectionGauge(gauge)
    }

    pub fn reload(&self, applied: bool) {
        let outcome = if applied { "applied" } else { "rejected" };
        self.reloads.get_or_create(&OutcomeLabels { outcome }).inc();
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
