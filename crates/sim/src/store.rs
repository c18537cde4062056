//! The simulated shared store: what a networked backend (Redis, PostgreSQL) would give every node, built
//! on the core models, with the faults a network adds.
//!
//! - Time comes from the store's own clock, never the caller's: every node agrees on it (as Redis `TIME`
//!   makes them), so a node with a skewed clock cannot admit early.
//! - An outage refuses every call until it ends, applying nothing.
//! - A lost reply applies the call and then answers with a timeout: the caller cannot tell it from an
//!   outage, and must not be able to break a promise by retrying.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, ready};
use spillway_core::limit::Algorithm;
use spillway_core::reserve::Event;
use spillway_core::room::{Renewal, Settings, Snapshot, TicketRef, Visit};
use spillway_store::memory::{Faults, MemoryBand, MemoryLimiter, MemoryRoom};
use spillway_store::{
    Backend, Ledger, LedgerError, LedgerStats, LimitStore, OpenedLedger, Pending, RoomStore, StoreError, StoreResult,
    Verdict,
};

/// The network between the nodes and the store, driven by the simulation's seed.
#[derive(Debug)]
pub struct Network {
    /// The store's clock, Unix ms: the simulation moves it.
    pub now_ms: AtomicU64,
    /// Until when (Unix ms) the store is down.
    pub down_until: AtomicU64,
    /// Chance in a million that a reply is lost after the call applied.
    pub lose_reply_ppm: u32,
    rng: Mutex<fastrand::Rng>,
    /// Calls whose replies were lost, for the report.
    pub lost: AtomicU64,
}

impl Network {
    pub fn new(seed: u64, now_ms: u64, lose_reply_ppm: u32) -> Arc<Self> {
        Arc::new(Self {
            now_ms: AtomicU64::new(now_ms),
            down_until: AtomicU64::new(0),
            lose_reply_ppm,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            lost: AtomicU64::new(0),
        })
    }

    pub fn now(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn down(&self) -> bool {
        self.now() < self.down_until.load(Ordering::SeqCst)
    }

    fn lose(&self) -> bool {
        let lost =
            self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner).u32(..1_000_000) < self.lose_reply_ppm;
        if lost {
            self.lost.fetch_add(1, Ordering::SeqCst);
        }
        lost
    }

    /// Runs `op` on the store as the network lets it: refused while down, its reply lost now and then.
    fn call<T>(&self, what: &'static str, op: impl FnOnce(u64) -> T) -> StoreResult<T> {
        if self.down() {
            return Err(StoreError::unavailable(what).with_source("simulated outage"));
        }
        let out = op(self.now());
        if self.lose() {
            return Err(StoreError::timeout(what).with_source("simulated lost reply"));
        }
        Ok(out)
    }
}

/// A room every node shares.
#[derive(Debug)]
struct SharedRoom {
    room: MemoryRoom,
    net: Arc<Network>,
}

impl SharedRoom {
    /// Runs one call on the model at the store's time, as the network lets it. The in-memory model answers
    /// at once, so its future is ready.
    fn run<'a, T: Send + 'a>(
        &'a self,
        what: &'static str,
        f: impl FnOnce(&'a MemoryRoom, u64) -> BoxFuture<'a, StoreResult<T>>,
    ) -> BoxFuture<'a, StoreResult<T>> {
        if self.net.down() {
            return ready(Err(StoreError::unavailable(what).with_source("simulated outage"))).boxed();
        }
        let out = f(&self.room, self.net.now()).now_or_never().unwrap_or_else(|| Err(StoreError::timeout(what)));
        if out.is_ok() && self.net.lose() {
            return ready(Err(StoreError::timeout(what).with_source("simulated lost reply"))).boxed();
        }
        ready(out).boxed()
    }
}

impl RoomStore for SharedRoom {
    fn visit(&self, _: u64, ticket: Option<TicketRef>) -> BoxFuture<'_, StoreResult<Visit>> {
        self.run("room visit", move |r, now| r.visit(now, ticket))
    }

    fn renew(&self, _: u64, session: u64, expires: u32) -> BoxFuture<'_, StoreResult<Renewal>> {
        self.run("room renew", move |r, now| r.renew(now, session, expires))
    }

    fn end_session(&self, _: u64, session: u64, pass_expires: u32) -> BoxFuture<'_, StoreResult<bool>> {
        self.run("room end_session", move |r, now| r.end_session(now, session, pass_expires))
    }

    fn leave(&self, _: u64, ticket: TicketRef) -> BoxFuture<'_, StoreResult<bool>> {
        self.run("room leave", move |r, now| r.leave(now, ticket))
    }

    fn advance(&self, _: u64) -> BoxFuture<'_, StoreResult<()>> {
        self.run("room advance", |r, now| r.advance(now))
    }

    fn snapshot(&self, _: u64) -> BoxFuture<'_, StoreResult<Snapshot>> {
        self.run("room snapshot", |r, now| r.snapshot(now))
    }

    fn generation(&self) -> BoxFuture<'_, StoreResult<u32>> {
        self.run("room generation", |r, _| r.generation())
    }

    fn configure(&self, _: u64, settings: Settings) -> BoxFuture<'_, StoreResult<()>> {
        self.run("room configure", move |r, now| r.configure(now, settings))
    }

    fn pause(&self, _: u64) -> BoxFuture<'_, StoreResult<()>> {
        self.run("room pause", |r, now| r.pause(now))
    }

    fn resume(&self, _: u64) -> BoxFuture<'_, StoreResult<()>> {
        self.run("room resume", |r, now| r.resume(now))
    }

    fn reset(&self, _: u64, entropy: u64) -> BoxFuture<'_, StoreResult<()>> {
        self.run("room reset", move |r, now| r.reset(now, entropy))
    }
}

/// A limit every node shares, on the store's clock.
#[derive(Debug)]
struct SharedLimit {
    limiter: MemoryLimiter,
    net: Arc<Network>,
}

impl LimitStore for SharedLimit {
    fn check(&self, _: u64, key: u64) -> Pending<'_, StoreResult<Verdict>> {
        let now_ns = self.net.now().saturating_mul(1_000_000);
        Pending::Ready(Some(self.net.call("limit check", |_| self.limiter.check_now(now_ns, key))))
    }
}

/// The ledger in the store: durable once appended (the simulation's disk never lies), one holder at a time.
#[derive(Debug)]
struct SharedLedger {
    events: Arc<Mutex<Vec<Event>>>,
    open: Arc<Mutex<bool>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Ledger for SharedLedger {
    fn append(&self, events: Vec<Event>) -> BoxFuture<'static, Result<(), LedgerError>> {
        if self.closed.load(Ordering::SeqCst) {
            return ready(Err(LedgerError::Write("closed".into()))).boxed();
        }
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(events);
        ready(Ok(())).boxed()
    }

    fn all_durable(&self) -> bool {
        true
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            *self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        }
    }
}

/// A ledger let go of without a close (its process died) is free for the next server, as a file lock is.
impl Drop for SharedLedger {
    fn drop(&mut self) {
        self.close();
    }
}

/// The backend every simulated node is given: one shared room per name, one shared limit per name.
#[derive(Debug)]
pub struct SimBackend {
    pub net: Arc<Network>,
    rooms: Mutex<HashMap<String, Arc<SharedRoom>>>,
    limits: Mutex<HashMap<String, Arc<SharedLimit>>>,
    log: Arc<Mutex<Vec<Event>>>,
    ledger_open: Arc<Mutex<bool>>,
}

impl SimBackend {
    pub fn new(net: Arc<Network>) -> Self {
        Self {
            net,
            rooms: Mutex::default(),
            limits: Mutex::default(),
            log: Arc::default(),
            ledger_open: Arc::default(),
        }
    }

    /// The shared room's true state, for the checks: read past the network, which may be down.
    pub fn room_snapshot(&self, name: &str) -> Option<Snapshot> {
        let room = self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).cloned()?;
        room.room.snapshot(self.net.now()).now_or_never().and_then(Result::ok)
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn room(&self, name: &str, settings: Settings, _: u64, seed: u64) -> StoreResult<Arc<dyn RoomStore>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = rooms
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(SharedRoom { room: MemoryRoom::new(settings, self.net.now(), seed), net: self.net.clone() })
            })
            .clone();
        Ok(room)
    }

    fn limit(&self, name: &str, bands: &[Algorithm], max_keys: usize) -> StoreResult<Arc<dyn LimitStore>> {
        let mut limits = self.limits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let limit = limits
            .entry(name.to_string())
            .or_insert_with(|| {
                let bands = bands.iter().map(|a| Arc::new(MemoryBand::new(*a, max_keys))).collect();
                let limiter = MemoryLimiter::new(bands, Faults::default());
                Arc::new(SharedLimit { limiter, net: self.net.clone() })
            })
            .clone();
        Ok(limit)
    }

    fn ledger(&self, location: &Path) -> Result<OpenedLedger, LedgerError> {
        let mut open = self.ledger_open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *open {
            let path = location.display().to_string();
            return Err(LedgerError::Open { path, reason: "another server holds this ledger".into() });
        }
        *open = true;
        let events = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let ledger = SharedLedger {
            events: self.log.clone(),
            open: self.ledger_open.clone(),
            closed: std::sync::atomic::AtomicBool::new(false),
        };
        Ok(OpenedLedger { ledger: Arc::new(ledger), events, stats: Arc::new(LedgerStats::default()) })
    }
}
