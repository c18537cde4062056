//! One inventory's claimants: for each user, the quantity their active claims hold and every claim they ever
//! made there, so that the per-user limit, an idempotent retry and "my claims" are each one lookup by the
//! borrowed user name instead of a scan or an owned key.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

/// Maps with foldhash: user names are short, and a seeded hasher keeps chosen names from colliding on purpose.
pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A user's standing on one inventory.
#[derive(Debug, Clone, Default)]
pub(super) struct Claimant {
    /// Quantity in active claims, for the per-user limit.
    pub quantity: u32,
    /// Every claim made, oldest first, as (fingerprint of its idempotency key, claim id). The fingerprint
    /// lets a new key be told apart without reading the claims it does not match; a match is confirmed on the
    /// claim itself. Most users make one claim, so the first is kept inline and needs no allocation.
    first: Option<(u64, u64)>,
    more: Vec<(u64, u64)>,
}

impl Claimant {
    pub fn record(&mut self, fingerprint: u64, claim: u64) {
        if self.first.is_none() {
            self.first = Some((fingerprint, claim));
        } else {
            self.more.push((fingerprint, claim));
        }
    }

    /// Claims, oldest first.
    pub fn claims(&self) -> impl DoubleEndedIterator<Item = (u64, u64)> + '_ {
        self.first.iter().chain(self.more.iter()).copied()
    }
}

#[derive(Debug, Default)]
pub(super) struct Claimants {
    /// Keyed by the name every claim of the user shares: a user's name is stored once.
    users: FastMap<Arc<str>, Claimant>,
}

impl Claimants {
    pub fn get(&self, user: &str) -> Option<&Claimant> {
        self.users.get(user)
    }

    /// The user's shared name and standing.
    pub fn get_key_value(&self, user: &str) -> Option<(&Arc<str>, &Claimant)> {
        self.users.get_key_value(user)
    }

    pub fn quantity(&self, user: &str) -> u32 {
        self.users.get(user).map_or(0, |c| c.quantity)
    }

    /// A new claim by `user`: every claim starts active (confirmed, held or waitlisted). Returns the name
    /// the user is stored under, for the claim to share.
    pub fn add(&mut self, user: &Arc<str>, fingerprint: u64, claim: u64, quantity: u32) -> Arc<str> {
        let (name, entry) = match self.users.entry(user.clone()) {
            Entry::Occupied(o) => {
                let name = o.key().clone();
                (name, o.into_mut())
            }
            Entry::Vacant(v) => (user.clone(), v.insert(Claimant::default())),
        };
        entry.quantity += quantity;
        entry.record(fingerprint, claim);
        name
    }

    /// A claim stopped holding stock (or a place in line) for its user.
    pub fn release(&mut self, user: &str, quantity: u32) {
        if let Some(entry) = self.users.get_mut(user) {
            entry.quantity = entry.quantity.saturating_sub(quantity);
        }
    }

    /// Users whose active claims hold something, with the quantity counted for them.
    pub fn holding(&self) -> impl Iterator<Item = (&str, u32)> {
        self.users.iter().filter(|(_, c)| c.quantity > 0).map(|(u, c)| (&**u, c.quantity))
    }

    /// The same users and claims with nothing held: what survives an inventory being created again.
    pub fn reset_quantities(mut self) -> Self {
        for entry in self.users.values_mut() {
            entry.quantity = 0;
        }
        self
    }
}
