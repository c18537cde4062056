//! The embedded backend: rooms and limits in this process's memory, the ledger in an SQLite file. For one
//! node; the default.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use spillway_core::limit::Algorithm;
use spillway_core::room::Settings;

use crate::backend::{Backend, OpenedLedger};
use crate::error::StoreResult;
use crate::ledger::LedgerError;
use crate::limit::LimitStore;
use crate::memory::{Faults, MemoryBand, MemoryLimiter, MemoryRoom};
use crate::room::RoomStore;
use crate::sqlite::SqliteLedger;

/// A limit's name and a band's position in it.
type BandSlot = (String, usize);

#[derive(Debug, Default)]
pub struct Embedded {
    faults: Faults,
    /// Each limit band's tables, by limit name and position, while a config still uses them: a reload that
    /// leaves a band as it was keeps every key's count. Every live table is kept, not only the last one made,
    /// so a reload that is built and then rejected leaves the running table findable for the next.
    bands: Mutex<HashMap<BandSlot, Vec<Weak<MemoryBand>>>>,
}

impl Embedded {
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend whose stores fail while `faults` says so: to test what the gateway does when its store
    /// cannot answer, with the real stores otherwise.
    pub fn with_faults(faults: Faults) -> Self {
        Self { faults, ..Self::default() }
    }

    fn band(&self, limit: &str, i: usize, algorithm: Algorithm, max_keys: usize) -> Arc<MemoryBand> {
        let mut bands = self.bands.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        bands.retain(|_, tables| {
            tables.retain(|t| t.strong_count() > 0);
            !tables.is_empty()
        });
        let tables = bands.entry((limit.to_string(), i)).or_default();
        let same = tables.iter().filter_map(Weak::upgrade).find(|b| b.algorithm == algorithm && b.max_keys == max_keys);
        if let Some(band) = same {
            return band;
        }
        let band = Arc::new(MemoryBand::new(algorithm, max_keys));
        tables.push(Arc::downgrade(&band));
        band
    }
}

impl Backend for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn room(&self, _name: &str, settings: Settings, now_ms: u64, seed: u64) -> StoreResult<Arc<dyn RoomStore>> {
        Ok(Arc::new(MemoryRoom::with_faults(settings, now_ms, seed, self.faults.clone())))
    }

    fn limit(&self, name: &str, bands: &[Algorithm], max_keys: usize) -> StoreResult<Arc<dyn LimitStore>> {
        let bands = bands.iter().enumerate().map(|(i, a)| self.band(name, i, *a, max_keys)).collect();
        Ok(Arc::new(MemoryLimiter::new(bands, self.faults.clone())))
    }

    fn ledger(&self, location: &Path) -> Result<OpenedLedger, LedgerError> {
        let (ledger, events) = SqliteLedger::open(location)?;
        let stats = ledger.stats.clone();
        Ok(OpenedLedger { ledger: Arc::new(ledger), events, stats })
    }
}

#[cfg(test)]
mod tests {
    use spillway_core::limit::Quota;

    use super::*;

    fn spend(store: &Arc<dyn LimitStore>) -> bool {
        futures_util::FutureExt::now_or_never(store.check(0, 7))
            .and_then(Result::ok)
            .is_some_and(|v| v.decision.allowed)
    }

    #[test]
    fn a_reload_keeps_an_unchanged_band_even_after_a_rejected_one() {
        let backend = Embedded::new();
        let two = Algorithm::FixedWindow { quota: Quota::per_second(2) };
        let three = Algorithm::FixedWindow { quota: Quota::per_second(3) };
        let running = backend.limit("api", &[two], 100).unwrap();
        assert!(spend(&running) && spend(&running), "two allowed");
        // A reload that changes the band is built, then rejected and dropped.
        drop(backend.limit("api", &[three], 100).unwrap());
        // The next reload keeps the running band's settings: it must find the running table, counts and all.
        let next = backend.limit("api", &[two], 100).unwrap();
        assert!(!spend(&next), "the two already counted still count");
        // A changed band starts empty.
        let changed = backend.limit("api", &[three], 100).unwrap();
        assert!(spend(&changed));
    }
}
