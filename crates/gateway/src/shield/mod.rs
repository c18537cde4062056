//! The origin shield as a policy (`shield:NAME` on a route): load shedding and the bulkhead in front, then
//! Retry → CircuitBreaker → Timeout around each call to the rest of the pipeline (seed 000 §7), and a
//! fallback answer when the origin cannot be used.
//!
//! The decisions are the sans-IO state machines of `spillway_core::shield`; this module holds their state,
//! measures the calls and turns refusals into answers. A shield keeps its breakers, budget and gate across
//! reloads while its settings stay the same.

mod gate;
mod memory;
pub mod metrics;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use spillway_config::{AdaptiveAlgorithm, PolicyKind, Priority, ShieldConfig, ShieldWindow};
use spillway_core::shield::{
    AdaptiveKind, AdaptiveLimit, AdaptiveSettings, Breaker, BreakerSettings, BudgetSettings, RetryBudget, WindowKind,
    backoff_ms,
};
use tokio::time::Instant;

pub use gate::{Gate, Shed};
pub use memory::refresh as refresh_memory;

use bytes::Bytes;
use http_body_util::BodyExt;

use crate::body::{BodyTooLarge, RequestBody, full};
use crate::clock::{Clock, Entropy};
use crate::component::{BuildCx, Built, Component, Components, PolicyModule, PolicySite, missing};
use crate::error::GatewayError;
use crate::pipeline::{Next, Outcome, Policy, ProxyRequest, RequestCtx};
use metrics::{Refused, Retry, ScopeMetrics, ShieldFamilies, ShieldMetrics};

/// `shield:NAME`.
pub static MODULE: Module = Module;

#[derive(Debug)]
pub struct Module;

impl PolicyModule for Module {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) -> Arc<dyn std::any::Any + Send + Sync> {
        Arc::new(ShieldFamilies::register(registry))
    }

    fn build(&self, name: &str, cx: &BuildCx<'_>, _: &Components) -> Result<Built, spillway_config::ConfigError> {
        let config = cx.config.shields.get(name).ok_or_else(|| missing(PolicyKind::Shield, name))?;
        let previous = cx.previous::<ShieldHandle>(PolicyKind::Shield, name);
        let families = cx.metrics.families::<ShieldFamilies>(PolicyKind::Shield);
        ShieldHandle::build(name, config, previous.as_ref(), &families, cx.clock, cx.entropy)
            .map(Built::new)
            .map_err(|reason| spillway_config::ConfigError::invalid(format!("shields.{name}"), reason))
    }

    fn policy(&self, built: &Built, site: &PolicySite<'_>) -> Result<Arc<dyn Policy>, String> {
        let handle = built.get::<ShieldHandle>().ok_or("not a shield")?;
        Ok(Arc::new(ShieldPolicy::new(handle, site.upstream, site.route, site.priority)))
    }
}

/// Largest request body kept to be resent on a retry; larger bodies are streamed once and not retried.
const MAX_REPLAY_BODY: u64 = 64 * 1024;

/// Seconds a shed request is told to wait before trying again.
const SHED_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct ShieldHandle {
    pub name: String,
    config: ShieldConfig,
    breaker: BreakerSettings,
    /// One breaker per upstream (or per route), created on first use.
    breakers: Mutex<HashMap<String, Breaker>>,
    budget: Mutex<RetryBudget>,
    gate: Option<Arc<Gate>>,
    metrics: ShieldMetrics,
    clock: Clock,
    entropy: Entropy,
}

impl ShieldHandle {
    /// Reuses `previous` while its settings are unchanged, so breakers keep their state across a reload.
    pub fn build(
        name: &str,
        config: &ShieldConfig,
        previous: Option<&Arc<ShieldHandle>>,
        families: &Arc<ShieldFamilies>,
        clock: &Clock,
        entropy: &Entropy,
    ) -> Result<Arc<Self>, String> {
        if let Some(p) = previous.filter(|p| p.config == *config) {
            return Ok(p.clone());
        }
        let window = match config.parsed_window()? {
            ShieldWindow::Calls(n) => WindowKind::Count(n),
            ShieldWindow::Seconds(s) => WindowKind::Time(s),
        };
        let breaker = BreakerSettings {
            window,
            failure_rate: config.failure_rate,
            slow_call_rate: config.slow_call_rate,
            slow_call_ms: config.slow_call.as_millis(),
            minimum_calls: config.minimum_calls,
            open_for_ms: config.open_for.as_millis(),
            half_open_calls: config.half_open_calls,
        };
        let budget =
            RetryBudget::new(BudgetSettings { ratio: config.retry_budget, min_per_second: 1, window_secs: 10 });
        let gate = config.max_concurrency.map(|max| {
            let adaptive = config.adaptive.map(|kind| {
                let kind = match kind {
                    AdaptiveAlgorithm::Gradient => AdaptiveKind::Gradient { smoothing: 0.2 },
                    AdaptiveAlgorithm::Aimd => AdaptiveKind::Aimd { backoff: 0.9 },
                };
                let initial = config.min_concurrency.max(max / 4);
                AdaptiveLimit::new(AdaptiveSettings { kind, initial, min: config.min_concurrency, max })
            });
            Gate::new(max, adaptive, config.max_queue, config.queue_timeout.get())
        });
        Ok(Arc::new(Self {
            name: name.to_string(),
            config: config.clone(),
            breaker,
            breakers: Mutex::new(HashMap::new()),
            budget: Mutex::new(budget),
            metrics: families.shield(name, gate.is_some()),
            gate,
            clock: clock.clone(),
            entropy: entropy.clone(),
        }))
    }

    pub fn watches_memory(&self) -> bool {
        self.config.shed_above_memory.is_some()
    }
}

impl Component for ShieldHandle {
    /// Memory-based shedding reads the process's size once a tick, not once a request.
    fn tick(&self, _: u64) -> BoxFuture<'_, ()> {
        if self.watches_memory() {
            memory::refresh();
        }
        Box::pin(async {})
    }

    /// The breaker states by scope, and the gate's figures.
    fn publish(&self) -> BoxFuture<'_, ()> {
        let now = self.clock.now_ms();
        let mut breakers = self.breakers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (scope, breaker) in breakers.iter_mut() {
            let (state, transition) = breaker.state(now);
            let metrics = self.metrics.scope(scope);
            if let Some(t) = transition {
                metrics.transition(t.to);
            }
            metrics.state(state.as_str());
        }
        if let Some(gate) = &self.gate {
            self.metrics.gate(gate.in_flight(), gate.queued(), gate.limit());
        }
        Box::pin(async {})
    }
}

impl ShieldHandle {
    fn with_breaker<T>(&self, scope: &str, f: impl FnOnce(&mut Breaker) -> T) -> T {
        let mut breakers = self.breakers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let breaker = breakers.entry(scope.to_string()).or_insert_with(|| Breaker::new(self.breaker));
        f(breaker)
    }

    /// Whether a finished call counts as a failure, by `failure_on`.
    fn failed(&self, outcome: &Outcome) -> bool {
        let on = |what: &str| self.config.failure_on.iter().any(|f| f == what);
        match outcome {
            Ok(response) => {
                let status = response.status();
                (status.is_server_error() && on("5xx"))
                    || (status.is_client_error() && on("4xx"))
                    || self.config.failure_on.iter().any(|f| f.parse::<u16>().is_ok_and(|c| c == status.as_u16()))
            }
            Err(GatewayError::UpstreamTimeout { .. }) => on("timeout"),
            Err(GatewayError::UpstreamUnavailable { .. }) => on("connect"),
            Err(_) => false,
        }
    }

    fn fallback_or(&self, error: GatewayError) -> Outcome {
        let Some(f) = &self.config.fallback else { return Err(error) };
        self.metrics.fallback();
        let mut response = Response::new(full(f.body.clone()));
        *response.status_mut() = StatusCode::from_u16(f.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        if let Ok(v) = HeaderValue::from_str(&f.content_type) {
            response.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        response.headers_mut().insert("x-spillway-fallback", HeaderValue::from_static("1"));
        Ok(response)
    }
}

/// The shield on one route.
#[derive(Debug)]
pub struct ShieldPolicy {
    handle: Arc<ShieldHandle>,
    /// The breaker this route's calls count toward: its upstream's, or its own.
    scope: String,
    scope_metrics: ScopeMetrics,
    priority: Priority,
}

impl ShieldPolicy {
    pub fn new(handle: Arc<ShieldHandle>, upstream: Option<&str>, route: &str, priority: Priority) -> Self {
        let scope = match (handle.config.breaker_scope, upstream) {
            (spillway_config::BreakerScope::Upstream, Some(upstream)) => upstream.to_string(),
            _ => route.to_string(),
        };
        let scope_metrics = handle.metrics.scope(&scope);
        Self { handle, scope, scope_metrics, priority }
    }
}

impl Policy for ShieldPolicy {
    fn call<'a>(&'a self, req: ProxyRequest, ctx: &'a RequestCtx, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let h = &*self.handle;
            if let Some(limit) = h.config.shed_above_memory
                && self.priority < Priority::High
                && memory::resident_bytes() > limit.get()
            {
                h.metrics.refused(Refused::Memory);
                return h.fallback_or(GatewayError::Overloaded { retry_after: SHED_RETRY_AFTER });
            }
            let slot = match &h.gate {
                None => None,
                Some(gate) => match gate.acquire(self.priority).await {
                    Ok(slot) => Some(slot),
                    Err(shed) => {
                        h.metrics.refused(match shed {
                            Shed::QueueFull => Refused::QueueFull,
                            Shed::QueueTimeout => Refused::QueueTimeout,
                        });
                        return h.fallback_or(GatewayError::Overloaded { retry_after: SHED_RETRY_AFTER });
                    }
                },
            };
            // The adaptive limit's sample: how many were in flight when this one was let through.
            self.attempts(req, ctx, next, slot.as_ref().map_or(0, |s| s.in_flight_at_start)).await
        })
    }
}

impl ShieldPolicy {
    /// Retry → CircuitBreaker → Timeout.
    async fn attempts<'a>(&'a self, req: ProxyRequest, ctx: &'a RequestCtx, next: Next<'a>, in_flight: u32) -> Outcome {
        let h = &*self.handle;
        // Only a request that may be sent twice is retried: an idempotent method, or a client that gave an
        // idempotency key. Its body, if any, is read whole first (up to MAX_REPLAY_BODY) so it can be resent.
        let may_repeat =
            matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE)
                || req.headers().contains_key("idempotency-key");
        let (parts, body) = req.into_parts();
        let announced =
            parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let (mut body, replay, retries) = if h.config.retries == 0 || !may_repeat {
            (Some(body), None, 0)
        } else if body.is_empty() {
            (None, Some(Bytes::new()), h.config.retries)
        } else if announced.is_some_and(|n| n <= MAX_REPLAY_BODY) {
            match body.collect().await {
                Ok(collected) => (None, Some(collected.to_bytes()), h.config.retries),
                Err(e) => {
                    return Err(match e.downcast_ref::<BodyTooLarge>() {
                        Some(too_large) => GatewayError::BodyTooLarge { limit: too_large.limit },
                        None => GatewayError::ClientBody("the request body broke off".into()),
                    });
                }
            }
        } else {
            // Too large (or of unknown length) to keep: sent once, as it streams.
            (Some(body), None, 0)
        };
        lock(&h.budget).request(h.clock.now_ms());
        let mut attempt = 0;
        loop {
            let body = match (&replay, body.take()) {
                (Some(bytes), _) => RequestBody::buffered(bytes.clone()),
                (None, Some(body)) => body,
                (None, None) => RequestBody::empty(),
            };
            let request = Request::from_parts(parts.clone(), body);
            let (permit, transition) = h.with_breaker(&self.scope, |b| b.try_acquire(h.clock.now_ms()));
            if let Some(t) = transition {
                self.scope_metrics.transition(t.to);
            }
            let permit = match permit {
                Ok(p) => p,
                Err(refused) => {
                    h.metrics.refused(Refused::CircuitOpen);
                    let retry_after = Duration::from_millis(refused.retry_after_ms);
                    return h.fallback_or(GatewayError::CircuitOpen { scope: self.scope.clone(), retry_after });
                }
            };
            // Handed back if this call is abandoned: a client that disconnects mid-call must not keep a
            // half-open breaker's trial slot (and the breaker refusing everyone) for ever.
            let mut permit = Held { handle: h, scope: &self.scope, permit: Some(permit) };
            let started = Instant::now();
            let timeout = h.config.timeout.get();
            let outcome = match tokio::time::timeout(timeout, next.run(request, ctx)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(GatewayError::UpstreamTimeout { upstream: self.scope.clone(), timeout }),
            };
            let took = started.elapsed();
            // A client's own fault (a body cut off halfway) tells nothing about the origin, and its time is
            // the client's: it is not a failure, not a slow call, and not a sample of the origin's latency.
            if let Err(e) = &outcome
                && e.is_client_fault()
            {
                drop(permit);
                return outcome;
            }
            let failed = h.failed(&outcome);
            let took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
            let transition = permit.permit.take().and_then(|permit| {
                h.with_breaker(&self.scope, |b| b.record(permit, failed, took_ms, h.clock.now_ms()))
            });
            if let Some(t) = transition {
                self.scope_metrics.transition(t.to);
            }
            if let Some(gate) = &h.gate {
                let dropped =
                    outcome.is_err() || outcome.as_ref().is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE);
                gate.sample(took, in_flight, dropped);
            }
            if !failed {
                return outcome;
            }
            if attempt < retries {
                if lock(&h.budget).try_retry(h.clock.now_ms()) {
                    attempt += 1;
                    h.metrics.retry(Retry::Attempted);
                    let base = h.config.retry_backoff.as_millis();
                    let cap = h.config.retry_backoff_max.as_millis();
                    let wait = backoff_ms(attempt - 1, base, cap, h.entropy.f64());
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    continue;
                }
                h.metrics.retry(Retry::BudgetExhausted);
            }
            return match outcome {
                Err(e) => h.fallback_or(e),
                Ok(response) if response.status().is_server_error() && h.config.fallback.is_some() => {
                    h.fallback_or(GatewayError::UpstreamUnavailable {
                        upstream: self.scope.clone(),
                        reason: format!("answered {}", response.status()),
                    })
                }
                Ok(response) => Ok(response),
            };
        }
    }
}

/// A breaker permit not yet recorded; released if dropped unrecorded (see [`Breaker::release`]).
struct Held<'a> {
    handle: &'a ShieldHandle,
    scope: &'a str,
    permit: Option<spillway_core::shield::Permit>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.handle.with_breaker(self.scope, |b| b.release(permit));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
