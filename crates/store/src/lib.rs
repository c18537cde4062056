//! The state Spillway shares between requests, behind traits, so that the HTTP layer does not care whether
//! it lives in this process or, in scale-out mode, in a store every node can reach. A [`Backend`] hands the
//! stores out; the gateway never names a concrete one.
//!
//! Every method takes the time as an argument, as the models in `spillway-core` do: a backend never reads a
//! clock of its own, and tests drive it on paused time.

mod backend;
pub mod conformance;
mod embedded;
mod error;
mod ledger;
mod limit;
pub mod memory;
mod room;
pub mod sqlite;

pub use backend::{Backend, OpenedLedger};
pub use embedded::Embedded;
pub use error::{ErrorKind, StoreError, StoreResult};
pub use ledger::{CommitObserver, Ledger, LedgerError, LedgerStats};
pub use limit::{LimitStore, Pending, Verdict};
pub use room::RoomStore;
