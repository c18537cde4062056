//! Everything built from one version of the config. A reload builds a new one and swaps it in atomically;
//! requests already running finish on the version they started with.

use std::collections::HashMap;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use spillway_config::{Config, ConfigError, RouteTarget};
use tokio_rustls::TlsAcceptor;

use crate::access_log::AccessLog;
use crate::clock::{Clock, Entropy};
use crate::component::{BuildCx, Component, Components, PolicySite};
use crate::metrics::{Metrics, RouteMetrics};
use crate::pipeline::Pipeline;
use crate::pipeline::Target;
use crate::proxy::ProxyTarget;
use crate::reserve::{ReserveHandle, ReserveTarget};
use crate::router::Router;
use crate::upstream::Upstream;

/// What every version of the config is built with, the same for the life of the process.
#[derive(Debug, Clone)]
pub struct Services {
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub entropy: Entropy,
    /// Hands out the rooms', limits' and reservations' stores.
    pub backend: Arc<dyn spillway_store::Backend>,
}

impl Services {
    /// Production's: the system clock and entropy, and the embedded backend.
    pub fn embedded() -> Self {
        Self {
            metrics: Metrics::new(),
            clock: Clock::system(),
            entropy: Entropy::system(),
            backend: Arc::new(spillway_store::Embedded::new()),
        }
    }
}

#[derive(Debug)]
pub struct Runtime {
    pub config: Arc<Config>,
    router: Router,
    routes: Vec<Route>,
    upstreams: HashMap<String, Arc<Upstream>>,
    /// Every `[rooms.NAME]`, `[limits.NAME]` … as built.
    pub policies: Components,
    /// The reservation engine, once a route or an inventory needs it; kept across reloads.
    pub reservations: Option<Arc<ReserveHandle>>,
    pub tls: Option<Tls>,
    pub connections: Arc<auto::Builder<TokioExecutor>>,
    pub access_log: AccessLog,
}

/// The public listener's TLS acceptor, rebuilt on reload so renewed certificates take effect.
#[derive(Clone)]
pub struct Tls(pub TlsAcceptor);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub pipeline: Pipeline,
    pub metrics: RouteMetrics,
}

impl Runtime {
    /// Builds everything the config describes. Upstreams whose settings did not change are carried over
    /// from `previous`, keeping their warm connection pools and ejection state across a reload, and each
    /// policy carries over what its settings allow. The reservation ledger is opened only with `open_ledger`
    /// (not when a config is merely checked).
    pub fn build(
        config: Config,
        services: &Services,
        previous: Option<&Runtime>,
        access_log: AccessLog,
        open_ledger: bool,
    ) -> Result<Self, ConfigError> {
        let metrics = &*services.metrics;
        let mut upstreams = HashMap::new();
        for (name, cfg) in &config.upstreams {
            let reused = previous.and_then(|p| p.upstreams.get(name)).filter(|u| u.config() == cfg);
            let upstream = match reused {
                Some(u) => u.clone(),
                None => Upstream::new(name, cfg, metrics)?,
            };
            upstreams.insert(name.clone(), upstream);
        }
        let policies = Components::build(&BuildCx {
            config: &config,
            metrics,
            clock: &services.clock,
            entropy: &services.entropy,
            backend: &*services.backend,
            previous: previous.map(|p| &p.policies),
        })?;
        let reservations = reservations(&config, previous, services, open_ledger)?;
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, route) in config.routes.iter().enumerate() {
            let name: Arc<str> = Arc::from(route.name.clone().unwrap_or_else(|| format!("route{i}")));
            let target: Arc<dyn Target> = match (&route.upstream, route.target) {
                (_, Some(RouteTarget::Reservations)) => Arc::new(ReserveTarget::new(
                    reservations.clone(),
                    &route.path,
                    config.reservations.user_header.as_deref(),
                )),
                (Some(upstream), None) => {
                    let upstream = upstreams.get(upstream).cloned().ok_or_else(|| {
                        ConfigError::invalid(format!("routes[{i}].upstream"), format!("no upstream named {upstream:?}"))
                    })?;
                    Arc::new(ProxyTarget::new(upstream))
                }
                (None, None) => return Err(ConfigError::invalid(format!("routes[{i}].upstream"), "required")),
            };
            let site = PolicySite {
                config: &config,
                route: &name,
                upstream: route.upstream.as_deref(),
                priority: route.priority,
            };
            let chain = route
                .policies
                .iter()
                .enumerate()
                .map(|(p, policy)| {
                    policies
                        .policy(policy, &site)
                        .map_err(|reason| ConfigError::invalid(format!("routes[{i}].policies[{p}]"), reason))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let pipeline = Pipeline::new(chain, target);
            routes.push(Route { metrics: metrics.route(&name), name, pipeline });
        }
        let router = Router::new(config.routes.iter().map(|r| (r.host.as_deref(), r.path.as_str())));
        let tls =
            config.server.tls.as_ref().map(|t| crate::tls::acceptor(t, config.server.http2).map(Tls)).transpose()?;
        Ok(Self {
            connections: Arc::new(connection_builder(&config)),
            config: Arc::new(config),
            router,
            routes,
            upstreams,
            policies,
            reservations,
            tls,
            access_log,
        })
    }

    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.router.route(host, path).map(|i| &self.routes[i])
    }

    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.get(name)
    }

    /// Every component the central loops call: each policy's, and the reservation engine.
    pub fn components(&self) -> impl Iterator<Item = &dyn Component> {
        self.policies.iter().chain(self.reservations.as_deref().map(|r| r as &dyn Component))
    }

    /// Pushes this config into the state carried over from the last (a room's settings, new inventories),
    /// before the runtime is swapped in.
    pub async fn apply(&self) -> Result<(), crate::GatewayError> {
        for component in self.components() {
            component.apply(&self.config).await?;
        }
        Ok(())
    }
}

/// The running engine carries over; otherwise it is opened when a route serves it or inventories are
/// configured. Its ledger cannot move while it runs.
fn reservations(
    config: &Config,
    previous: Option<&Runtime>,
    services: &Services,
    open_ledger: bool,
) -> Result<Option<Arc<ReserveHandle>>, ConfigError> {
    if let Some(running) = previous.and_then(|p| p.reservations.clone()) {
        if running.ledger_path() != config.reservations.ledger {
            tracing::warn!(
                running = %running.ledger_path().display(),
                "reservations.ledger changes only on restart; keeping the open ledger"
            );
        }
        return Ok(Some(running));
    }
    let needed =
        !config.inventories.is_empty() || config.routes.iter().any(|r| r.target == Some(RouteTarget::Reservations));
    if !needed || !open_ledger {
        return Ok(None);
    }
    let Services { metrics, clock, entropy, backend } = services;
    ReserveHandle::open(&**backend, &config.reservations.ledger, metrics, clock, entropy)
        .map(Some)
        .map_err(|e| ConfigError::invalid("reservations.ledger", e.to_string()))
}

/// HTTP/1.1 and HTTP/2 settings for client connections.
fn connection_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let server = &config.server;
    let header_limit = server.max_header_bytes.get() as usize;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout.get())
        // hyper answers 431 by itself past this; below it the gateway's own check answers with JSON.
        .max_buf_size((header_limit * 2).max(8192 + 1024))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size((header_limit * 2) as u32)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    if server.http2 { builder } else { builder.http1_only() }
}
