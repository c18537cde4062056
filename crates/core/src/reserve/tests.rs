//! The engine on a manual clock: exact outcomes, then random operation sequences with every invariant checked
//! after every step and the log replayed into a fresh engine.

use proptest::prelude::*;

use super::*;

fn coupons(n: u64, waitlist: bool) -> InventorySpec {
    InventorySpec {
        id: "coupons".into(),
        stock: Stock::Counted(n),
        per_user_limit: Some(1),
        hold_ttl_ms: Some(300_000),
        waitlist,
        opens_at: None,
        closes_at: None,
        attributes: Default::default(),
    }
}

fn seats(n: usize) -> InventorySpec {
    InventorySpec {
        id: "seats".into(),
        stock: Stock::Units((1..=n).map(|i| format!("A-{i}")).collect()),
        per_user_limit: Some(4),
        hold_ttl_ms: Some(300_000),
        waitlist: true,
        opens_at: None,
        closes_at: None,
        attributes: Default::default(),
    }
}

fn req(inv: &str, user: &str, quantity: u32, key: &str) -> ClaimRequest {
    ClaimRequest {
        inventory: inv.into(),
        user: user.into(),
        quantity,
        units: Vec::new(),
        hold: Some(false),
        idempotency_key: key.into(),
    }
}

#[test]
fn never_oversells_and_one_per_user() {
    let mut e = Engine::default();
    e.create_inventory(coupons(2, false)).expect("created");
    assert_eq!(e.claim(&req("coupons", "a", 1, "k1"), 0).map(|r| r.0.status), Ok(ClaimStatus::Confirmed));
    assert_eq!(e.claim(&req("coupons", "a", 1, "k2"), 0).map(|r| r.0.status), Err(ClaimError::LimitReached(1)));
    assert!(e.claim(&req("coupons", "b", 1, "k1"), 0).is_ok());
    assert_eq!(e.claim(&req("coupons", "c", 1, "k1"), 0).map(|r| r.0.status), Err(ClaimError::SoldOut));
    e.check_invariants().expect("invariants");
}

#[test]
fn names_are_stored_once_and_shared_with_the_log_also_after_a_replay() {
    let mut e = Engine::default();
    let mut log = e.create_inventory(InventorySpec { per_user_limit: Some(2), ..coupons(5, false) }).expect("ok");
    for (user, key) in [("a", "k1"), ("a", "k2"), ("b", "k1")] {
        let (reply, events) = e.claim(&req("coupons", user, 1, key), 0).expect("claimed");
        let Some(Event::Claimed { user: logged, inventory, key: logged_key, .. }) = events.first() else {
            panic!("a claim is logged")
        };
        let claim = e.get(reply.claim).expect("recorded");
        assert!(Arc::ptr_eq(&claim.user, logged) && Arc::ptr_eq(&claim.inventory, inventory), "one copy");
        assert!(Arc::ptr_eq(&claim.idempotency_key, logged_key));
        log.extend(events);
    }
    // A log read back has its own copy of every name in every event; the state keeps one of each.
    let read_back: Vec<Event> = log
        .iter()
        .map(|e| match e.clone() {
            Event::Claimed { claim, inventory, user, quantity, units, key, status, at } => Event::Claimed {
                claim,
                inventory: Arc::from(&*inventory),
                user: Arc::from(&*user),
                quantity,
                units,
                key: Arc::from(&*key),
                status,
                at,
            },
            other => other,
        })
        .collect();
    let mut replayed = Engine::default();
    for event in &read_back {
        replayed.apply(event);
    }
    let (a1, a2, b) = (replayed.get(0).expect("a"), replayed.get(1).expect("a"), replayed.get(2).expect("b"));
    assert!(Arc::ptr_eq(&a1.user, &a2.user), "a user's claims share the name");
    assert!(Arc::ptr_eq(&a1.inventory, &b.inventory), "claims share their inventory's id");
    assert_eq!(replayed.state_hash(), e.state_hash());
}

#[test]
fn a_claim_that_does_not_say_holds_as_its_inventory_does() {
    let mut e = Engine::default();
    e.create_inventory(coupons(5, false)).expect("holds for 5 minutes");
    e.create_inventory(InventorySpec { id: "now".into(), hold_ttl_ms: None, ..coupons(5, false) }).expect("ok");
    let unsaid = |inv: &str, user: &str| ClaimRequest { hold: None, ..req(inv, user, 1, "k") };
    let status = |r: Result<(Reply, Vec<Event>), ClaimError>| r.map(|(reply, _)| reply.status);
    assert_eq!(status(e.claim(&unsaid("coupons", "a"), 0)), Ok(ClaimStatus::Held { expires: 300_000 }));
    assert_eq!(status(e.claim(&unsaid("now", "a"), 0)), Ok(ClaimStatus::Confirmed));
    let said = ClaimRequest { hold: Some(false), ..req("coupons", "b", 1, "k") };
    assert_eq!(status(e.claim(&said, 0)), Ok(ClaimStatus::Confirmed), "saying so wins");
    let unknown = ClaimRequest { quantity: 0, ..unsaid("nope", "a") };
    assert_eq!(status(e.claim(&unknown, 0)), Err(ClaimError::NotFound("inventory")), "before anything else");
}

#[test]
fn a_retry_with_the_same_key_gets_the_first_answer() {
    let mut e = Engine::default();
    e.create_inventory(coupons(1, false)).expect("created");
    let (first, events) = e.claim(&req("coupons", "a", 1, "same"), 0).expect("ok");
    assert_eq!(events.len(), 1);
    let (again, events) = e.claim(&req("coupons", "a", 1, "same"), 5).expect("ok");
    assert!(events.is_empty(), "a retry changes nothing");
    assert_eq!((again.claim, again.status, again.replayed), (first.claim, first.status, true));
}

#[test]
fn holds_expire_exactly_once_and_feed_the_waitlist() {
    let mut e = Engine::default();
    e.create_inventory(coupons(1, true)).expect("created");
    let hold = ClaimRequest { hold: Some(true), ..req("coupons", "a", 1, "k") };
    let (held, _) = e.claim(&hold, 1_000).expect("held");
    assert_eq!(held.status, ClaimStatus::Held { expires: 301_000 });
    let (waiting, _) = e.claim(&req("coupons", "b", 1, "k"), 2_000).expect("waitlisted");
    assert_eq!((waiting.status, waiting.position), (ClaimStatus::Waitlisted, Some(1)));
    assert!(e.expire(300_999).is_empty());
    let events = e.expire(301_000);
    assert!(matches!(events[0], Event::Expired { .. }));
    assert!(matches!(events[1], Event::Promoted { .. }), "{events:?}");
    assert!(e.expire(400_000).iter().all(|ev| !matches!(ev, Event::Expired { claim, .. } if *claim == held.claim)));
    assert_eq!(e.confirm(held.claim, 301_500), Err(ClaimError::HoldExpired));
    assert_eq!(e.get(waiting.claim).map(|c| c.status), Some(ClaimStatus::Held { expires: 601_000 }));
    e.check_invariants().expect("invariants");
}

#[test]
fn seats_by_name_or_best_available() {
    let mut e = Engine::default();
    e.create_inventory(seats(4)).expect("created");
    let named = ClaimRequest { units: vec!["A-2".into(), "A-3".into()], ..req("seats", "a", 2, "k") };
    assert_eq!(e.claim(&named, 0).map(|r| r.0.units), Ok(vec!["A-2".to_string(), "A-3".to_string()]));
    let taken = ClaimRequest { units: vec!["A-3".into()], ..req("seats", "b", 1, "k") };
    assert_eq!(e.claim(&taken, 0).map(|r| r.0.status), Err(ClaimError::UnitTaken("A-3".into())));
    assert_eq!(e.claim(&req("seats", "c", 2, "k"), 0).map(|r| r.0.units), Ok(vec!["A-1".into(), "A-4".into()]));
    e.check_invariants().expect("invariants");
}

#[test]
fn closed_outside_the_window() {
    let mut e = Engine::default();
    e.create_inventory(InventorySpec { opens_at: Some(100), closes_at: Some(200), ..coupons(5, false) })
        .expect("created");
    assert_eq!(e.claim(&req("coupons", "a", 1, "k"), 99).map(|r| r.0.status), Err(ClaimError::Closed));
    assert!(e.claim(&req("coupons", "a", 1, "k"), 100).is_ok());
    assert_eq!(e.claim(&req("coupons", "b", 1, "k"), 200).map(|r| r.0.status), Err(ClaimError::Closed));
}

#[derive(Debug, Clone)]
enum Op {
    Claim { user: u8, quantity: u32, hold: bool, key: u8, seats: bool },
    Confirm(usize),
    Cancel(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..12, 1u32..3, any::<bool>(), 0u8..3, any::<bool>())
            .prop_map(|(user, quantity, hold, key, seats)| Op::Claim { user, quantity, hold, key, seats }),
        2 => any::<usize>().prop_map(Op::Confirm),
        2 => any::<usize>().prop_map(Op::Cancel),
        2 => (1u64..200_000).prop_map(Op::Wait),
    ]
}

proptest! {
    /// Whatever happens: every invariant holds after every step, a retried key never changes anything, and
    /// replaying the log into a fresh engine gives the same state.
    #[test]
    fn invariants_hold_and_the_log_replays(ops in proptest::collection::vec(op(), 1..300)) {
        let mut e = Engine::default();
        let mut log = Vec::new();
        log.extend(e.create_inventory(coupons(5, true)).expect("created"));
        log.extend(e.create_inventory(seats(6)).expect("created"));
        let mut claims = Vec::new();
        let mut keys = std::collections::HashMap::new();
        let mut now = 0;
        for op in ops {
            match op {
                Op::Claim { user, quantity, hold, key, seats } => {
                    let inv = if seats { "seats" } else { "coupons" };
                    let r =
                        ClaimRequest { hold: Some(hold), ..req(inv, &format!("u{user}"), quantity, &format!("k{key}")) };
                    let seen = keys.get(&(inv, user, key)).copied();
                    match e.claim(&r, now) {
                        Ok((reply, events)) => {
                            prop_assert_eq!(reply.replayed, seen.is_some());
                            if let Some(first) = seen {
                                prop_assert_eq!(reply.claim, first);
                                prop_assert!(events.is_empty());
                            } else {
                                keys.insert((inv, user, key), reply.claim);
                                claims.push(reply.claim);
                            }
                            log.extend(events);
                        }
                        Err(_) => prop_assert!(seen.is_none(), "a known key is always answered"),
                    }
                    // The indexed read model agrees with a scan of every claim.
                    let u = format!("u{user}");
                    let mut scanned: Vec<&Claim> =
                        e.claims.values().map(|r| &r.claim).filter(|c| *c.inventory == *inv && *c.user == *u).collect();
                    scanned.sort_by_key(|c| c.id);
                    prop_assert_eq!(e.claims_of(inv, &u), scanned);
                }
                Op::Confirm(i) if !claims.is_empty() => {
                    if let Ok(events) = e.confirm(claims[i % claims.len()], now) {
                        log.extend(events);
                    }
                }
                Op::Cancel(i) if !claims.is_empty() => {
                    if let Ok(events) = e.cancel(claims[i % claims.len()], now) {
                        log.extend(events);
                    }
                }
                Op::Wait(ms) => {
                    now += ms;
                    log.extend(e.expire(now));
                }
                _ => {}
            }
            if let Err(broken) = e.check_invariants() {
                prop_assert!(false, "{}", broken);
            }
        }
        let mut replayed = Engine::default();
        for event in &log {
            replayed.apply(event);
        }
        prop_assert_eq!(replayed.state_hash(), e.state_hash());
    }
}
