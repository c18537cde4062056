//! Whether the gateway should receive traffic: what `/readyz` reports to the load balancer.
//!
//! ## Lifecycle, reload and graceful shutdown
//!
//! **Phases** (`lifecycle.rs`). The gateway is in one of three phases, `Starting`, `Ready` or `Draining`,
//! stored in an atomic and reported by `/readyz`.
//!
//! **Start** (`server::start`, which is `server::start_with_clock` with the system clock):
//!
//! 1. create the metrics registry;
//! 2. open the access log;
//! 3. build the first `Runtime`, with the clock; every room and every limit starts empty;
//! 4. bind the admin listener, then the public listener;
//! 5. spawn the accept loop, the admin server and the ticker (steps 13 and 14);
//! 6. set the phase to `Ready`.
//!
//! If start fails, the CLI (`crates/cli/src/serve.rs`) exits with status 2 when the cause is in the
//! configuration (`StartError::Config`: anything `Runtime::build` rejects, such as certificates or a page
//! template that do not load), and with status 1 otherwise (an address in use, an access log that cannot be
//! opened).
//!
//! **Runtime per config version** (`runtime.rs`). A `Runtime` holds everything built from one version of the
//! config: the config itself, the router, each route's pipeline and metrics handles, the upstreams, the rooms
//! (one `RoomHandle` each), the limits (one `LimitHandle` each), the TLS acceptor, the connection settings and
//! the access log handle.
//!
//! - The running Runtime sits in an `ArcSwap`. Every request loads it once (see `headers.rs`). Every connection reads
//!   its TLS and protocol settings from it once, when it is accepted.
//! - When a Runtime is built on reload, `Runtime::build` receives the previous one. Every upstream whose
//!   `UpstreamConfig` is equal to the old one is carried over as the same object, keeping its warm connection
//!   pool and ejection state.
//! - New or changed upstreams are created fresh. Routes, pipelines, the router and the TLS acceptor are
//!   always rebuilt.
//! - Every room whose name is in the previous Runtime is rebuilt by `RoomHandle::build` around the **same
//!   store**, so it keeps every place, session, running total, its generation and its seed, whatever changed
//!   in its settings. The handle also carries over the operator's live changes, dropping one when the file's
//!   value for that key changed, and the last published counters. The keyring and the room's
//!   `page_template` are read afresh. A new room gets a new `MemoryRoom`; a removed room's store goes away
//!   with the old Runtime.
//! - Every limit whose name is in the previous Runtime is rebuilt by `LimitHandle::build` (after the rooms,
//!   because a `pass:ROOM` key part holds the new `RoomHandle`). Bands are matched by position: the embedded
//!   backend hands a band whose algorithm (kind, rate, burst, refill) and the limit's `max_keys` are
//!   unchanged the **same table**, and with it every key's counters; any other band starts empty. The hasher
//!   seed is carried over (a new limit derives it from the signing keys), so keys keep their digests. The key parts, action, `max_wait`, the allow and deny lists, the `RateLimit-Policy` header and
//!   the metric handles are built afresh. A new limit starts empty; a removed or renamed limit's stores go
//!   away with the old Runtime.
//!
//! **Reload** (`Handle::reload`, called by the CLI on SIGHUP):
//!
//! 1. The CLI loads and validates the file.
//! 2. `try_reload` warns that changes to `server.listen`, `server.admin_listen`, `log.format` and `log.level`
//!    take effect only on restart. It keeps the old listeners and logging.
//! 3. It reopens the access log.
//! 4. It builds the new Runtime.
//! 5. It pushes each room's new settings (the file's, with surviving live changes) into its store with
//!    `RoomHandle::apply`, that is `RoomStore::configure`.
//! 6. It stores the new Runtime in the `ArcSwap` in one atomic step.
//!
//! If any step fails, the old Runtime stays. Every reload is counted in `spillway_config_reloads_total` as
//! `applied` or `rejected`. See `docs/CONFIG.md` for what each setting does on reload.
//!
//! **Graceful shutdown** (`Handle::shutdown`, on SIGTERM or SIGINT):
//!
//! 1. The phase becomes `Draining`, so `/readyz` answers `503`.
//! 2. The accept loop stops and the public listener is closed.
//! 3. hyper's graceful shutdown lets each connection finish its in-flight requests, and closes idle
//!    keep-alive connections.
//! 4. If connections are still open after `server.shutdown_grace`, they are aborted, and the drain is
//!    reported as not clean.
//! 5. Then the admin listener stops, and the ticker is stopped.
//!
//! The process exits with status 0 either way.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Ready,
    Draining,
}

#[derive(Debug)]
pub struct Lifecycle(AtomicU8);

impl Default for Lifecycle {
    fn default() -> Self {
        Self(AtomicU8::new(Phase::Starting as u8))
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
    }
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Draining => "draining",
        }
    }
}
