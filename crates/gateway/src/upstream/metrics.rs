//! The upstreams' figures, one set per address, registered under `spillway_upstream_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AddressLabels {
    upstream: String,
    address: String,
}

#[derive(Debug, Clone, Default)]
pub struct UpstreamFamilies {
    connections: Family<AddressLabels, Gauge>,
    in_flight: Family<AddressLabels, Gauge>,
    connect_failures: Family<AddressLabels, Counter>,
    ejections: Family<AddressLabels, Counter>,
}

/// One address's handles, resolved when the upstream is built.
#[derive(Debug, Clone)]
pub struct AddressMetrics {
    pub connections: Gauge,
    pub in_flight: Gauge,
    pub connect_failures: Counter,
    pub ejections: Counter,
}

impl UpstreamFamilies {
    pub fn register(registry: &mut Registry) -> Self {
        let f = Self::default();
        registry.register("connections", "Open connections to each upstream address", f.connections.clone());
        registry.register("in_flight", "Requests in flight to each upstream address", f.in_flight.clone());
        registry.register(
            "connect_failures",
            "Failed connection attempts to each upstream address",
            f.connect_failures.clone(),
        );
        registry.register("ejections", "Times an upstream address was ejected", f.ejections.clone());
        f
    }

    pub fn address(&self, upstream: &str, address: &str) -> AddressMetrics {
        let labels = AddressLabels { upstream: upstream.to_string(), address: address.to_string() };
        AddressMetrics {
            connections: self.connections.get_or_create(&labels).clone(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
            connect_failures: self.connect_failures.get_or_create(&labels).clone(),
            ejections: self.ejections.get_or_create(&labels).clone(),
        }
    }
}
