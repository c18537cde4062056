//! The JSON a client sees for a claim and an inventory. Times are RFC 3339 for people and Unix ms for code.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};
use spillway_core::reserve::{Claim, ClaimStatus, Counts, InventorySpec, Stock};

fn rfc3339(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// A claim where it stands now. `replayed` says the answer is the one first given to this idempotency key.
pub fn claim_json(c: &Claim, position: Option<u64>, now_ms: u64, replayed: Option<bool>) -> Value {
    let mut v = json!({
        "claim": c.id,
        "inventory": c.inventory,
        "user": c.user,
        "quantity": c.quantity,
        "units": c.units,
        "status": c.status.as_str(),
    });
    if let ClaimStatus::Held { expires } = c.status {
        v["expires_at"] = json!(rfc3339(expires));
        v["expires_at_ms"] = json!(expires);
        v["expires_in_seconds"] = json!(expires.saturating_sub(now_ms).div_ceil(1000));
    }
    if let Some(p) = position {
        v["position"] = json!(p);
    }
    if let Some(r) = replayed {
        v["replayed"] = json!(r);
    }
    v
}

/// One inventory with its named units: each unit's name, whether it is free, and its attributes.
pub fn inventory_with_units_json(
    spec: &InventorySpec,
    counts: &Counts,
    units: &[(String, bool)],
    now_ms: u64,
) -> Value {
    let mut v = inventory_json(spec, counts, now_ms);
    if matches!(spec.stock, Stock::Units(_)) {
        let units: Vec<Value> = units
            .iter()
            .map(|(name, free)| {
                let mut u = json!({ "name": name, "free": free });
                if let Some(attrs) = spec.attributes.get(name) {
                    u["attributes"] = json!(attrs);
                }
                u
            })
            .collect();
        v["units"] = json!(units);
    }
    v
}

pub fn inventory_json(spec: &InventorySpec, counts: &Counts, now_ms: u64) -> Value {
    let mut v = json!({
        "id": spec.id,
        "kind": match spec.stock { Stock::Counted(_) => "counted", Stock::Units(_) => "units" },
        "capacity": counts.capacity,
        "remaining": counts.remaining(),
        "held": counts.held,
        "confirmed": counts.taken - counts.held,
        "waitlisted": counts.waitlisted,
        "waitlist": spec.waitlist,
        "open": spec.open_at(now_ms),
    });
    if let Some(limit) = spec.per_user_limit {
        v["per_user_limit"] = json!(limit);
    }
    if let Some(ttl) = spec.hold_ttl_ms {
        v["hold_seconds"] = json!(ttl / 1000);
    }
    if let Some(t) = spec.opens_at {
        v["opens_at"] = json!(rfc3339(t));
    }
    if let Some(t) = spec.closes_at {
        v["closes_at"] = json!(rfc3339(t));
    }
    v
}
