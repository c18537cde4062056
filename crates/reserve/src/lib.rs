//! The reservation engine as a service: decisions from the in-memory state machine, in one order, each
//! acknowledged only once its events are durable in the ledger.
//!
//! One lock orders the decisions; the events of each decision are handed to the ledger's writer before the
//! lock is released, so the log holds them in decision order. The caller's answer waits for the commit that
//! covers them (group commit makes that cheap under load). A rejection also waits for everything decided before
//! it to be durable: it was decided on that state, and must not be acknowledged on state a crash could undo.
//! After a restart the state is rebuilt by replaying the ledger.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use spillway_core::reserve::{Claim, ClaimError, ClaimRequest, Counts, Engine, Event, InventorySpec, Reply};
use spillway_store::sqlite::SqliteLedger;
use spillway_store::{Ledger, LedgerError};

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

#[derive(Debug)]
pub struct Reservations {
    engine: Mutex<Engine>,
    ledger: Arc<dyn Ledger>,
}

impl Reservations {
    /// Opens the ledger at `path` and rebuilds the state from it.
    pub fn open(path: &Path) -> Result<(Self, Arc<spillway_store::sqlite::LedgerStats>), ReserveError> {
        let (ledger, events) = SqliteLedger::open(path)?;
        let stats = ledger.stats.clone();
        Ok((Self::from_log(Arc::new(ledger), &events), stats))
    }

    /// A service over any ledger, with the state rebuilt from `events`.
    pub fn from_log(ledger: Arc<dyn Ledger>, events: &[Event]) -> Self {
        let mut engine = Engine::default();
        for event in events {
            engine.apply(event);
        }
        Self { engine: Mutex::new(engine), ledger }
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides under the lock, hands the events to the ledger in the same breath, then waits for durability.
    async fn decide<T>(
        &self,
        decide: impl FnOnce(&mut Engine) -> Result<(T, Vec<Event>), ClaimError>,
    ) -> Result<T, ReserveError> {
        let (outcome, durable) = {
            let mut engine = self.engine();
            match decide(&mut engine) {
                Ok((value, events)) => (Ok(value), self.ledger.append(events)),
                Err(e) => (Err(e), self.ledger.append(Vec::new())),
            }
        };
        durable.await?;
        Ok(outcome?)
    }

    pub async fn create_inventory(&self, spec: InventorySpec) -> Result<(), ReserveError> {
        self.decide(|e| e.create_inventory(spec).map(|events| ((), events))).await
    }

    pub async fn claim(&self, req: &ClaimRequest, now: u64) -> Result<Reply, ReserveError> {
        self.decide(|e| e.claim(req, now)).await
    }

    pub async fn confirm(&self, claim: u64, now: u64) -> Result<Vec<Event>, ReserveError> {
        self.decide(|e| e.confirm(claim, now).map(|events| (events.clone(), events))).await
    }

    pub async fn cancel(&self, claim: u64, now: u64) -> Result<Vec<Event>, ReserveError> {
        self.decide(|e| e.cancel(claim, now).map(|events| (events.clone(), events))).await
    }

    /// Returns expired holds' stock; called by a ticker. The events say who was told what (for streams).
    /// Nothing due costs nothing: the ticker calls this ten times a second.
    pub async fn expire(&self, now: u64) -> Result<Vec<Event>, ReserveError> {
        let (events, durable) = {
            let mut engine = self.engine();
            let events = engine.expire(now);
            if events.is_empty() {
                return Ok(events);
            }
            (events.clone(), self.ledger.append(events))
        };
        durable.await?;
        Ok(events)
    }

    pub fn get(&self, claim: u64) -> Option<Claim> {
        self.engine().get(claim).cloned()
    }

    pub fn inventory(&self, id: &str) -> Option<(InventorySpec, Counts)> {
        self.engine().inventory(id).map(|(spec, counts)| (spec.clone(), counts))
    }

    /// Whether an inventory holds claims before they are confirmed; `None` if there is no such inventory.
    /// Cheap, unlike [`Reservations::inventory`], which copies the spec with all its unit names.
    pub fn holds(&self, inventory: &str) -> Option<bool> {
        self.engine().inventory(inventory).map(|(spec, _)| spec.hold_ttl_ms.is_some())
    }

    pub fn inventories(&self) -> Vec<(InventorySpec, Counts)> {
        self.engine().inventories().into_iter().map(|(spec, counts)| (spec.clone(), counts)).collect()
    }

    pub fn claims_of(&self, inventory: &str, user: &str) -> Vec<Claim> {
        self.engine().claims_of(inventory, user).into_iter().cloned().collect()
    }

    pub fn position(&self, claim: u64) -> Option<u64> {
        self.engine().position(claim)
    }

    pub fn state_hash(&self) -> u64 {
        self.engine().state_hash()
    }

    pub fn check_invariants(&self) -> Result<(), String> {
        self.engine().check_invariants()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_core::reserve::{ClaimStatus, Stock};

    fn spec() -> InventorySpec {
        InventorySpec {
            id: "drop".into(),
            stock: Stock::Counted(100),
            per_user_limit: Some(1),
            hold_ttl_ms: None,
            waitlist: false,
            opens_at: None,
            closes_at: None,
        }
    }

    fn req(user: usize) -> ClaimRequest {
        ClaimRequest {
            inventory: "drop".into(),
            user: format!("u{user}"),
            quantity: 1,
            units: Vec::new(),
            hold: false,
            idempotency_key: "k".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_never_oversell_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let (hash, confirmed) = {
            let (r, _) = Reservations::open(&path).expect("open");
            let r = Arc::new(r);
            r.create_inventory(spec()).await.expect("created");
            let tasks: Vec<_> = (0..300)
                .map(|i| {
                    let r = r.clone();
                    tokio::spawn(async move { r.claim(&req(i % 250), 0).await })
                })
                .collect();
            let mut confirmed = 0;
            for t in futures_util::future::join_all(tasks).await {
                if let Ok(Ok(reply)) = t {
                    if reply.status == ClaimStatus::Confirmed && !reply.replayed {
                        confirmed += 1;
                    }
                }
            }
            r.check_invariants().expect("invariants");
            (r.state_hash(), confirmed)
        };
        assert_eq!(confirmed, 100, "exactly the stock");
        let (again, _) = Reservations::open(&path).expect("reopen");
        assert_eq!(again.state_hash(), hash, "the ledger rebuilds the same state");
        assert!(matches!(again.claim(&req(999), 0).await, Err(ReserveError::Claim(ClaimError::SoldOut))));
    }
}
