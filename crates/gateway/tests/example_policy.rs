//! The shape every policy has, on a tiny one: a module that registers its metric families under its own
//! prefix, builds one component per `[section.NAME]` with its handles resolved once, and hands each route a
//! policy. A real policy is this module in `gateway/src/<policy>/`, plus its arm in `PolicyKind` and in
//! `component::module`; a test cannot add those arms, so it drives the module as the runtime would.
#![allow(clippy::unwrap_used)]

use std::any::Any;
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use spillway_config::{ConfigError, Priority};
use spillway_gateway::body::{RequestBody, empty};
use spillway_gateway::component::{BuildCx, Built, Component, Components, PolicyModule, PolicySite};
use spillway_gateway::pipeline::{Next, Outcome, Pipeline, Policy, ProxyRequest, RequestCtx, Target};
use spillway_gateway::{Clock, Entropy};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StampLabels {
    stamp: String,
}

/// The module: `stamp:NAME` adds `x-stamp: NAME` to every answer and counts it.
#[derive(Debug, Default)]
struct StampModule {
    /// What `register` made; a real module gets it back from `Metrics::families`.
    families: OnceLock<Family<StampLabels, Counter>>,
}

/// One `[stamps.NAME]`, with its counter resolved at build time.
#[derive(Debug)]
struct Stamp {
    value: HeaderValue,
    stamped: Counter,
}

impl Component for Stamp {}

#[derive(Debug)]
struct StampPolicy(Arc<Stamp>);

impl Policy for StampPolicy {
    fn call<'a>(&'a self, req: ProxyRequest, ctx: &'a RequestCtx, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut response = next.run(req, ctx).await?;
            response.headers_mut().insert("x-stamp", self.0.value.clone());
            self.0.stamped.inc();
            Ok(response)
        })
    }
}

impl PolicyModule for StampModule {
    fn register(&self, registry: &mut Registry) -> Arc<dyn Any + Send + Sync> {
        let family = Family::<StampLabels, Counter>::default();
        registry.register("stamped", "Answers stamped", family.clone());
        let _ = self.families.set(family.clone());
        Arc::new(family)
    }

    fn build(&self, name: &str, _: &BuildCx<'_>, _: &Components) -> Result<Built, ConfigError> {
        let family = self.families.get().ok_or_else(|| ConfigError::invalid("stamps", "not registered"))?;
        let stamped = family.get_or_create(&StampLabels { stamp: name.to_string() }).clone();
        let value =
            HeaderValue::from_str(name).map_err(|e| ConfigError::invalid(format!("stamps.{name}"), e.to_string()))?;
        Ok(Built::new(Arc::new(Stamp { value, stamped })))
    }

    fn policy(&self, built: &Built, _: &PolicySite<'_>) -> Result<Arc<dyn Policy>, String> {
        Ok(Arc::new(StampPolicy(built.get::<Stamp>().ok_or("not a stamp")?)))
    }
}

#[derive(Debug)]
struct Ok200;

impl Target for Ok200 {
    fn call<'a>(&'a self, _: ProxyRequest, _: &'a RequestCtx) -> BoxFuture<'a, Outcome> {
        Box::pin(async { Ok(Response::new(empty())) })
    }
}

#[tokio::test]
async fn a_policy_is_a_module_with_its_own_metrics_build_and_policy() {
    let module = StampModule::default();
    let mut registry = Registry::with_prefix("spillway");
    module.register(registry.sub_registry_with_prefix("stamp"));

    let config = spillway_testkit::Conf::new().build();
    let metrics = spillway_gateway::metrics::Metrics::new();
    let backend = spillway_store::Embedded::new();
    let (clock, entropy) = (Clock::manual(0), Entropy::seeded(1));
    let cx = BuildCx {
        config: &config,
        metrics: &metrics,
        clock: &clock,
        entropy: &entropy,
        backend: &backend,
        previous: None,
    };
    let built = module.build("hello", &cx, &Components::default()).unwrap();
    let site = PolicySite { config: &config, route: "r", upstream: None, priority: Priority::Normal };
    let pipeline = Pipeline::new(vec![module.policy(&built, &site).unwrap()], Arc::new(Ok200));

    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let ctx = RequestCtx {
        client_ip: ip,
        scheme: "http",
        request_id: HeaderValue::from_static("t"),
        route: Arc::from("r"),
        accept: spillway_gateway::Accept::Json,
        forwarding: Arc::new(spillway_gateway::headers::Forwarding::new(ip, "http")),
    };
    let response = pipeline.run(Request::new(RequestBody::empty()), &ctx).await.unwrap();
    assert_eq!(response.headers()["x-stamp"], "hello");
    built.hooks().publish().await;

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("spillway_stamp_stamped_total{stamp=\"hello\"} 1"), "{text}");
}
