//! The reservation engine inside the gateway: one per process, opened from its ledger at start, kept across
//! reloads, served as a route target ([`api`]) so rooms and limits apply in front of it, and managed on the
//! admin listener.
//!
//! The gateway adds three things to the engine: time (the clock, and a ticker that returns expired holds
//! within a tick of their expiry), notifications (a claim's watchers hear about promotions and expiries once
//! they are durable) and metrics.

pub mod admin;
pub mod api;
pub mod metrics;
mod spec;
mod sse;
mod view;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use spillway_config::Config;
use spillway_core::reserve::{Claim, ClaimError, ClaimRequest, Counts, Event, InventorySpec, Reply};
use spillway_reserve::{Reservations, ReserveError};
use spillway_store::{Backend, LedgerStats};

use crate::clock::{Clock, Entropy};
use crate::component::Component;
use crate::metrics::Metrics;
use metrics::ReserveMetrics;

pub use api::ReserveTarget;
pub use spec::spec_from_config;
pub use view::{ClaimParts, claim_json, inventory_json, inventory_with_units_json};

#[derive(Debug)]
pub struct ReserveHandle {
    service: Reservations,
    ledger: PathBuf,
    stats: Arc<LedgerStats>,
    watchers: watch::Watchers,
    metrics: ReserveMetrics,
    clock: Clock,
    entropy: Entropy,
}

impl ReserveHandle {
    /// Opens the backend's ledger and rebuilds the engine's state by replaying it.
    pub fn open(
        backend: &dyn Backend,
        path: &Path,
        metrics: &Metrics,
        clock: &Clock,
        entropy: &Entropy,
    ) -> Result<Arc<Self>, ReserveError> {
        let (service, stats) = Reservations::open(backend, path)?;
        let metrics = metrics.reserve.clone();
        // A ledger is opened once per process, so this is its only observer.
        let _ = stats.on_commit.set(metrics.commit_observer());
        let handle = Self {
            service,
            ledger: path.to_path_buf(),
            stats,
            watchers: watch::Watchers::default(),
            metrics,
            clock: clock.clone(),
            entropy: entropy.clone(),
        };
        Ok(Arc::new(handle))
    }

    pub fn ledger_path(&self) -> &Path {
        &self.ledger
    }

    pub fn entropy(&self) -> &Entropy {
        &self.entropy
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Creates the configured inventories the ledger does not have yet. One the ledger has is left as it is
    /// (with a warning if the file now says something else): claims were made against it.
    pub async fn apply(&self, config: &Config) -> Result<(), ReserveError> {
        self.service.set_retention(config.reservations.idempotency_retention.as_millis());
        for (name, inventory) in &config.inventories {
            let spec = spec_from_config(name, inventory).map_err(spillway_core::reserve::ClaimError::Invalid)?;
            match self.service.inventory(name) {
                Some((existing, _)) if existing != spec => {
                    tracing::warn!(inventory = %name, "inventories.{name} differs from the ledger's; the ledger's stands");
                }
                Some(_) => {}
                None => {
                    self.service.create_inventory(spec).await?;
                    tracing::info!(inventory = %name, "inventory created from the config");
                }
            }
        }
        Ok(())
    }

    pub async fn create_inventory(&self, spec: InventorySpec) -> Result<(), ReserveError> {
        self.service.create_inventory(spec).await
    }

    pub async fn claim(&self, req: &ClaimRequest) -> Result<Reply, ReserveError> {
        let result = self.service.claim(req, self.now_ms()).await;
        // The engine says "no such inventory" before anything else, so any other answer names a real one. The
        // unknown ones share one label: a client cannot grow the metrics by naming inventories nobody made.
        let label = match &result {
            Err(ReserveError::Claim(ClaimError::NotFound("inventory"))) => "_unknown",
            _ => req.inventory.as_str(),
        };
        self.metrics.claim(label, &result);
        result
    }

    pub async fn confirm(&self, claim: u64) -> Result<(), ReserveError> {
        let events = self.service.confirm(claim, self.now_ms()).await?;
        self.watchers.notify(&events);
        Ok(())
    }

    pub async fn cancel(&self, claim: u64) -> Result<(), ReserveError> {
        let events = self.service.cancel(claim, self.now_ms()).await?;
        self.watchers.notify(&events);
        Ok(())
    }

    /// Releases the ledger once nothing more will be decided (see [`Reservations::close`]). Blocks for at
    /// most one commit.
    pub fn close(&self) {
        self.service.close();
    }

    /// Returns the stock of holds that ran out and tells their holders and whoever the line promoted.
    pub async fn tick(&self) -> Result<(), ReserveError> {
        let events = self.service.expire(self.now_ms()).await?;
        self.watchers.notify(&events);
        self.watchers.forget_unwatched();
        Ok(())
    }

    /// See [`Reservations::settle`]: every read the API answers with is followed by this.
    pub async fn settle(&self) -> Result<(), ReserveError> {
        self.service.settle().await
    }

    pub fn get(&self, claim: u64) -> Option<Claim> {
        self.service.get(claim)
    }

    pub fn position(&self, claim: u64) -> Option<u64> {
        self.service.position(claim)
    }

    pub fn inventory(&self, id: &str) -> Option<(InventorySpec, Counts)> {
        self.service.inventory(id)
    }

    pub fn units(&self, id: &str) -> Option<Vec<(String, bool)>> {
        self.service.units(id)
    }

    pub fn has_inventory(&self, id: &str) -> bool {
        self.service.has_inventory(id)
    }

    pub fn inventories(&self) -> Vec<(InventorySpec, Counts)> {
        self.service.inventories()
    }

    pub fn claims_of(&self, inventory: &str, user: &str) -> Vec<Claim> {
        self.service.claims_of(inventory, user)
    }

    /// A hash of the engine's whole state: equal after a replay of the ledger, or something was lost.
    pub fn state_hash(&self) -> u64 {
        self.service.state_hash()
    }

    /// The engine's own consistency checks (stock never oversold, per-user totals right).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.service.check_invariants()
    }

    /// Claims and users in memory: flat under churn once the retention window is full.
    pub fn kept(&self) -> (usize, usize) {
        self.service.kept()
    }

    /// Why the ledger stopped, if it did: the process can decide nothing more until it restarts, so the health
    /// checks say so and a supervisor restarts it (the state is rebuilt from what is really on disk).
    pub fn ledger_failure(&self) -> Option<String> {
        self.service.ledger_failure().map(|e| e.to_string())
    }

    /// Publishes the per-inventory figures and the ledger's counters; called at scrape time.
    pub fn publish(&self) {
        self.metrics.ledger_up(self.service.ledger_failure().is_none());
        let (claims, users) = self.service.kept();
        self.metrics.kept(claims, users);
        for (spec, counts) in self.service.inventories() {
            self.metrics.inventory(&spec.id, &counts);
        }
        let s = &self.stats;
        self.metrics.ledger(
            s.commits.load(Ordering::Relaxed),
            s.appends.load(Ordering::Relaxed),
            s.events.load(Ordering::Relaxed),
            s.commit_micros.load(Ordering::Relaxed),
        );
    }

    fn watch(&self, claim: u64) -> tokio::sync::watch::Receiver<u64> {
        self.watchers.watch(claim)
    }
}

/// The claim an event is about, if any.
fn claim_of(event: &Event) -> Option<u64> {
    match event {
        Event::InventoryCreated(_) | Event::Compacted { .. } => None,
        Event::Claimed { claim, .. }
        | Event::Confirmed { claim, .. }
        | Event::Cancelled { claim, .. }
        | Event::Expired { claim, .. }
        | Event::Promoted { claim, .. } => Some(*claim),
    }
}

impl Component for ReserveHandle {
    /// Returns expired holds within a tick of their expiry.
    fn tick(&self, _: u64) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = ReserveHandle::tick(self).await {
                tracing::warn!(error = %e, "returning expired holds failed");
            }
        })
    }

    fn publish(&self) -> futures_util::future::BoxFuture<'_, ()> {
        ReserveHandle::publish(self);
        Box::pin(async {})
    }

    fn apply<'a>(&'a self, config: &'a Config) -> futures_util::future::BoxFuture<'a, Result<(), crate::GatewayError>> {
        Box::pin(async move { ReserveHandle::apply(self, config).await.map_err(crate::GatewayError::from) })
    }

    fn failure(&self) -> Option<String> {
        self.ledger_failure()
    }
}
