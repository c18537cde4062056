//! The seam between the gateway and where its state lives. The gateway asks a [`Backend`] for each room's
//! store, each limit's store and the reservation ledger; it never names a concrete store. The embedded
//! backend (memory, and SQLite for the ledger) is one implementation; a networked one hands out stores that
//! every node shares, and passes the same conformance suite (`tests/conformance.rs`).

use std::path::Path;
use std::sync::Arc;

use spillway_core::limit::Algorithm;
use spillway_core::reserve::Event;
use spillway_core::room::Settings;

use crate::error::StoreResult;
use crate::ledger::{Ledger, LedgerError, LedgerStats};
use crate::limit::LimitStore;
use crate::room::RoomStore;

/// A ledger as opened: the log, what is already in it (to rebuild the engine's state), and its counters.
#[derive(Debug)]
pub struct OpenedLedger {
    pub ledger: Arc<dyn Ledger>,
    /// Every event already in the log, in order: replaying them rebuilds the engine.
    pub events: Vec<Event>,
    pub stats: Arc<LedgerStats>,
}

/// Hands out the stores a config needs. Lives as long as the process, across reloads: a backend may keep
/// state between two configs (the embedded one keeps a limit band's counters while the band is unchanged).
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// `"embedded"`, `"redis"`: for logs and the admin API.
    fn name(&self) -> &'static str;

    /// The store of room `name`, created with `settings` (and `seed` for its lottery) if it does not exist.
    fn room(&self, name: &str, settings: Settings, now_ms: u64, seed: u64) -> StoreResult<Arc<dyn RoomStore>>;

    /// The store of limit `name`, one band per algorithm, tracking at most `max_keys` keys per band.
    fn limit(&self, name: &str, bands: &[Algorithm], max_keys: usize) -> StoreResult<Arc<dyn LimitStore>>;

    /// Opens the reservation ledger at `location` and reads back what it holds.
    fn ledger(&self, location: &Path) -> Result<OpenedLedger, LedgerError>;
}
