//! The response cache as a policy (`cache:NAME` on a route), stampede-proof (seed 000 §3):
//!
//! - one origin fetch per key at a time: the other requests for the key wait for it (up to `coalesce_wait`)
//!   and are answered from what it stores;
//! - a hot entry is refreshed a little before it expires by one request, with a probability that rises as
//!   expiry nears (XFetch), so it rarely expires at all;
//! - once stale, it is served while one request revalidates, and served on an origin error or an open
//!   breaker for `stale-if-error` (graceful degradation);
//! - an entry is only ever replaced by its fetched successor, never dropped before it, except by memory
//!   pressure, which evicts the least recently used.
//!
//! Answers carry `Age` and `x-cache` (`HIT`, `MISS`, `STALE`, `BYPASS`).

pub mod metrics;
mod store;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::header::{AGE, AUTHORIZATION, CACHE_CONTROL, HOST, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Method, Response};
use http_body_util::BodyExt;
use spillway_config::{CacheConfig, PolicyKind};
use spillway_core::cache::{Directives, Lifetime, Standing, jittered_ms, should_refresh};
use tokio::time::Instant;

pub use store::{Entry, Store, Turn};

use crate::body::{ResponseBody, empty, full};
use crate::clock::{Clock, Entropy};
use crate::component::{BuildCx, Built, Component, Components, PolicyModule, PolicySite, missing};
use crate::pipeline::{Next, Outcome, Policy, ProxyRequest, ProxyResponse, RequestCtx};
use metrics::{CacheFamilies, CacheMetrics, Status};

/// `cache:NAME`.
pub static MODULE: Module = Module;

#[derive(Debug)]
pub struct Module;

impl PolicyModule for Module {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) -> Arc<dyn std::any::Any + Send + Sync> {
        Arc::new(CacheFamilies::register(registry))
    }

    fn build(&self, name: &str, cx: &BuildCx<'_>, _: &Components) -> Result<Built, spillway_config::ConfigError> {
        let config = cx.config.caches.get(name).ok_or_else(|| missing(PolicyKind::Cache, name))?;
        let previous = cx.previous::<CacheHandle>(PolicyKind::Cache, name);
        let families = cx.metrics.families::<CacheFamilies>(PolicyKind::Cache);
        Ok(Built::new(CacheHandle::build(name, config, previous.as_ref(), &families, cx.clock, cx.entropy)))
    }

    fn policy(&self, built: &Built, _: &PolicySite<'_>) -> Result<Arc<dyn Policy>, String> {
        let handle = built.get::<CacheHandle>().ok_or("not a cache")?;
        Ok(Arc::new(CachePolicy::new(handle)))
    }
}

/// Statuses a shared cache may store by default (RFC 9111 §3, the heuristically cacheable ones we serve).
const STORABLE: [u16; 7] = [200, 203, 204, 300, 301, 404, 410];

#[derive(Debug)]
pub struct CacheHandle {
    pub name: String,
    config: CacheConfig,
    store: Arc<Store>,
    metrics: CacheMetrics,
    clock: Clock,
    entropy: Entropy,
}

impl CacheHandle {
    /// Reuses `previous` (and its entries) while the settings are unchanged.
    pub fn build(
        name: &str,
        config: &CacheConfig,
        previous: Option<&Arc<CacheHandle>>,
        families: &CacheFamilies,
        clock: &Clock,
        entropy: &Entropy,
    ) -> Arc<Self> {
        if let Some(p) = previous.filter(|p| p.config == *config) {
            return p.clone();
        }
        Arc::new(Self {
            name: name.to_string(),
            store: Store::new(config.max_memory.get() as usize),
            config: config.clone(),
            metrics: families.cache(name),
            clock: clock.clone(),
            entropy: entropy.clone(),
        })
    }
}

impl Component for CacheHandle {
    fn publish(&self) -> BoxFuture<'_, ()> {
        self.metrics.size(self.store.bytes(), self.store.entries());
        Box::pin(async {})
    }
}

impl CacheHandle {
    fn key(&self, req: &ProxyRequest) -> String {
        let host = req.headers().get(HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().host()).unwrap_or("");
        let mut key = format!("{}{}", host.to_ascii_lowercase(), req.uri().path());
        if let (true, Some(q)) = (self.config.key_query, req.uri().query()) {
            key.push('?');
            key.push_str(q);
        }
        for name in &self.config.key_headers {
            key.push('\n');
            key.push_str(name);
            key.push(':');
            for v in req.headers().get_all(name.as_str()) {
                key.push_str(v.to_str().unwrap_or(""));
            }
        }
        key
    }

    /// The entry a response makes, if a shared cache may store it.
    fn entry_for(&self, parts: &http::response::Parts, body: Bytes, fetch_ms: u64) -> Option<Entry> {
        if !STORABLE.contains(&parts.status.as_u16()) || parts.headers.contains_key(SET_COOKIE) {
            return None;
        }
        let vary_ok = parts.headers.get_all(VARY).iter().all(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .all(|h| h != "*" && self.config.key_headers.iter().any(|k| k.eq_ignore_ascii_case(h)))
            })
        });
        let d = Directives::parse(parts.headers.get_all(CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()));
        if !vary_ok || !d.storable() {
            return None;
        }
        let ttl_ms = d.ttl().map(|s| s.saturating_mul(1000)).or(self.config.ttl.map(|t| t.as_millis()))?;
        let lifetime = Lifetime {
            fresh_ms: jittered_ms(ttl_ms, self.config.ttl_jitter, self.entropy.f64()),
            stale_while_revalidate_ms: d
                .stale_while_revalidate
                .map_or(self.config.stale_while_revalidate.as_millis(), |s| s.saturating_mul(1000)),
            stale_if_error_ms: d
                .stale_if_error
                .map_or(self.config.stale_if_error.as_millis(), |s| s.saturating_mul(1000)),
        };
        let mut headers = parts.headers.clone();
        headers.remove(AGE);
        Some(Entry { status: parts.status, headers, body, stored_at_ms: self.clock.now_ms(), lifetime, fetch_ms })
    }

    fn serve(&self, entry: &Entry, head: bool, status: Status) -> ProxyResponse {
        let mut response = Response::new(if head { empty() } else { full(entry.body.clone()) });
        *response.status_mut() = entry.status;
        *response.headers_mut() = entry.headers.clone();
        let age = self.clock.now_ms().saturating_sub(entry.stored_at_ms) / 1000;
        response.headers_mut().insert(AGE, HeaderValue::from(age));
        mark(response.headers_mut(), status);
        self.metrics.request(status);
        response
    }
}

fn mark(headers: &mut HeaderMap, status: Status) {
    headers.insert("x-cache", HeaderValue::from_static(status.as_str()));
}

#[derive(Debug)]
pub struct CachePolicy {
    handle: Arc<CacheHandle>,
}

impl CachePolicy {
    pub fn new(handle: Arc<CacheHandle>) -> Self {
        Self { handle }
    }
}

impl Policy for CachePolicy {
    fn call<'a>(&'a self, req: ProxyRequest, ctx: &'a RequestCtx, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let h = &*self.handle;
            let head = req.method() == Method::HEAD;
            if !(req.method() == Method::GET || head) || req.headers().contains_key(AUTHORIZATION) {
                let mut response = next.run(req, ctx).await?;
                mark(response.headers_mut(), Status::Bypass);
                h.metrics.request(Status::Bypass);
                return Ok(response);
            }
            let key = h.key(&req);
            let now = h.clock.now_ms();
            let stored = h.store.get(&key);
            let stale = match &stored {
                Some(entry) => {
                    let age = now.saturating_sub(entry.stored_at_ms);
                    match entry.lifetime.standing(age) {
                        Standing::Fresh => {
                            let expiry = entry.stored_at_ms + entry.lifetime.fresh_ms;
                            let early =
                                should_refresh(now, expiry, entry.fetch_ms, h.config.xfetch_beta, h.entropy.f64());
                            if !early {
                                return Ok(h.serve(entry, head, Status::Hit));
                            }
                            // This request refreshes early if nobody else is; the others keep the entry.
                            match h.store.fetch(&key) {
                                Turn::Ours(fetch) => return self.fetch(req, ctx, next, fetch, stored, head).await,
                                Turn::Theirs(_) => return Ok(h.serve(entry, head, Status::Hit)),
                            }
                        }
                        Standing::StaleRevalidate => match h.store.fetch(&key) {
                            Turn::Ours(fetch) => return self.fetch(req, ctx, next, fetch, stored, head).await,
                            Turn::Theirs(_) => return Ok(h.serve(entry, head, Status::Stale)),
                        },
                        Standing::StaleIfError => stored.clone(),
                        Standing::Expired => None,
                    }
                }
                None => None,
            };
            match h.store.fetch(&key) {
                Turn::Ours(fetch) => self.fetch(req, ctx, next, fetch, stale, head).await,
                Turn::Theirs(mut landing) => {
                    let _waiting = h.metrics.waiting();
                    let landed = tokio::time::timeout(h.config.coalesce_wait.get(), landing.wait_for(Option::is_some))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .and_then(|l| l.clone().flatten());
                    match landed {
                        Some(entry) => {
                            h.metrics.coalesced();
                            Ok(h.serve(&entry, head, Status::Hit))
                        }
                        // Not storable, or too slow: this request goes to the origin itself.
                        None => {
                            let mut response = next.run(req, ctx).await?;
                            mark(response.headers_mut(), Status::Miss);
                            h.metrics.request(Status::Miss);
                            Ok(response)
                        }
                    }
                }
            }
        })
    }
}

impl CachePolicy {
    /// The one fetch of a key: stores what may be stored, and falls back to `stale` when the origin fails.
    async fn fetch<'a>(
        &'a self,
        req: ProxyRequest,
        ctx: &'a RequestCtx,
        next: Next<'a>,
        fetch: store::Fetch,
        stale: Option<Arc<Entry>>,
        head: bool,
    ) -> Outcome {
        let h = &*self.handle;
        h.metrics.origin_fetch();
        let started = Instant::now();
        let outcome = next.run(req, ctx).await;
        let fetch_ms = started.elapsed().as_millis() as u64;
        let usable_stale =
            stale.filter(|e| e.lifetime.usable_on_error(h.clock.now_ms().saturating_sub(e.stored_at_ms)));
        let response = match outcome {
            Ok(r) if !r.status().is_server_error() => r,
            failed => {
                fetch.land(None);
                return match (usable_stale, failed) {
                    (Some(entry), _) => Ok(h.serve(&entry, head, Status::Stale)),
                    (None, failed) => failed,
                };
            }
        };
        let (parts, body) = response.into_parts();
        let max = h.config.max_object.get();
        let announced =
            parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|n| n > max) || head {
            fetch.land(None);
            let mut response = Response::from_parts(parts, body);
            mark(response.headers_mut(), Status::Miss);
            h.metrics.request(Status::Miss);
            return Ok(response);
        }
        let body = match collect_up_to(body, max as usize).await {
            Ok(bytes) => bytes,
            Err(Partial::TooLarge(rest)) => {
                fetch.land(None);
                let mut response = Response::from_parts(parts, rest);
                mark(response.headers_mut(), Status::Miss);
                h.metrics.request(Status::Miss);
                return Ok(response);
            }
            Err(Partial::Failed) => {
                fetch.land(None);
                return match usable_stale {
                    Some(entry) => Ok(h.serve(&entry, head, Status::Stale)),
                    None => Err(crate::GatewayError::UpstreamUnavailable {
                        upstream: ctx.route.to_string(),
                        reason: "the response body broke off".into(),
                    }),
                };
            }
        };
        match h.entry_for(&parts, body.clone(), fetch_ms) {
            Some(entry) => {
                let entry = Arc::new(entry);
                fetch.land(Some(entry.clone()));
                Ok(h.serve(&entry, head, Status::Miss))
            }
            None => {
                fetch.land(None);
                let mut response = Response::from_parts(parts, full(body));
                mark(response.headers_mut(), Status::Miss);
                h.metrics.request(Status::Miss);
                Ok(response)
            }
        }
    }
}

enum Partial {
    /// Past the limit: the rest of the response, with what was read put back in front.
    TooLarge(ResponseBody),
    Failed,
}

/// Reads a body whole if it fits in `max` bytes.
async fn collect_up_to(mut body: ResponseBody, max: usize) -> Result<Bytes, Partial> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(Partial::Failed) };
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > max {
                let head = futures_util::stream::once(async move { Ok(http_body::Frame::data(buf.freeze())) });
                let rest = http_body_util::BodyStream::new(body);
                let chained = futures_util::StreamExt::chain(head, rest);
                return Err(Partial::TooLarge(http_body_util::StreamBody::new(chained).boxed_unsync()));
            }
        }
    }
    Ok(buf.freeze())
}
