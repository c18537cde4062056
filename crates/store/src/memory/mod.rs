//! State in this process, for one node: the rooms and limits of the embedded backend.

mod limit;
mod room;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

pub use limit::{MemoryBand, MemoryLimiter};
pub use room::MemoryRoom;

use crate::error::{ErrorKind, StoreError};

/// A switch that makes the in-memory stores fail as a networked store would, for tests of what the gateway
/// does when its store cannot answer. Off unless set; checked with one atomic load.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<AtomicU8>);

const KINDS: [ErrorKind; 4] = [ErrorKind::Unavailable, ErrorKind::Timeout, ErrorKind::Conflict, ErrorKind::Corrupt];

impl Faults {
    /// Every call fails with `kind` from now on, or none does (`None`).
    pub fn set(&self, kind: Option<ErrorKind>) {
        let n = kind.and_then(|k| KINDS.iter().position(|x| *x == k)).map_or(0, |i| i as u8 + 1);
        self.0.store(n, Ordering::Release);
    }

    /// The error a call doing `what` fails with now, if any.
    pub fn fail(&self, what: &str) -> Option<StoreError> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            n => Some(StoreError::new(KINDS[usize::from(n - 1) % KINDS.len()], what).with_source("injected fault")),
        }
    }
}
