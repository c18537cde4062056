//! Arbitrary bytes as a claim's body, read exactly as the reservation API reads it (`ClaimBody::parse`, then
//! `into_request`), then decided by the engine against inventories of counted stock and named seats: nothing
//! panics, and whatever the body says, every invariant holds after the decision and after a retry of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spillway_core::reserve::{Engine, InventorySpec, Stock};
use spillway_gateway::reserve::api::ClaimBody;

fn engine() -> Engine {
    let mut e = Engine::default();
    let base = InventorySpec {
        id: "drop".into(),
        stock: Stock::Counted(10),
        per_user_limit: Some(3),
        hold_ttl_ms: Some(60_000),
        waitlist: true,
        opens_at: None,
        closes_at: None,
        attributes: Default::default(),
    };
    e.create_inventory(base.clone()).expect("drop");
    let seats = Stock::Units((1..=6).map(|i| format!("S-{i}")).collect());
    e.create_inventory(InventorySpec { id: "hall".into(), stock: seats, hold_ttl_ms: None, ..base }).expect("hall");
    e
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = ClaimBody::parse(data) else { return };
    let user = body.user.clone().unwrap_or_else(|| "fuzz".into());
    if user.is_empty() || user.len() > 256 {
        return;
    }
    let mut e = engine();
    let entropy = spillway_gateway::Entropy::seeded(0);
    for inventory in ["drop", "hall"] {
        let Ok(body) = ClaimBody::parse(data) else { return };
        let Ok(request) = body.into_request(inventory, user.clone(), Some("k".into()), &entropy) else { continue };
        let first = e.claim(&request, 1_000);
        if let Err(broken) = e.check_invariants() {
            panic!("{broken} after {request:?} -> {first:?}");
        }
        if let Ok((reply, _)) = &first {
            let again = e.claim(&request, 2_000).expect("a retry of an accepted claim is answered");
            assert!(again.0.replayed && again.0.claim == reply.claim && again.0.quantity == reply.quantity);
        }
        if let Err(broken) = e.check_invariants() {
            panic!("{broken} after the retry of {request:?}");
        }
    }
});
