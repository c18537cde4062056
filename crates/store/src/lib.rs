//! The state Spillway shares between requests, behind traits, so that the HTTP layer does not care whether
//! it lives in this process or, in scale-out mode, in a store every node can reach.
//!
//! Every method takes the time as an argument, as the models in `spillway-core` do: a backend never reads a
//! clock of its own, and tests drive it on paused time.

mod ledger;
mod limit;
pub mod memory;
mod room;
pub mod sqlite;

pub use ledger::{Ledger, LedgerError};
pub use limit::{LimitStore, Pending};
pub use room::{RoomStore, StoreError, StoreResult};
