//! A room in this process's memory: the model behind a mutex. Every call is a few microseconds of work at
//! most, so a plain mutex held without awaiting beats anything cleverer.

use std::sync::{Mutex, MutexGuard};

use futures_util::future::{BoxFuture, FutureExt, ready};
use spillway_core::room::{Renewal, Room, Settings, Snapshot, TicketRef, Visit};

use crate::error::StoreResult;
use crate::memory::Faults;
use crate::room::RoomStore;

#[derive(Debug)]
pub struct MemoryRoom {
    room: Mutex<Room>,
    faults: Faults,
}

impl MemoryRoom {
    pub fn new(settings: Settings, now_ms: u64, entropy: u64) -> Self {
        Self::with_faults(settings, now_ms, entropy, Faults::default())
    }

    pub fn with_faults(settings: Settings, now_ms: u64, entropy: u64, faults: Faults) -> Self {
        Self { room: Mutex::new(Room::new(settings, now_ms, entropy)), faults }
    }

    /// A panic while holding the lock cannot leave the model half-updated in a way that matters more than
    /// losing the room, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, Room> {
        self.room.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with<T: Send + 'static>(&self, f: impl FnOnce(&mut Room) -> T) -> BoxFuture<'_, StoreResult<T>> {
        if let Some(e) = self.faults.fail("room") {
            return ready(Err(e)).boxed();
        }
        let out = f(&mut self.lock());
        ready(Ok(out)).boxed()
    }
}

impl RoomStore for MemoryRoom {
    fn visit(&self, now_ms: u64, ticket: Option<TicketRef>) -> BoxFuture<'_, StoreResult<Visit>> {
        self.with(|r| r.visit(now_ms, ticket))
    }

    fn renew(&self, now_ms: u64, session: u64, expires: u32) -> BoxFuture<'_, StoreResult<Renewal>> {
        self.with(|r| r.renew(now_ms, session, expires))
    }

    fn end_session(&self, now_ms: u64, session: u64, pass_expires: u32) -> BoxFuture<'_, StoreResult<bool>> {
        self.with(|r| r.end_session(now_ms, session, pass_expires))
    }

    fn leave(&self, now_ms: u64, ticket: TicketRef) -> BoxFuture<'_, StoreResult<bool>> {
        self.with(|r| r.leave(now_ms, ticket))
    }

    fn advance(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|r| r.advance(now_ms))
    }

    fn snapshot(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<Snapshot>> {
        self.with(|r| r.snapshot(now_ms))
    }

    fn generation(&self) -> BoxFuture<'_, StoreResult<u32>> {
        self.with(|r| r.generation())
    }

    fn configure(&self, now_ms: u64, settings: Settings) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|r| r.configure(now_ms, settings))
    }

    fn pause(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|r| r.pause(now_ms))
    }

    fn resume(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|r| r.resume(now_ms))
    }

    fn reset(&self, now_ms: u64, entropy: u64) -> BoxFuture<'_, StoreResult<()>> {
        self.with(|r| r.reset(now_ms, entropy))
    }
}
