use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Seconds, Timestamp};

/// `[reservations]`: where the reservation engine keeps its ledger and whom it believes a claim is from.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationsConfig {
    /// The SQLite file every claim is written to before it is answered; relative to the config file. The
    /// engine's state is rebuilt from it on start.
    #[serde(default = "default_ledger")]
    pub ledger: PathBuf,
    /// Take the user from this request header, set by your authentication layer, instead of trusting the
    /// `user` the client sends. Without it anyone can claim in anyone's name, which is fine for a demo and
    /// for an origin that checks again, and not otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_header: Option<String>,
    /// How long a finished (cancelled or expired) claim and its idempotency key are remembered after it
    /// finished. Within it a retry with the same key gets the first answer; after it the claim is forgotten,
    /// and the same key makes a new claim. Without an end, every claim ever made stays in memory.
    #[serde(default = "default_retention")]
    pub idempotency_retention: Seconds,
}

impl Default for ReservationsConfig {
    fn default() -> Self {
        Self { ledger: default_ledger(), user_header: None, idempotency_retention: default_retention() }
    }
}

/// As long as Stripe keeps idempotency keys.
fn default_retention() -> Seconds {
    Seconds::secs(24 * 3600)
}

fn default_ledger() -> PathBuf {
    PathBuf::from("spillway-ledger.db")
}

/// An inventory created at start if the ledger does not have it yet. The ledger is the truth once it does:
/// a change here does not rewrite stock that has been claimed from (create a new inventory instead).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// N identical items (coupons, one size of a sneaker). Either this or `units`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<u64>,
    /// Named units (seats, lockers). `"A-1..20"` stands for `A-1` to `A-20`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<String>,
    /// Attributes shown with units, by unit or range: `"A-1..20" = { section = "floor", price = "99000" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, BTreeMap<String, String>>,
    /// Most items one user may have at once (confirmed, held or waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user_limit: Option<u32>,
    /// Claims may be held this long and must be confirmed before it runs out, or the stock goes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Seconds>,
    /// Claims beyond the stock wait in line, first come first served, for stock that is freed.
    #[serde(default)]
    pub waitlist: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<Timestamp>,
}

/// Most units an inventory may name: each is kept in memory and written in the ledger's first event.
pub const MAX_UNITS: usize = 1_000_000;

impl InventoryConfig {
    /// The checks `[inventories.NAME]` gets in a config file, for inventories created over the admin API.
    pub fn validate(&self, name: &str) -> Result<(), crate::ConfigError> {
        crate::validate::inventory(name, self)
    }

    /// The unit names with ranges expanded, in order.
    pub fn unit_names(&self) -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        for pattern in &self.units {
            names.extend(expand(pattern)?);
            if names.len() > MAX_UNITS {
                return Err(format!("more than {MAX_UNITS} units"));
            }
        }
        Ok(names)
    }

    /// Attributes per unit name, ranges expanded; a later entry adds to (and overrides keys of) an earlier.
    pub fn unit_attributes(&self) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (pattern, attrs) in &self.attributes {
            for unit in expand(pattern)? {
                out.entry(unit).or_default().extend(attrs.clone());
            }
        }
        Ok(out)
    }
}

/// `"A-1..20"` → `A-1`…`A-20`; `"A-01..12"` keeps the width; anything else is one name.
pub fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let Some((head, last)) = pattern.split_once("..") else {
        return Ok(vec![pattern.to_string()]);
    };
    let digits = head.len() - head.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, first) = head.split_at(head.len() - digits);
    let bad = || format!("{pattern:?}: a range is written \"A-1..20\" (a prefix, a first and a last number)");
    let (Ok(from), Ok(to)) = (first.parse::<u64>(), last.parse::<u64>()) else {
        return Err(bad());
    };
    if to < from {
        return Err(bad());
    }
    if to - from >= MAX_UNITS as u64 {
        return Err(format!("{pattern:?}: more than {MAX_UNITS} units"));
    }
    let width = if first.starts_with('0') && first.len() > 1 { first.len() } else { 0 };
    Ok((from..=to).map(|n| format!("{prefix}{n:0width$}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_and_keep_zero_padding() {
        assert_eq!(expand("A-1..3").expect("range"), ["A-1", "A-2", "A-3"]);
        assert_eq!(expand("R09..11").expect("range"), ["R09", "R10", "R11"]);
        assert_eq!(expand("CS101-01").expect("name"), ["CS101-01"]);
        assert!(expand("A-5..3").is_err());
        assert!(expand("A..3").is_err());
        assert!(expand("A-1..x").is_err());
    }
}
