//! One inventory's stock: counted (N identical items) or named units (seats), who holds what, and the line.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::claimants::{Claimants, FastMap};

use serde::{Deserialize, Serialize};

use super::{Claim, ClaimError, ClaimStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stock {
    /// N identical items: coupons, sneakers of one size.
    Counted(u64),
    /// Named units: seats `A-1`, `A-2`…, course sections.
    Units(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySpec {
    pub id: String,
    pub stock: Stock,
    pub per_user_limit: Option<u32>,
    /// Claims may be held this long (ms) before they must be confirmed.
    pub hold_ttl_ms: Option<u64>,
    /// Claims beyond the stock wait in line for stock that is freed.
    pub waitlist: bool,
    /// Unix ms.
    pub opens_at: Option<u64>,
    pub closes_at: Option<u64>,
    /// Shown with named units (section, price…); no part in any decision.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, BTreeMap<String, String>>,
}

impl InventorySpec {
    /// `n` identical items, one per user, sold at once: the shape of a flash sale, and of most tests.
    pub fn counted(id: &str, n: u64) -> Self {
        Self {
            id: id.to_string(),
            stock: Stock::Counted(n),
            per_user_limit: Some(1),
            hold_ttl_ms: None,
            waitlist: false,
            opens_at: None,
            closes_at: None,
            attributes: BTreeMap::new(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() || !self.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("id must be letters, digits, '-' or '_'".into());
        }
        if let Stock::Units(units) = &self.stock {
            let mut seen = std::collections::HashSet::new();
            if let Some(dup) = units.iter().find(|u| !seen.insert(*u)) {
                return Err(format!("unit {dup:?} is listed twice"));
            }
        }
        if let Some(unit) = self.attributes.keys().find(|u| match &self.stock {
            Stock::Units(units) => !units.contains(u),
            Stock::Counted(_) => true,
        }) {
            return Err(format!("attributes name {unit:?}, which is not a unit of this inventory"));
        }
        if self.per_user_limit == Some(0) {
            return Err("per_user_limit must be at least 1".into());
        }
        if let (Some(open), Some(close)) = (self.opens_at, self.closes_at)
            && close <= open
        {
            return Err("closes_at must be after opens_at".into());
        }
        Ok(())
    }

    pub fn capacity(&self) -> u64 {
        match &self.stock {
            Stock::Counted(n) => *n,
            Stock::Units(u) => u.len() as u64,
        }
    }

    pub fn open_at(&self, now: u64) -> bool {
        self.opens_at.is_none_or(|t| now >= t) && self.closes_at.is_none_or(|t| now < t)
    }
}

/// Figures for reads and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Counts {
    pub capacity: u64,
    /// Confirmed or held.
    pub taken: u64,
    /// Of `taken`, held and not yet confirmed.
    pub held: u64,
    pub waitlisted: u64,
}

impl Counts {
    /// Never below zero, whatever a log claims was taken.
    pub fn remaining(&self) -> u64 {
        self.capacity.saturating_sub(self.taken)
    }
}

#[derive(Debug)]
pub(super) struct Inventory {
    pub spec: InventorySpec,
    /// The id, shared by every claim and event on this inventory.
    pub name: Arc<str>,
    /// Items confirmed or held.
    taken: u64,
    /// Of those, held.
    held: u64,
    /// Units only: which claim holds each unit.
    holders: Vec<Option<u64>>,
    index: FastMap<String, usize>,
    pub claimants: Claimants,
    pub waitlist: VecDeque<u64>,
}

impl Inventory {
    pub fn new(spec: InventorySpec) -> Self {
        let (holders, index) = match &spec.stock {
            Stock::Counted(_) => (Vec::new(), FastMap::default()),
            Stock::Units(units) => {
                (vec![None; units.len()], units.iter().enumerate().map(|(i, u)| (u.clone(), i)).collect())
            }
        };
        let name = Arc::from(spec.id.as_str());
        Self {
            spec,
            name,
            taken: 0,
            held: 0,
            holders,
            index,
            claimants: Claimants::default(),
            waitlist: VecDeque::new(),
        }
    }

    /// The units a claim would get: the named ones if all are free, else the first free ones (best
    /// available). For counted stock, no names.
    pub fn allocate(&self, quantity: u32, wanted: &[String]) -> Result<Vec<String>, ClaimError> {
        let quantity = u64::from(quantity);
        if self.taken.checked_add(quantity).is_none_or(|t| t > self.spec.capacity()) {
            return Err(ClaimError::SoldOut);
        }
        let Stock::Units(names) = &self.spec.stock else {
            if !wanted.is_empty() {
                return Err(ClaimError::Invalid("this inventory has no named units".into()));
            }
            return Ok(Vec::new());
        };
        if wanted.is_empty() {
            return Ok(self
                .holders
                .iter()
                .enumerate()
                .filter(|(_, h)| h.is_none())
                .take(quantity as usize)
                .map(|(i, _)| names[i].clone())
                .collect());
        }
        for unit in wanted {
            match self.index.get(unit) {
                None => return Err(ClaimError::Invalid(format!("no unit {unit:?}"))),
                Some(&i) if self.holders[i].is_some() => return Err(ClaimError::UnitTaken(unit.clone())),
                Some(_) => {}
            }
        }
        Ok(wanted.to_vec())
    }

    pub fn take(&mut self, quantity: u32, units: &[String], claim: u64, held: bool) {
        self.taken = self.taken.saturating_add(u64::from(quantity));
        if held {
            self.held = self.held.saturating_add(u64::from(quantity));
        }
        for unit in units {
            if let Some(&i) = self.index.get(unit) {
                self.holders[i] = Some(claim);
            }
        }
    }

    pub fn give_back(&mut self, quantity: u32, units: &[String], held: bool) {
        self.taken = self.taken.saturating_sub(u64::from(quantity));
        if held {
            self.held = self.held.saturating_sub(u64::from(quantity));
        }
        for unit in units {
            if let Some(&i) = self.index.get(unit) {
                self.holders[i] = None;
            }
        }
    }

    /// A hold became a confirmed claim: still taken, no longer held.
    pub fn confirm_held(&mut self, quantity: u32) {
        self.held = self.held.saturating_sub(u64::from(quantity));
    }

    /// Named units in order, each with whether it is free (neither confirmed nor held).
    pub fn unit_states(&self) -> Vec<(&str, bool)> {
        match &self.spec.stock {
            Stock::Units(names) => names.iter().zip(&self.holders).map(|(n, h)| (n.as_str(), h.is_none())).collect(),
            Stock::Counted(_) => Vec::new(),
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            capacity: self.spec.capacity(),
            taken: self.taken,
            held: self.held,
            waitlisted: self.waitlist.len() as u64,
        }
    }

    /// Recounts from the claims and compares with the running figures.
    pub fn check<'a>(&self, claims: impl Iterator<Item = &'a Claim> + Clone) -> Result<(), String> {
        let mine = || claims.clone().filter(|c| *c.inventory == *self.spec.id);
        let taken: u64 = mine()
            .filter(|c| matches!(c.status, ClaimStatus::Confirmed | ClaimStatus::Held { .. }))
            .map(|c| u64::from(c.quantity))
            .sum();
        if taken != self.taken {
            return Err(format!("{}: {taken} taken by claims, {} counted", self.spec.id, self.taken));
        }
        let held: u64 =
            mine().filter(|c| matches!(c.status, ClaimStatus::Held { .. })).map(|c| u64::from(c.quantity)).sum();
        if held != self.held {
            return Err(format!("{}: {held} held by claims, {} counted", self.spec.id, self.held));
        }
        if taken > self.spec.capacity() {
            return Err(format!("{}: oversold: {taken} of {}", self.spec.id, self.spec.capacity()));
        }
        let mut per_user: HashMap<&str, u64> = HashMap::new();
        for c in mine().filter(|c| c.status.active()) {
            *per_user.entry(&*c.user).or_insert(0) += u64::from(c.quantity);
        }
        if let Some(limit) = self.spec.per_user_limit
            && let Some((user, q)) = per_user.iter().find(|(_, q)| **q > u64::from(limit))
        {
            return Err(format!("{}: user {user} has {q}, limit {limit}", self.spec.id));
        }
        for (user, q) in self.claimants.holding().chain(per_user.iter().map(|(u, q)| (*u, *q))) {
            let (counted, recounted) = (self.claimants.quantity(user), per_user.get(user).copied().unwrap_or(0));
            if counted != recounted || counted != q {
                return Err(format!("{}: user {user} counted {counted}, claims hold {recounted}", self.spec.id));
            }
        }
        // Strict FIFO: stock the head of the line could use would have gone to it.
        if let Some(&head) = self.waitlist.front() {
            let head = claims.clone().find(|c| c.id == head).ok_or(format!("{}: head {head} unknown", self.spec.id))?;
            if self.allocate(head.quantity, &[]).is_ok() {
                return Err(format!(
                    "{}: claim {} waits first although its {} fit",
                    self.spec.id, head.id, head.quantity
                ));
            }
        }
        if let Stock::Units(_) = self.spec.stock {
            let mut seen = std::collections::HashSet::new();
            for c in mine().filter(|c| matches!(c.status, ClaimStatus::Confirmed | ClaimStatus::Held { .. })) {
                for u in &c.units {
                    if !seen.insert(u) {
                        return Err(format!("{}: unit {u} held twice", self.spec.id));
                    }
                }
            }
            let held = self.holders.iter().filter(|h| h.is_some()).count() as u64;
            if held != taken {
                return Err(format!("{}: {held} units marked, {taken} taken", self.spec.id));
            }
        }
        Ok(())
    }
}
