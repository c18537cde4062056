//! The simulated cluster and its clock: nodes built from one config over one [`SimBackend`], clients from
//! the load generator's arrival schedule, and a loop of 100 ms steps in which faults strike, clients act in
//! a shuffled order through a node the balancer picks, every node ticks, and the checks run.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use spillway_config::{Config, PolicyKind, PolicyRef, Priority};
use spillway_gateway::access_log::AccessLog;
use spillway_gateway::body::RequestBody;
use spillway_gateway::component::PolicySite;
use spillway_gateway::headers::Forwarding;
use spillway_gateway::pipeline::{Outcome, Pipeline, ProxyRequest, RequestCtx, Target};
use spillway_gateway::reserve::ReserveTarget;
use spillway_gateway::{Accept, Clock, Entropy, Runtime, Services};
use spillway_loadgen::arrival::{Arrival, Step, schedule};

use crate::check::{self, Truth};
use crate::client::{Client, Phase};
use crate::store::{Network, SimBackend};

const T0: u64 = 1_800_000_000_000;
const STEP_MS: u64 = 100;
const PER_MINUTE: u64 = 120;
const CAP: u64 = 20;
const PER_SECOND: u64 = 5;
const PER_USER: usize = 1;
const SESSION_MS: u64 = 30_000;
/// Steps a client keeps asking after it has its answer.
const REFRESHING_STEPS: u64 = 30;

/// A bug planted on purpose, to show the checks find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// One node forwards claims under a user name of its own making, so the engine's per-user check never
    /// sees the real user twice.
    SkipPerUserCheckOnOneNode,
    /// The room hands out places in random order instead of first come, first served.
    RandomLine,
}

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    pub seconds: u64,
    pub clients: u64,
    pub stock: u64,
    pub bug: Option<Bug>,
}

impl Default for Options {
    fn default() -> Self {
        Self { nodes: 3, seconds: 90, clients: 300, stock: 150, bug: None }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub steps: u64,
    pub let_through: u64,
    pub confirmed: u64,
    pub lost_replies: u64,
    pub outages: u64,
    pub restarts: u64,
    pub reloads: u64,
    pub ledger_crashes: u64,
    /// Clients left out of the order checks because a reply from the room's store was lost.
    pub disturbed: u64,
}

/// A broken promise: the seed reproduces it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SEED={} step {}: {}", self.seed, self.step, self.what)
    }
}

/// Runs one simulation from `seed`.
pub fn run(seed: u64, options: &Options) -> Result<Report, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let runtime = runtime.map_err(|e| Failure { seed, step: 0, what: format!("no runtime: {e}") })?;
    runtime.block_on(World::new(seed, options.clone()).run())
}

/// Where the reservation engine answers: the first node's, replaced when that node is restarted.
type Engine = Arc<Mutex<Option<Arc<ReserveTarget>>>>;

/// What every node forwards a claim to once its room and limit let it through.
#[derive(Debug)]
struct Forward {
    engine: Engine,
    /// Requests past the limit, by client and second of the store's clock, for the checks.
    passed: Arc<Mutex<Truth>>,
    net: Arc<Network>,
    /// The planted bug: claims from this node go under another name.
    rename: Option<String>,
}

impl Target for Forward {
    fn call<'a>(&'a self, req: ProxyRequest, ctx: &'a RequestCtx) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let second = self.net.now() / 1000;
            *lock(&self.passed).passed.entry((ctx.client_ip, second)).or_default() += 1;
            let engine = lock(&self.engine).clone();
            let Some(engine) = engine else { return Err(spillway_gateway::GatewayError::NoRoute) };
            let req = match &self.rename {
                None => req,
                Some(suffix) => {
                    let (parts, body) = req.into_parts();
                    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    if let Some(user) = json["user"].as_str() {
                        json["user"] = format!("{user}{suffix}").into();
                    }
                    Request::from_parts(parts, RequestBody::buffered(Bytes::from(json.to_string())))
                }
            };
            engine.call(req, ctx).await
        })
    }
}

struct Node {
    runtime: Arc<Runtime>,
    pipeline: Pipeline,
    clock: Clock,
    services: Services,
}

struct World {
    seed: u64,
    options: Options,
    rng: fastrand::Rng,
    net: Arc<Network>,
    backend: Arc<SimBackend>,
    config: String,
    nodes: Vec<Node>,
    engine: Engine,
    truth: Arc<Mutex<Truth>>,
    clients: Vec<Client>,
    joined: u64,
    report: Report,
    step: u64,
    /// The engine's state hash when its node crashed, until the node is back.
    crashed: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl World {
    fn new(seed: u64, options: Options) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        // A reply lost in one call out of 2,000 to 20,000.
        let net = Network::new(rng.u64(..), T0, rng.u32(50..500));
        let backend = Arc::new(SimBackend::new(net.clone()));
        let config = format!(
            "[server]\nadmin_token = \"simulated\"\n[[keys]]\nid = \"k1\"\nsecret = \"{}\"\n\
             [rooms.sale]\nnew_users_per_minute = {PER_MINUTE}\ntotal_active_users = {CAP}\n\
             session_duration = \"{}s\"\nqueue_grace = \"20s\"\n\
             {}\
             [limits.api]\nrate = \"{PER_SECOND}/s\"\nalgorithm = \"fixed_window\"\n\
             [reservations]\nledger = \"simulated\"\n\
             [inventories.drop]\nstock = {}\nper_user_limit = {PER_USER}\n",
            "0123456789abcdef0123456789abcdef",
            SESSION_MS / 1000,
            if options.bug == Some(Bug::RandomLine) { "queueing = \"random\"\n" } else { "" },
            options.stock
        );
        // A surge: a ramp up to a peak, a plateau, then a trickle, from the load generator's schedules.
        let arrival = Arrival::Steps {
            steps: vec![
                Step { rate: rng.f64() * 5.0 + 1.0, hold: spillway_config::Seconds::secs(10) },
                Step { rate: rng.f64() * 20.0 + 5.0, hold: spillway_config::Seconds::secs(10) },
                Step { rate: 1.0, hold: spillway_config::Seconds::secs(options.seconds) },
            ],
        };
        let times = schedule(&arrival, Some(Duration::from_secs(options.seconds)), options.clients);
        let clients = times
            .iter()
            .enumerate()
            .map(|(n, t)| Client::new(n as u64, T0 + u64::try_from(t.as_millis()).unwrap_or(u64::MAX)))
            .collect();
        Self {
            seed,
            options,
            rng,
            net,
            backend,
            config,
            nodes: Vec::new(),
            engine: Engine::default(),
            truth: Arc::default(),
            clients,
            joined: 0,
            report: Report::default(),
            step: 0,
            crashed: None,
        }
    }

    fn fail(&self, what: impl Into<String>) -> Failure {
        Failure { seed: self.seed, step: self.step, what: what.into() }
    }

    /// Builds node `i` (again, after a restart) on a clock skewed by up to two seconds either way.
    async fn build(&mut self, i: usize) -> Result<Node, Failure> {
        let config = Config::parse(&self.config).map_err(|e| self.fail(format!("config: {e}")))?;
        let skew = self.rng.i64(-2_000..=2_000);
        let clock = Clock::manual(self.net.now().saturating_add_signed(skew));
        let services = Services {
            metrics: spillway_gateway::metrics::Metrics::new(),
            clock: clock.clone(),
            entropy: Entropy::seeded(self.rng.u64(..)),
            backend: self.backend.clone(),
        };
        let ledger = i == 0;
        let runtime = Runtime::build(config, &services, None, AccessLog::off(), ledger)
            .map_err(|e| self.fail(format!("node {i}: {e}")))?;
        runtime.apply().await.map_err(|e| self.fail(format!("node {i} apply: {e}")))?;
        let runtime = Arc::new(runtime);
        let pipeline = self.pipeline(i, &runtime)?;
        Ok(Node { runtime, pipeline, clock, services })
    }

    /// Node `i`'s pipeline: its room and limit, then the engine (its own, on the first node).
    fn pipeline(&self, i: usize, runtime: &Runtime) -> Result<Pipeline, Failure> {
        if let Some(handle) = &runtime.reservations {
            *lock(&self.engine) = Some(Arc::new(ReserveTarget::new(Some(handle.clone()), "/api", None)));
        }
        let site = PolicySite { config: &runtime.config, route: "api", upstream: None, priority: Priority::Normal };
        let policies = [(PolicyKind::Room, "sale"), (PolicyKind::Limit, "api")]
            .into_iter()
            .map(|(kind, name)| runtime.policies.policy(&PolicyRef { kind, name: name.into() }, &site))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.fail(format!("node {i}: {e}")))?;
        let rename = (self.options.bug == Some(Bug::SkipPerUserCheckOnOneNode) && i == 1).then(|| "@node1".into());
        let forward =
            Forward { engine: self.engine.clone(), passed: self.truth.clone(), net: self.net.clone(), rename };
        Ok(Pipeline::new(policies, Arc::new(forward)))
    }

    async fn run(mut self) -> Result<Report, Failure> {
        // A node that cannot start (a reply from its store lost while it applies its config) is started
        // again, as its supervisor would.
        for i in 0..self.options.nodes.max(1) {
            let mut attempt = 0;
            let node = loop {
                match self.build(i).await {
                    Ok(node) => break node,
                    Err(e) if attempt >= 10 => return Err(e),
                    Err(_) => attempt += 1,
                }
            };
            self.nodes.push(node);
        }
        let steps = self.options.seconds * 1000 / STEP_MS;
        for step in 0..steps {
            self.step = step;
            self.net.now_ms.fetch_add(STEP_MS, std::sync::atomic::Ordering::SeqCst);
            for node in &self.nodes {
                node.clock.advance(Duration::from_millis(STEP_MS));
            }
            self.faults().await?;
            self.act().await?;
            for node in &self.nodes {
                for component in node.runtime.components() {
                    component.tick(step).await;
                }
            }
            self.check()?;
        }
        self.report.steps = steps;
        self.report.lost_replies = self.net.lost.load(std::sync::atomic::Ordering::SeqCst);
        self.report.disturbed = self.clients.iter().filter(|c| c.disturbed).count() as u64;
        self.report.let_through = self.clients.iter().filter(|c| c.through_at.is_some()).count() as u64;
        self.report.confirmed = lock(&self.truth).confirmed.values().map(|c| c.len() as u64).sum();
        Ok(self.report)
    }

    /// Outages now and then; a node restarted now and then; the ledger's node crashed now and then.
    async fn faults(&mut self) -> Result<(), Failure> {
        if self.rng.u32(..400) == 0 {
            let until = self.net.now() + self.rng.u64(500..3_000);
            self.net.down_until.store(until, std::sync::atomic::Ordering::SeqCst);
            self.report.outages += 1;
        }
        // A rolling restart: the new process takes over once it has started; one that cannot start (its
        // store is down) leaves the old one serving.
        if self.nodes.len() > 1 && self.rng.u32(..300) == 0 {
            let i = self.rng.usize(1..self.nodes.len());
            if let Ok(node) = self.build(i).await {
                self.nodes[i] = node;
                self.report.restarts += 1;
            }
        }
        // A reload (SIGHUP) of one node with the same file: everything it carries over must carry over.
        if self.rng.u32(..200) == 0 {
            let i = self.rng.usize(..self.nodes.len());
            if self.crashed.is_none() || i != 0 {
                self.reload(i).await?;
            }
        }
        if self.crashed.is_some() {
            self.recover_ledger().await?;
        } else if self.rng.u32(..500) == 0 {
            self.crash_ledger().await?;
        }
        Ok(())
    }

    /// Reloads node `i` with its own config: a new runtime built from the running one, as SIGHUP does. A reload
    /// the store cannot take (its reply lost while the config is applied) is rejected and the old one stays.
    async fn reload(&mut self, i: usize) -> Result<(), Failure> {
        let config = Config::parse(&self.config).map_err(|e| self.fail(format!("config: {e}")))?;
        let node = &self.nodes[i];
        let services = node.services.clone();
        let Ok(runtime) = Runtime::build(config, &services, Some(&node.runtime), AccessLog::off(), i == 0) else {
            return Ok(());
        };
        if runtime.apply().await.is_err() {
            return Ok(());
        }
        let runtime = Arc::new(runtime);
        let pipeline = self.pipeline(i, &runtime)?;
        let clock = node.clock.clone();
        self.nodes[i] = Node { runtime, pipeline, clock, services };
        self.report.reloads += 1;
        Ok(())
    }

    /// Kills the engine's node; it comes back as soon as it can start (not while its store is down).
    async fn crash_ledger(&mut self) -> Result<(), Failure> {
        let Some(before) = self.nodes[0].runtime.reservations.clone() else { return Ok(()) };
        self.crashed = Some(before.state_hash());
        before.close();
        *lock(&self.engine) = None;
        self.report.ledger_crashes += 1;
        self.recover_ledger().await
    }

    /// Starts the engine's node again: the state replayed from the ledger must be the state it had
    /// acknowledged before the crash.
    async fn recover_ledger(&mut self) -> Result<(), Failure> {
        let Some(hash) = self.crashed else { return Ok(()) };
        let Ok(node) = self.build(0).await else { return Ok(()) };
        self.nodes[0] = node;
        self.crashed = None;
        let after = self.nodes[0].runtime.reservations.clone().ok_or_else(|| self.fail("no engine after restart"))?;
        if after.state_hash() != hash {
            return Err(self.fail("the state replayed from the ledger differs from the state before the crash"));
        }
        Ok(())
    }

    /// Every client that has arrived and has no answer yet acts once, in an order that changes every step.
    async fn act(&mut self) -> Result<(), Failure> {
        let now = self.net.now();
        let mut order: Vec<usize> = (0..self.clients.len())
            .filter(|&i| self.clients[i].phase != Phase::Done && self.clients[i].arrives_ms <= now)
            .collect();
        self.rng.shuffle(&mut order);
        for i in order {
            let node = self.rng.usize(..self.nodes.len());
            self.visit(i, node).await?;
        }
        Ok(())
    }

    async fn visit(&mut self, i: usize, node: usize) -> Result<(), Failure> {
        let client = &mut self.clients[i];
        client.phase = Phase::Trying;
        let body = serde_json::json!({ "user": client.user, "quantity": 1 }).to_string();
        let mut req = Request::post("/api/inventories/drop/claims")
            .header("accept", "application/json")
            .header("idempotency-key", &client.key)
            .body(RequestBody::buffered(Bytes::from(body)))
            .map_err(|e| Failure { seed: self.seed, step: self.step, what: e.to_string() })?;
        if let Some(cookie) = client.cookie_header()
            && let Ok(v) = HeaderValue::from_str(&cookie)
        {
            req.headers_mut().insert(http::header::COOKIE, v);
        }
        let ip: IpAddr = client.ip;
        let ctx = RequestCtx {
            client_ip: ip,
            scheme: "http",
            request_id: HeaderValue::from_static("sim"),
            route: Arc::from("api"),
            accept: Accept::Json,
            forwarding: Arc::new(Forwarding::new(ip, "http")),
        };
        let node = &self.nodes[node];
        let lost_before = self.net.lost.load(std::sync::atomic::Ordering::SeqCst);
        let response = match node.pipeline.run(req, &ctx).await {
            Ok(r) => r,
            Err(e) => e.into_response(Accept::Json),
        };
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        // Now and then the answer is lost on its way back: the client asks again next step, same key.
        let lost = self.rng.u32(..50) == 0;
        let client = &mut self.clients[i];
        client.take_cookies(&parts.headers);
        if self.net.lost.load(std::sync::atomic::Ordering::SeqCst) != lost_before {
            client.disturbed = true;
        }
        let error = json["error"].as_str().unwrap_or("");
        // Its place in arrival order is fixed by its first answer from the room, held or let through, so a
        // newcomer let in past a waiting line counts as an inversion too.
        if client.joined.is_none() && error != "room_unavailable" {
            client.joined = Some(self.joined);
            self.joined += 1;
        }
        match (parts.status, error) {
            (StatusCode::SERVICE_UNAVAILABLE, "room_unavailable") => {}
            (StatusCode::SERVICE_UNAVAILABLE, "") if json["state"].is_string() => {}
            (StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS, _) => {
                client.through_at.get_or_insert(self.step);
            }
            (status, _) => {
                client.through_at.get_or_insert(self.step);
                let mut truth = lock(&self.truth);
                if let Some(claim) = json["claim"].as_u64() {
                    truth.by_key.entry(client.key.clone()).or_default().insert(claim);
                    if json["status"] == "confirmed" {
                        truth.confirmed.entry(client.user.clone()).or_default().insert(claim);
                    }
                }
                // With its answer, a client keeps hitting refresh for a few seconds, as bots and the anxious
                // do: the replays must answer with the same claim, and the rate limit must hold across nodes.
                if !lost && (status.is_success() || status.is_client_error()) {
                    let answered = *client.answered_at.get_or_insert(self.step);
                    if self.step >= answered + REFRESHING_STEPS {
                        client.phase = Phase::Done;
                    }
                }
            }
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), Failure> {
        let now = self.net.now();
        if let Some(engine) = &self.nodes[0].runtime.reservations
            && self.crashed.is_none()
        {
            engine.check_invariants().map_err(|e| self.fail(format!("engine: {e}")))?;
        }
        let snapshot = self.backend.room_snapshot("sale").ok_or_else(|| self.fail("no room"))?;
        let mut truth = lock(&self.truth);
        let room = check::Room {
            per_minute: PER_MINUTE,
            cap: CAP,
            // A session ends on the whole second its pass expires: it lasts at least one second less than
            // its duration, so that is the window in which the cap must hold.
            session_steps: (SESSION_MS - 1000) / STEP_MS,
            steps_per_minute: 60_000 / STEP_MS,
        };
        let result = check::reservations(&truth, self.options.stock, PER_USER)
            .and_then(|()| check::room(&truth, &snapshot, room, now))
            .and_then(|()| check::room_as_seen(&self.clients, room, self.step))
            .and_then(|()| check::fifo(&self.clients))
            .and_then(|()| check::limits(&truth, PER_SECOND));
        truth.released.push((now, snapshot.counters.released));
        drop(truth);
        result.map_err(|e| self.fail(e))
    }
}
