//! An upstream: its addresses, how to choose one, and the keep-alive pool that talks to each.
//!
//! ## Upstream pools, balancing and passive ejection
//!
//! Each `[upstreams.NAME]` becomes one `Upstream` with:
//!
//! - **A keep-alive pool** (`pool.rs`): per address, a short stack of idle HTTP/1.1 connections (hyper's own
//!   client connections) behind its own lock, one stack per worker so that a connection is only ever used on
//!   the runtime that opened it; a connection goes back as soon as its response body has ended. Bounded by
//!   `max_idle_per_address`, closed after `idle_timeout` unused. (It replaced hyper-util's legacy `Client`,
//!   which cost a fifth of the proxy's CPU per request.)
//! - **A connector** (`connector.rs`). It is hyper-util's `HttpConnector` with `connect_timeout`,
//!   `TCP_NODELAY` and 60-second TCP keepalive, wrapped to count open connections per address for
//!   `spillway_upstream_connections`.
//! - **A `Balancer`** (`balancer.rs`). It picks an address round-robin or by least requests in flight, and
//!   skips ejected addresses. If every candidate is ejected, it uses them anyway. Its state is kept in
//!   atomics, so picking never takes a lock. Time is passed in as `now`.
//!
//! `Upstream::forward` does the following:
//!
//! 1. Sends the request as HTTP/1.1 to `http://ADDRESS` with the original path and query, under
//!    `request_timeout`. If the timeout runs out, the answer is `504` (`upstream_timeout`).
//! 2. On a **connect failure**:
//!    - the address's consecutive-failure count goes up;
//!    - at `eject_after` failures the address is ejected for `eject_for` and a warning is logged.
//! 3. After a connect failure, a request **without a body** is retried on another untried address, if the
//!    upstream has more than one. Nothing was sent, so the retry is safe.
//! 4. If the request is not retried, the answer is:
//!    - `504` (`upstream_timeout`) when the connect timed out;
//!    - `502` (`upstream_unavailable`) otherwise.
//! 5. Any other failure is answered at once with `502`, because the origin may have acted on the request.
//!    The exception is a failure caused by the body limit, which becomes `413`.
//! 6. Any response from the address resets its failure count and ends an ejection.
//!
//! Ejection is passive: only connect failures count. There are no active health checks.

mod balancer;
mod connector;
pub mod metrics;
mod pool;

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use spillway_config::{ConfigError, UpstreamConfig};
use tokio::time::Instant;

pub use balancer::{Balancer, Failure};
use connector::Connector;
use pool::{Pool, SendError, Sender};

use crate::body::{BodyTooLarge, BoxError, ClientBodyError, RequestBody};
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::pipeline::{Outcome, ProxyRequest};

#[derive(Debug)]
pub struct Upstream {
    name: String,
    config: UpstreamConfig,
    addresses: Vec<Address>,
    balancer: Balancer,
}

#[derive(Debug)]
struct Address {
    authority: Authority,
    /// `Host` for a request that came without one.
    host: HeaderValue,
    pool: Arc<Pool>,
    in_flight: Gauge,
    connect_failures: Counter,
    ejections: Counter,
}

// === impl Upstream ===

impl Upstream {
    pub fn new(name: &str, config: &UpstreamConfig, metrics: &Metrics) -> Result<Arc<Self>, ConfigError> {
        let mut addresses = Vec::with_capacity(config.addresses.len());
        for (i, addr) in config.addresses.iter().enumerate() {
            let invalid = |e: &dyn std::fmt::Display| {
                ConfigError::invalid(format!("upstreams.{name}.addresses[{i}]"), format!("{addr:?}: {e}"))
            };
            let authority: Authority = addr.parse().map_err(|e| invalid(&e))?;
            let host = HeaderValue::from_str(authority.as_str()).map_err(|e| invalid(&e))?;
            let m = metrics.upstream.address(name, addr);
            let connector = Connector::new(upstream_uri(&authority), config.connect_timeout.get(), m.connections);
            addresses.push(Address {
                pool: Pool::new(connector, config.max_idle_per_address, config.idle_timeout.get()),
                authority,
                host,
                in_flight: m.in_flight,
                connect_failures: m.connect_failures,
                ejections: m.ejections,
            });
        }
        let balancer = Balancer::new(
            config.balance,
            addresses.len(),
            config.eject_after,
            config.eject_for.get(),
            Instant::now().into_std(),
        );
        Ok(Arc::new(Self { name: name.to_string(), config: config.clone(), addresses, balancer }))
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
        // The origin gets the origin form, `/path?query`, whatever form the client used.
        parts.uri = origin_form(&parts.uri);
        parts.version = Version::HTTP_11;
        let has_host = parts.headers.contains_key(HOST);
        let replay = (body.is_empty() && self.addresses.len() > 1)
            .then(|| (parts.method.clone(), parts.uri.clone(), parts.headers.clone()));
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
                (None, Some((method, uri, headers))) => {
                    let mut req = Request::new(RequestBody::empty());
                    *req.method_mut() = method.clone();
                    *req.uri_mut() = uri.clone();
                    *req.headers_mut() = headers.clone();
                    req
                }
                (None, None) => return Err(self.unavailable("the request cannot be replayed")),
            };
            let address = &self.addresses[i];
            if !has_host {
                request.headers_mut().insert(HOST, address.host.clone());
            }

            let in_flight = InFlight::new(self.clone(), i);
            match tokio::time::timeout(self.config.request_timeout.get(), address.pool.send(request)).await {
                Err(_) => return Err(self.timed_out(self.config.request_timeout.get())),
                Ok(Ok((response, sender))) => {
                    self.balancer.connected(i);
                    let tracked = |body| Tracked { body, sender: Some(sender), in_flight }.boxed_unsync();
                    return Ok(response.map(tracked));
                }
                Ok(Err(SendError::Connect(e))) => {
                    drop(in_flight);
                    address.connect_failures.inc();
                    if self.balancer.connect_failed(i, now.into_std()) == Failure::Ejected {
                        address.ejections.inc();
                        tracing::warn!(upstream = %self.name, address = %address.authority, error = %chain(&*e),
                            eject_for = %humantime::format_duration(self.config.eject_for.get()), "upstream address ejected");
                    }
                    let untried = (0..self.addresses.len()).any(|j| j >= 64 || tried & (1 << j) == 0);
                    if replay.is_some() && untried {
                        continue;
                    }
                    if find::<std::io::Error>(&*e).is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
                        return Err(self.timed_out(self.config.connect_timeout.get()));
                    }
                    return Err(self.unavailable(&chain(&*e)));
                }
                Ok(Err(SendError::Request(e))) => {
                    if let Some(too_large) = find::<BodyTooLarge>(&e) {
                        return Err(GatewayError::BodyTooLarge { limit: too_large.limit });
                    }
                    // The client's fault, not the origin's: no ejection, no breaker, a 400.
                    if let Some(client) = find::<ClientBodyError>(&e) {
                        return Err(GatewayError::ClientBody(client.0.to_string()));
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

/// `http://host:port/`, what the connector dials.
fn upstream_uri(authority: &Authority) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(PathAndQuery::from_static("/"));
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

/// `/path?query` of any request target: an HTTP/2 request carries the absolute form.
fn origin_form(uri: &Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri.clone();
    }
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
    Uri::from_parts(parts).unwrap_or_default()
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

/// The origin's response body. Holds the in-flight count until it ends, and its connection, which goes back
/// to the pool once the body has been read to the end (a body dropped halfway leaves its connection unusable).
#[derive(Debug)]
struct Tracked {
    body: Incoming,
    sender: Option<Sender>,
    in_flight: InFlight,
}

impl Tracked {
    fn release(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.in_flight.upstream.addresses[self.in_flight.index].pool.put_back(sender);
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx).map_err(Into::into);
        if matches!(frame, Poll::Ready(None)) {
            self.release();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // hyper stops polling a body once it reports its end, so the last frame may never be followed by `None`.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}
