//! What every [`Backend`] must do, as a suite each backend's tests run against it: the embedded one in
//! `tests/conformance.rs`, a networked one against its real server. The checks are of behaviour the gateway
//! relies on (a place in line survives polls, a refused request counts in no band, a ledger gives back in
//! order exactly what it acknowledged), never of how a backend keeps its state.
//!
//! Each check panics with what went wrong; they run on whatever time the caller passes, as the stores do.
#![allow(clippy::missing_panics_doc, clippy::unwrap_used)]

use std::path::Path;

use spillway_core::limit::{Algorithm, Quota};
use spillway_core::reserve::{ClaimRequest, Engine, InventorySpec};
use spillway_core::room::{Outcome, Settings, TicketRef};

use crate::backend::Backend;

const T0: u64 = 1_800_000_000_000;

/// A room: places are kept in order across polls, released at the rate, admitted once, and a reset starts
/// a new generation in which old tickets no longer count.
pub async fn room(backend: &dyn Backend) {
    let settings = Settings { new_users_per_minute: 60, ..Settings::default() };
    let store = backend.room("conformance", settings.clone(), T0, 7).unwrap();

    let mut tickets = Vec::new();
    for i in 0..3 {
        let visit = store.visit(T0, None).await.unwrap();
        let Outcome::Hold { ticket: Some(seq), status } = visit.outcome else {
            panic!("newcomer {i} was not given a place: {visit:?}")
        };
        assert_eq!(status.position, Some(i + 1), "places are handed out in arrival order");
        tickets.push(seq);
    }
    let generation = store.generation().await.unwrap();
    let ticket = |seq| Some(TicketRef { generation, seq });
    let again = store.visit(T0, ticket(tickets[1])).await.unwrap();
    assert!(
        matches!(again.outcome, Outcome::Hold { ticket: Some(seq), .. } if seq == tickets[1]),
        "a poll keeps the client's place: {again:?}"
    );
    // One a second: after a second and a half, the first in line is let in and the second still waits.
    store.advance(T0 + 1_500).await.unwrap();
    let first = store.visit(T0 + 1_500, ticket(tickets[0])).await.unwrap();
    let Outcome::Admit { session, .. } = first.outcome else {
        panic!("the head of the line was not admitted: {first:?}")
    };
    let second = store.visit(T0 + 1_500, ticket(tickets[1])).await.unwrap();
    assert!(matches!(second.outcome, Outcome::Hold { .. }), "released at the rate, not all at once: {second:?}");
    let snapshot = store.snapshot(T0 + 1_500).await.unwrap();
    assert_eq!(snapshot.active_sessions, 1);
    assert_eq!(snapshot.counters.joined, 3);
    assert!(store.end_session(T0 + 1_600, session, u32::MAX).await.unwrap(), "an active session can be ended");

    assert!(store.leave(T0 + 1_600, ticket(tickets[2]).unwrap()).await.unwrap(), "a waiting client can leave");
    assert_eq!(store.snapshot(T0 + 1_600).await.unwrap().waiting, 1);

    store.pause(T0 + 1_700).await.unwrap();
    assert!(store.snapshot(T0 + 1_700).await.unwrap().paused);
    store.resume(T0 + 1_800).await.unwrap();
    store.configure(T0 + 1_800, Settings { new_users_per_minute: 120, ..settings }).await.unwrap();
    assert_eq!(store.snapshot(T0 + 1_800).await.unwrap().settings.new_users_per_minute, 120);

    store.reset(T0 + 2_000, 9).await.unwrap();
    let after = store.generation().await.unwrap();
    assert_ne!(after, generation, "a reset starts a new generation");
    let stale = store.visit(T0 + 2_000, ticket(tickets[1])).await.unwrap();
    assert!(stale.refused.is_some(), "a ticket from before the reset does not count: {stale:?}");
    assert_eq!(store.snapshot(T0 + 2_000).await.unwrap().waiting, 1, "only the newcomer it became waits");
}

/// A limit: every band must allow; a refused request is counted in none; keys are independent; the band
/// that refused is named.
pub async fn limit(backend: &dyn Backend) {
    const SECOND: u64 = 1_000_000_000;
    // Three per ten seconds, and two per second: the second band refuses first, within the first second.
    let loose = Algorithm::FixedWindow { quota: Quota { limit: 3, period_ns: 10 * SECOND } };
    let tight = Algorithm::FixedWindow { quota: Quota::per_second(2) };
    let store = backend.limit("conformance", &[loose, tight], 1_000).unwrap();
    let now = T0 * 1_000_000;
    for i in 0..2 {
        assert!(store.check(now, 1).await.unwrap().decision.allowed, "request {i} is within both bands");
    }
    for _ in 0..5 {
        let refused = store.check(now, 1).await.unwrap();
        assert!(!refused.decision.allowed, "two a second");
        assert_eq!(refused.band, 1, "the second band refused");
        assert!(refused.decision.retry_after_ns > 0, "a refusal says when to come back");
    }
    // A second later the tight band has room again. Had the five refusals counted in the loose band, it
    // would refuse now; it has one left.
    assert!(store.check(now + SECOND, 1).await.unwrap().decision.allowed, "refusals cost nothing");
    let spent = store.check(now + SECOND, 1).await.unwrap();
    assert!(!spent.decision.allowed, "three in ten seconds");
    assert_eq!(spent.band, 0, "now the first band refuses");
    assert!(store.check(now, 2).await.unwrap().decision.allowed, "another key has its own quota");
    if let Some(keys) = store.keys() {
        assert_eq!(keys, 4, "two keys in each of two bands");
    }
}

/// A ledger: what was acknowledged is read back, in order, after the ledger is closed and opened again; a
/// second open while the first holds it is refused (one server per ledger).
pub async fn ledger(backend: &dyn Backend, location: &Path) {
    let mut engine = Engine::default();
    let spec = InventorySpec::counted("drop", 3);
    let mut events = engine.create_inventory(spec).unwrap();
    for user in ["a", "b", "c"] {
        let request = ClaimRequest {
            inventory: "drop".into(),
            user: user.into(),
            quantity: 1,
            units: Vec::new(),
            hold: None,
            idempotency_key: format!("k-{user}"),
        };
        events.extend(engine.claim(&request, T0).unwrap().1);
    }
    {
        let opened = backend.ledger(location).unwrap();
        assert!(opened.events.is_empty(), "a new ledger is empty");
        assert!(backend.ledger(location).is_err(), "a second server on the same ledger is refused");
        let (first, rest) = events.split_at(2);
        opened.ledger.append(first.to_vec()).await.unwrap();
        opened.ledger.append(rest.to_vec()).await.unwrap();
        opened.ledger.append(Vec::new()).await.unwrap();
        opened.ledger.close();
    }
    let reopened = backend.ledger(location).unwrap();
    assert_eq!(reopened.events, events, "every acknowledged event, in order, and nothing else");
    let mut replayed = Engine::default();
    for event in &reopened.events {
        replayed.apply(event);
    }
    assert_eq!(replayed.state_hash(), engine.state_hash(), "replay rebuilds the same state");
    reopened.ledger.close();
}
