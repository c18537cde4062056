//! The first-come-first-served reservation engine's state machine: inventories, claims, holds, waitlists.
//!
//! Event-sourced and sans-IO. A command ([`Engine::claim`], [`Engine::confirm`], [`Engine::cancel`],
//! [`Engine::expire`]) is decided against the current state and, if it changes anything, produces events;
//! the state changes only by [`Engine::apply`] of those events. The caller writes the events to its durable
//! log before it acknowledges the command, and rebuilds the state after a restart by applying the log again:
//! the same events always give the same state ([`Engine::state_hash`] proves it).
//!
//! Invariants, after every event: claimed + held ≤ capacity; no user beyond the per-user limit; no unit held
//! by two claims; no claim served while an earlier one waits in line.
//!
//! Everything here may come from a hostile client: quantities anywhere in `u32`, repeated or unknown units,
//! replays with an edited body. Sums on them are checked, so that no input can wrap a counter.
//!
//! Finished claims (cancelled, expired) hold nothing, but their idempotency keys must answer retries for a
//! while. [`Engine::compact`] forgets them once they finished longer ago than the retention window, with an
//! event of its own, so that a replayed log forgets exactly what the running engine forgot and memory under
//! endless claim-and-cancel churn stays flat.

mod claimants;
mod event;
mod inventory;
mod table;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

use claimants::FastMap;

pub use event::{ClaimStatus, Event};
use inventory::Inventory;
pub use inventory::{Counts, InventorySpec, Stock};
use table::Table;

/// What a claim asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub inventory: String,
    pub user: String,
    pub quantity: u32,
    /// Specific units (seats); empty means any (best available).
    pub units: Vec<String>,
    /// Hold instead of confirming at once (needs the inventory's hold TTL). `None`: as the inventory does,
    /// holding when it has a hold TTL, so a ticket buyer pays before the seat is theirs.
    pub hold: Option<bool>,
    pub idempotency_key: String,
}

/// The answer to a claim: its id and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub claim: u64,
    pub status: ClaimStatus,
    pub units: Vec<String>,
    /// 1 = next, for a waitlisted claim.
    pub position: Option<u64>,
    /// The same idempotency key was seen before: this is the original answer.
    pub replayed: bool,
    /// As recorded: for a replay, the first request's quantity.
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("sold out")]
    SoldOut,
    #[error("the per-user limit of {0} is reached")]
    LimitReached(u32),
    #[error("unit {0} is taken")]
    UnitTaken(String),
    #[error("not open")]
    Closed,
    /// The message says what is wrong; the code (`invalid`) travels beside it, so it is not repeated here.
    #[error("{0}")]
    Invalid(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("the hold has expired")]
    HoldExpired,
    /// The idempotency key was used before for a different request (quantity, units or hold).
    #[error("this idempotency key was used for a different claim: {0}")]
    IdempotencyConflict(String),
}

impl ClaimError {
    /// Every code [`ClaimError::code`] gives, for those who count by code (metrics) without a copy of the list.
    pub const CODES: [&'static str; 8] = [
        "sold_out",
        "limit_reached",
        "unit_taken",
        "closed",
        "invalid",
        "not_found",
        "hold_expired",
        "idempotency_conflict",
    ];

    /// Stable code for the HTTP contract.
    pub fn code(&self) -> &'static str {
        match self {
            Self::SoldOut => "sold_out",
            Self::LimitReached(_) => "limit_reached",
            Self::UnitTaken(_) => "unit_taken",
            Self::Closed => "closed",
            Self::Invalid(_) => "invalid",
            Self::NotFound(_) => "not_found",
            Self::HoldExpired => "hold_expired",
            Self::IdempotencyConflict(_) => "idempotency_conflict",
        }
    }
}

/// A claim as recorded. Its names are shared (with the inventory, the user's other claims and the log), so
/// a million claims on one inventory keep one copy of its id and one of each user's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: u64,
    pub inventory: Arc<str>,
    pub user: Arc<str>,
    pub quantity: u32,
    pub units: Vec<String>,
    pub status: ClaimStatus,
    pub idempotency_key: Arc<str>,
    /// The status the claim was first answered with, returned again to a retry with the same key.
    pub first_status: ClaimStatus,
}

/// A claim with the engine's own bookkeeping beside it.
#[derive(Debug)]
struct Record {
    claim: Claim,
    /// Dense index of its inventory, if the inventory existed when the claim was made.
    inventory: Option<usize>,
}

#[derive(Debug, Default)]
pub struct Engine {
    /// Indexed densely: a claim or a lookup names its inventory once, then works by index.
    inventories: Vec<Inventory>,
    by_id: FastMap<String, usize>,
    claims: Table<Record>,
    next_claim: u64,
    /// Fingerprints idempotency keys (see [`claimants::Claimant`]); seeded once per engine.
    keys: foldhash::fast::RandomState,
    /// Holds by expiry, to return their stock on time.
    holds: BTreeSet<(u64, u64)>,
    /// Finished claims as (when they finished, claim), in the order they finished: what compaction forgets.
    /// A clock stepped back only delays forgetting the claims behind the one it stamped late.
    finished: VecDeque<(u64, u64)>,
}

impl Engine {
    // === commands ===

    pub fn create_inventory(&mut self, spec: InventorySpec) -> Result<Vec<Event>, ClaimError> {
        spec.validate().map_err(ClaimError::Invalid)?;
        if self.by_id.contains_key(&spec.id) {
            return Err(ClaimError::Invalid(format!("inventory {:?} exists", spec.id)));
        }
        let events = vec![Event::InventoryCreated(spec)];
        self.apply_all(&events);
        Ok(events)
    }

    /// The claim a user with this standing made with idempotency key `key`, if any. The latest wins, as a log
    /// replayed with a repeated key would have it.
    fn known(&self, standing: &claimants::Claimant, key: &str) -> Option<&Claim> {
        let fingerprint = self.keys.hash_one(key);
        standing.claims().rev().find_map(|(fp, id)| {
            let record = self.claims.get(id).filter(|r| fp == fingerprint && *r.claim.idempotency_key == *key);
            record.map(|r| &r.claim)
        })
    }

    /// Decides a claim at `now` (Unix ms). A retry with a known idempotency key returns the first answer and
    /// changes nothing. A rejection allocates nothing; an accepted claim allocates its user's name (unless
    /// the user has claimed here before) and its key, once each, shared by the event and the state.
    pub fn claim(&mut self, req: &ClaimRequest, now: u64) -> Result<(Reply, Vec<Event>), ClaimError> {
        // First, so that any other answer means the inventory exists (the gateway labels metrics by it).
        let inv = self.by_id.get(req.inventory.as_str()).map(|&i| &self.inventories[i]);
        let inv = inv.ok_or(ClaimError::NotFound("inventory"))?;
        // One look at the user: for the replay, the per-user limit, and the name to share.
        let standing = inv.claimants.get_key_value(&req.user);
        if let Some(claim) = standing.and_then(|(_, s)| self.known(s, &req.idempotency_key)) {
            different_request(claim, req).map_or(Ok(()), |why| Err(ClaimError::IdempotencyConflict(why)))?;
            let reply = Reply {
                claim: claim.id,
                status: claim.first_status,
                units: claim.units.clone(),
                position: self.position(claim.id),
                replayed: true,
                quantity: claim.quantity,
            };
            return Ok((reply, Vec::new()));
        }
        let missing = match () {
            () if req.quantity == 0 => Some("quantity must be at least 1"),
            () if req.user.is_empty() => Some("user is required"),
            () if req.idempotency_key.is_empty() => Some("idempotency key is required"),
            () => None,
        };
        if let Some(missing) = missing {
            return Err(ClaimError::Invalid(missing.into()));
        }
        // Never grantable: refused outright, so that it cannot wait at the head of the line forever.
        if u64::from(req.quantity) > inv.spec.capacity() {
            return Err(ClaimError::Invalid(format!(
                "quantity {} is more than this inventory's whole stock of {}",
                req.quantity,
                inv.spec.capacity()
            )));
        }
        if let Some(unit) = repeated(&req.units) {
            return Err(ClaimError::Invalid(format!("unit {unit:?} is named twice")));
        }
        if !inv.spec.open_at(now) {
            return Err(ClaimError::Closed);
        }
        let hold = req.hold.unwrap_or(inv.spec.hold_ttl_ms.is_some());
        if hold && inv.spec.hold_ttl_ms.is_none() {
            return Err(ClaimError::Invalid("this inventory does not hold; claim without hold".into()));
        }
        if !req.units.is_empty() && req.units.len() != req.quantity as usize {
            return Err(ClaimError::Invalid("name one unit per item claimed, or none".into()));
        }
        if let Some(limit) = inv.spec.per_user_limit
            && standing.map_or(0, |(_, s)| s.quantity).saturating_add(u64::from(req.quantity)) > u64::from(limit)
        {
            return Err(ClaimError::LimitReached(limit));
        }
        let status = if hold {
            ClaimStatus::Held { expires: now.saturating_add(inv.spec.hold_ttl_ms.unwrap_or(0)) }
        } else {
            ClaimStatus::Confirmed
        };
        // Strict FIFO: while anyone waits, freed stock is theirs, and a newcomer joins the line behind them.
        let line_waiting = inv.spec.waitlist && !inv.waitlist.is_empty();
        let allocated = if line_waiting { Err(ClaimError::SoldOut) } else { inv.allocate(req.quantity, &req.units) };
        let (status, units) = match allocated {
            Ok(units) => (status, units),
            // Only "any unit" claims wait in line: a wish for particular seats cannot be promised later.
            Err(ClaimError::SoldOut) if inv.spec.waitlist && req.units.is_empty() => {
                (ClaimStatus::Waitlisted, Vec::new())
            }
            Err(e) => return Err(e),
        };
        let id = self.next_claim;
        let user = standing.map_or_else(|| Arc::from(req.user.as_str()), |(name, _)| name.clone());
        let event = Event::Claimed {
            claim: id,
            inventory: inv.name.clone(),
            user,
            quantity: req.quantity,
            units: units.clone(),
            key: Arc::from(req.idempotency_key.as_str()),
            status,
            at: now,
        };
        self.apply(&event);
        let reply =
            Reply { claim: id, status, units, position: self.position(id), replayed: false, quantity: req.quantity };
        Ok((reply, vec![event]))
    }

    /// Turns a hold into a confirmed claim.
    pub fn confirm(&mut self, claim: u64, now: u64) -> Result<Vec<Event>, ClaimError> {
        let c = &self.claims.get(claim).ok_or(ClaimError::NotFound("claim"))?.claim;
        match c.status {
            ClaimStatus::Confirmed => Ok(Vec::new()),
            ClaimStatus::Held { expires } if expires > now => {
                let events = vec![Event::Confirmed { claim, at: now }];
                self.apply_all(&events);
                Ok(events)
            }
            ClaimStatus::Held { .. } | ClaimStatus::Expired => Err(ClaimError::HoldExpired),
            ClaimStatus::Waitlisted | ClaimStatus::Cancelled => {
                Err(ClaimError::Invalid(format!("a {} claim cannot be confirmed", c.status.as_str())))
            }
        }
    }

    /// Gives a claim up; its stock goes to the waitlist first.
    pub fn cancel(&mut self, claim: u64, now: u64) -> Result<Vec<Event>, ClaimError> {
        let r = self.claims.get(claim).ok_or(ClaimError::NotFound("claim"))?;
        if matches!(r.claim.status, ClaimStatus::Cancelled | ClaimStatus::Expired) {
            return Ok(Vec::new());
        }
        let inventory = r.inventory;
        let mut events = vec![Event::Cancelled { claim, at: now }];
        self.apply(&events[0]);
        if let Some(inventory) = inventory {
            events.extend(self.promote(inventory, now));
        }
        Ok(events)
    }

    /// Returns the stock of every hold that expired by `now`, exactly once, and promotes the waitlist.
    pub fn expire(&mut self, now: u64) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(&(expires, claim)) = self.holds.first() {
            if expires > now {
                break;
            }
            let event = Event::Expired { claim, at: now };
            self.apply(&event);
            events.push(event);
            if let Some(inventory) = self.claims.get(claim).and_then(|r| r.inventory) {
                events.extend(self.promote(inventory, now));
            }
        }
        events
    }

    /// Forgets the claims that finished (cancelled, expired) more than `retention_ms` before `now`, with their
    /// idempotency keys: a retry with such a key is a new claim. One event covers them all; nothing due costs
    /// nothing.
    pub fn compact(&mut self, now: u64, retention_ms: u64) -> Vec<Event> {
        let before = now.saturating_sub(retention_ms);
        if self.finished.front().is_none_or(|&(at, _)| at >= before) {
            return Vec::new();
        }
        let events = vec![Event::Compacted { before }];
        self.apply_all(&events);
        events
    }

    /// What memory holds: claims not yet forgotten, and users with any such claim (for metrics: cheap).
    pub fn kept(&self) -> (usize, usize) {
        (self.claims.count(), self.inventories.iter().map(|i| i.claimants.len()).sum())
    }

    /// Gives freed stock to waitlisted claims, first come first served: the head of the line is served
    /// before anyone behind it, even if a smaller claim behind it would fit.
    fn promote(&mut self, inventory: usize, now: u64) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(inv) = self.inventories.get(inventory) {
            let Some(&head) = inv.waitlist.front() else { break };
            let Some(Record { claim: c, .. }) = self.claims.get(head) else { break };
            let Ok(units) = inv.allocate(c.quantity, &c.units) else { break };
            let status = match inv.spec.hold_ttl_ms {
                Some(ttl) => ClaimStatus::Held { expires: now.saturating_add(ttl) },
                None => ClaimStatus::Confirmed,
            };
            let event = Event::Promoted { claim: head, units, status, at: now };
            self.apply(&event);
            events.push(event);
        }
        events
    }

    // === state ===

    fn apply_all(&mut self, events: &[Event]) {
        for e in events {
            self.apply(e);
        }
    }

    /// The only place the state changes. Deterministic: replaying a log gives the same state.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::InventoryCreated(spec) => {
                let mut fresh = Inventory::new(spec.clone());
                match self.by_id.get(spec.id.as_str()) {
                    // Created again: counts start over, but claims made there keep their idempotency keys.
                    Some(&i) => {
                        fresh.claimants = std::mem::take(&mut self.inventories[i].claimants).reset_quantities();
                        self.inventories[i] = fresh;
                    }
                    None => {
                        self.by_id.insert(spec.id.clone(), self.inventories.len());
                        self.inventories.push(fresh);
                    }
                }
            }
            Event::Claimed { claim, inventory, user, quantity, units, key, status, .. } => {
                self.next_claim = self.next_claim.max(claim + 1);
                let index = self.by_id.get(&**inventory).copied();
                // The record shares the inventory's and the user's stored names, not the event's copies: a
                // replayed log has a fresh copy in every event.
                let (inventory, user) = match index.map(|i| &mut self.inventories[i]) {
                    Some(inv) => {
                        let user = inv.claimants.add(user, self.keys.hash_one(&**key), *claim, *quantity);
                        match status {
                            ClaimStatus::Waitlisted => inv.waitlist.push_back(*claim),
                            _ => inv.take(*quantity, units, *claim, status.expires().is_some()),
                        }
                        (inv.name.clone(), user)
                    }
                    None => (inventory.clone(), user.clone()),
                };
                if let ClaimStatus::Held { expires } = status {
                    self.holds.insert((*expires, *claim));
                }
                let claim = Claim {
                    id: *claim,
                    inventory,
                    user,
                    quantity: *quantity,
                    units: units.clone(),
                    status: *status,
                    idempotency_key: key.clone(),
                    first_status: *status,
                };
                self.claims.insert(claim.id, Record { claim, inventory: index });
            }
            Event::Confirmed { claim, .. } => {
                if let Some(Record { claim: c, inventory }) = self.claims.get_mut(*claim) {
                    if let ClaimStatus::Held { expires } = c.status {
                        self.holds.remove(&(expires, *claim));
                        if let Some(inv) = inventory.map(|i| &mut self.inventories[i]) {
                            inv.confirm_held(c.quantity);
                        }
                    }
                    c.status = ClaimStatus::Confirmed;
                }
            }
            Event::Cancelled { claim, at } | Event::Expired { claim, at } => {
                let expired = matches!(event, Event::Expired { .. });
                if let Some(Record { claim: c, inventory }) = self.claims.get_mut(*claim) {
                    let before = c.status;
                    if before.active() {
                        self.finished.push_back((*at, *claim));
                    }
                    c.status = if expired { ClaimStatus::Expired } else { ClaimStatus::Cancelled };
                    if let ClaimStatus::Held { expires } = before {
                        self.holds.remove(&(expires, *claim));
                    }
                    if let Some(inv) = inventory.map(|i| &mut self.inventories[i]) {
                        inv.claimants.release(&c.user, c.quantity);
                        match before {
                            ClaimStatus::Waitlisted => inv.waitlist.retain(|&w| w != *claim),
                            ClaimStatus::Confirmed | ClaimStatus::Held { .. } => {
                                inv.give_back(c.quantity, &c.units, before.expires().is_some());
                            }
                            ClaimStatus::Cancelled | ClaimStatus::Expired => {}
                        }
                    }
                }
            }
            Event::Compacted { before } => {
                while let Some(&(at, claim)) = self.finished.front() {
                    if at >= *before {
                        break;
                    }
                    self.finished.pop_front();
                    // Only if it is still finished: a crafted log may have claimed the id again since.
                    let done = self.claims.get(claim).is_some_and(|r| !r.claim.status.active());
                    if let Some(Record { claim: c, inventory }) = done.then(|| self.claims.remove(claim)).flatten()
                        && let Some(inv) = inventory.map(|i| &mut self.inventories[i])
                    {
                        inv.claimants.forget(&c.user, c.id);
                    }
                }
            }
            Event::Promoted { claim, units, status, .. } => {
                if let Some(Record { claim: c, inventory }) = self.claims.get_mut(*claim) {
                    if let Some(inv) = inventory.map(|i| &mut self.inventories[i]) {
                        inv.waitlist.retain(|&w| w != *claim);
                        inv.take(c.quantity, units, *claim, status.expires().is_some());
                    }
                    c.units = units.clone();
                    c.status = *status;
                    if let ClaimStatus::Held { expires } = status {
                        self.holds.insert((*expires, *claim));
                    }
                }
            }
        }
    }

    pub fn get(&self, claim: u64) -> Option<&Claim> {
        self.claims.get(claim).map(|r| &r.claim)
    }

    pub fn inventory(&self, id: &str) -> Option<(&InventorySpec, Counts)> {
        self.by_id.get(id).map(|&i| (&self.inventories[i].spec, self.inventories[i].counts()))
    }

    /// A named-unit inventory's units, each with whether it is free; empty for counted stock.
    pub fn units(&self, id: &str) -> Option<Vec<(&str, bool)>> {
        self.by_id.get(id).map(|&i| self.inventories[i].unit_states())
    }

    /// Every inventory with its figures, by id.
    pub fn inventories(&self) -> Vec<(&InventorySpec, Counts)> {
        let mut all: Vec<_> = self.inventories.iter().map(|i| (&i.spec, i.counts())).collect();
        all.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        all
    }

    /// A user's claims on an inventory, oldest first, whatever their status (the "my claims" read model).
    pub fn claims_of(&self, inventory: &str, user: &str) -> Vec<&Claim> {
        let Some(claimant) = self.by_id.get(inventory).and_then(|&i| self.inventories[i].claimants.get(user)) else {
            return Vec::new();
        };
        let mut mine: Vec<&Claim> = claimant.claims().filter_map(|(_, id)| self.get(id)).collect();
        mine.sort_by_key(|c| c.id);
        mine
    }

    /// 1-based place of a waitlisted claim.
    pub fn position(&self, claim: u64) -> Option<u64> {
        let r = self.claims.get(claim)?;
        if r.claim.status != ClaimStatus::Waitlisted {
            return None;
        }
        let inv = self.inventories.get(r.inventory?)?;
        inv.waitlist.iter().position(|&w| w == claim).map(|p| p as u64 + 1)
    }

    /// A digest of the whole state, independent of map order: equal after replaying the same log.
    pub fn state_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let mut ids: Vec<(&String, usize)> = self.by_id.iter().map(|(id, &i)| (id, i)).collect();
        ids.sort();
        for (id, i) in ids {
            let inv = &self.inventories[i];
            id.hash(&mut h);
            inv.counts().hash(&mut h);
            inv.waitlist.hash(&mut h);
        }
        let mut claims: Vec<&Claim> = self.claims.values().map(|r| &r.claim).collect();
        claims.sort_by_key(|c| c.id);
        for c in claims {
            (c.id, &c.user, c.quantity, &c.units, c.status.as_str(), c.status.expires()).hash(&mut h);
        }
        h.finish()
    }

    /// Checks every invariant; the property tests call it after every step.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.claims.count() != self.claims.values().count() {
            return Err(format!("{} claims counted, {} held", self.claims.count(), self.claims.values().count()));
        }
        for inv in &self.inventories {
            inv.check(self.claims.values().map(|r| &r.claim))?;
        }
        Ok(())
    }
}

/// Why a retry under a known key asks for something other than the claim it made, if it does. A retry may
/// leave out what the first request left to the engine (units, hold); it may not change what it asked for.
fn different_request(claim: &Claim, req: &ClaimRequest) -> Option<String> {
    if claim.quantity != req.quantity {
        return Some(format!("it claimed {}, this asks for {}", claim.quantity, req.quantity));
    }
    let waited = claim.first_status == ClaimStatus::Waitlisted;
    if !req.units.is_empty() && (waited || claim.units != req.units) {
        return Some(format!("it claimed units {:?}, this names {:?}", claim.units, req.units));
    }
    let held = matches!(claim.first_status, ClaimStatus::Held { .. });
    match req.hold {
        Some(hold) if !waited && hold != held => Some(format!(
            "it was {}, this asks to {}",
            claim.first_status.as_str(),
            if hold { "hold" } else { "confirm" }
        )),
        _ => None,
    }
}

/// The first unit named twice in one claim.
fn repeated(units: &[String]) -> Option<&String> {
    let mut seen = std::collections::HashSet::with_capacity(units.len());
    units.iter().find(|u| !seen.insert(u.as_str()))
}
