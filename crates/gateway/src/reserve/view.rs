//! The JSON a client sees for a claim and an inventory. Times are RFC 3339 for people and Unix ms for code.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};
use spillway_core::reserve::{Claim, ClaimStatus, Counts, InventorySpec, Stock};

fn rfc3339(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// A claim where it stands now, as the client sees it. Serialized straight from borrowed fields: the claim
/// answer is on the hot path of a sale.
#[derive(Debug, Serialize)]
pub struct ClaimView<'a> {
    claim: u64,
    inventory: &'a str,
    user: &'a str,
    quantity: u32,
    units: &'a [String],
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_seconds: Option<u64>,
    /// 1 = next in line, for a waitlisted claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
    /// The answer is the one first given to this idempotency key.
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed: Option<bool>,
}

pub fn claim_json(c: &Claim, position: Option<u64>, now_ms: u64, replayed: Option<bool>) -> ClaimView<'_> {
    let parts = ClaimParts { id: c.id, inventory: &c.inventory, user: &c.user, quantity: c.quantity, units: &c.units };
    parts.view(c.status, position, now_ms, replayed)
}

/// What a claim's answer shows besides where it stands, borrowed from wherever the caller has it: the answer
/// to a claim is built from its request and the engine's reply, with no copy of the stored claim.
#[derive(Debug, Clone, Copy)]
pub struct ClaimParts<'a> {
    pub id: u64,
    pub inventory: &'a str,
    pub user: &'a str,
    pub quantity: u32,
    pub units: &'a [String],
}

impl<'a> ClaimParts<'a> {
    pub fn view(
        self,
        status: ClaimStatus,
        position: Option<u64>,
        now_ms: u64,
        replayed: Option<bool>,
    ) -> ClaimView<'a> {
        let expires = status.expires();
        ClaimView {
            claim: self.id,
            inventory: self.inventory,
            user: self.user,
            quantity: self.quantity,
            units: self.units,
            status: status.as_str(),
            expires_at: expires.map(rfc3339),
            expires_at_ms: expires,
            expires_in_seconds: expires.map(|e| e.saturating_sub(now_ms).div_ceil(1000)),
            position,
            replayed,
        }
    }
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
