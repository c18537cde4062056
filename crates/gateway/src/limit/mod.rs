//! `limit:NAME` on a route: rate limits and throttling at the edge.
//!
//! A limit has one or more bands (10/s with a burst of 20, and 1000/day), all of which must pass. Each band
//! keeps its per-key state in a [`LimitStore`]; the algorithms are in `spillway_core::limit`. A request
//! refused by a later band gives back what the earlier bands counted, so a refused request costs nothing.

mod headers;
pub mod key;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{HeaderValue, Response};
use ipnet::IpNet;
use spillway_config::{Action, AlgorithmKind, BandConfig, Config, LimitConfig, Refill};
use spillway_core::limit::{Algorithm, Decision, Quota};
use spillway_store::LimitStore;
use spillway_store::memory::MemoryLimiter;

use crate::body::ResponseBody;
use crate::clock::Clock;
use crate::error::GatewayError;
use crate::metrics::{LimitMetrics, LimitOutcome, Metrics};
use crate::pipeline::{Next, Outcome, Policy, ProxyRequest, RequestCtx};
use crate::room::RoomHandle;

/// How often idle keys are forgotten.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Band {
    name: String,
    algorithm: Algorithm,
    store: Arc<dyn LimitStore>,
    /// Kept to recognise an unchanged band on reload and keep its state.
    config: BandConfig,
}

/// A limit as the gateway runs it.
#[derive(Debug)]
pub struct LimitHandle {
    pub name: Arc<str>,
    bands: Vec<Band>,
    parts: Vec<key::Part>,
    action: Action,
    max_wait: Duration,
    max_keys: usize,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    policy_header: HeaderValue,
    hasher: foldhash::fast::FixedState,
    metrics: LimitMetrics,
    clock: Clock,
}

impl LimitHandle {
    /// Builds the limit, keeping the counters of every band that did not change since `previous`.
    pub fn build(
        name: &str,
        config: &LimitConfig,
        previous: Option<&Arc<LimitHandle>>,
        rooms: &std::collections::BTreeMap<String, Arc<RoomHandle>>,
        metrics: &Metrics,
        clock: &Clock,
    ) -> Result<Arc<Self>, String> {
        let configs = config.effective_bands();
        let several = configs.len() > 1;
        let mut bands = Vec::with_capacity(configs.len());
        for (i, band) in configs.into_iter().enumerate() {
            let algorithm = algorithm(&band);
            let kept = previous
                .and_then(|p| p.bands.get(i))
                .filter(|b| b.config == band && previous.is_some_and(|p| p.max_keys == config.max_keys))
                .map(|b| b.store.clone());
            let store = kept.unwrap_or_else(|| Arc::new(MemoryLimiter::new(algorithm, config.max_keys)));
            let band_name = match (&band.name, several) {
                (Some(n), _) => n.clone(),
                (None, false) => name.to_string(),
                (None, true) => format!("{name}-{i}"),
            };
            bands.push(Band { name: band_name, algorithm, store, config: band });
        }
        let parts = config
            .key
            .0
            .iter()
            .map(|p| key::Part::new(p, |room| rooms.get(room).cloned()))
            .collect::<Result<Vec<_>, _>>()?;
        let described: Vec<(String, Algorithm)> = bands.iter().map(|b| (b.name.clone(), b.algorithm)).collect();
        Ok(Arc::new(Self {
            name: Arc::from(name),
            policy_header: headers::policy(&described),
            bands,
            parts,
            action: config.action,
            max_wait: config.max_wait.get(),
            max_keys: config.max_keys,
            allow: config.allow.iter().map(|c| c.0).collect(),
            deny: config.deny.iter().map(|c| c.0).collect(),
            // The same seed across reloads keeps digests, and so counters, stable.
            hasher: previous
                .map_or_else(|| foldhash::fast::FixedState::with_seed(fastrand::u64(..)), |p| p.hasher.clone()),
            metrics: metrics.limit(name),
            clock: clock.clone(),
        }))
    }

    /// Checks every band at `now`. On a refusal, bands already counted are given back. Returns the deciding
    /// band and its decision: the refusing band, or else the band closest to refusing.
    async fn check(&self, key: u64, now: u64) -> Result<(usize, Decision), GatewayError> {
        let mut closest: Option<(usize, Decision)> = None;
        for (i, band) in self.bands.iter().enumerate() {
            let decision = band.store.check(now, key).await.map_err(GatewayError::LimitUnavailable)?;
            if !decision.allowed {
                for earlier in &self.bands[..i] {
                    earlier.store.undo(now, key).await.map_err(GatewayError::LimitUnavailable)?;
                }
                return Ok((i, decision));
            }
            if closest.is_none_or(|(_, c)| decision.remaining < c.remaining || decision.delay_ns > c.delay_ns) {
                closest = Some((i, decision));
            }
        }
        Ok(closest.unwrap_or((0, Decision::allow(u64::MAX, 0))))
    }

    /// Forgets idle keys and publishes how many are tracked.
    pub fn sweep(&self) {
        let now = self.clock.now_ns();
        let tracked: u64 = self
            .bands
            .iter()
            .map(|b| {
                b.store.sweep(now);
                b.store.keys()
            })
            .sum();
        self.metrics.keys(tracked);
    }

    fn add_headers(&self, response: &mut Response<ResponseBody>, band: usize, decision: &Decision) {
        let h = response.headers_mut();
        h.insert("ratelimit-policy", self.policy_header.clone());
        if let Some(b) = self.bands.get(band) {
            h.insert("ratelimit", headers::state(&b.name, decision));
        }
    }
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
                let (band, decision) = limit.check(key, now).await?;
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
