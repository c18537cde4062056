//! Who is listening for news of which claim.
//!
//! A claim's event stream registers here; after an operation's events are durable, every watched claim they
//! touch gets its version bumped, and its streams read the claim afresh. Only watched claims cost anything:
//! a surge of claims nobody streams never takes this lock beyond an empty check.

use std::collections::HashMap;
use std::sync::Mutex;

use spillway_core::reserve::Event;
use tokio::sync::watch;

#[derive(Debug, Default)]
pub struct Watchers {
    by_claim: Mutex<HashMap<u64, watch::Sender<u64>>>,
}

impl Watchers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, watch::Sender<u64>>> {
        self.by_claim.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A receiver that changes whenever the claim does; the caller has found the claim.
    pub fn watch(&self, claim: u64) -> watch::Receiver<u64> {
        self.map().entry(claim).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Tells the watchers of every claim these (durable) events touched.
    pub fn notify(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let map = self.map();
        if map.is_empty() {
            return;
        }
        for claim in events.iter().filter_map(super::claim_of) {
            if let Some(sender) = map.get(&claim) {
                sender.send_modify(|v| *v += 1);
            }
        }
    }

    /// Drops the entries of claims whose streams have all ended.
    pub fn forget_unwatched(&self) {
        self.map().retain(|_, sender| sender.receiver_count() > 0);
    }
}
