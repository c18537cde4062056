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

#[derive(Debug, Default)]
pub struct Embedded {
    faults: Faults,
    /// Each limit band's table, by limit name and position, while a config still uses it: a reload that
    /// leaves a band as it was keeps every key's count.
    bands: Mutex<HashMap<(String, usize), Weak<MemoryBand>>>,
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
        bands.retain(|_, b| b.strong_count() > 0);
        let key = (limit.to_string(), i);
        if let Some(band) = bands.get(&key).and_then(Weak::upgrade)
            && band.algorithm == algorithm
            && band.max_keys == max_keys
        {
            return band;
        }
        let band = Arc::new(MemoryBand::new(algorithm, max_keys));
        bands.insert(key, Arc::downgrade(&band));
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
