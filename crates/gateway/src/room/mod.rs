//! The waiting room at the edge: the `room:NAME` policy, its reserved endpoints and its live controls.
//!
//! The decisions live in `spillway_core::room` behind a [`RoomStore`]; this module only reads and writes
//! cookies, verifies and signs tokens, and renders what the client is told. A pass is checked with the
//! signing keys alone, so admitted traffic costs one HMAC and never touches the store except to renew.
//!
//! ## The waiting room's moving parts
//!
//! Steps 3 and 5 show where the room meets a request. Behind them:
//!
//! - **`RoomHandle`** (`room/mod.rs`), one per configured room and Runtime. It holds the room's store, the
//!   keyring, the room's configuration as the file has it, the operator's live changes, the cached
//!   generation, the page template, the room's metric handles and the clock. Its methods are the gate
//!   (`gate`), leaving (`leave`), what held clients are told (`held_response`, `status_json`,
//!   `refresh_after`), the operator controls (`snapshot`, `change`, `pause`, `resume`, `reset`), `apply` and
//!   `tick`. It converts the room's configuration into the model's `Settings`.
//! - **The store** (`crates/store`). The gateway talks to a room only through `RoomStore`: `visit`, `renew`,
//!   `end_session`, `leave`, `advance`, `snapshot`, `generation`, `configure`, `pause`, `resume` and `reset`,
//!   each returning a `BoxFuture`, and each but `generation` taking the time as an argument. The only backend today is `MemoryRoom`: the model
//!   behind a `std::sync::Mutex`, each call done under the lock without awaiting, and returned as a ready
//!   future.
//! - **The model** (`crates/core/src/room/`). `Room` decides everything: places, the release of admissions at
//!   the configured rate under the active-user cap, sessions, the schedule (`opens_at`, `prequeue_from`,
//!   `closes_at`), the lottery at opening, and what each client is told. It never reads a clock; each call
//!   takes `now_ms`. The line (`queue.rs`) is one 8-byte slot per place (state, last poll time, starting
//!   position), with a count of waiting clients per 1,024-place chunk so that a position is a sum over chunks.
//!   The wait estimate starts from the configured rate. `meter.rs` measures admissions over the saturated
//!   seconds of the last minute (someone still waiting at the end of the second); once there are at least 10
//!   such seconds, the measured rate, never above the configured one, replaces the estimate when the two
//!   differ by more than 10%.
//! - **Tokens** (`crates/core/src/token.rs`). A ticket or pass is `base64url(payload || tag)`: the payload
//!   carries a version, the kind, the key id, the room, the generation, a sequence number (place or session),
//!   the issue and expiry times and an address binding; the tag is the first 16 bytes of HMAC-SHA256 over the
//!   payload. The `Keyring` signs with the first configured key and verifies with any of them. A verification
//!   failure is a `Refusal` with a stable metric label.
//! - **The clock** (`clock.rs`). Rooms and tokens need wall time, because tokens carry Unix times (rate
//!   limits use it too; see `limit/mod.rs`).
//!   `Clock::system()` reads the system time once, when the gateway starts, and adds tokio's monotonic elapsed
//!   time to it, so it never jumps backwards, follows tokio's paused time in tests, and does not follow later
//!   changes to the system clock. `Clock::manual(unix_ms)` stands still until `advance` moves it; tests pass
//!   it to `start_with_clock` to check rates and expiries exactly, without sleeping. The upstream balancer does
//!   not use this clock; it uses tokio's `Instant`.
//! - **The ticker** (`tick` in `server.rs`). A task that runs every 100 ms (missed ticks are delayed, not
//!   bunched up). Each time it loads the current Runtime and calls `Component::tick` on every component; a
//!   room's calls `RoomHandle::advance`, which
//!   calls `RoomStore::advance`: the model opens the room or draws the lottery when their time comes, releases
//!   places on schedule even when nobody happens to poll, and, at most once a second, reclaims abandoned
//!   places and no-shows and expires sessions. Every tenth tick it also takes a snapshot, publishes the room
//!   metrics (see `metrics.rs`) and refreshes the cached generation. A failed tick is logged at `warn` level. Every
//!   hundredth tick (`limit::SWEEP_EVERY`, 10 s), starting with the first, the same task also sweeps every
//!   limit of the current Runtime (see `limit/mod.rs`).

mod admin;
mod cookies;
pub mod metrics;
pub mod page;
mod policy;
pub mod reserved;

use std::net::IpAddr;

use futures_util::future::BoxFuture;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::Deserialize;
use spillway_config::{Config, OnStoreError, PolicyKind, RoomConfig};
use spillway_core::room::{Counters, Outcome, Renewal, Settings, Snapshot, State, Status, TicketRef};
use spillway_core::token::{self, Claims, Expect, Keyring, Kind, Refusal};
use spillway_store::RoomStore;

use crate::body::{ResponseBody, full};
use crate::clock::{Clock, Entropy};
use crate::component::{BuildCx, Built, Component, Components, PolicyModule, PolicySite, missing};
use crate::error::{Accept, GatewayError};
pub use cookies::{StripRoomCookies, get as cookie, strip_own};
use metrics::{RoomFamilies, RoomMetrics};
pub use policy::RoomPolicy;

/// `room:NAME`.
pub static MODULE: Module = Module;

#[derive(Debug)]
pub struct Module;

impl PolicyModule for Module {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) -> Arc<dyn std::any::Any + Send + Sync> {
        Arc::new(RoomFamilies::register(registry))
    }

    fn build(&self, name: &str, cx: &BuildCx<'_>, _: &Components) -> Result<Built, spillway_config::ConfigError> {
        use spillway_config::ConfigError;
        let file = cx.config.rooms.get(name).ok_or_else(|| missing(PolicyKind::Room, name))?;
        let keys = keyring(cx.config)
            .map_err(|reason| ConfigError::invalid("keys", reason))?
            .ok_or_else(|| ConfigError::invalid("keys", "rooms need signing keys"))?;
        let previous = cx.previous::<RoomHandle>(PolicyKind::Room, name);
        RoomHandle::build(name, file, &keys, previous.as_ref(), cx)
            .map(Built::new)
            .map_err(|reason| ConfigError::invalid(format!("rooms.{name}.page_template"), reason))
    }

    fn policy(&self, built: &Built, _: &PolicySite<'_>) -> Result<Arc<dyn Policy>, String> {
        let handle = built.get::<RoomHandle>().ok_or("not a room")?;
        Ok(Arc::new(RoomPolicy::new(handle)))
    }

    fn admin(&self) -> axum::Router<Arc<crate::server::Shared>> {
        admin::routes()
    }

    fn reserved<'a>(
        &self,
        built: &'a Components,
        caller: crate::component::Caller<'a>,
    ) -> Option<BoxFuture<'a, crate::pipeline::Outcome>> {
        reserved::serves(caller.rest).then(|| Box::pin(reserved::handle(built, caller)) as BoxFuture<'a, _>)
    }
}

use crate::pipeline::Policy;

/// A room as the gateway runs it: its store, its keys, what the file says, and what an operator changed live.
#[derive(Debug)]
pub struct RoomHandle {
    pub name: Arc<str>,
    store: Arc<dyn RoomStore>,
    keys: Arc<Keyring>,
    file: RoomConfig,
    overrides: Mutex<Overrides>,
    /// The store's generation, cached so that checking a pass needs no round trip. Refreshed by the ticker
    /// and by a reset.
    generation: AtomicU32,
    template: Option<String>,
    last_counters: Mutex<Counters>,
    metrics: RoomMetrics,
    clock: Clock,
    entropy: Entropy,
    /// Cookie names, built once: every request behind the room reads them.
    pass_cookie: String,
    ticket_cookie: String,
    /// The settings renewal depends on (neither can change live), to decide without the store.
    renewal: Settings,
    /// Sessions this node saw end (a leave, a renewal the store refused), each until its pass would expire.
    /// A signed pass stays valid until then, so without this one client could leave and walk back in past
    /// the active cap. Checked on every pass, so empty (the usual case) costs one atomic load.
    ended: Arc<Ended>,
}

/// The passes of ended sessions, by session number, with the expiry after which they are refused anyway.
#[derive(Debug, Default)]
struct Ended {
    count: std::sync::atomic::AtomicUsize,
    sessions: Mutex<std::collections::HashMap<u64, u32>>,
}

impl Ended {
    fn contains(&self, session: u64) -> bool {
        self.count.load(Ordering::Acquire) > 0 && self.lock().contains_key(&session)
    }

    fn insert(&self, session: u64, pass_expires: u32) {
        let mut sessions = self.lock();
        sessions.insert(session, pass_expires);
        self.count.store(sessions.len(), Ordering::Release);
    }

    /// Drops the sessions whose passes have expired by `now` (Unix seconds).
    fn prune(&self, now: u32) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut sessions = self.lock();
        sessions.retain(|_, &mut expires| expires > now);
        self.count.store(sessions.len(), Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, u32>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Changes made through the admin API. They survive a reload unless the file changes the same key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Overrides {
    new_users_per_minute: Option<u32>,
    total_active_users: Option<Option<u32>>,
}

/// A live change from the admin API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub new_users_per_minute: Option<u32>,
    /// `null` removes the cap.
    #[serde(default, deserialize_with = "present")]
    pub total_active_users: Option<Option<u32>>,
}

/// Tells an absent key (no change) from an explicit `null` (remove the cap).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// What the gate decided for a request.
#[derive(Debug)]
pub enum Gate {
    /// Let it through; add these cookies to the response.
    Through(HeaderMap),
    /// Hold it with this status; add these cookies to the response.
    Held(Status, HeaderMap),
}

/// The pieces of a request the gate reads.
#[derive(Debug, Clone, Copy)]
pub struct Visitor<'a> {
    pub headers: &'a HeaderMap,
    pub client_ip: IpAddr,
    pub secure: bool,
}

impl RoomHandle {
    /// Builds the room, keeping the store (every place and session) of the same room in `previous`.
    pub fn build(
        name: &str,
        file: &RoomConfig,
        keys: &Arc<Keyring>,
        previous: Option<&Arc<RoomHandle>>,
        cx: &BuildCx<'_>,
    ) -> Result<Arc<Self>, String> {
        let clock = cx.clock;
        let template = match &file.page_template {
            Some(path) => {
                Some(std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?)
            }
            None => None,
        };
        let now = clock.now_ms();
        let ended = previous.map_or_else(Arc::default, |prev| prev.ended.clone());
        let (store, overrides, counters, generation) = match previous {
            Some(prev) => {
                let mut overrides = prev.overrides();
                if file.new_users_per_minute != prev.file.new_users_per_minute {
                    overrides.new_users_per_minute = None;
                }
                if file.total_active_users != prev.file.total_active_users {
                    overrides.total_active_users = None;
                }
                let counters = *prev.last_counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                (prev.store.clone(), overrides, counters, prev.generation.load(Ordering::Relaxed))
            }
            None => {
                let settings = settings(file, &Overrides::default());
                let store = cx.backend.room(name, settings, now, cx.entropy.u64()).map_err(|e| e.to_string())?;
                (store, Overrides::default(), Counters::default(), 1)
            }
        };
        Ok(Arc::new(Self {
            name: Arc::from(name),
            store,
            keys: keys.clone(),
            file: file.clone(),
            overrides: Mutex::new(overrides),
            generation: AtomicU32::new(generation),
            template,
            last_counters: Mutex::new(counters),
            metrics: cx.metrics.families::<RoomFamilies>(PolicyKind::Room).room(name),
            clock: clock.clone(),
            entropy: cx.entropy.clone(),
            pass_cookie: cookies::pass_name(name),
            ticket_cookie: cookies::ticket_name(name),
            renewal: settings(file, &Overrides::default()),
            ended,
        }))
    }

    /// Pushes the file's settings (and surviving overrides) to the store. Called after a build.
    pub async fn apply(&self) -> Result<(), GatewayError> {
        let settings = settings(&self.file, &self.overrides());
        self.store.configure(self.clock.now_ms(), settings).await.map_err(GatewayError::from)
    }

    fn overrides(&self) -> Overrides {
        self.overrides.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn binding(&self, ip: IpAddr) -> u64 {
        if !self.file.bind_to_address {
            return 0;
        }
        match ip {
            IpAddr::V4(v4) => token::binding(&v4.octets()),
            IpAddr::V6(v6) => token::binding(&v6.octets()),
        }
    }

    fn ticket_ttl(&self) -> u32 {
        u32::try_from(self.file.queue_grace.get().as_secs().saturating_mul(2).max(60)).unwrap_or(u32::MAX)
    }

    // === the gate ===

    /// Decides one request: a valid pass goes through (renewed when due); otherwise the client's ticket, if
    /// any, is presented to the room, which keeps its place, admits it, or places it.
    /// When the store cannot answer, the room fails closed (503) or open (through), by `on_store_error`.
    pub async fn gate(&self, visitor: Visitor<'_>) -> Result<Gate, GatewayError> {
        match self.decide(visitor).await {
            Err(GatewayError::RoomUnavailable(e)) if self.file.on_store_error == OnStoreError::Open => {
                tracing::warn!(room = %self.name, error = %e, "room store failed; letting the request through");
                Ok(Gate::Through(HeaderMap::new()))
            }
            decided => decided,
        }
    }

    async fn decide(&self, visitor: Visitor<'_>) -> Result<Gate, GatewayError> {
        let now_ms = self.clock.now_ms();
        let now = (now_ms / 1000) as u32;
        let binding = self.binding(visitor.client_ip);
        let mut set = HeaderMap::new();
        let (pass_cookie, ticket_cookie) = (&self.pass_cookie, &self.ticket_cookie);

        if let Some(token) = cookies::get(visitor.headers, pass_cookie) {
            match self.verify(token, Kind::Pass, now, binding) {
                Ok(claims) => {
                    // Most requests with a pass touch nothing but the keys; only one due for renewal (half its
                    // life gone) goes to the store.
                    if !self.renewal.renewal_due(claims.expires, u64::from(now)) {
                        return Ok(Gate::Through(set));
                    }
                    let renewal = self.store.renew(now_ms, claims.seq, claims.expires).await;
                    match renewal {
                        // The pass is valid until it expires whatever the store says now: a place already
                        // given is never taken back by an outage. Renewal is tried again on the next request.
                        Err(e) => {
                            tracing::warn!(room = %self.name, error = %e, "cannot renew a pass; it stays valid");
                            return Ok(Gate::Through(set));
                        }
                        Ok(Renewal::NotDue) => return Ok(Gate::Through(set)),
                        Ok(Renewal::Renewed(expires)) => {
                            let renewed = Claims { expires, issued: now, ..claims };
                            cookies::set(
                                &mut set,
                                pass_cookie,
                                &self.keys.sign(&renewed),
                                u64::from(expires.saturating_sub(now)),
                                visitor.secure,
                            );
                            return Ok(Gate::Through(set));
                        }
                        // Ended on another node (or before this one restarted): remembered here too, and the
                        // client queues like anyone without a pass.
                        Ok(Renewal::Ended) => {
                            self.ended.insert(claims.seq, claims.expires);
                            self.metrics.refused(Refusal::Ended);
                            cookies::set(&mut set, pass_cookie, "", 0, visitor.secure);
                        }
                    }
                }
                Err(reason) => {
                    self.metrics.refused(reason);
                    cookies::set(&mut set, pass_cookie, "", 0, visitor.secure);
                }
            }
        }

        let presented = match cookies::get(visitor.headers, ticket_cookie) {
            None => None,
            Some(token) => match self.verify(token, Kind::Ticket, now, binding) {
                Ok(claims) => Some(claims),
                Err(reason) => {
                    self.metrics.refused(reason);
                    None
                }
            },
        };
        let ticket = presented.as_ref().map(|c| TicketRef { generation: c.generation, seq: c.seq });
        let visit = self.store.visit(now_ms, ticket).await?;
        if let Some(reason) = visit.refused {
            self.metrics.refused(reason);
        }
        let generation = self.generation.load(Ordering::Relaxed);
        let claims = |kind, seq, expires| Claims {
            kind,
            room: self.name.to_string(),
            generation,
            seq,
            issued: now,
            expires,
            binding,
        };
        Ok(match visit.outcome {
            Outcome::Admit { session, expires } => {
                let pass = self.keys.sign(&claims(Kind::Pass, session, expires));
                cookies::set(&mut set, pass_cookie, &pass, u64::from(expires.saturating_sub(now)), visitor.secure);
                if ticket.is_some() {
                    cookies::set(&mut set, ticket_cookie, "", 0, visitor.secure);
                }
                Gate::Through(set)
            }
            Outcome::PassThrough => Gate::Through(set),
            Outcome::Hold { ticket: Some(seq), status } => {
                // The ticket in hand still names this place and has most of its life left: keep it, and save
                // the signature and the cookie on most polls.
                let fresh = presented
                    .as_ref()
                    .is_some_and(|c| c.seq == seq && c.expires.saturating_sub(now) > self.ticket_ttl() / 2);
                if !fresh {
                    let expires = now.saturating_add(self.ticket_ttl());
                    let ticket = self.keys.sign(&claims(Kind::Ticket, seq, expires));
                    cookies::set(&mut set, ticket_cookie, &ticket, u64::from(self.ticket_ttl()), visitor.secure);
                }
                self.metrics.observe_wait(status.eta_seconds);
                Gate::Held(status, set)
            }
            Outcome::Hold { ticket: None, status } => {
                if ticket.is_some() || visit.refused.is_some() {
                    cookies::set(&mut set, ticket_cookie, "", 0, visitor.secure);
                }
                Gate::Held(status, set)
            }
        })
    }

    /// Checks a token's signature, kind, room, expiry and binding, then that it is from this generation.
    fn verify(&self, token: &str, kind: Kind, now: u32, binding: u64) -> Result<Claims, Refusal> {
        let binding = self.file.bind_to_address.then_some(binding);
        let claims = self.keys.verify(token, &Expect { kind, room: &self.name, now, binding })?;
        if claims.generation != self.generation.load(Ordering::Relaxed) {
            return Err(Refusal::Stale);
        }
        if kind == Kind::Pass && self.ended.contains(claims.seq) {
            return Err(Refusal::Ended);
        }
        Ok(claims)
    }

    /// The session of the valid pass this request carries, if any: the user, for rate limits keyed by it.
    pub fn session_of(&self, headers: &HeaderMap, client_ip: IpAddr) -> Option<u64> {
        let token = cookies::get(headers, &self.pass_cookie)?;
        let now = (self.clock.now_ms() / 1000) as u32;
        self.verify(token, Kind::Pass, now, self.binding(client_ip)).ok().map(|c| c.seq)
    }

    /// Gives up the client's place or ends its session.
    pub async fn leave(&self, visitor: Visitor<'_>) -> Result<(bool, HeaderMap), GatewayError> {
        let now_ms = self.clock.now_ms();
        let now = (now_ms / 1000) as u32;
        let binding = self.binding(visitor.client_ip);
        let mut left = false;
        let mut set = HeaderMap::new();
        let (pass_cookie, ticket_cookie) = (&self.pass_cookie, &self.ticket_cookie);
        if let Some(Ok(claims)) =
            cookies::get(visitor.headers, pass_cookie).map(|t| self.verify(t, Kind::Pass, now, binding))
        {
            left |= self.store.end_session(now_ms, claims.seq, claims.expires).await?;
            self.ended.insert(claims.seq, claims.expires);
        }
        if let Some(Ok(claims)) =
            cookies::get(visitor.headers, ticket_cookie).map(|t| self.verify(t, Kind::Ticket, now, binding))
        {
            let ticket = TicketRef { generation: claims.generation, seq: claims.seq };
            left |= self.store.leave(now_ms, ticket).await?;
        }
        cookies::set(&mut set, pass_cookie, "", 0, visitor.secure);
        cookies::set(&mut set, ticket_cookie, "", 0, visitor.secure);
        Ok((left, set))
    }

    // === what the client sees ===

    /// Seconds until the client should look again: a quarter of its estimated wait, kept between 2 s and a
    /// third of the grace period, then spread ±25% so a crowd that arrived together does not return together.
    pub fn refresh_after(&self, status: &Status) -> u64 {
        let ceiling = (self.file.queue_grace.get().as_secs() / 3).max(2);
        let base = match status.state {
            State::Waiting => status.eta_seconds.map_or(5, |eta| eta / 4).clamp(2, ceiling),
            State::Admitted => 1,
            State::Paused => 10.min(ceiling),
            State::Closed | State::Full => 30,
        };
        let jittered = base as f64 * (0.75 + self.entropy.f64() * 0.5);
        (jittered.round() as u64).max(1)
    }

    /// The JSON every API client gets: the contract's fields, plus the size of the line and the progress.
    /// Written by hand because it runs on every poll and its values are only numbers and known words.
    pub fn status_json(&self, status: &Status, refresh: u64) -> String {
        use std::fmt::Write;
        fn opt(out: &mut String, v: Option<u64>) {
            match v {
                Some(v) => {
                    let _ = write!(out, "{v}");
                }
                None => out.push_str("null"),
            }
        }
        let mut out = String::with_capacity(192);
        // Room names are letters, digits, '-' and '_' (validated), so they need no escaping.
        let _ = write!(out, "{{\"room\":\"{}\",\"state\":\"{}\",\"position\":", self.name, status.state.as_str());
        opt(&mut out, status.position);
        out.push_str(",\"eta_seconds\":");
        opt(&mut out, status.eta_seconds);
        let _ = write!(out, ",\"refresh_after_seconds\":{refresh},\"waiting\":{},\"progress\":", status.waiting);
        match status.progress {
            Some(p) => {
                let _ = write!(out, "{:.3}", p);
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"opens_in_seconds\":");
        opt(&mut out, status.opens_in);
        out.push('}');
        out
    }

    /// The waiting page or JSON for a held request: 503 with `Retry-After`, never cached.
    pub fn held_response(&self, status: &Status, accept: Accept, headers: &HeaderMap) -> Response<ResponseBody> {
        let refresh = self.refresh_after(status);
        let (content_type, body) = match accept {
            Accept::Json => ("application/json", self.status_json(status, refresh)),
            Accept::Html => ("text/html; charset=utf-8", self.page(status, refresh, page::Lang::negotiate(headers))),
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let h = response.headers_mut();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(http::header::RETRY_AFTER, HeaderValue::from(refresh));
        h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    fn page(&self, status: &Status, refresh: u64, lang: page::Lang) -> String {
        let default_title = match lang {
            page::Lang::En => "Waiting room",
            page::Lang::Ko => "대기실",
        };
        let vars = page::PageVars {
            room: &self.name,
            title: self.file.title.as_deref().unwrap_or(default_title),
            state: status.state,
            position: status.position,
            eta_seconds: status.eta_seconds,
            progress: status.progress,
            waiting: status.waiting,
            refresh_seconds: refresh,
            lang,
        };
        match &self.template {
            Some(template) => page::render_template(template, &vars),
            None => page::render(&vars),
        }
    }

    // === operators ===

    pub async fn snapshot(&self) -> Result<Snapshot, GatewayError> {
        Ok(self.store.snapshot(self.clock.now_ms()).await?)
    }

    pub async fn pause(&self) -> Result<(), GatewayError> {
        Ok(self.store.pause(self.clock.now_ms()).await?)
    }

    pub async fn resume(&self) -> Result<(), GatewayError> {
        Ok(self.store.resume(self.clock.now_ms()).await?)
    }

    pub async fn reset(&self) -> Result<(), GatewayError> {
        self.store.reset(self.clock.now_ms(), self.entropy.u64()).await?;
        self.refresh_generation().await
    }

    pub async fn change(&self, change: Change) -> Result<(), GatewayError> {
        {
            let mut o = self.overrides.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(rate) = change.new_users_per_minute {
                o.new_users_per_minute = Some(rate);
            }
            if let Some(cap) = change.total_active_users {
                o.total_active_users = Some(cap);
            }
        }
        self.apply().await
    }

    async fn refresh_generation(&self) -> Result<(), GatewayError> {
        let generation = self.store.generation().await?;
        self.generation.store(generation, Ordering::Relaxed);
        Ok(())
    }

    /// Called by the ticker: lets time pass in the room and publishes its figures.
    pub async fn advance(&self, publish: bool) -> Result<(), GatewayError> {
        let now = self.clock.now_ms();
        self.ended.prune(u32::try_from(now / 1000).unwrap_or(u32::MAX));
        self.store.advance(now).await?;
        if publish {
            let snapshot = self.store.snapshot(now).await?;
            self.generation.store(snapshot.generation, Ordering::Relaxed);
            let mut last = self.last_counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.metrics.publish(&snapshot, &last);
            // The ticker and a scrape may publish at once with snapshots taken in either order: keep the
            // furthest totals seen, so nothing is counted twice.
            let now = snapshot.counters;
            *last = Counters {
                joined: last.joined.max(now.joined),
                released: last.released.max(now.released),
                entered: last.entered.max(now.entered),
                abandoned: last.abandoned.max(now.abandoned),
                no_shows: last.no_shows.max(now.no_shows),
                left: last.left.max(now.left),
                ended: last.ended.max(now.ended),
                expired: last.expired.max(now.expired),
            };
        }
        Ok(())
    }

    /// The settings in force: the file's, with live changes on top.
    pub fn effective(&self) -> Settings {
        settings(&self.file, &self.overrides())
    }
}

/// The model's settings from the file's, with the operator's live changes applied.
fn settings(c: &RoomConfig, o: &Overrides) -> Settings {
    use spillway_config::{Activation as A, Queueing as Q};
    use spillway_core::room::{Activation, Queueing};
    Settings {
        new_users_per_minute: o.new_users_per_minute.unwrap_or(c.new_users_per_minute),
        total_active_users: o.total_active_users.unwrap_or(c.total_active_users),
        session_duration: c.session_duration.get().as_secs().min(u64::from(u32::MAX)) as u32,
        session_renewal: c.session_renewal,
        queue_grace: c.queue_grace.get().as_secs().min(u64::from(u32::MAX)) as u32,
        queueing: match c.queueing {
            Q::Fifo => Queueing::Fifo,
            Q::Random => Queueing::Random,
            Q::Passthrough => Queueing::Passthrough,
            Q::Reject => Queueing::Reject,
        },
        activation: match c.activation {
            A::Always => Activation::Always,
            A::Threshold => Activation::Threshold,
        },
        opens_at: c.opens_at.as_ref().map(|t| t.unix()),
        prequeue_from: c.prequeue_from.as_ref().map(|t| t.unix()),
        closes_at: c.closes_at.as_ref().map(|t| t.unix()),
        max_waiting: c.max_waiting,
        seed: c.seed,
    }
}

/// The deployment's signing keys, if any are configured.
pub fn keyring(config: &Config) -> Result<Option<Arc<Keyring>>, String> {
    if config.keys.is_empty() {
        return Ok(None);
    }
    Keyring::new(config.keys.iter().map(|k| (k.id.as_str(), k.secret.expose().as_bytes())))
        .map(|k| Some(Arc::new(k)))
        .map_err(|e| e.to_string())
}

impl Component for RoomHandle {
    /// Lets time pass in the room (places are released on schedule even when nobody polls); every tenth
    /// tick also publishes its figures.
    fn tick(&self, n: u64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.advance(n.is_multiple_of(10)).await {
                tracing::warn!(room = %self.name, error = %e, "room tick failed");
            }
        })
    }

    /// A scrape never shows a second-old line.
    fn publish(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.advance(true).await {
                tracing::warn!(room = %self.name, error = %e, "cannot read the room's figures");
            }
        })
    }

    fn apply<'a>(&'a self, _: &'a Config) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(self.apply())
    }
}
