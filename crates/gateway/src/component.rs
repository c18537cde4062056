//! How a policy plugs into the gateway: one [`PolicyModule`] per [`PolicyKind`], each owning its metrics, its
//! build, its policy on a route and its admin routes, and one [`Component`] per configured `[section.NAME]`
//! with the hooks the central loops call (tick, publish, apply, failure).
//!
//! The central files (`runtime.rs`, `server.rs`, `admin.rs`, `metrics.rs`) know no policy by name: they loop
//! over [`PolicyKind::ALL`] and over the built components. A new policy is a new module implementing
//! [`PolicyModule`], plus its arm in [`PolicyKind`] and in [`module`]; the compiler points at both.
//!
//! ```text
//!   PolicyKind::ALL ──module()──▶ PolicyModule ──register()──▶ its metric families (one prefix each)
//!                                              ──build()─────▶ Component (one per [section.NAME])
//!                                              ──policy()────▶ Arc<dyn Policy> (one per route using it)
//!                                              ──admin()─────▶ its admin routes
//!                                              ──reserved()──▶ its endpoints under /_spillway/
//! ```

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use prometheus_client::registry::Registry;
use spillway_config::{Config, ConfigError, PolicyKind, PolicyRef, Priority};

use crate::clock::{Clock, Entropy};
use crate::metrics::Metrics;
use crate::pipeline::Policy;
use crate::server::Shared;

/// How often the ticker calls [`Component::tick`]: rooms release places on this beat.
pub const TICK: Duration = Duration::from_millis(100);

/// The gateway's own endpoints live under this prefix, answered ahead of routing (a room's status, its
/// page's stylesheet); each kind may claim some of them. They never reach an origin.
pub const RESERVED_PREFIX: &str = "/_spillway/";

/// A request to a reserved endpoint, as a module sees it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub method: &'a http::Method,
    /// The path after [`RESERVED_PREFIX`].
    pub rest: &'a str,
    pub headers: &'a http::HeaderMap,
    pub client_ip: std::net::IpAddr,
    pub secure: bool,
    pub accept: crate::error::Accept,
}

/// A built component: what the central loops call. Every hook has a default that does nothing.
pub trait Component: Send + Sync + fmt::Debug + 'static {
    /// Called every [`TICK`]; `n` counts the ticks, for work done every so many.
    fn tick(&self, n: u64) -> BoxFuture<'_, ()> {
        let _ = n;
        Box::pin(async {})
    }

    /// Brings the component's gauges up to date just before a scrape.
    fn publish(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Pushes the new config's settings into state kept across a reload, before the runtime is swapped in.
    fn apply<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, Result<(), crate::GatewayError>> {
        let _ = config;
        Box::pin(async { Ok(()) })
    }

    /// A failure only a restart mends; `/healthz` and `/readyz` report it.
    fn failure(&self) -> Option<String> {
        None
    }
}

/// What a module's build may use.
#[derive(Debug)]
pub struct BuildCx<'a> {
    pub config: &'a Config,
    pub metrics: &'a Metrics,
    pub clock: &'a Clock,
    pub entropy: &'a Entropy,
    pub backend: &'a dyn spillway_store::Backend,
    /// What the running config built, to carry state (places, breakers, entries) across a reload.
    pub previous: Option<&'a Components>,
}

impl BuildCx<'_> {
    /// The running config's `kind:name`, to carry its state over.
    pub fn previous<T: Component>(&self, kind: PolicyKind, name: &str) -> Option<Arc<T>> {
        self.previous?.get(kind, name)
    }
}

/// A section the build was asked for that the config does not have: validation rules it out, so this only
/// guards a module against a wrong name.
pub fn missing(kind: PolicyKind, name: &str) -> ConfigError {
    ConfigError::invalid(format!("{}.{name}", kind.section()), "not configured")
}

/// Where a policy stands: the route it is on.
#[derive(Debug, Clone, Copy)]
pub struct PolicySite<'a> {
    pub config: &'a Config,
    pub route: &'a str,
    pub upstream: Option<&'a str>,
    pub priority: Priority,
}

/// One kind of policy: everything the gateway needs to know about it.
pub trait PolicyModule: Sync {
    /// Registers the kind's metric families (under the kind's own prefix); what it returns is handed back
    /// through [`Metrics::families`] to every build, so the families outlive reloads.
    fn register(&self, registry: &mut Registry) -> Arc<dyn Any + Send + Sync>;

    /// Builds `[section.NAME]`, carrying state over from `cx.previous` where the settings allow. `built` holds
    /// what this build made so far, in [`PolicyKind::ALL`] order (a limit may key on a room).
    fn build(&self, name: &str, cx: &BuildCx<'_>, built: &Components) -> Result<Built, ConfigError>;

    /// The policy a route runs, on the component `built` made.
    fn policy(&self, built: &Built, site: &PolicySite<'_>) -> Result<Arc<dyn Policy>, String>;

    /// The kind's admin API, merged behind the admin token.
    fn admin(&self) -> axum::Router<Arc<Shared>> {
        axum::Router::new()
    }

    /// The answer to a reserved endpoint (under [`RESERVED_PREFIX`]) this kind serves, if `caller` asks
    /// for one.
    fn reserved<'a>(
        &self,
        built: &'a Components,
        caller: Caller<'a>,
    ) -> Option<BoxFuture<'a, crate::pipeline::Outcome>> {
        let _ = (built, caller);
        None
    }
}

/// The module of each kind: the one match the gateway has over policy kinds.
pub fn module(kind: PolicyKind) -> &'static dyn PolicyModule {
    match kind {
        PolicyKind::Room => &crate::room::MODULE,
        PolicyKind::Limit => &crate::limit::MODULE,
        PolicyKind::Shield => &crate::shield::MODULE,
        PolicyKind::Cache => &crate::cache::MODULE,
    }
}

/// A component as built: the hooks, and the concrete handle for the module's own use.
#[derive(Clone)]
pub struct Built {
    hooks: Arc<dyn Component>,
    handle: Arc<dyn Any + Send + Sync>,
}

impl Built {
    pub fn new<T: Component>(handle: Arc<T>) -> Self {
        Self { hooks: handle.clone(), handle }
    }

    /// The concrete handle, when it is a `T`.
    pub fn get<T: Component>(&self) -> Option<Arc<T>> {
        self.handle.clone().downcast::<T>().ok()
    }

    pub fn hooks(&self) -> &dyn Component {
        &*self.hooks
    }
}

impl fmt::Debug for Built {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hooks.fmt(f)
    }
}

/// Every policy component one config built, by kind and name.
#[derive(Debug, Default, Clone)]
pub struct Components {
    /// By kind, then name: a lookup by `&str` (every room status poll makes one) allocates nothing.
    by_name: BTreeMap<PolicyKind, BTreeMap<String, Built>>,
}

impl Components {
    /// Builds every `[section.NAME]` of every kind, in [`PolicyKind::ALL`] order.
    pub fn build(cx: &BuildCx<'_>) -> Result<Self, ConfigError> {
        let mut built = Self::default();
        for kind in PolicyKind::ALL {
            for name in kind.names(cx.config) {
                let component = module(kind).build(name, cx, &built)?;
                built.by_name.entry(kind).or_default().insert(name.to_string(), component);
            }
        }
        Ok(built)
    }

    pub fn entry(&self, kind: PolicyKind, name: &str) -> Option<&Built> {
        self.by_name.get(&kind)?.get(name)
    }

    /// The handle of `kind:name`, when it is a `T`.
    pub fn get<T: Component>(&self, kind: PolicyKind, name: &str) -> Option<Arc<T>> {
        self.entry(kind, name)?.get()
    }

    /// Every handle of one kind, by name.
    pub fn all<T: Component>(&self, kind: PolicyKind) -> impl Iterator<Item = (&str, Arc<T>)> {
        self.by_name.get(&kind).into_iter().flatten().filter_map(|(n, b)| Some((n.as_str(), b.get()?)))
    }

    /// The policy `policy` names, built for the route at `site`.
    pub fn policy(&self, policy: &PolicyRef, site: &PolicySite<'_>) -> Result<Arc<dyn Policy>, String> {
        let built = self
            .entry(policy.kind, &policy.name)
            .ok_or_else(|| format!("no {}.{}", policy.kind.section(), policy.name))?;
        module(policy.kind).policy(built, site)
    }

    pub fn iter(&self) -> impl Iterator<Item = &dyn Component> {
        self.by_name.values().flat_map(BTreeMap::values).map(Built::hooks)
    }

    /// Answers a reserved endpoint: the first kind that serves `caller`'s path, or `404 no_route`.
    pub async fn reserved(&self, caller: Caller<'_>) -> crate::pipeline::Outcome {
        for kind in PolicyKind::ALL {
            if let Some(answer) = module(kind).reserved(self, caller) {
                return answer.await;
            }
        }
        Err(crate::GatewayError::NoRoute)
    }
}
