//! `[inventories.NAME]` (or the admin API's JSON, which has the same shape) turned into the engine's spec.

use spillway_config::InventoryConfig;
use spillway_core::reserve::{InventorySpec, Stock};

/// The config is validated before it gets here; the errors are for the admin API, which validates here.
pub fn spec_from_config(name: &str, inv: &InventoryConfig) -> Result<InventorySpec, String> {
    inv.validate(name).map_err(|e| e.to_string())?;
    let units = inv.unit_names()?;
    let stock = match inv.stock {
        Some(n) => Stock::Counted(n),
        None => Stock::Units(units),
    };
    Ok(InventorySpec {
        id: name.to_string(),
        stock,
        per_user_limit: inv.per_user_limit,
        hold_ttl_ms: inv.hold.map(|h| h.as_millis()),
        waitlist: inv.waitlist,
        opens_at: inv.opens_at.as_ref().map(|t| t.unix() * 1000),
        closes_at: inv.closes_at.as_ref().map(|t| t.unix() * 1000),
        attributes: inv.unit_attributes()?,
    })
}
