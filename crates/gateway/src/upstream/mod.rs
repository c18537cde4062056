//! An upstream: its addresses, how to choose one, and the keep-alive pool that talks to them.

mod balancer;
mod connector;

use std::collections::HashMap;
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use spillway_config::{ConfigError, UpstreamConfig};
use tokio::time::Instant;

pub use balancer::{Balancer, Failure};
use connector::CountingConnector;

use crate::body::{BodyTooLarge, BoxError, RequestBody};
use crate::error::GatewayError;
use crate::metrics::{AddressLabels, Metrics};
use crate::pipeline::{Outcome, ProxyRequest};

#[derive(Debug)]
pub struct Upstream {
    name: String,
    config: UpstreamConfig,
    addresses: Vec<Address>,
    balancer: Balancer,
    client: Client<CountingConnector, RequestBody>,
}

#[derive(Debug)]
struct Address {
    authority: Authority,
    in_flight: Gauge,
    connect_failures: Counter,
    ejections: Counter,
}

// === impl Upstream ===

impl Upstream {
    pub fn new(name: &str, config: &UpstreamConfig, metrics: &Metrics) -> Result<Arc<Self>, ConfigError> {
        let mut gauges = HashMap::new();
        let mut addresses = Vec::with_capacity(config.addresses.len());
        for (i, addr) in config.addresses.iter().enumerate() {
            let authority: Authority = addr.parse().map_err(|e| {
                ConfigError::invalid(format!("upstreams.{name}.addresses[{i}]"), format!("{addr:?}: {e}"))
            })?;
            let labels = AddressLabels { upstream: name.to_string(), address: addr.clone() };
            gauges.insert(authority.as_str().to_string(), metrics.upstream_connections.get_or_create(&labels).clone());
            addresses.push(Address {
                authority,
                in_flight: metrics.upstream_in_flight.get_or_create(&labels).clone(),
                connect_failures: metrics.upstream_connect_failures.get_or_create(&labels).clone(),
                ejections: metrics.upstream_ejections.get_or_create(&labels).clone(),
            });
        }
        let connector = CountingConnector::new(config.connect_timeout.get(), gauges);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.idle_timeout.get())
            .pool_max_idle_per_host(config.max_idle_per_address)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        let balancer = Balancer::new(
            config.balance,
            addresses.len(),
            config.eject_after,
            config.eject_for.get(),
            Instant::now().into_std(),
        );
        Ok(Arc::new(Self { name: name.to_string(), config: config.clone(), addresses, balancer, client }))
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Whether address `i` is currently ejected (for tests and the admin API).
    pub fn is_ejected(&self, i: usize) -> bool {
        self.balancer.is_ejected(i, Instant::now().into_std())
    }

    /// Sends the request to one address and streams the response back.
    ///
    /// A connect failure is safe to retry because nothing was sent; it is retried on another address when
    /// the request has no body (a body is streamed once and cannot be replayed). Any other failure is
    /// answered at once: the origin may have acted on the request.
    pub async fn forward(self: &Arc<Self>, req: ProxyRequest) -> Outcome {
        let (mut parts, body) = req.into_parts();
        let path: PathAndQuery = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.version = Version::HTTP_11;
        let replay =
            (body.is_empty() && self.addresses.len() > 1).then(|| (parts.method.clone(), parts.headers.clone()));
        let mut first = Some(Request::from_parts(parts, body));
        let mut tried: u64 = 0;
        loop {
            let now = Instant::now();
            let Some(i) = self.balancer.pick(now.into_std(), tried) else {
                return Err(self.unavailable("every address refused the connection"));
            };
            tried |= 1 << i.min(63);
            let mut request = match (first.take(), &replay) {
                (Some(req), _) => req,
                (None, Some((method, headers))) => {
                    let mut req = Request::new(RequestBody::empty());
                    *req.method_mut() = method.clone();
                    *req.headers_mut() = headers.clone();
                    req
                }
                (None, None) => return Err(self.unavailable("the request cannot be replayed")),
            };
            let address = &self.addresses[i];
            *request.uri_mut() = upstream_uri(&address.authority, &path);

            let in_flight = InFlight::new(self.clone(), i);
            match tokio::time::timeout(self.config.request_timeout.get(), self.client.request(request)).await {
                Err(_) => return Err(self.timed_out(self.config.request_timeout.get())),
                Ok(Ok(response)) => {
                    self.balancer.connected(i);
                    return Ok(response.map(|body| Tracked { body, _in_flight: in_flight }.boxed_unsync()));
                }
                Ok(Err(e)) if e.is_connect() => {
                    drop(in_flight);
                    address.connect_failures.inc();
                    if self.balancer.connect_failed(i, now.into_std()) == Failure::Ejected {
                        address.ejections.inc();
                        tracing::warn!(upstream = %self.name, address = %address.authority, error = %chain(&e),
                            eject_for = %humantime::format_duration(self.config.eject_for.get()), "upstream address ejected");
                    }
                    let untried = (0..self.addresses.len()).any(|j| j >= 64 || tried & (1 << j) == 0);
                    if replay.is_some() && untried {
                        continue;
                    }
                    if find::<std::io::Error>(&e).is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
                        return Err(self.timed_out(self.config.connect_timeout.get()));
                    }
                    return Err(self.unavailable(&chain(&e)));
                }
                Ok(Err(e)) => {
                    if let Some(too_large) = find::<BodyTooLarge>(&e) {
                        return Err(GatewayError::BodyTooLarge { limit: too_large.limit });
                    }
                    return Err(self.unavailable(&chain(&e)));
                }
            }
        }
    }

    fn unavailable(&self, reason: &str) -> GatewayError {
        GatewayError::UpstreamUnavailable { upstream: self.name.clone(), reason: reason.to_string() }
    }

    fn timed_out(&self, timeout: std::time::Duration) -> GatewayError {
        GatewayError::UpstreamTimeout { upstream: self.name.clone(), timeout }
    }
}

fn upstream_uri(authority: &Authority, path: &PathAndQuery) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(path.clone());
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

/// The first error of type `T` in the source chain.
fn find<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// "client error (Connect): tcp connect error: Connection refused" rather than just the outermost layer.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut current = e.source();
    while let Some(err) = current {
        let s = err.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        current = err.source();
    }
    out
}

// === impl InFlight ===

/// Counts a request against its address until the response body is done, for least-connections.
#[derive(Debug)]
struct InFlight {
    upstream: Arc<Upstream>,
    index: usize,
}

impl InFlight {
    fn new(upstream: Arc<Upstream>, index: usize) -> Self {
        upstream.balancer.start(index);
        upstream.addresses[index].in_flight.inc();
        Self { upstream, index }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.upstream.balancer.finish(self.index);
        self.upstream.addresses[self.index].in_flight.dec();
    }
}

/// The origin's response body, holding the in-flight count until it ends.
#[derive(Debug)]
struct Tracked {
    body: Incoming,
    _in_flight: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
