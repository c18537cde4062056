//! The reservation engine's figures, registered under `spillway_reserve_`. Gauges and ledger totals are set
//! at scrape time from the engine and the ledger writer's own counters, so the claim path only counts
//! outcomes.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::gauge;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClaimLabels {
    inventory: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InventoryLabels {
    inventory: String,
}

/// Commit latency buckets, seconds: a healthy local fsync is 0.1-1 ms, a struggling disk tens of ms.
const COMMIT_BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// The reservation engine's figures. Gauges and ledger totals are set at scrape time from the engine and the
/// ledger writer's own counters, so the claim path only counts outcomes.
#[derive(Debug, Clone)]
pub struct ReserveMetrics {
    claims: Family<ClaimLabels, Counter>,
    /// Each inventory's outcome counters, found by `&str` without building a label set per claim.
    by_inventory: Arc<std::sync::RwLock<std::collections::HashMap<String, Arc<[Counter]>>>>,
    outcomes: Arc<[&'static str]>,
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
            outcomes: claim_outcomes().into(),
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

/// Every outcome a claim can have: its status, a replay, one of the engine's error codes, or the ledger's.
fn claim_outcomes() -> Vec<&'static str> {
    let answers = ["confirmed", "held", "waitlisted", "replayed"];
    answers.into_iter().chain(spillway_core::reserve::ClaimError::CODES).chain(["ledger_unavailable"]).collect()
}

impl ReserveMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let r = Self::default();
        registry.register(
            "claims",
            "Claims answered, by inventory and outcome (confirmed, held, waitlisted, replayed, or the error code)",
            r.claims.clone(),
        );
        registry.register("capacity", "Items or units each inventory has", r.capacity.clone());
        registry.register("remaining", "Items or units not confirmed or held", r.remaining.clone());
        registry.register("held", "Items or units held and not yet confirmed", r.held.clone());
        registry.register("waitlisted", "Claims waiting in line for freed stock", r.waitlisted.clone());
        registry.register("ledger_commits", "Ledger transactions committed (one fsync each)", r.commits.clone());
        registry.register(
            "ledger_appends",
            "Operations made durable by those commits; appends / commits is the mean batch size",
            r.appends.clone(),
        );
        registry.register("ledger_events", "Events written to the ledger", r.events.clone());
        registry.register(
            "ledger_commit_seconds",
            "Time spent writing and committing; divided by commits, the mean commit latency",
            r.commit_seconds.clone(),
        );
        registry.register(
            "ledger_up",
            "1 while the ledger takes writes; 0 once a write failed and it stopped (restart the process)",
            r.ledger_up.clone(),
        );
        registry.register(
            "claims_kept",
            "Claims held in memory: live ones, and finished ones within reservations.idempotency_retention",
            r.claims_kept.clone(),
        );
        registry.register("users_kept", "Users with a claim held in memory", r.users_kept.clone());
        registry.register(
            "ledger_commit_duration_seconds",
            "Each commit's time, writing and fsync included: the tail shows a disk that stalls",
            r.commit_latency.clone(),
        );
        registry.register(
            "ledger_commit_batch_size",
            "Operations (claims, confirmations, cancellations, expiries) made durable by each commit",
            r.commit_batch.clone(),
        );
        r
    }

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
        let Some(i) = self.outcomes.iter().position(|o| *o == outcome) else {
            self.claims.get_or_create(&ClaimLabels { inventory: inventory.to_string(), outcome }).inc();
            return;
        };
        self.counters(inventory)[i].inc();
    }

    /// One inventory's outcome counters, found by `&str` without building a label set per claim.
    fn counters(&self, inventory: &str) -> Arc<[Counter]> {
        let known = self.by_inventory.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(inventory).cloned();
        known.unwrap_or_else(|| {
            let counters: Arc<[Counter]> = self
                .outcomes
                .iter()
                .map(|&outcome| {
                    self.claims.get_or_create(&ClaimLabels { inventory: inventory.to_string(), outcome }).clone()
                })
                .collect();
            let mut map = self.by_inventory.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Inventories are few and live as long as the ledger; a bound keeps junk names from growing it.
            if map.len() < 10_000 {
                map.insert(inventory.to_string(), counters.clone());
            }
            counters
        })
    }

    pub fn inventory(&self, inventory: &str, counts: &spillway_core::reserve::Counts) {
        // Every outcome shows from the start, at zero, so a rate over it is defined before the first claim.
        self.counters(inventory);
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
    pub fn commit_observer(&self) -> spillway_store::CommitObserver {
        let (latency, batch) = (self.commit_latency.clone(), self.commit_batch.clone());
        spillway_store::CommitObserver(Box::new(move |took, appends| {
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
