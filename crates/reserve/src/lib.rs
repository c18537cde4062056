//! The reservation engine as a service: decisions from the in-memory state machine, in one order, each
//! acknowledged only once its events are durable in the ledger.
//!
//! One lock orders the decisions; the events of each decision are handed to the ledger's writer before the
//! lock is released, so the log holds them in decision order. The caller's answer waits for the commit that
//! covers them (group commit makes that cheap under load). A rejection also waits for everything decided before
//! it to be durable: it was decided on that state, and must not be acknowledged on state a crash could undo.
//! When the ledger says all of that is durable already, the rejection is answered at once.
//! After a restart the state is rebuilt by replaying the ledger.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use spillway_core::reserve::{Claim, ClaimError, ClaimRequest, Counts, Engine, Event, InventorySpec, Reply};
use spillway_store::{Backend, Ledger, LedgerError, LedgerStats};

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// How often [`Reservations::expire`] also forgets finished claims: often enough that memory follows the
/// retention window closely, rarely enough that the log gets one small event a second at most.
const COMPACT_EVERY_MS: u64 = 1_000;

/// Finished claims are remembered this long unless told otherwise (as Stripe keeps idempotency keys).
pub const DEFAULT_RETENTION_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug)]
pub struct Reservations {
    engine: Mutex<Engine>,
    ledger: Arc<dyn Ledger>,
    /// How long a finished claim and its idempotency key are kept (see [`Engine::compact`]).
    retention_ms: AtomicU64,
    /// When the ticker last compacted.
    compacted_at: AtomicU64,
}

impl Reservations {
    /// Opens the backend's ledger at `location` and rebuilds the state by replaying it.
    pub fn open(backend: &dyn Backend, location: &Path) -> Result<(Self, Arc<LedgerStats>), ReserveError> {
        let opened = backend.ledger(location)?;
        Ok((Self::from_log(opened.ledger, &opened.events), opened.stats))
    }

    /// A service over any ledger, with the state rebuilt from `events`.
    pub fn from_log(ledger: Arc<dyn Ledger>, events: &[Event]) -> Self {
        let mut engine = Engine::default();
        for event in events {
            engine.apply(event);
        }
        Self {
            engine: Mutex::new(engine),
            ledger,
            retention_ms: AtomicU64::new(DEFAULT_RETENTION_MS),
            compacted_at: AtomicU64::new(0),
        }
    }

    /// How long finished claims and their idempotency keys are remembered; takes effect at the next tick.
    pub fn set_retention(&self, retention_ms: u64) {
        self.retention_ms.store(retention_ms, Ordering::Relaxed);
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
                Ok((value, events)) => (Ok(value), self.log(events)),
                Err(e) => (Err(e), self.log(Vec::new())),
            }
        };
        if let Some(durable) = durable {
            durable.await?;
        }
        Ok(outcome?)
    }

    /// Why the ledger stopped taking writes, if it did: nothing more can be decided until a restart.
    pub fn ledger_failure(&self) -> Option<LedgerError> {
        self.ledger.failure()
    }

    /// Hands a decision's events to the ledger; called under the lock, so the log is in decision order. An
    /// answer that changed nothing (a rejection, a replay) still rests on everything decided before it, so it
    /// waits for a barrier, unless the ledger says that all of it is durable already: then there is nothing
    /// to wait for, and a storm of rejections on a sold-out drop costs no round trip to the writer.
    fn log(&self, events: Vec<Event>) -> Option<BoxFuture<'static, Result<(), LedgerError>>> {
        if events.is_empty() && self.ledger.all_durable() { None } else { Some(self.ledger.append(events)) }
    }

    /// Decides many claims under one lock acquisition and makes them durable with one append: for a front end
    /// that gathers requests itself. Each request gets its own answer, in order; the call fails as a whole
    /// only if the ledger does, in which case no answer may be given.
    pub async fn claim_many(
        &self,
        requests: &[ClaimRequest],
        now: u64,
    ) -> Result<Vec<Result<Reply, ClaimError>>, ReserveError> {
        let (answers, durable) = {
            let mut engine = self.engine();
            let mut events = Vec::new();
            let answers: Vec<_> = requests
                .iter()
                .map(|r| {
                    engine.claim(r, now).map(|(reply, mut claimed)| {
                        events.append(&mut claimed);
                        reply
                    })
                })
                .collect();
            (answers, self.log(events))
        };
        if let Some(durable) = durable {
            durable.await?;
        }
        Ok(answers)
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

    /// Returns expired holds' stock and, once a second, forgets the claims whose retention ended; called by a
    /// ticker. The events say who was told what (for streams). Nothing due costs nothing: the ticker calls
    /// this ten times a second.
    pub async fn expire(&self, now: u64) -> Result<Vec<Event>, ReserveError> {
        let (events, durable) = {
            let mut engine = self.engine();
            let mut events = engine.expire(now);
            if now >= self.compacted_at.load(Ordering::Relaxed).saturating_add(COMPACT_EVERY_MS) {
                self.compacted_at.store(now, Ordering::Relaxed);
                events.extend(engine.compact(now, self.retention_ms.load(Ordering::Relaxed)));
            }
            if events.is_empty() {
                return Ok(events);
            }
            (events.clone(), self.ledger.append(events))
        };
        durable.await?;
        Ok(events)
    }

    /// Waits until everything decided so far is durable. A read taken before it and answered after it shows
    /// no state that a crash could still undo (reads come from memory, which runs ahead of the ledger by up
    /// to one commit).
    pub async fn settle(&self) -> Result<(), ReserveError> {
        let durable = {
            let _ordered = self.engine();
            self.log(Vec::new())
        };
        if let Some(durable) = durable {
            durable.await?;
        }
        Ok(())
    }

    /// Makes what was decided durable and releases the ledger (see [`Ledger::close`]); later decisions fail.
    pub fn close(&self) {
        self.ledger.close();
    }

    pub fn get(&self, claim: u64) -> Option<Claim> {
        self.engine().get(claim).cloned()
    }

    pub fn inventory(&self, id: &str) -> Option<(InventorySpec, Counts)> {
        self.engine().inventory(id).map(|(spec, counts)| (spec.clone(), counts))
    }

    /// A named-unit inventory's units with whether each is free (the seat map's read model).
    pub fn units(&self, id: &str) -> Option<Vec<(String, bool)>> {
        self.engine().units(id).map(|units| units.into_iter().map(|(n, free)| (n.to_string(), free)).collect())
    }

    /// Cheap, unlike [`Reservations::inventory`], which copies the spec with all its unit names.
    pub fn has_inventory(&self, inventory: &str) -> bool {
        self.engine().inventory(inventory).is_some()
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

    /// Claims and users held in memory (see [`Engine::kept`]).
    pub fn kept(&self) -> (usize, usize) {
        self.engine().kept()
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
    use futures_util::future::BoxFuture;
    use spillway_core::reserve::{ClaimStatus, Stock};

    fn spec() -> InventorySpec {
        InventorySpec::counted("drop", 100)
    }

    fn req(user: usize) -> ClaimRequest {
        ClaimRequest {
            inventory: "drop".into(),
            user: format!("u{user}"),
            quantity: 1,
            units: Vec::new(),
            hold: Some(false),
            idempotency_key: "k".into(),
        }
    }

    /// A ledger whose durability the test controls: appends are durable only when the test says so.
    #[derive(Debug, Default)]
    struct Manual(Mutex<ManualState>);

    #[derive(Debug, Default)]
    struct ManualState {
        appended: u64,
        durable: u64,
        appends: u64,
        barriers: u64,
        waiting: Vec<(u64, tokio::sync::oneshot::Sender<()>)>,
    }

    impl Manual {
        fn state(&self) -> MutexGuard<'_, ManualState> {
            self.0.lock().expect("lock")
        }

        /// Everything appended so far becomes durable.
        fn commit(&self) {
            let mut s = self.state();
            s.durable = s.appended;
            for (_, done) in s.waiting.drain(..) {
                let _ = done.send(());
            }
        }
    }

    impl Ledger for Manual {
        fn append(&self, events: Vec<Event>) -> BoxFuture<'static, Result<(), LedgerError>> {
            use futures_util::FutureExt;
            let mut s = self.state();
            if events.is_empty() {
                s.barriers += 1;
            } else {
                s.appends += 1;
                s.appended += 1;
            }
            if s.durable >= s.appended {
                return futures_util::future::ready(Ok(())).boxed();
            }
            let (done, wait) = tokio::sync::oneshot::channel();
            let target = s.appended;
            s.waiting.push((target, done));
            wait.map(|r| r.map_err(|_| LedgerError::Write("dropped".into()))).boxed()
        }

        fn all_durable(&self) -> bool {
            let s = self.state();
            s.durable >= s.appended
        }
    }

    fn manual(stock: u64) -> (Arc<Manual>, Reservations) {
        let ledger = Arc::new(Manual::default());
        let r = Reservations::from_log(
            ledger.clone(),
            &[Event::InventoryCreated(InventorySpec { stock: Stock::Counted(stock), ..spec() })],
        );
        (ledger, r)
    }

    #[tokio::test]
    async fn a_rejection_is_never_answered_before_the_state_it_was_decided_on_is_durable() {
        use futures_util::FutureExt;
        let (ledger, r) = manual(1);
        let (one, two) = (req(1), req(2));
        let mut first = Box::pin(r.claim(&one, 0));
        assert!((&mut first).now_or_never().is_none(), "decided, not yet durable");
        let mut sold_out = Box::pin(r.claim(&two, 0));
        let mut replay = Box::pin(r.claim(&one, 0));
        assert!((&mut sold_out).now_or_never().is_none(), "decided on a claim a crash could still undo");
        assert!((&mut replay).now_or_never().is_none(), "the claim it replays is not durable yet");
        assert_eq!(ledger.state().barriers, 2);
        ledger.commit();
        assert_eq!(first.await.expect("claimed").status, ClaimStatus::Confirmed);
        assert!(matches!(sold_out.await, Err(ReserveError::Claim(ClaimError::SoldOut))));
        assert!(replay.await.expect("replayed").replayed);
        // Now everything decided is durable: rejections and replays are answered at once, without a barrier.
        let answer = r.claim(&req(3), 0).now_or_never().expect("answered at once");
        assert!(matches!(answer, Err(ReserveError::Claim(ClaimError::SoldOut))));
        assert!(r.claim(&req(1), 0).now_or_never().expect("answered at once").expect("replayed").replayed);
        assert_eq!(ledger.state().barriers, 2, "no barrier once everything is durable");
        assert_eq!(ledger.state().appends, 1);
    }

    #[tokio::test]
    async fn a_read_settles_only_once_what_it_saw_is_durable() {
        use futures_util::FutureExt;
        let (ledger, r) = manual(5);
        let one = req(1);
        let mut claimed = Box::pin(r.claim(&one, 0));
        assert!((&mut claimed).now_or_never().is_none());
        assert_eq!(r.inventory("drop").map(|(_, c)| c.taken), Some(1), "memory runs ahead of the ledger");
        let mut settled = Box::pin(r.settle());
        assert!((&mut settled).now_or_never().is_none(), "that read may not be answered yet");
        ledger.commit();
        settled.await.expect("settled");
        claimed.await.expect("claimed");
        assert!(r.settle().now_or_never().is_some(), "nothing pending: at once");
    }

    #[tokio::test]
    async fn claim_many_answers_each_request_in_order_with_one_append() {
        use futures_util::FutureExt;
        let (ledger, r) = manual(2);
        let requests = [req(1), req(2), req(1), req(3), ClaimRequest { quantity: 0, ..req(4) }];
        let mut answers = Box::pin(r.claim_many(&requests, 0));
        assert!((&mut answers).now_or_never().is_none(), "not answered before it is durable");
        ledger.commit();
        let answers = answers.await.expect("durable");
        let kinds: Vec<_> =
            answers.iter().map(|a| a.as_ref().map(|reply| reply.replayed).map_err(ClaimError::code)).collect();
        assert_eq!(kinds, [Ok(false), Ok(false), Ok(true), Err("sold_out"), Err("invalid")]);
        let appends = ledger.state().appends;
        let barriers = ledger.state().barriers;
        assert_eq!((appends, barriers), (1, 0));
        let all_rejected = r.claim_many(&requests[2..4], 0).now_or_never().expect("nothing to wait for");
        assert_eq!(all_rejected.expect("answers").len(), 2);
        r.check_invariants().expect("invariants");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claim_many_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let hash = {
            let (r, _) = Reservations::open(&spillway_store::Embedded::new(), &path).expect("open");
            r.create_inventory(spec()).await.expect("created");
            let requests: Vec<_> = (0..150).map(req).collect();
            let answers = r.claim_many(&requests, 0).await.expect("durable");
            assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 100);
            r.state_hash()
        };
        let (again, _) = Reservations::open(&spillway_store::Embedded::new(), &path).expect("reopen");
        assert_eq!(again.state_hash(), hash);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_never_oversell_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let (hash, confirmed) = {
            let (r, _) = Reservations::open(&spillway_store::Embedded::new(), &path).expect("open");
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
                if let Ok(Ok(reply)) = t
                    && reply.status == ClaimStatus::Confirmed
                    && !reply.replayed
                {
                    confirmed += 1;
                }
            }
            r.check_invariants().expect("invariants");
            (r.state_hash(), confirmed)
        };
        assert_eq!(confirmed, 100, "exactly the stock");
        let (again, _) = Reservations::open(&spillway_store::Embedded::new(), &path).expect("reopen");
        assert_eq!(again.state_hash(), hash, "the ledger rebuilds the same state");
        assert!(matches!(again.claim(&req(999), 0).await, Err(ReserveError::Claim(ClaimError::SoldOut))));
    }
}
