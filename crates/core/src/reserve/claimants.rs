//! One inventory's claimants: for each user, the quantity their active claims hold and every claim they ever
//! made there, so that the per-user limit, an idempotent retry and "my claims" are each one lookup by the
//! borrowed user name instead of a scan or an owned key.
//!
//! A drop can have millions of claimants, and the engine decides every claim under one lock. A single hash
//! table would, each time it doubles, rehash every user in one go (hundreds of milliseconds at a million
//! users, each user's name read from wherever it lives) while every claim waits. So the users are spread over
//! [`SHARDS`] tables by their hash, and each entry keeps its hash: a table that grows moves a 1/SHARDS share
//! of the users and reads none of their names.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

/// Maps with foldhash: user names are short, and a seeded hasher keeps chosen names from colliding on purpose.
pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Tables per inventory. 64 empty ones cost 2 KiB; at a million users one growing table moves ~16,000.
const SHARDS: usize = 64;

/// A user's standing on one inventory.
#[derive(Debug, Clone, Default)]
pub(super) struct Claimant {
    /// Quantity in active claims, for the per-user limit. Wider than one claim's: without a limit, a user's
    /// claims on a large stock may add up past `u32`.
    pub quantity: u64,
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

#[derive(Debug)]
struct Entry {
    /// Kept so that growing a table never reads the name again.
    hash: u64,
    /// The name every claim of the user shares: a user's name is stored once.
    name: Arc<str>,
    standing: Claimant,
}

#[derive(Debug)]
pub(super) struct Claimants {
    hasher: foldhash::fast::RandomState,
    shards: Box<[HashTable<Entry>; SHARDS]>,
}

impl Default for Claimants {
    fn default() -> Self {
        Self { hasher: Default::default(), shards: Box::new(std::array::from_fn(|_| HashTable::new())) }
    }
}

impl Claimants {
    /// The user's hash and table. The table is chosen by bits 32-37: the table itself places entries by the
    /// low bits and tells them apart by the top seven, so neither is the same for every user of one table.
    fn locate(&self, user: &str) -> (u64, usize) {
        let hash = self.hasher.hash_one(user);
        (hash, (hash >> 32) as usize % SHARDS)
    }

    fn entry(&self, user: &str) -> Option<&Entry> {
        let (hash, shard) = self.locate(user);
        self.shards[shard].find(hash, |e| e.hash == hash && *e.name == *user)
    }

    pub fn get(&self, user: &str) -> Option<&Claimant> {
        self.entry(user).map(|e| &e.standing)
    }

    /// The user's shared name and standing.
    pub fn get_key_value(&self, user: &str) -> Option<(&Arc<str>, &Claimant)> {
        self.entry(user).map(|e| (&e.name, &e.standing))
    }

    pub fn quantity(&self, user: &str) -> u64 {
        self.get(user).map_or(0, |c| c.quantity)
    }

    /// A new claim by `user`: every claim starts active (confirmed, held or waitlisted). Returns the name
    /// the user is stored under, for the claim to share.
    pub fn add(&mut self, user: &Arc<str>, fingerprint: u64, claim: u64, quantity: u32) -> Arc<str> {
        let (hash, shard) = self.locate(user);
        let entry = self.shards[shard]
            .entry(hash, |e| e.hash == hash && e.name == *user, |e| e.hash)
            .or_insert_with(|| Entry { hash, name: user.clone(), standing: Claimant::default() })
            .into_mut();
        entry.standing.quantity = entry.standing.quantity.saturating_add(u64::from(quantity));
        entry.standing.record(fingerprint, claim);
        entry.name.clone()
    }

    /// A claim stopped holding stock (or a place in line) for its user.
    pub fn release(&mut self, user: &str, quantity: u32) {
        let (hash, shard) = self.locate(user);
        if let Some(entry) = self.shards[shard].find_mut(hash, |e| e.hash == hash && *e.name == *user) {
            entry.standing.quantity = entry.standing.quantity.saturating_sub(u64::from(quantity));
        }
    }

    /// A finished claim is forgotten; a user with nothing held and no claim left is forgotten with it.
    pub fn forget(&mut self, user: &str, claim: u64) {
        let (hash, shard) = self.locate(user);
        let table = &mut self.shards[shard];
        let Ok(mut entry) = table.find_entry(hash, |e| e.hash == hash && *e.name == *user) else { return };
        let standing = &mut entry.get_mut().standing;
        if standing.first.is_some_and(|(_, id)| id == claim) {
            standing.first = if standing.more.is_empty() { None } else { Some(standing.more.remove(0)) };
        } else {
            standing.more.retain(|&(_, id)| id != claim);
        }
        if standing.more.is_empty() {
            standing.more = Vec::new();
        }
        if standing.quantity == 0 && standing.first.is_none() {
            entry.remove();
        }
    }

    /// Users known (with any claim not yet forgotten).
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashTable::len).sum()
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }

    /// Users whose active claims hold something, with the quantity counted for them.
    pub fn holding(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries().filter(|e| e.standing.quantity > 0).map(|e| (&*e.name, e.standing.quantity))
    }

    /// The same users and claims with nothing held: what survives an inventory being created again.
    pub fn reset_quantities(mut self) -> Self {
        for entry in self.shards.iter_mut().flat_map(|shard| shard.iter_mut()) {
            entry.standing.quantity = 0;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a plain map: whatever the users and the order, each is found with its own standing, under
        /// the one name it was first stored with.
        #[test]
        fn behaves_as_one_map(ops in proptest::collection::vec(("[a-e]{1,3}", 0u32..3, any::<bool>()), 1..200)) {
            let mut claimants = Claimants::default();
            let mut model: HashMap<String, u64> = HashMap::new();
            for (i, (user, quantity, release)) in ops.iter().enumerate() {
                if *release {
                    claimants.release(user, *quantity);
                    if let Some(q) = model.get_mut(user) {
                        *q = q.saturating_sub(u64::from(*quantity));
                    }
                } else {
                    let first = claimants.get_key_value(user).map(|(name, _)| name.clone());
                    let name = claimants.add(&Arc::from(user.as_str()), 0, i as u64, *quantity);
                    prop_assert_eq!(&*name, user.as_str());
                    if let Some(first) = first {
                        prop_assert!(Arc::ptr_eq(&first, &name), "stored once");
                    }
                    *model.entry(user.clone()).or_default() += u64::from(*quantity);
                }
            }
            for (user, q) in &model {
                prop_assert_eq!(claimants.quantity(user), *q);
            }
            prop_assert_eq!(claimants.quantity("absent"), 0);
            let mut holding: Vec<(String, u64)> = claimants.holding().map(|(u, q)| (u.to_string(), q)).collect();
            holding.sort();
            let mut expected: Vec<(String, u64)> = model.into_iter().filter(|(_, q)| *q > 0).collect();
            expected.sort();
            prop_assert_eq!(holding, expected);
        }
    }

    #[test]
    fn users_spread_over_the_tables() {
        let mut claimants = Claimants::default();
        for i in 0..64_000u64 {
            claimants.add(&Arc::from(format!("user-{i}")), 0, i, 1);
        }
        let sizes: Vec<usize> = claimants.shards.iter().map(HashTable::len).collect();
        // 1,000 each on average; a table twice that size would make its growth twice as long.
        assert!(sizes.iter().all(|&n| (700..1300).contains(&n)), "{sizes:?}");
    }
}
