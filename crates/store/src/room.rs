//! A waiting room's state: places, sessions and the admission schedule.

use futures_util::future::BoxFuture;
use spillway_core::room::{Renewal, Settings, Snapshot, TicketRef, Visit};

use crate::error::StoreResult;

// TODO(scale-out): a visit that admits a client is not idempotent: if its reply is lost after the store
// applied it, the client comes back with its ticket, finds its place gone (`Replayed`) and queues again at
// the back. In one process a reply is never lost; a networked backend must make admission repeatable (the
// same ticket answered with the same session) before it ships. Found by the simulation (`crates/sim`).

/// One waiting room's shared state. The in-memory backend wraps the sans-IO model directly; a networked one
/// runs the same decisions atomically where every node can see them.
pub trait RoomStore: Send + Sync + std::fmt::Debug {
    /// A client arrives or polls, with the ticket it holds (signature already verified).
    fn visit(&self, now_ms: u64, ticket: Option<TicketRef>) -> BoxFuture<'_, StoreResult<Visit>>;
    /// A pass is in use; a new expiry when it is due for renewal, or word that its session was ended.
    fn renew(&self, now_ms: u64, session: u64, expires: u32) -> BoxFuture<'_, StoreResult<Renewal>>;
    /// Ends a session whose pass is valid until `pass_expires`; it is not renewed again.
    fn end_session(&self, now_ms: u64, session: u64, pass_expires: u32) -> BoxFuture<'_, StoreResult<bool>>;
    fn leave(&self, now_ms: u64, ticket: TicketRef) -> BoxFuture<'_, StoreResult<bool>>;
    /// Lets time pass: releases places, reclaims the abandoned. Called by a ticker as well as on visits.
    fn advance(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<()>>;
    fn snapshot(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<Snapshot>>;
    fn generation(&self) -> BoxFuture<'_, StoreResult<u32>>;
    fn configure(&self, now_ms: u64, settings: Settings) -> BoxFuture<'_, StoreResult<()>>;
    fn pause(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<()>>;
    fn resume(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<()>>;
    /// Empties the room; every ticket and pass issued before stops counting.
    fn reset(&self, now_ms: u64, entropy: u64) -> BoxFuture<'_, StoreResult<()>>;
}
