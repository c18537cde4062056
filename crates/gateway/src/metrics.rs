//! Prometheus metrics. Handles for each route and address are looked up once when the config is built, so
//! the request path only touches atomics.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Upper bounds in seconds: fine-grained below 100 ms, where a healthy proxy lives.
const LATENCY_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_class(status: u16) -> usize {
    ((status / 100).clamp(1, 5) - 1) as usize
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status_class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AddressLabels {
    pub upstream: String,
    pub address: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoomLabels {
    room: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitKeyLabels {
    limit: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    room: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClaimLabels {
    inventory: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InventoryLabels {
    inventory: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheStatusLabels {
    cache: String,
    status: &'static str,
}

/// The caches' metric families, shared by every cache (each labels its own).
#[derive(Debug, Clone, Default)]
struct CacheFamilies {
    requests: Family<CacheStatusLabels, Counter>,
    fetches: Family<CacheLabels, Counter>,
    coalesced: Family<CacheLabels, Counter>,
    waiting: Family<CacheLabels, Gauge>,
    bytes: Family<CacheLabels, Gauge>,
    entries: Family<CacheLabels, Gauge>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShieldLabels {
    shield: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShieldScopeLabels {
    shield: String,
    scope: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShieldTransitionLabels {
    shield: String,
    scope: String,
    to: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShieldReasonLabels {
    shield: String,
    reason: &'static str,
}

/// Upper bounds in seconds for estimated waits shown to clients: ten seconds to four hours.
const WAIT_BUCKETS: [f64; 12] =
    [10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Every metric the gateway exports. Lives across reloads so counters never reset.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    latency: Family<HttpLabels, Histogram, fn() -> Histogram>,
    pub upstream_connections: Family<AddressLabels, Gauge>,
    pub upstream_in_flight: Family<AddressLabels, Gauge>,
    pub upstream_connect_failures: Family<AddressLabels, Counter>,
    pub upstream_ejections: Family<AddressLabels, Counter>,
    connections: Family<ListenerLabels, Gauge>,
    reloads: Family<OutcomeLabels, Counter>,
    pub access_log_dropped: Counter,
    accept_failures: Counter,
    room_waiting: Family<RoomLabels, Gauge>,
    room_active: Family<RoomLabels, Gauge>,
    room_unclaimed: Family<RoomLabels, Gauge>,
    room_counters: [Family<RoomLabels, Counter>; 6],
    room_refused: Family<RefusalLabels, Counter>,
    room_wait: Family<RoomLabels, Histogram, fn() -> Histogram>,
    limit_requests: Family<LimitLabels, Counter>,
    limit_keys: Family<LimitKeyLabels, Gauge>,
    reserve: ReserveMetrics,
    shield: ShieldFamilies,
    cache: CacheFamilies,
}

/// The shields' metric families, shared by every shield (each labels its own).
#[derive(Debug, Clone, Default)]
struct ShieldFamilies {
    state: Family<ShieldScopeLabels, Gauge>,
    transitions: Family<ShieldTransitionLabels, Counter>,
    refused: Family<ShieldReasonLabels, Counter>,
    retries: Family<ShieldReasonLabels, Counter>,
    fallbacks: Family<ShieldLabels, Counter>,
    in_flight: Family<ShieldLabels, Gauge>,
    queued: Family<ShieldLabels, Gauge>,
    limit: Family<ShieldLabels, Gauge>,
}

/// The room counters exported from the model's running totals: name, help.
const ROOM_COUNTERS: [(&str, &str); 6] = [
    ("room_joined", "Clients who took a place in the room's line"),
    ("room_released", "Places released for admission"),
    ("room_admitted", "Passes issued: released places claimed plus clients let straight in"),
    ("room_abandoned", "Waiting clients who stopped polling and lost their place"),
    ("room_no_shows", "Released clients who never came back for their pass"),
    ("room_left", "Clients who left the line themselves"),
];

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("spillway");
        let requests = Family::<HttpLabels, Counter>::default();
        let latency: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        let m = Self {
            requests,
            latency,
            upstream_connections: Family::default(),
            upstream_in_flight: Family::default(),
            upstream_connect_failures: Family::default(),
            upstream_ejections: Family::default(),
            connections: Family::default(),
            reloads: Family::default(),
            access_log_dropped: Counter::default(),
            accept_failures: Counter::default(),
            room_waiting: Family::default(),
            room_active: Family::default(),
            room_unclaimed: Family::default(),
            room_counters: Default::default(),
            room_refused: Family::default(),
            room_wait: Family::new_with_constructor(|| Histogram::new(WAIT_BUCKETS)),
            limit_requests: Family::default(),
            limit_keys: Family::default(),
            reserve: ReserveMetrics::default(),
            shield: ShieldFamilies::default(),
            cache: CacheFamilies::default(),
            registry: Registry::default(),
        };
        registry.register("http_requests", "Requests answered, by route and status class", m.requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time from request received to response headers sent, by route and status class",
            m.latency.clone(),
        );
        registry.register(
            "upstream_connections",
            "Open connections to each upstream address",
            m.upstream_connections.clone(),
        );
        registry.register(
            "upstream_in_flight",
            "Requests in flight to each upstream address",
            m.upstream_in_flight.clone(),
        );
        registry.register(
            "upstream_connect_failures",
            "Failed connection attempts to each upstream address",
            m.upstream_connect_failures.clone(),
        );
        registry.register("upstream_ejections", "Times an upstream address was ejected", m.upstream_ejections.clone());
        registry.register("connections_open", "Client connections open, by listener", m.connections.clone());
        registry.register("config_reloads", "Configuration reloads by outcome", m.reloads.clone());
        registry.register(
            "accept_failures",
            "Connections the public listener failed to accept (usually the file-descriptor limit)",
            m.accept_failures.clone(),
        );
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            m.access_log_dropped.clone(),
        );
        registry.register("room_waiting", "Clients waiting in the room", m.room_waiting.clone());
        registry.register("room_active_sessions", "Sessions admitted and not yet expired", m.room_active.clone());
        registry.register(
            "room_unclaimed",
            "Places released whose clients have not yet come for their pass",
            m.room_unclaimed.clone(),
        );
        for ((name, help), family) in ROOM_COUNTERS.iter().zip(&m.room_counters) {
            registry.register(*name, *help, family.clone());
        }
        registry.register(
            "room_tokens_refused",
            "Tickets and passes that did not count, by reason; their holders were treated as new",
            m.room_refused.clone(),
        );
        registry.register(
            "room_estimated_wait_seconds",
            "Estimated waits shown to waiting clients",
            m.room_wait.clone(),
        );
        registry.register(
            "limit_requests",
            "Requests seen by each rate limit, by outcome (allowed, limited, shadow_limited, throttled, denied, exempt)",
            m.limit_requests.clone(),
        );
        registry.register("limit_keys", "Keys each rate limit tracks", m.limit_keys.clone());
        let c = &m.cache;
        registry.register(
            "cache_requests",
            "Requests through a cache by x-cache status: HIT, MISS, STALE, BYPASS",
            c.requests.clone(),
        );
        registry.register("cache_origin_fetches", "Fetches a cache made from the origin", c.fetches.clone());
        registry.register(
            "cache_coalesced",
            "Requests answered from another request's fetch instead of going to the origin",
            c.coalesced.clone(),
        );
        registry.register(
            "cache_waiting",
            "Requests waiting for another request's fetch of their key",
            c.waiting.clone(),
        );
        registry.register("cache_bytes", "Memory held by a cache's entries", c.bytes.clone());
        registry.register("cache_entries", "Entries a cache holds", c.entries.clone());
        let sh = &m.shield;
        registry.register(
            "shield_breaker_state",
            "Circuit breaker state by shield and scope: 0 closed, 1 half-open, 2 open",
            sh.state.clone(),
        );
        registry.register(
            "shield_breaker_transitions",
            "Circuit breaker state changes, by the state entered",
            sh.transitions.clone(),
        );
        registry.register(
            "shield_refused",
            "Requests a shield answered itself, by reason (circuit_open, queue_full, queue_timeout, memory)",
            sh.refused.clone(),
        );
        registry.register(
            "shield_retries",
            "Retries made (attempted) and retries the budget refused (budget_exhausted)",
            sh.retries.clone(),
        );
        registry.register("shield_fallbacks", "Fallback answers sent instead of an error", sh.fallbacks.clone());
        registry.register("shield_in_flight", "Requests in flight through a shield's bulkhead", sh.in_flight.clone());
        registry.register(
            "shield_queued",
            "Requests waiting in a shield's line for a place in flight",
            sh.queued.clone(),
        );
        registry.register(
            "shield_concurrency_limit",
            "The bulkhead's current limit (moves when adaptive)",
            sh.limit.clone(),
        );
        let r = &m.reserve;
        registry.register(
            "reserve_claims",
            "Claims answered, by inventory and outcome (confirmed, held, waitlisted, replayed, or the error code)",
            r.claims.clone(),
        );
        registry.register("reserve_capacity", "Items or units each inventory has", r.capacity.clone());
        registry.register("reserve_remaining", "Items or units not confirmed or held", r.remaining.clone());
        registry.register("reserve_held", "Items or units held and not yet confirmed", r.held.clone());
        registry.register("reserve_waitlisted", "Claims waiting in line for freed stock", r.waitlisted.clone());
        registry.register(
            "reserve_ledger_commits",
            "Ledger transactions committed (one fsync each)",
            r.commits.clone(),
        );
        registry.register(
            "reserve_ledger_appends",
            "Operations made durable by those commits; appends / commits is the mean batch size",
            r.appends.clone(),
        );
        registry.register("reserve_ledger_events", "Events written to the ledger", r.events.clone());
        registry.register(
            "reserve_ledger_commit_seconds",
            "Time spent writing and committing; divided by commits, the mean commit latency",
            r.commit_seconds.clone(),
        );
        registry.register(
            "reserve_ledger_up",
            "1 while the ledger takes writes; 0 once a write failed and it stopped (restart the process)",
            r.ledger_up.clone(),
        );
        registry.register(
            "reserve_claims_kept",
            "Claims held in memory: live ones, and finished ones within reservations.idempotency_retention",
            r.claims_kept.clone(),
        );
        registry.register("reserve_users_kept", "Users with a claim held in memory", r.users_kept.clone());
        registry.register(
            "reserve_ledger_commit_duration_seconds",
            "Each commit's time, writing and fsync included: the tail shows a disk that stalls",
            r.commit_latency.clone(),
        );
        registry.register(
            "reserve_ledger_commit_batch_size",
            "Operations (claims, confirmations, cancellations, expiries) made durable by each commit",
            r.commit_batch.clone(),
        );
        registry.register("build", "Build information", Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]));
        Arc::new(Self { registry, ..m })
    }

    /// Prometheus/OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn route(&self, route: &str) -> RouteMetrics {
        let handles = STATUS_CLASSES.map(|status_class| {
            let labels = HttpLabels { route: route.to_string(), status_class };
            (self.requests.get_or_create(&labels).clone(), self.latency.get_or_create(&labels).clone())
        });
        RouteMetrics { handles: Arc::new(handles) }
    }

    pub fn room(&self, room: &str) -> RoomMetrics {
        let labels = RoomLabels { room: room.to_string() };
        RoomMetrics {
            waiting: self.room_waiting.get_or_create(&labels).clone(),
            active: self.room_active.get_or_create(&labels).clone(),
            unclaimed: self.room_unclaimed.get_or_create(&labels).clone(),
            counters: Arc::new(self.room_counters.each_ref().map(|f| f.get_or_create(&labels).clone())),
            refused: Arc::new(spillway_core::token::Refusal::ALL.map(|reason| {
                let labels = RefusalLabels { room: room.to_string(), reason: reason.as_str() };
                self.room_refused.get_or_create(&labels).clone()
            })),
            wait: self.room_wait.get_or_create(&labels).clone(),
        }
    }

    pub fn limit(&self, limit: &str) -> LimitMetrics {
        let counters = LimitOutcome::ALL.map(|outcome| {
            self.limit_requests
                .get_or_create(&LimitLabels { limit: limit.to_string(), outcome: outcome.as_str() })
                .clone()
        });
        let keys = self.limit_keys.get_or_create(&LimitKeyLabels { limit: limit.to_string() }).clone();
        LimitMetrics { counters: Arc::new(counters), keys }
    }

    pub fn cache(&self, cache: &str) -> CacheMetrics {
        CacheMetrics { name: cache.to_string(), families: self.cache.clone() }
    }

    pub fn shield(&self, shield: &str) -> ShieldMetrics {
        ShieldMetrics { name: shield.to_string(), families: self.shield.clone() }
    }

    pub fn reserve(&self) -> ReserveMetrics {
        self.reserve.clone()
    }

    pub fn connection_opened(&self, listener: &'static str) -> ConnectionGauge {
        let gauge = self.connections.get_or_create(&ListenerLabels { listener }).clone();
        gauge.inc();
        ConnectionGauge(gauge)
    }

    pub fn accept_failed(&self) {
        self.accept_failures.inc();
    }

    pub fn reload(&self, applied: bool) {
        let outcome = if applied { "applied" } else { "rejected" };
        self.reloads.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}

/// One route's counters and histograms, one per status class.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    handles: Arc<[(Counter, Histogram); 5]>,
}

impl RouteMetrics {
    pub fn observe(&self, status: u16, seconds: f64) {
        let (count, latency) = &self.handles[status_class(status)];
        count.inc();
        latency.observe(seconds);
    }
}

/// What a rate limit did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitOutcome {
    Allowed,
    Limited,
    ShadowLimited,
    /// Held for a while (counted once per wait; the request is then counted again as allowed or limited).
    Throttled,
    Denied,
    Exempt,
}

impl LimitOutcome {
    const ALL: [Self; 6] =
        [Self::Allowed, Self::Limited, Self::ShadowLimited, Self::Throttled, Self::Denied, Self::Exempt];

    fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Limited => "limited",
            Self::ShadowLimited => "shadow_limited",
            Self::Throttled => "throttled",
            Self::Denied => "denied",
            Self::Exempt => "exempt",
        }
    }
}

/// One limit's counters, looked up once so a request only touches atomics.
#[derive(Debug, Clone)]
pub struct LimitMetrics {
    counters: Arc<[Counter; 6]>,
    keys: Gauge,
}

impl LimitMetrics {
    pub fn count(&self, outcome: LimitOutcome) {
        self.counters[outcome as usize].inc();
    }

    pub fn keys(&self, tracked: u64) {
        self.keys.set(gauge(tracked));
    }
}

/// One room's figures.
#[derive(Debug, Clone)]
pub struct RoomMetrics {
    waiting: Gauge,
    active: Gauge,
    unclaimed: Gauge,
    counters: Arc<[Counter; 6]>,
    /// One counter per refusal reason, in `Refusal::ALL` order.
    refused: Arc<[Counter; spillway_core::token::Refusal::ALL.len()]>,
    wait: Histogram,
}

impl RoomMetrics {
    pub fn refused(&self, reason: spillway_core::token::Refusal) {
        if let Some(i) = spillway_core::token::Refusal::ALL.iter().position(|r| *r == reason) {
            self.refused[i].inc();
        }
    }

    pub fn observe_wait(&self, eta_seconds: Option<u64>) {
        if let Some(eta) = eta_seconds {
            self.wait.observe(eta as f64);
        }
    }

    /// Sets the gauges from a snapshot and moves the counters on by what the model counted since `last`.
    pub fn publish(&self, s: &spillway_core::room::Snapshot, last: &spillway_core::room::Counters) {
        self.waiting.set(gauge(s.waiting));
        self.active.set(gauge(s.active_sessions));
        self.unclaimed.set(gauge(s.unclaimed));
        let (now, before) = (&s.counters, last);
        let deltas = [
            now.joined.saturating_sub(before.joined),
            now.released.saturating_sub(before.released),
            now.entered.saturating_sub(before.entered),
            now.abandoned.saturating_sub(before.abandoned),
            now.no_shows.saturating_sub(before.no_shows),
            now.left.saturating_sub(before.left),
        ];
        for (counter, delta) in self.counters.iter().zip(deltas) {
            counter.inc_by(delta);
        }
    }
}

/// Decrements the open-connections gauge when the connection ends, however it ends.
#[derive(Debug)]
pub struct ConnectionGauge(Gauge);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Commit latency buckets, seconds: a healthy local fsync is 0.1-1 ms, a struggling disk tens of ms.
const COMMIT_BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// The reservation engine's figures. Gauges and ledger totals are set at scrape time from the engine and the
/// ledger writer's own counters, so the claim path only counts outcomes.
#[derive(Debug, Clone)]
pub struct ReserveMetrics {
    claims: Family<ClaimLabels, Counter>,
    /// Each inventory's outcome counters, found by `&str` without building a label set per claim.
    by_inventory: Arc<std::sync::RwLock<std::collections::HashMap<String, Arc<[Counter; CLAIM_OUTCOMES.len()]>>>>,
    capacity: Family<InventoryLabels, Gauge>,
    remaining: Family<InventoryLabels, Gauge>,
    held: Family<InventoryLabels, Gauge>,
    waitlisted: Family<InventoryLabels, Gauge>,
    commits: Counter,
    appends: Counter,
    events: Counter,
    commit_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    ledger_up: Gauge,
    claims_kept: Gauge,
    users_kept: Gauge,
    /// Observed by the ledger's writer thread, once per commit.
    commit_latency: Histogram,
    commit_batch: Histogram,
    /// The ledger totals already published, to move the counters on by the difference.
    published: Arc<std::sync::Mutex<[u64; 4]>>,
}

impl Default for ReserveMetrics {
    fn default() -> Self {
        Self {
            claims: Family::default(),
            by_inventory: Arc::default(),
            capacity: Family::default(),
            remaining: Family::default(),
            held: Family::default(),
            waitlisted: Family::default(),
            commits: Counter::default(),
            appends: Counter::default(),
            events: Counter::default(),
            commit_seconds: Counter::default(),
            ledger_up: Gauge::default(),
            claims_kept: Gauge::default(),
            users_kept: Gauge::default(),
            commit_latency: Histogram::new(COMMIT_BUCKETS),
            // 1, 2, 4 … 4096: the writer commits at most 4096 appends at once.
            commit_batch: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 13)),
            published: Arc::default(),
        }
    }
}

/// Every outcome a claim can have: its status, a replay, or an error code.
const CLAIM_OUTCOMES: [&str; 13] = [
    "confirmed",
    "held",
    "waitlisted",
    "replayed",
    "sold_out",
    "limit_reached",
    "unit_taken",
    "closed",
    "invalid",
    "not_found",
    "hold_expired",
    "idempotency_conflict",
    "ledger_unavailable",
];

impl ReserveMetrics {
    pub fn claim(
        &self,
        inventory: &str,
        result: &Result<spillway_core::reserve::Reply, spillway_reserve::ReserveError>,
    ) {
        let outcome = match result {
            Ok(reply) if reply.replayed => "replayed",
            Ok(reply) => reply.status.as_str(),
            Err(spillway_reserve::ReserveError::Claim(e)) => e.code(),
            Err(spillway_reserve::ReserveError::Ledger(_)) => "ledger_unavailable",
        };
        let Some(i) = CLAIM_OUTCOMES.iter().position(|o| *o == outcome) else {
            self.claims.get_or_create(&ClaimLabels { inventory: inventory.to_string(), outcome }).inc();
            return;
        };
        let known = self.by_inventory.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(inventory).cloned();
        let counters = known.unwrap_or_else(|| {
            let counters = Arc::new(CLAIM_OUTCOMES.map(|outcome| {
                self.claims.get_or_create(&ClaimLabels { inventory: inventory.to_string(), outcome }).clone()
            }));
            let mut map = self.by_inventory.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Inventories are few and live as long as the ledger; a bound keeps junk names from growing it.
            if map.len() < 10_000 {
                map.insert(inventory.to_string(), counters.clone());
            }
            counters
        });
        counters[i].inc();
    }

    pub fn inventory(&self, inventory: &str, counts: &spillway_core::reserve::Counts) {
        let labels = InventoryLabels { inventory: inventory.to_string() };
        self.capacity.get_or_create(&labels).set(gauge(counts.capacity));
        self.remaining.get_or_create(&labels).set(gauge(counts.remaining()));
        self.held.get_or_create(&labels).set(gauge(counts.held));
        self.waitlisted.get_or_create(&labels).set(gauge(counts.waitlisted));
    }

    /// What the engine holds in memory: flat under churn once the retention window is full.
    pub fn kept(&self, claims: usize, users: usize) {
        self.claims_kept.set(gauge(claims));
        self.users_kept.set(gauge(users));
    }

    pub fn ledger_up(&self, up: bool) {
        self.ledger_up.set(i64::from(up));
    }

    /// What the ledger's writer calls after each commit.
    pub fn commit_observer(&self) -> spillway_store::sqlite::CommitObserver {
        let (latency, batch) = (self.commit_latency.clone(), self.commit_batch.clone());
        spillway_store::sqlite::CommitObserver(Box::new(move |took, appends| {
            latency.observe(took.as_secs_f64());
            batch.observe(appends as f64);
        }))
    }

    pub fn ledger(&self, commits: u64, appends: u64, events: u64, commit_micros: u64) {
        let mut last = self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = [commits, appends, events, commit_micros];
        self.commits.inc_by(now[0].saturating_sub(last[0]));
        self.appends.inc_by(now[1].saturating_sub(last[1]));
        self.events.inc_by(now[2].saturating_sub(last[2]));
        self.commit_seconds.inc_by(now[3].saturating_sub(last[3]) as f64 / 1e6);
        *last = now;
    }
}

/// One shield's figures.
#[derive(Debug, Clone)]
pub struct ShieldMetrics {
    name: String,
    families: ShieldFamilies,
}

impl ShieldMetrics {
    pub fn state(&self, scope: &str, state: &str) {
        let value = match state {
            "open" => 2,
            "half_open" => 1,
            _ => 0,
        };
        self.families
            .state
            .get_or_create(&ShieldScopeLabels { shield: self.name.clone(), scope: scope.to_string() })
            .set(value);
    }

    pub fn transition(&self, scope: &str, to: &'static str) {
        let labels = ShieldTransitionLabels { shield: self.name.clone(), scope: scope.to_string(), to };
        self.families.transitions.get_or_create(&labels).inc();
        self.state(scope, to);
        tracing::info!(shield = %self.name, scope, to, "circuit breaker changed state");
    }

    pub fn refused(&self, reason: &'static str) {
        self.families.refused.get_or_create(&ShieldReasonLabels { shield: self.name.clone(), reason }).inc();
    }

    pub fn retry(&self, reason: &'static str) {
        self.families.retries.get_or_create(&ShieldReasonLabels { shield: self.name.clone(), reason }).inc();
    }

    pub fn fallback(&self) {
        self.families.fallbacks.get_or_create(&ShieldLabels { shield: self.name.clone() }).inc();
    }

    pub fn gate(&self, in_flight: u32, queued: u32, limit: u32) {
        let labels = ShieldLabels { shield: self.name.clone() };
        self.families.in_flight.get_or_create(&labels).set(i64::from(in_flight));
        self.families.queued.get_or_create(&labels).set(i64::from(queued));
        self.families.limit.get_or_create(&labels).set(i64::from(limit));
    }
}

/// One cache's figures.
#[derive(Debug, Clone)]
pub struct CacheMetrics {
    name: String,
    families: CacheFamilies,
}

/// Counts a request as waiting for another's fetch until dropped.
#[derive(Debug)]
pub struct Waiting(Gauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl CacheMetrics {
    fn labels(&self) -> CacheLabels {
        CacheLabels { cache: self.name.clone() }
    }

    pub fn request(&self, status: &'static str) {
        self.families.requests.get_or_create(&CacheStatusLabels { cache: self.name.clone(), status }).inc();
    }

    pub fn origin_fetch(&self) {
        self.families.fetches.get_or_create(&self.labels()).inc();
    }

    pub fn coalesced(&self) {
        self.families.coalesced.get_or_create(&self.labels()).inc();
    }

    pub fn waiting(&self) -> Waiting {
        let gauge = self.families.waiting.get_or_create(&self.labels()).clone();
        gauge.inc();
        Waiting(gauge)
    }

    pub fn size(&self, bytes: usize, entries: usize) {
        self.families.bytes.get_or_create(&self.labels()).set(gauge(bytes));
        self.families.entries.get_or_create(&self.labels()).set(gauge(entries));
    }
}

/// A count as a gauge's value: counts are unsigned and a gauge is an `i64`, so a count past `i64::MAX` (a
/// counted stock as large as the type) shows as the largest value instead of wrapping negative.
fn gauge(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}
