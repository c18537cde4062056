//! The embedded backend for durable data: SQLite files in WAL mode with `synchronous=FULL`.

mod batch;
mod ledger;

pub use ledger::SqliteLedger;
