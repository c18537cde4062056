//! Everything built from one version of the config. A reload builds a new one and swaps it in atomically;
//! requests already running finish on the version they started with.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use spillway_config::{Config, ConfigError, PolicyRef, RouteTarget};
use tokio_rustls::TlsAcceptor;

use crate::access_log::AccessLog;
use crate::cache::{CacheHandle, CachePolicy};
use crate::clock::Clock;
use crate::limit::{LimitHandle, LimitPolicy};
use crate::metrics::{Metrics, RouteMetrics};
use crate::pipeline::Target;
use crate::pipeline::{Pipeline, Policy};
use crate::proxy::ProxyTarget;
use crate::reserve::{ReserveHandle, ReserveTarget};
use crate::room::{RoomHandle, RoomPolicy};
use crate::router::Router;
use crate::shield::{ShieldHandle, ShieldPolicy};
use crate::upstream::Upstream;

#[derive(Debug)]
pub struct Runtime {
    pub config: Arc<Config>,
    router: Router,
    routes: Vec<Route>,
    upstreams: HashMap<String, Arc<Upstream>>,
    pub rooms: BTreeMap<String, Arc<RoomHandle>>,
    pub limits: BTreeMap<String, Arc<LimitHandle>>,
    pub shields: BTreeMap<String, Arc<ShieldHandle>>,
    pub caches: BTreeMap<String, Arc<CacheHandle>>,
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
    /// from `previous`, keeping their warm connection pools and ejection state across a reload. The
    /// reservation ledger is opened only with `open_ledger` (not when a config is merely checked).
    pub fn build(
        config: Config,
        metrics: &Metrics,
        previous: Option<&Runtime>,
        access_log: AccessLog,
        clock: &Clock,
        open_ledger: bool,
    ) -> Result<Self, ConfigError> {
        let mut upstreams = HashMap::new();
        for (name, cfg) in &config.upstreams {
            let reused = previous.and_then(|p| p.upstreams.get(name)).filter(|u| u.config() == cfg);
            let upstream = match reused {
                Some(u) => u.clone(),
                None => Upstream::new(name, cfg, metrics)?,
            };
            upstreams.insert(name.clone(), upstream);
        }
        let keys = crate::room::keyring(&config).map_err(|reason| ConfigError::invalid("keys", reason))?;
        let mut rooms = BTreeMap::new();
        for (name, room) in &config.rooms {
            let keys = keys.as_ref().ok_or_else(|| ConfigError::invalid("keys", "rooms need signing keys"))?;
            let previous = previous.and_then(|p| p.rooms.get(name));
            let handle = RoomHandle::build(name, room, keys, previous, metrics, clock)
                .map_err(|reason| ConfigError::invalid(format!("rooms.{name}.page_template"), reason))?;
            rooms.insert(name.clone(), handle);
        }
        let mut limits = BTreeMap::new();
        for (name, limit) in &config.limits {
            let previous = previous.and_then(|p| p.limits.get(name));
            let handle = LimitHandle::build(name, limit, previous, &rooms, metrics, clock)
                .map_err(|reason| ConfigError::invalid(format!("limits.{name}.key"), reason))?;
            limits.insert(name.clone(), handle);
        }
        let mut shields = BTreeMap::new();
        for (name, shield) in &config.shields {
            let previous = previous.and_then(|p| p.shields.get(name));
            let handle = ShieldHandle::build(name, shield, previous, metrics, clock)
                .map_err(|reason| ConfigError::invalid(format!("shields.{name}"), reason))?;
            shields.insert(name.clone(), handle);
        }
        let caches: BTreeMap<String, Arc<CacheHandle>> = config
            .caches
            .iter()
            .map(|(name, c)| {
                (name.clone(), CacheHandle::build(name, c, previous.and_then(|p| p.caches.get(name)), metrics, clock))
            })
            .collect();
        let reservations = reservations(&config, previous, metrics, clock, open_ledger)?;
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
            let policies = route
                .policies
                .iter()
                .enumerate()
                .map(|(p, policy)| {
                    let on = PolicySite { route: &name, upstream: route.upstream.as_deref(), priority: route.priority };
                    build_policy(
                        policy,
                        &Built { rooms: &rooms, limits: &limits, shields: &shields, caches: &caches },
                        &config,
                        &on,
                    )
                    .map_err(|reason| ConfigError::invalid(format!("routes[{i}].policies[{p}]"), reason))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let pipeline = Pipeline::new(policies, target);
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
            rooms,
            limits,
            shields,
            caches,
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
}

/// The running engine carries over; otherwise it is opened when a route serves it or inventories are
/// configured. Its ledger cannot move while it runs.
fn reservations(
    config: &Config,
    previous: Option<&Runtime>,
    metrics: &Metrics,
    clock: &Clock,
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
    ReserveHandle::open(&config.reservations.ledger, metrics, clock)
        .map(Some)
        .map_err(|e| ConfigError::invalid("reservations.ledger", e.to_string()))
}

/// The named components policies refer to.
struct Built<'a> {
    rooms: &'a BTreeMap<String, Arc<RoomHandle>>,
    limits: &'a BTreeMap<String, Arc<LimitHandle>>,
    shields: &'a BTreeMap<String, Arc<ShieldHandle>>,
    caches: &'a BTreeMap<String, Arc<CacheHandle>>,
}

/// Where a policy stands: the route it is on.
struct PolicySite<'a> {
    route: &'a str,
    upstream: Option<&'a str>,
    priority: spillway_config::Priority,
}

/// The one place policy kinds are turned into components. Each policy capability adds its arm here.
fn build_policy(
    policy: &PolicyRef,
    built: &Built<'_>,
    config: &Config,
    on: &PolicySite<'_>,
) -> Result<Arc<dyn Policy>, String> {
    let Built { rooms, limits, shields, caches } = built;
    match policy.kind.as_str() {
        "cache" => caches
            .get(&policy.name)
            .map(|c| Arc::new(CachePolicy::new(c.clone())) as Arc<dyn Policy>)
            .ok_or_else(|| format!("no caches.{}", policy.name)),
        "shield" => shields
            .get(&policy.name)
            .map(|s| Arc::new(ShieldPolicy::new(s.clone(), on.upstream, on.route, on.priority)) as Arc<dyn Policy>)
            .ok_or_else(|| format!("no shields.{}", policy.name)),
        "limit" => limits
            .get(&policy.name)
            .map(|limit| Arc::new(LimitPolicy::new(limit.clone(), config)) as Arc<dyn Policy>)
            .ok_or_else(|| format!("no limits.{}", policy.name)),
        "room" => rooms
            .get(&policy.name)
            .map(|room| Arc::new(RoomPolicy::new(room.clone())) as Arc<dyn Policy>)
            .ok_or_else(|| format!("no rooms.{}", policy.name)),
        kind => Err(format!("policy kind {kind:?} is not available in this build")),
    }
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
