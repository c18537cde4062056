//! The waiting-room model: who waits, who is admitted, at what rate, and what each client is told.
//!
//! Sans-IO: every call takes the time as an argument and nothing here reads a clock, touches the network or
//! draws entropy by itself (the caller hands in random bits at creation). That is what lets the tests run
//! hours of simulated traffic in milliseconds and check the rate, the cap and the order exactly.
//!
//! A client's place is a *rank* in [`queue::Queue`]. Admission releases ranks at the configured rate
//! (a continuously refilled credit, so a per-minute rate never arrives as a once-a-minute burst) while the
//! active-user cap has room. An admitted client claims its pass on its next visit; one that never comes back
//! within the grace period is a no-show and its admission is refunded, so abandoned places cost the line
//! nothing.

mod lottery;
mod meter;
mod queue;
mod sessions;
mod settings;

use std::collections::VecDeque;

use rand_chacha::ChaCha20Rng;

pub use lottery::draw as lottery_draw;
pub use queue::{Slot, SlotState};
pub use settings::{Activation, Queueing, Settings};

use crate::token::Refusal;
use meter::Meter;
use queue::Queue;
use sessions::Sessions;

/// Marks a ticket number as a pre-queue arrival, placed by the lottery at opening.
const EARLY: u64 = 1 << 63;

/// What a ticket says, once its signature has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketRef {
    pub generation: u32,
    pub seq: u64,
}

/// The answer to a visit: let the request through with a pass, let it through as is, or hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub outcome: Outcome,
    /// Why a presented ticket did not count, if it did not.
    pub refused: Option<Refusal>,
}

/// What a pass in use is told when it asks to be renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Less than half its life is gone: keep it.
    NotDue,
    /// A new expiry, for a fresh pass.
    Renewed(u32),
    /// The session was ended (the client left): the pass no longer admits anyone.
    Ended,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Issue a pass for this session; the request goes through.
    Admit { session: u64, expires: u32 },
    /// No room applies (passthrough mode): the request goes through, no pass needed.
    PassThrough,
    /// Show the status; when `ticket` is set, (re)issue a ticket with that number.
    Hold { ticket: Option<u64>, status: Status },
}

/// What a held client is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub state: State,
    /// 1 = next. `None` where order is not by arrival (random queueing, a pre-queue before its draw).
    pub position: Option<u64>,
    pub eta_seconds: Option<u64>,
    /// The share of the line ahead at joining that has since gone: 0.0 on joining, near 1.0 at the front.
    pub progress: Option<f64>,
    /// Clients waiting in all.
    pub waiting: u64,
    /// Seconds until the room opens, before it does.
    pub opens_in: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Waiting,
    Admitted,
    Paused,
    Closed,
    Full,
}

impl State {
    /// The contract's JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Admitted => "admitted",
            Self::Paused => "paused",
            Self::Closed => "closed",
            Self::Full => "full",
        }
    }
}

/// Where the room is in its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    NotOpen,
    Prequeue,
    Open,
    Ended,
}

/// The recorded pre-queue draw: enough to re-run it and check every place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lottery {
    pub seed: u64,
    pub entrants: u32,
    /// Unix seconds.
    pub drawn_at: u64,
}

/// Running totals, never reset (not even by a room reset), for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Clients who took a place (queue or pre-queue).
    pub joined: u64,
    /// Places released for admission.
    pub released: u64,
    /// Passes issued: released places claimed, plus clients let straight in.
    pub entered: u64,
    /// Waiting clients who stopped polling and lost their place.
    pub abandoned: u64,
    /// Released clients who never came back for their pass.
    pub no_shows: u64,
    /// Clients who left the queue themselves.
    pub left: u64,
    /// Sessions their clients ended before the pass ran out (leaving with a pass).
    pub ended: u64,
    /// Sessions whose pass ran out.
    pub expired: u64,
}

/// A live view of the room, for the admin API and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub phase: Phase,
    pub paused: bool,
    pub generation: u32,
    pub settings: Settings,
    pub waiting: u64,
    pub active_sessions: u64,
    pub unclaimed: u64,
    /// Admissions per minute the wait estimate uses.
    pub estimated_per_minute: f64,
    /// Admissions per minute measured over the last minute's saturated seconds.
    pub measured_per_minute: Option<f64>,
    pub counters: Counters,
    pub lottery: Option<Lottery>,
    /// The seed the lottery and random queueing use.
    pub seed: u64,
    pub bytes_held: usize,
}

#[derive(Debug)]
pub struct Room {
    settings: Settings,
    generation: u32,
    /// Unix seconds that slot times count from.
    epoch: u64,
    seed: u64,
    queue: Queue,
    /// Pre-queue arrivals before the draw, by arrival number.
    early: Vec<Slot>,
    early_waiting: u64,
    /// After the draw: arrival number → rank.
    early_ranks: Vec<u64>,
    lottery: Option<Lottery>,
    /// Released ranks and the time (relative) by which they must be claimed, in release order.
    released: VecDeque<(u64, u32)>,
    unclaimed: u64,
    sessions: Sessions,
    credit: f64,
    refilled_ms: u64,
    /// Whether credit was accruing at the last advance; it accrues only for time spent open and unpaused.
    flowing: bool,
    paused: bool,
    meter: Meter,
    rng: ChaCha20Rng,
    counters: Counters,
    swept_s: u64,
}

impl Room {
    /// `entropy` seeds the lottery and random queueing unless the settings fix a seed.
    pub fn new(settings: Settings, now_ms: u64, entropy: u64) -> Self {
        let now_s = now_ms / 1000;
        let seed = settings.seed.unwrap_or(entropy);
        let mut room = Self {
            meter: Meter::new(settings.rate(), now_s),
            rng: lottery::rng(seed),
            seed,
            settings,
            generation: 1,
            epoch: now_s,
            queue: Queue::default(),
            early: Vec::new(),
            early_waiting: 0,
            early_ranks: Vec::new(),
            lottery: None,
            released: VecDeque::new(),
            unclaimed: 0,
            sessions: Sessions::starting_at(u64::from(entropy as u32) << 32),
            credit: 0.0,
            refilled_ms: now_ms,
            flowing: false,
            paused: false,
            counters: Counters::default(),
            swept_s: now_s,
        };
        room.advance(now_ms);
        room
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn phase(&self, now_s: u64) -> Phase {
        let s = &self.settings;
        if s.closes_at.is_some_and(|t| now_s >= t) {
            Phase::Ended
        } else if s.opens_at.is_some_and(|t| now_s < t) {
            if s.prequeue_from.is_some_and(|t| now_s >= t) { Phase::Prequeue } else { Phase::NotOpen }
        } else {
            Phase::Open
        }
    }

    // === visits ===

    /// A client shows up, with the ticket it holds if any (its signature already checked).
    pub fn visit(&mut self, now_ms: u64, ticket: Option<TicketRef>) -> Visit {
        self.advance(now_ms);
        let now_s = now_ms / 1000;
        if self.settings.queueing == Queueing::Passthrough {
            return Visit { outcome: Outcome::PassThrough, refused: None };
        }
        let mut refused = None;
        if let Some(ticket) = ticket {
            match self.returning(now_s, ticket) {
                Ok(outcome) => return Visit { outcome, refused: None },
                Err(reason) => refused = Some(reason),
            }
        }
        Visit { outcome: self.arrive(now_s), refused }
    }

    /// A client with a ticket: keep its place, or hand it its pass.
    fn returning(&mut self, now_s: u64, ticket: TicketRef) -> Result<Outcome, Refusal> {
        if ticket.generation != self.generation {
            return Err(Refusal::Stale);
        }
        let now = self.rel(now_s);
        if ticket.seq & EARLY != 0 {
            let arrival = usize::try_from(ticket.seq & !EARLY).map_err(|_| Refusal::Replayed)?;
            if let Some(&rank) = self.early_ranks.get(arrival) {
                return self.returning_ranked(now_s, rank);
            }
            let slot = self.early.get_mut(arrival).ok_or(Refusal::Replayed)?;
            if slot.state() != SlotState::Waiting {
                return Err(Refusal::Replayed);
            }
            *slot = Slot::new(SlotState::Waiting, now, 0);
            return Ok(Outcome::Hold { ticket: Some(ticket.seq), status: self.early_status(now_s) });
        }
        self.returning_ranked(now_s, ticket.seq)
    }

    fn returning_ranked(&mut self, now_s: u64, rank: u64) -> Result<Outcome, Refusal> {
        let slot = self.queue.get(rank).ok_or(Refusal::Replayed)?;
        match slot.state() {
            SlotState::Gone => Err(Refusal::Replayed),
            SlotState::Admitted => {
                self.queue.set(rank, SlotState::Gone, slot.time());
                self.unclaimed -= 1;
                Ok(self.admit(now_s))
            }
            SlotState::Waiting => {
                self.queue.set(rank, SlotState::Waiting, self.rel(now_s));
                Ok(Outcome::Hold { ticket: Some(rank), status: self.ranked_status(now_s, rank) })
            }
        }
    }

    /// A client without a (valid) ticket.
    fn arrive(&mut self, now_s: u64) -> Outcome {
        let phase = self.phase(now_s);
        let closed = |opens_in| Outcome::Hold { ticket: None, status: self.bare_status(State::Closed, opens_in) };
        match phase {
            _ if self.settings.queueing == Queueing::Reject => return closed(None),
            Phase::Ended => return closed(None),
            Phase::NotOpen => return closed(self.opens_in(now_s)),
            Phase::Prequeue | Phase::Open => {}
        }
        if self.settings.max_waiting.is_some_and(|max| self.waiting() >= max) {
            return Outcome::Hold { ticket: None, status: self.bare_status(State::Full, None) };
        }
        self.counters.joined += 1;
        let now = self.rel(now_s);
        if phase == Phase::Prequeue {
            let arrival = self.early.len() as u64;
            self.early.push(Slot::new(SlotState::Waiting, now, 0));
            self.early_waiting += 1;
            return Outcome::Hold { ticket: Some(arrival | EARLY), status: self.early_status(now_s) };
        }
        if self.settings.activation == Activation::Threshold && self.queue.waiting() == 0 && self.can_release() {
            self.credit -= 1.0;
            self.counters.released += 1;
            self.meter.record(now_s, 1);
            return self.admit(now_s);
        }
        let start = u32::try_from(self.queue.waiting() + 1).unwrap_or(u32::MAX);
        let rank = self.queue.push(Slot::new(SlotState::Waiting, now, start));
        Outcome::Hold { ticket: Some(rank), status: self.ranked_status(now_s, rank) }
    }

    fn admit(&mut self, now_s: u64) -> Outcome {
        let expires = unix_u32(now_s + u64::from(self.settings.session_duration));
        let session = self.sessions.open(expires);
        self.counters.entered += 1;
        Outcome::Admit { session, expires }
    }

    /// A pass is in use. Returns the new expiry when it is time to renew it (half its life gone).
    pub fn renew(&mut self, now_ms: u64, session: u64, expires: u32) -> Renewal {
        let now_s = now_ms / 1000;
        if self.sessions.is_ended(session) {
            return Renewal::Ended;
        }
        if !self.settings.renewal_due(expires, now_s) {
            return Renewal::NotDue;
        }
        let renewed = unix_u32(now_s.saturating_add(u64::from(self.settings.session_duration)));
        if !self.sessions.renew(session, renewed) {
            return Renewal::Ended;
        }
        Renewal::Renewed(renewed)
    }

    /// The client is done: its session no longer counts against the cap, and its pass (valid until
    /// `pass_expires`) is not renewed again.
    pub fn end_session(&mut self, now_ms: u64, session: u64, pass_expires: u32) -> bool {
        let ended = self.sessions.end(session, pass_expires);
        if ended {
            self.counters.ended += 1;
        }
        self.advance(now_ms);
        ended
    }

    /// The client gives up its place.
    pub fn leave(&mut self, now_ms: u64, ticket: TicketRef) -> bool {
        if ticket.generation != self.generation {
            return false;
        }
        let rank = if ticket.seq & EARLY != 0 {
            let arrival = (ticket.seq & !EARLY) as usize;
            match self.early_ranks.get(arrival) {
                Some(&rank) => rank,
                None => {
                    let Some(slot) = self.early.get_mut(arrival).filter(|s| s.state() == SlotState::Waiting) else {
                        return false;
                    };
                    *slot = Slot::new(SlotState::Gone, slot.time(), 0);
                    self.early_waiting -= 1;
                    self.counters.left += 1;
                    return true;
                }
            }
        } else {
            ticket.seq
        };
        let left = match self.queue.get(rank).map(Slot::state) {
            Some(SlotState::Waiting) => true,
            Some(SlotState::Admitted) => {
                self.unclaimed -= 1;
                true
            }
            _ => false,
        };
        if left {
            self.queue.set(rank, SlotState::Gone, 0);
            self.counters.left += 1;
            self.advance(now_ms);
        }
        left
    }

    // === time passing ===

    /// Brings the room up to `now_ms`: opens it and draws the pre-queue lottery, reclaims abandoned places and
    /// no-shows, expires sessions, and releases as many places as rate and cap allow. Cheap when called often;
    /// the sweeps run at most once per second.
    pub fn advance(&mut self, now_ms: u64) {
        let now_s = now_ms / 1000;
        let phase = self.phase(now_s);
        if phase != Phase::Prequeue && self.lottery.is_none() && !self.early.is_empty() {
            self.draw(now_s);
        }
        let flowing =
            phase == Phase::Open && !self.paused && matches!(self.settings.queueing, Queueing::Fifo | Queueing::Random);
        if flowing {
            // Credit accrues only for time spent flowing: from the last advance if the room was flowing then,
            // else from the opening time if it opened since, else from now.
            let from = match self.settings.opens_at.map(|t| t * 1000) {
                _ if self.flowing => self.refilled_ms,
                Some(open) if open > self.refilled_ms && open <= now_ms => open,
                _ => now_ms,
            };
            let elapsed = now_ms.saturating_sub(from) as f64 / 1000.0;
            self.credit += elapsed * self.settings.rate();
        }
        self.refilled_ms = self.refilled_ms.max(now_ms);
        self.flowing = flowing;
        if now_s > self.swept_s {
            self.swept_s = now_s;
            self.sweep(now_s);
        }
        if flowing {
            self.release(now_s);
        }
        // Credit left after releasing means nobody could use it (nobody waiting, or the cap is full): keep
        // at most a burst of it, so an idle minute does not turn into a rush.
        self.credit = self.credit.min(self.settings.burst());
        self.meter.roll(now_s, flowing && self.queue.waiting() > 0);
    }

    fn sweep(&mut self, now_s: u64) {
        let cutoff = self.rel(now_s).saturating_sub(self.settings.queue_grace);
        self.counters.abandoned += self.queue.reclaim(cutoff);
        for slot in &mut self.early {
            if slot.state() == SlotState::Waiting && slot.time() < cutoff {
                *slot = Slot::new(SlotState::Gone, slot.time(), 0);
                self.early_waiting -= 1;
                self.counters.abandoned += 1;
            }
        }
        self.counters.expired += self.sessions.expire(unix_u32(now_s)) as u64;
        let now = self.rel(now_s);
        while let Some(&(rank, deadline)) = self.released.front() {
            if deadline > now {
                break;
            }
            self.released.pop_front();
            if self.queue.get(rank).is_some_and(|s| s.state() == SlotState::Admitted) {
                self.queue.set(rank, SlotState::Gone, 0);
                self.unclaimed -= 1;
                self.counters.no_shows += 1;
                // The admission was never used: give it back so the line does not pay for the no-show.
                self.credit = (self.credit + 1.0).min(self.settings.burst());
            }
        }
    }

    fn can_release(&self) -> bool {
        self.credit >= 1.0
            && self
                .settings
                .total_active_users
                .is_none_or(|cap| self.sessions.active() + self.unclaimed < u64::from(cap))
    }

    fn release(&mut self, now_s: u64) {
        let now = self.rel(now_s);
        let stale_before = now.saturating_sub(self.settings.queue_grace);
        let mut released = 0;
        while self.can_release() {
            let pick = match self.settings.queueing {
                Queueing::Random if self.queue.waiting() > 0 => {
                    self.queue.nth_waiting(lottery::below(&mut self.rng, self.queue.waiting()))
                }
                _ => self.queue.first_waiting(self.queue.front()),
            };
            let Some(rank) = pick else { break };
            let slot = self.queue.get(rank).unwrap_or(Slot::new(SlotState::Gone, 0, 0));
            if slot.time() < stale_before {
                // Abandoned since the last sweep: skip it without spending an admission.
                self.queue.set(rank, SlotState::Gone, 0);
                self.counters.abandoned += 1;
                continue;
            }
            self.queue.set(rank, SlotState::Admitted, now);
            self.released.push_back((rank, now + self.settings.queue_grace));
            self.unclaimed += 1;
            self.credit -= 1.0;
            self.counters.released += 1;
            released += 1;
        }
        if released > 0 {
            self.meter.record(now_s, released);
        }
    }

    /// Deals the pre-queue into random places behind whoever is already in line.
    fn draw(&mut self, now_s: u64) {
        let entrants = u32::try_from(self.early.len()).unwrap_or(u32::MAX);
        let places = lottery::draw(self.seed, entrants);
        let base = self.queue.end();
        let mut by_place = vec![Slot::new(SlotState::Gone, 0, 0); places.len()];
        for (arrival, &place) in places.iter().enumerate() {
            by_place[place as usize] = self.early[arrival];
        }
        let mut waiting_ahead = self.queue.waiting();
        for slot in by_place {
            let start = if slot.state() == SlotState::Waiting {
                waiting_ahead += 1;
                u32::try_from(waiting_ahead).unwrap_or(u32::MAX)
            } else {
                0
            };
            self.queue.push(Slot::new(slot.state(), slot.time(), start));
        }
        self.early_ranks = places.iter().map(|&p| base + u64::from(p)).collect();
        self.early = Vec::new();
        self.early_waiting = 0;
        self.lottery = Some(Lottery { seed: self.seed, entrants, drawn_at: now_s });
    }

    // === what clients are told ===

    fn ranked_status(&self, now_s: u64, rank: u64) -> Status {
        let slot = self.queue.get(rank);
        let fifo = self.settings.queueing == Queueing::Fifo;
        let position = fifo.then(|| self.queue.position(rank));
        let state = match self.phase(now_s) {
            Phase::Ended => State::Closed,
            _ if self.paused => State::Paused,
            _ if slot.is_some_and(|s| s.state() == SlotState::Admitted) => State::Admitted,
            _ => State::Waiting,
        };
        let eta_seconds = match (state, position) {
            (State::Waiting, Some(p)) => Some((p as f64 / self.meter.estimate().max(1e-3)).ceil() as u64),
            (State::Admitted, _) => Some(0),
            _ => None,
        };
        let progress = match (slot, position) {
            (Some(s), Some(p)) if s.start_position > 0 => {
                let start = f64::from(s.start_position);
                Some(((start - p as f64) / start).clamp(0.0, 1.0))
            }
            _ => None,
        };
        Status { state, position, eta_seconds, progress, waiting: self.waiting(), opens_in: None }
    }

    fn early_status(&self, now_s: u64) -> Status {
        let opens_in = self.opens_in(now_s);
        Status {
            state: if self.paused { State::Paused } else { State::Waiting },
            position: None,
            eta_seconds: opens_in,
            progress: None,
            waiting: self.waiting(),
            opens_in,
        }
    }

    fn bare_status(&self, state: State, opens_in: Option<u64>) -> Status {
        Status { state, position: None, eta_seconds: opens_in, progress: None, waiting: self.waiting(), opens_in }
    }

    fn opens_in(&self, now_s: u64) -> Option<u64> {
        self.settings.opens_at.map(|t| t.saturating_sub(now_s))
    }

    pub fn waiting(&self) -> u64 {
        self.queue.waiting() + self.early_waiting
    }

    // === operator controls ===

    pub fn pause(&mut self, now_ms: u64) {
        self.advance(now_ms);
        self.paused = true;
    }

    pub fn resume(&mut self, now_ms: u64) {
        self.refilled_ms = now_ms;
        self.paused = false;
        self.meter.reconfigure(self.settings.rate(), now_ms / 1000);
        self.advance(now_ms);
    }

    /// New settings, live. Places, sessions and counters stay; a new rate restarts the wait estimate.
    pub fn configure(&mut self, now_ms: u64, settings: Settings) {
        self.advance(now_ms);
        if settings.new_users_per_minute != self.settings.new_users_per_minute {
            self.meter.reconfigure(settings.rate(), now_ms / 1000);
        }
        if settings.seed.is_some_and(|s| s != self.seed) && self.lottery.is_none() {
            self.seed = settings.seed.unwrap_or(self.seed);
            self.rng = lottery::rng(self.seed);
        }
        self.credit = self.credit.min(settings.burst());
        self.settings = settings;
        self.advance(now_ms);
    }

    /// Empties the room: every place and session goes, and every ticket and pass issued so far stops counting.
    pub fn reset(&mut self, now_ms: u64, entropy: u64) {
        let generation = self.generation.wrapping_add(1).max(1);
        let counters = self.counters;
        let paused = self.paused;
        *self = Self::new(self.settings.clone(), now_ms, entropy);
        self.generation = generation;
        self.counters = counters;
        self.paused = paused;
    }

    pub fn snapshot(&self, now_ms: u64) -> Snapshot {
        let now_s = now_ms / 1000;
        Snapshot {
            phase: self.phase(now_s),
            paused: self.paused,
            generation: self.generation,
            settings: self.settings.clone(),
            waiting: self.waiting(),
            active_sessions: self.sessions.active(),
            unclaimed: self.unclaimed,
            estimated_per_minute: self.meter.estimate() * 60.0,
            measured_per_minute: self.meter.measured().map(|r| r * 60.0),
            counters: self.counters,
            lottery: self.lottery,
            seed: self.seed,
            bytes_held: self.queue.capacity_bytes()
                + self.early.capacity() * std::mem::size_of::<Slot>()
                + self.early_ranks.capacity() * 8
                + self.released.capacity() * 16,
        }
    }

    /// Slot times are seconds since the room's epoch, to fit in 30 bits.
    fn rel(&self, now_s: u64) -> u32 {
        u32::try_from(now_s.saturating_sub(self.epoch)).unwrap_or(u32::MAX >> 2)
    }
}

fn unix_u32(s: u64) -> u32 {
    u32::try_from(s).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
