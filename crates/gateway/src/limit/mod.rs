//! `limit:NAME` on a route: rate limits and throttling at the edge.
//!
//! A limit has one or more bands (10/s with a burst of 20, and 1000/day), all of which must pass. The bands'
//! per-key state lives in one [`LimitStore`] from the backend, which decides all of them in one call; the
//! algorithms are in `spillway_core::limit`. A refused request is counted in no band, so it costs nothing.
//!
//! ## The limit policy
//!
//! `"limit:NAME"` becomes a `LimitPolicy`. It holds the limit's `LimitHandle` and the `server.trusted_proxies`
//! list of its Runtime. `LimitPolicy::call` runs these steps:
//!
//! 1. **Client address** (`client_ip::resolve`). If the connecting address is not a trusted proxy, it is the
//!    client. If it is trusted, the addresses in `X-Forwarded-For` are read. Only if that header has no valid
//!    address are the `for=` parameters of `Forwarded` read instead. The rightmost address that is not
//!    trusted is the client, and if there is none, the connecting address is. The rules are spelt out in
//!    `docs/CONFIG.md` (`[server]`).
//! 2. **Deny, then allow.** An address in the limit's `deny` list fails the request with
//!    `GatewayError::Denied` (`403`, `denied`), whatever the action. An address in `allow` goes straight to
//!    `next.run`. It is counted in no band and gets no `RateLimit` headers.
//! 3. **Key digest** (`key::digest`). The key's parts are read from the request and fed, in order, into one
//!    foldhash hasher, each behind a tag byte and followed by a separator. The result is a `u64`, and no
//!    string is built. What each part feeds in:
//!    - `ip`: the client address.
//!    - `header:NAME`: every value of the header.
//!    - `cookie:NAME`: the cookie's value.
//!    - `pass:ROOM`: the session number of a valid pass, from `RoomHandle::session_of`. This verifies the pass
//!      as the room does: keys, expiry and generation, and the address binding against the connecting
//!      address. The room policy strips the pass from requests it lets through, so a limit after
//!      `room:ROOM` on the same route never sees one.
//!    - `route`: the route's name.
//!    - `global`: nothing but its tag.
//!
//!    A part the request lacks adds only its tag, so all such requests share one budget. With signing keys
//!    the hasher's seed is derived from them (so every node digests a client alike); without, it is drawn
//!    at random when the limit is first built, and each reload passes it on, so digests stay the same.
//! 4. **Bands** (`LimitHandle::check`). The limit's store decides every band in one call,
//!    `LimitStore::check(now, key)`. `now` is `Clock::now_ns`, Unix nanoseconds, which is what aligns fixed
//!    and sliding windows to UTC. A request is counted in every band or in none, and the `Verdict` names the
//!    refusing band; if every band allows the request, the deciding band is the one closest to refusing:
//!    the one with the fewest requests remaining, or with the longest delay. When the store cannot answer,
//!    `on_store_error` decides: `closed` answers `503 limit_unavailable`, `open` lets the request through.
//! 5. **Action.**
//!    - With `throttle`, a refused request whose time waited plus `retry_after` fits in `max_wait` is
//!      counted as `throttled`. It then sleeps for `retry_after` (`tokio::time::sleep`) and goes back to
//!      step 4.
//!    - Under `shadow`, a refusal is counted as `shadow_limited`, and the request goes on.
//!    - A refusal under any other action is counted as `limited`. The policy then renders
//!      `GatewayError::RateLimited` itself, as `429` with `Retry-After`, adds the headers of step 6, and
//!      returns that response.
//!    - An allowed request is counted as `allowed`. If its decision carries a delay (a `leaky_bucket` band),
//!      the request sleeps for that delay first, except under `shadow`. `max_wait` does not bound this delay.
//! 6. **Headers** (`headers.rs`). The response from the rest of the pipeline, or the `429`, gets two
//!    headers:
//!    - `RateLimit-Policy`: every band's name with its `q` and `w`. It is rendered once, when the
//!      `LimitHandle` is built.
//!    - `RateLimit`: the deciding band's name, `r` (requests remaining) and `t` (seconds until the quota is
//!      whole again, rounded up).
//!
//!    `q` and `w` come from `Algorithm::quota` in `crates/core/src/limit/mod.rs`:
//!    - GCRA: `burst` requests over `burst` intervals.
//!    - Token bucket: the capacity, over the time it takes to refill it.
//!    - The other algorithms: the rate's count over its period.
//!
//!    `w` is rounded up to whole seconds, and is at least 1. When something further down the pipeline fails
//!    (a `502` from the upstream, say), the failure returns as a `GatewayError` past the policy and gets no
//!    `RateLimit` headers.
//!
//! The client-facing side (header examples, the `429` body) is in `docs/RATE_LIMITING.md`.
//!
//! ## Rate limits' moving parts
//!
//! `pipeline.rs` shows where a limit meets a request. Behind it:
//!
//! - **`LimitHandle`** (`limit/mod.rs`), one per configured limit and Runtime. It holds the limit's bands,
//!   each with its name, its core `Algorithm` and its store. It also holds the key parts ready to read, the
//!   action, `max_wait`, `max_keys`, the allow and deny networks, the pre-rendered `RateLimit-Policy` value,
//!   the hasher, the metric handles and the clock. Its methods are `build` (see `lifecycle.rs`), `check` (see `pipeline.rs`) and
//!   `sweep`.
//! - **The store** (`crates/store`), from the backend: one `LimitStore` for all the limit's bands, with
//!   `check(now_ns, key)` and the optional `sweep(now_ns)` and `keys()`. The embedded backend's is a
//!   `MemoryLimiter` over one `MemoryBand` per band. A band has 64
//!   shards, each a `std::sync::Mutex` around a `HashMap` from digest to core `State`. The top 6 bits of the
//!   digest pick the shard, and the map uses the digest as its hash unchanged. Each call is done under one
//!   shard's lock, without awaiting, and `check` returns `Pending::Ready`, so no future is boxed.
//!   Memory is bounded in two ways:
//!   - A shard holds at most `max_keys / 64` keys, rounded up. A new key arriving at a full shard first makes
//!     it drop the keys that are `idle`, then, if it is still full, one arbitrary key. That key starts afresh.
//!   - `sweep` drops every `idle` key in every shard.
//! - **The algorithms** (`crates/core/src/limit/`). `State::check` decides one request at `now` (nanoseconds)
//!   and counts it if allowed. The `Decision` it returns says whether the request is allowed, how many
//!   requests remain, the time until the quota is whole, the time until a retry would pass, and, for the leaky
//!   bucket, how long to hold the request. `State::undo` gives a counted request back. `State::idle` says
//!   whether a fresh state would decide exactly the same, which is what makes dropping a key safe. The per-key
//!   state is 8 bytes for GCRA and the leaky bucket, 16 for the token bucket and the fixed window, and 24 for
//!   the sliding window. The sliding log keeps one timestamp per request in its window.
//! - **Time.** Limits read `Clock::now_ns` (`clock.rs`): Unix nanoseconds. For a manual clock this is
//!   its milliseconds times 1,000,000. Throttling and leaky-bucket delays wait with `tokio::time::sleep`.
//! - **The sweep** (`LimitHandle::sweep`, called by the ticker every 10 s). It calls `LimitStore::sweep` on
//!   every band, then sets `spillway_limit_keys` to the sum of the bands' `keys()`.

mod headers;
pub mod key;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{HeaderValue, Response};
use ipnet::IpNet;
use spillway_config::{Action, AlgorithmKind, BandConfig, Config, LimitConfig, OnStoreError, PolicyKind, Refill};
use spillway_core::limit::{Algorithm, Decision, Quota};
use spillway_store::{LimitStore, Verdict};

use crate::body::ResponseBody;
use crate::clock::Clock;
use crate::component::{BuildCx, Built, Component, Components, PolicyModule, PolicySite, TICK, missing};
use crate::error::GatewayError;
use crate::pipeline::{Next, Outcome, Policy, ProxyRequest, RequestCtx};
use crate::room::RoomHandle;
use metrics::{LimitFamilies, LimitMetrics, LimitOutcome};

/// How often idle keys are forgotten.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// `limit:NAME`.
pub static MODULE: Module = Module;

#[derive(Debug)]
pub struct Module;

impl PolicyModule for Module {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) -> Arc<dyn std::any::Any + Send + Sync> {
        Arc::new(LimitFamilies::register(registry))
    }

    fn build(&self, name: &str, cx: &BuildCx<'_>, built: &Components) -> Result<Built, spillway_config::ConfigError> {
        let config = cx.config.limits.get(name).ok_or_else(|| missing(PolicyKind::Limit, name))?;
        let previous = cx.previous::<LimitHandle>(PolicyKind::Limit, name);
        LimitHandle::build(name, config, previous.as_ref(), built, cx)
            .map(Built::new)
            .map_err(|reason| spillway_config::ConfigError::invalid(format!("limits.{name}.key"), reason))
    }

    fn policy(&self, built: &Built, site: &PolicySite<'_>) -> Result<Arc<dyn Policy>, String> {
        let handle = built.get::<LimitHandle>().ok_or("not a limit")?;
        Ok(Arc::new(LimitPolicy::new(handle, site.config)))
    }
}

/// A limit as the gateway runs it.
#[derive(Debug)]
pub struct LimitHandle {
    pub name: Arc<str>,
    /// Every band's state, decided in one call.
    store: Arc<dyn LimitStore>,
    /// Each band's name, for the `RateLimit` header.
    bands: Vec<String>,
    on_store_error: OnStoreError,
    parts: Vec<key::Part>,
    action: Action,
    max_wait: Duration,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    policy_header: HeaderValue,
    hasher: foldhash::fast::FixedState,
    metrics: LimitMetrics,
    clock: Clock,
}

impl LimitHandle {
    /// Builds the limit. The backend keeps each band's counters while the band stays as it was.
    pub fn build(
        name: &str,
        config: &LimitConfig,
        previous: Option<&Arc<LimitHandle>>,
        built: &Components,
        cx: &BuildCx<'_>,
    ) -> Result<Arc<Self>, String> {
        let configs = config.effective_bands();
        let several = configs.len() > 1;
        let mut bands = Vec::with_capacity(configs.len());
        let mut algorithms = Vec::with_capacity(configs.len());
        for (i, band) in configs.iter().enumerate() {
            algorithms.push(algorithm(band));
            bands.push(match (&band.name, several) {
                (Some(n), _) => n.clone(),
                (None, false) => name.to_string(),
                (None, true) => format!("{name}-{i}"),
            });
        }
        let store = cx.backend.limit(name, &algorithms, config.max_keys).map_err(|e| e.to_string())?;
        let parts = config
            .key
            .0
            .iter()
            .map(|p| key::Part::new(p, |room| built.get::<RoomHandle>(PolicyKind::Room, room)))
            .collect::<Result<Vec<_>, _>>()?;
        let described: Vec<(String, Algorithm)> = bands.iter().cloned().zip(algorithms).collect();
        Ok(Arc::new(Self {
            name: Arc::from(name),
            policy_header: headers::policy(&described),
            store,
            bands,
            on_store_error: config.on_store_error,
            parts,
            action: config.action,
            max_wait: config.max_wait.get(),
            allow: config.allow.iter().map(|c| c.0).collect(),
            deny: config.deny.iter().map(|c| c.0).collect(),
            hasher: hasher(name, previous, cx)?,
            metrics: cx.metrics.families::<LimitFamilies>(PolicyKind::Limit).limit(name),
            clock: cx.clock.clone(),
        }))
    }

    /// Decides every band at `now` in one call to the store. When the store cannot answer, the limit fails
    /// open (the request passes, undecided) or closed (503), as `on_store_error` says.
    async fn check(&self, key: u64, now: u64) -> Result<Option<Verdict>, GatewayError> {
        match self.store.check(now, key).await {
            Ok(verdict) => Ok(Some(verdict)),
            Err(e) if self.on_store_error == OnStoreError::Open => {
                tracing::warn!(limit = %self.name, error = %e, "limit store failed; letting the request through");
                Ok(None)
            }
            Err(e) => Err(GatewayError::LimitUnavailable(e)),
        }
    }

    fn add_headers(&self, response: &mut Response<ResponseBody>, band: usize, decision: &Decision) {
        let h = response.headers_mut();
        h.insert("ratelimit-policy", self.policy_header.clone());
        if let Some(b) = self.bands.get(band) {
            h.insert("ratelimit", headers::state(b, decision));
        }
    }
}

impl Component for LimitHandle {
    /// Forgets idle keys now and then, and publishes how many are tracked.
    fn tick(&self, n: u64) -> BoxFuture<'_, ()> {
        let every = (SWEEP_EVERY.as_millis() / TICK.as_millis()).max(1) as u64;
        if n.is_multiple_of(every) {
            self.store.sweep(self.clock.now_ns());
            if let Some(tracked) = self.store.keys() {
                self.metrics.keys(tracked);
            }
        }
        Box::pin(async {})
    }
}

/// The seed of a limit's key digests. A reload keeps the running one, so the counters stay with their keys
/// (a rotated signing key included). A new limit derives it from the signing keys, so every node that starts
/// with the same keys digests a client to the same key and a shared store counts it once across the cluster,
/// while nobody without the keys can aim many keys at one digest; without keys (one node) it is random.
fn hasher(
    name: &str,
    previous: Option<&Arc<LimitHandle>>,
    cx: &BuildCx<'_>,
) -> Result<foldhash::fast::FixedState, String> {
    if let Some(previous) = previous {
        return Ok(previous.hasher.clone());
    }
    Ok(match crate::room::keyring(cx.config)? {
        Some(keys) => foldhash::fast::FixedState::with_seed(keys.derive(&format!("limit:{name}"))),
        None => foldhash::fast::FixedState::with_seed(cx.entropy.u64()),
    })
}

fn algorithm(band: &BandConfig) -> Algorithm {
    let quota =
        Quota { limit: band.rate.count, period_ns: band.rate.period.as_nanos().min(u128::from(u64::MAX)) as u64 };
    match band.algorithm {
        AlgorithmKind::Gcra => Algorithm::Gcra { quota, burst: band.burst.unwrap_or(1) },
        AlgorithmKind::TokenBucket => Algorithm::TokenBucket {
            capacity: band.burst.unwrap_or(quota.limit),
            quota,
            interval: band.refill == Refill::Interval,
        },
        AlgorithmKind::LeakyBucket => Algorithm::LeakyBucket { capacity: band.burst.unwrap_or(quota.limit), quota },
        AlgorithmKind::FixedWindow => Algorithm::FixedWindow { quota },
        AlgorithmKind::SlidingWindow => Algorithm::SlidingWindow { quota, exact: false },
        AlgorithmKind::SlidingLog => Algorithm::SlidingWindow { quota, exact: true },
    }
}

// === the policy ===

#[derive(Debug)]
pub struct LimitPolicy {
    limit: Arc<LimitHandle>,
    trusted: Arc<[IpNet]>,
    header: crate::client_ip::ForwardedHeader,
}

impl LimitPolicy {
    pub fn new(limit: Arc<LimitHandle>, config: &Config) -> Self {
        let trusted = config.server.trusted_proxies.iter().map(|c| c.0).collect();
        let header = match config.server.forwarded_header {
            spillway_config::ForwardedHeader::XForwardedFor => crate::client_ip::ForwardedHeader::XForwardedFor,
            spillway_config::ForwardedHeader::Forwarded => crate::client_ip::ForwardedHeader::Forwarded,
        };
        Self { limit, trusted, header }
    }
}

impl Policy for LimitPolicy {
    fn call<'a>(&'a self, req: ProxyRequest, ctx: &'a RequestCtx, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let limit = &self.limit;
            let client_ip = crate::client_ip::resolve(ctx.client_ip, req.headers(), &self.trusted, self.header);
            if limit.deny.iter().any(|n| n.contains(&client_ip)) {
                limit.metrics.count(LimitOutcome::Denied);
                return Err(GatewayError::Denied);
            }
            if limit.allow.iter().any(|n| n.contains(&client_ip)) {
                limit.metrics.count(LimitOutcome::Exempt);
                return next.run(req, ctx).await;
            }
            let source = key::Source { headers: req.headers(), client_ip, peer_ip: ctx.client_ip, route: &ctx.route };
            let key = key::digest(&limit.parts, &source, &limit.hasher);

            let started = limit.clock.now_ns();
            let (band, decision) = loop {
                let now = limit.clock.now_ns();
                let Some(Verdict { band, decision }) = limit.check(key, now).await? else {
                    // The store failed and the limit fails open: through, counted as allowed, no headers.
                    limit.metrics.count(LimitOutcome::Allowed);
                    return next.run(req, ctx).await;
                };
                let waited = Duration::from_nanos(now.saturating_sub(started));
                let retry = Duration::from_nanos(decision.retry_after_ns);
                if decision.allowed || limit.action != Action::Throttle || waited + retry > limit.max_wait {
                    break (band, decision);
                }
                limit.metrics.count(LimitOutcome::Throttled);
                tokio::time::sleep(retry).await;
            };

            if !decision.allowed {
                if limit.action == Action::Shadow {
                    limit.metrics.count(LimitOutcome::ShadowLimited);
                } else {
                    limit.metrics.count(LimitOutcome::Limited);
                    let retry_after = Duration::from_nanos(decision.retry_after_ns);
                    let mut response = GatewayError::RateLimited { limit: limit.name.to_string(), retry_after }
                        .into_response(ctx.accept);
                    limit.add_headers(&mut response, band, &decision);
                    return Ok(response);
                }
            } else {
                limit.metrics.count(LimitOutcome::Allowed);
                if decision.delay_ns > 0 && limit.action != Action::Shadow {
                    // A shaping band spaces requests out: hold this one until its turn.
                    tokio::time::sleep(Duration::from_nanos(decision.delay_ns)).await;
                }
            }
            let mut response = next.run(req, ctx).await?;
            limit.add_headers(&mut response, band, &decision);
            Ok(response)
        })
    }
}
