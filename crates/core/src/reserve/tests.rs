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

// === hostile input ===

#[test]
fn a_quantity_at_the_edge_of_u32_cannot_wrap_the_per_user_count() {
    let mut e = Engine::default();
    e.create_inventory(InventorySpec { per_user_limit: Some(5), ..coupons(10, true) }).expect("created");
    assert!(e.claim(&req("coupons", "a", 1, "k1"), 0).is_ok());
    // 1 + u32::MAX wraps to 0 without a checked sum; the quantity is also beyond the whole stock.
    let huge = e.claim(&req("coupons", "a", u32::MAX, "k2"), 0);
    assert!(matches!(huge, Err(ClaimError::Invalid(_))), "{huge:?}");
    assert_eq!(e.claim(&req("coupons", "a", 5, "k3"), 0).map(|r| r.0.status), Err(ClaimError::LimitReached(5)));
    assert_eq!(e.claims_of("coupons", "a").len(), 1);
    // A limit as large as the type still cannot be passed by a wrapping sum.
    let mut e = Engine::default();
    e.create_inventory(InventorySpec { per_user_limit: Some(u32::MAX), ..coupons(u64::MAX, false) }).expect("ok");
    assert!(e.claim(&req("coupons", "a", u32::MAX, "k1"), 0).is_ok());
    assert_eq!(e.claim(&req("coupons", "a", 1, "k2"), 0).map(|r| r.0.status), Err(ClaimError::LimitReached(u32::MAX)));
    e.check_invariants().expect("invariants");
}

#[test]
fn without_a_limit_one_users_claims_may_add_up_past_u32() {
    // Found by the engine fuzzer: the per-user count was a u32 and saturated, so the counts disagreed.
    let mut e = Engine::default();
    e.create_inventory(InventorySpec { per_user_limit: None, ..coupons(u64::MAX, false) }).expect("created");
    for key in ["k1", "k2", "k3"] {
        assert!(e.claim(&req("coupons", "whale", u32::MAX, key), 0).is_ok());
    }
    e.check_invariants().expect("invariants");
    let first = e.claims_of("coupons", "whale")[0].id;
    e.cancel(first, 1).expect("cancel");
    e.check_invariants().expect("invariants");
}

#[test]
fn more_than_the_whole_stock_is_invalid_instead_of_waiting_forever() {
    let mut e = Engine::default();
    e.create_inventory(InventorySpec { per_user_limit: None, ..coupons(3, true) }).expect("created");
    let err = e.claim(&req("coupons", "a", 4, "k"), 0).expect_err("never grantable");
    assert!(matches!(&err, ClaimError::Invalid(m) if m.contains("whole stock of 3")), "{err:?}");
    assert_eq!(e.inventory("coupons").map(|(_, c)| c.waitlisted), Some(0), "nobody parked at the head");
    assert_eq!(e.claim(&req("coupons", "b", 3, "k"), 0).map(|r| r.0.status), Ok(ClaimStatus::Confirmed));
}

#[test]
fn a_unit_named_twice_in_one_claim_is_invalid() {
    let mut e = Engine::default();
    e.create_inventory(InventorySpec { per_user_limit: None, ..seats(10) }).expect("created");
    let twice = ClaimRequest { units: vec!["A-1".into(); 10], hold: Some(false), ..req("seats", "a", 10, "k") };
    let err = e.claim(&twice, 0).expect_err("repeated unit");
    assert!(matches!(&err, ClaimError::Invalid(m) if m.contains("named twice")), "{err:?}");
    assert_eq!(e.inventory("seats").map(|(_, c)| c.taken), Some(0));
    let two = ClaimRequest { units: vec!["A-1".into(), "A-2".into(), "A-1".into()], ..twice };
    assert!(e.claim(&ClaimRequest { quantity: 3, ..two }, 0).is_err());
    e.check_invariants().expect("invariants");
}

#[test]
fn nobody_new_is_served_while_an_earlier_claim_waits() {
    let mut e = Engine::default();
    e.create_inventory(InventorySpec { per_user_limit: None, hold_ttl_ms: None, ..coupons(3, true) }).expect("created");
    assert!(e.claim(&req("coupons", "a", 2, "k"), 0).is_ok());
    let c = e.claim(&req("coupons", "c", 1, "k"), 0).expect("c").0;
    let b = e.claim(&req("coupons", "b", 2, "k"), 0).expect("b").0;
    assert_eq!((b.status, b.position), (ClaimStatus::Waitlisted, Some(1)));
    e.cancel(c.claim, 1).expect("cancel");
    assert_eq!(e.get(b.claim).map(|c| c.status), Some(ClaimStatus::Waitlisted), "1 free, B needs 2");
    // The free item is B's to wait for: D joins the line behind B.
    let d = e.claim(&req("coupons", "d", 1, "k"), 2).expect("d").0;
    assert_eq!((d.status, d.position), (ClaimStatus::Waitlisted, Some(2)));
    e.check_invariants().expect("invariants");
    // And once B is served, D is next.
    let a = e.claims_of("coupons", "a")[0].id;
    let promoted = e.cancel(a, 3).expect("cancel");
    assert_eq!(promoted.len(), 3, "cancel, B promoted, D promoted: {promoted:?}");
    assert_eq!(e.get(d.claim).map(|c| c.status), Some(ClaimStatus::Confirmed));
    e.check_invariants().expect("invariants");
}

#[test]
fn a_named_unit_is_not_taken_from_under_the_line() {
    let mut e = Engine::default();
    e.create_inventory(InventorySpec { per_user_limit: None, hold_ttl_ms: None, ..seats(3) }).expect("created");
    let a = e.claim(&req("seats", "a", 3, "k"), 0).expect("a").0;
    assert!(e.claim(&req("seats", "b", 2, "k"), 0).is_ok_and(|r| r.0.status == ClaimStatus::Waitlisted));
    e.cancel(a.claim, 1).expect("cancel");
    // A-1..A-3 are free and B (2) was promoted; only one seat is left for anyone else.
    let named = ClaimRequest { units: vec!["A-3".into()], ..req("seats", "c", 1, "k") };
    assert!(e.claim(&named, 2).is_ok());
    e.check_invariants().expect("invariants");
}

#[test]
fn a_replay_with_a_changed_body_is_a_conflict_and_a_replay_returns_what_was_stored() {
    let mut e = Engine::default();
    e.create_inventory(InventorySpec { per_user_limit: Some(5), ..coupons(10, false) }).expect("created");
    let first = e.claim(&req("coupons", "a", 2, "k"), 0).expect("first").0;
    let again = e.claim(&req("coupons", "a", 2, "k"), 1).expect("replay").0;
    assert!(again.replayed);
    assert_eq!((again.claim, again.quantity), (first.claim, 2));
    for changed in [
        req("coupons", "a", 3, "k"),
        ClaimRequest { hold: Some(true), ..req("coupons", "a", 2, "k") },
        ClaimRequest { units: vec!["x".into(), "y".into()], ..req("coupons", "a", 2, "k") },
    ] {
        let err = e.claim(&changed, 1).expect_err("changed body");
        assert_eq!(err.code(), "idempotency_conflict", "{changed:?}");
    }
    // Leaving out what the engine chose (hold) is still the same request.
    assert!(e.claim(&ClaimRequest { hold: None, ..req("coupons", "a", 2, "k") }, 1).is_ok_and(|r| r.0.replayed));
    assert_eq!(e.inventory("coupons").map(|(_, c)| c.taken), Some(2));
}

#[test]
fn finished_claims_are_forgotten_after_the_retention_window_and_memory_stays_flat() {
    let mut e = Engine::default();
    e.create_inventory(InventorySpec { per_user_limit: Some(5), ..coupons(100, false) }).expect("created");
    let mut log: Vec<Event> = e.inventories.iter().map(|i| Event::InventoryCreated(i.spec.clone())).collect();
    let retention = 60_000;
    let kept = confirmed_churn(&mut e, &mut log, 0, 2_000, retention);
    // A claim that is kept is never forgotten.
    let (keep, events) = e.claim(&req("coupons", "keeper", 1, "keep"), 0).expect("kept");
    log.extend(events);
    let later = confirmed_churn(&mut e, &mut log, 1_000_000, 20_000, retention);
    assert!(later.0 <= kept.0 + 1, "10x the churn, no more claims kept: {kept:?} then {later:?}");
    assert!(later.1 <= kept.1 + 1, "nor users: {kept:?} then {later:?}");
    assert!(e.get(keep.claim).is_some());
    // Within the window a key still answers; after it, the same key is a new claim.
    let t = 100_000_000;
    let (first, events) = e.claim(&req("coupons", "r", 1, "again"), t).expect("claim");
    log.extend(events);
    log.extend(e.cancel(first.claim, t).expect("cancel"));
    log.extend(e.compact(t + retention - 1, retention));
    assert!(e.claim(&req("coupons", "r", 1, "again"), t + 1).is_ok_and(|r| r.0.replayed), "kept for the window");
    log.extend(e.compact(t + retention + 1, retention));
    assert!(e.get(first.claim).is_none(), "forgotten");
    let (second, events) = e.claim(&req("coupons", "r", 1, "again"), t + retention + 2).expect("new claim");
    log.extend(events);
    assert!(!second.replayed && second.claim != first.claim);
    e.check_invariants().expect("invariants");
    // A replayed log forgets exactly what the engine forgot.
    let mut replayed = Engine::default();
    for event in &log {
        replayed.apply(event);
    }
    assert_eq!(replayed.state_hash(), e.state_hash());
    assert_eq!(replayed.kept(), e.kept());
}

/// `n` claim-and-cancel cycles over 50 users from `start`, one a second, compacting as a server's ticker does.
fn confirmed_churn(e: &mut Engine, log: &mut Vec<Event>, start: u64, n: u64, retention: u64) -> (usize, usize) {
    for i in 0..n {
        let now = start + i * 1_000;
        let r = req("coupons", &format!("u{}", i % 50), 1, &format!("k{i}"));
        let (reply, events) = e.claim(&r, now).expect("claim");
        log.extend(events);
        log.extend(e.cancel(reply.claim, now).expect("cancel"));
        log.extend(e.compact(now, retention));
    }
    e.kept()
}

#[derive(Debug, Clone)]
enum Hostile {
    Claim { user: u8, quantity: u32, hold: Option<bool>, key: u8, units: Vec<u8>, seats: bool },
    Confirm(usize),
    Cancel(usize),
    Wait(u64),
    Compact(u64),
}

fn hostile() -> impl Strategy<Value = Hostile> {
    let quantity = prop_oneof![4 => 1u32..4, 1 => Just(0u32), 1 => Just(u32::MAX), 1 => any::<u32>(), 1 => 4u32..12];
    let hold = prop_oneof![Just(None), Just(Some(true)), Just(Some(false))];
    // Unit 0..6 exist ("A-1".."A-6"), 6 and 7 do not; repeats happen.
    let units = prop_oneof![3 => Just(Vec::new()), 2 => proptest::collection::vec(0u8..8, 1..5)];
    prop_oneof![
        6 => (0u8..8, quantity, hold, 0u8..3, units, any::<bool>())
            .prop_map(|(user, quantity, hold, key, units, seats)| Hostile::Claim { user, quantity, hold, key, units, seats }),
        2 => any::<usize>().prop_map(Hostile::Confirm),
        3 => any::<usize>().prop_map(Hostile::Cancel),
        2 => (1u64..400_000).prop_map(Hostile::Wait),
        1 => (0u64..600_000).prop_map(Hostile::Compact),
    ]
}

proptest! {
    /// Arbitrary quantities over the whole u32 range, repeated and unknown units, replays with edited bodies,
    /// interleaved holds, cancels and compaction: every invariant (no oversell, per-user limit, one claim per
    /// unit, strict FIFO) after every step; a replay never changes anything and answers with what was stored;
    /// the indexed read model agrees with a scan; the log replays to the same state.
    #[test]
    fn no_hostile_sequence_breaks_an_invariant(ops in proptest::collection::vec(hostile(), 1..300)) {
        let mut e = Engine::default();
        let mut log = Vec::new();
        log.extend(e.create_inventory(InventorySpec { per_user_limit: Some(3), ..coupons(5, true) }).expect("ok"));
        log.extend(e.create_inventory(seats(6)).expect("created"));
        let mut claims = Vec::new();
        let mut now = 0;
        for op in ops {
            match op {
                Hostile::Claim { user, quantity, hold, key, units, seats } => {
                    let inv = if seats { "seats" } else { "coupons" };
                    let units: Vec<String> = units.iter().map(|u| format!("A-{}", u + 1)).collect();
                    let r = ClaimRequest { hold, units, ..req(inv, &format!("u{user}"), quantity, &format!("k{key}")) };
                    let before = e.state_hash();
                    match e.claim(&r, now) {
                        Ok((reply, events)) if reply.replayed => {
                            prop_assert!(events.is_empty());
                            prop_assert_eq!(before, e.state_hash(), "a replay changes nothing");
                            let stored = e.get(reply.claim).expect("replayed claims exist");
                            prop_assert_eq!(reply.quantity, stored.quantity);
                            prop_assert_eq!(stored.quantity, quantity, "a replay is the same request");
                        }
                        Ok((reply, events)) => {
                            prop_assert!(quantity >= 1 && u64::from(quantity) <= 6);
                            claims.push(reply.claim);
                            log.extend(events);
                        }
                        Err(_) => prop_assert_eq!(before, e.state_hash(), "a refusal changes nothing"),
                    }
                    // The indexed read model agrees with a scan of every claim.
                    let u = format!("u{user}");
                    let mut scanned: Vec<&Claim> =
                        e.claims.values().map(|r| &r.claim).filter(|c| *c.inventory == *inv && *c.user == *u).collect();
                    scanned.sort_by_key(|c| c.id);
                    prop_assert_eq!(e.claims_of(inv, &u), scanned);
                }
                Hostile::Confirm(i) if !claims.is_empty() => {
                    if let Ok(events) = e.confirm(claims[i % claims.len()], now) {
                        log.extend(events);
                    }
                }
                Hostile::Cancel(i) if !claims.is_empty() => {
                    if let Ok(events) = e.cancel(claims[i % claims.len()], now) {
                        log.extend(events);
                    }
                }
                Hostile::Wait(ms) => {
                    now += ms;
                    log.extend(e.expire(now));
                }
                Hostile::Compact(retention) => log.extend(e.compact(now, retention)),
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
        prop_assert_eq!(replayed.kept(), e.kept());
    }
}

#[test]
fn every_claim_error_code_is_listed() {
    let all = [
        ClaimError::SoldOut,
        ClaimError::LimitReached(1),
        ClaimError::UnitTaken("A-1".into()),
        ClaimError::Closed,
        ClaimError::Invalid("x".into()),
        ClaimError::NotFound("inventory"),
        ClaimError::HoldExpired,
        ClaimError::IdempotencyConflict("x".into()),
    ];
    let codes: Vec<_> = all.iter().map(ClaimError::code).collect();
    assert_eq!(codes, ClaimError::CODES);
}

#[test]
fn an_invalid_claim_says_what_is_wrong_without_repeating_its_code() {
    let mut e = Engine::default();
    e.create_inventory(coupons(5, false)).expect("inventory");
    let mut req = ClaimRequest {
        inventory: "coupons".into(),
        user: "u".into(),
        quantity: 0,
        units: Vec::new(),
        hold: None,
        idempotency_key: "k".into(),
    };
    let said = |e: &mut Engine, req: &ClaimRequest| e.claim(req, 0).expect_err("invalid").to_string();
    assert_eq!(said(&mut e, &req), "quantity must be at least 1");
    req.quantity = 1;
    req.user.clear();
    assert_eq!(said(&mut e, &req), "user is required");
}
