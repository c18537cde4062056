//! A circuit breaker: closed, open, half-open (seed 000 §2).
//!
//! Closed, it lets calls through and remembers how they went in a sliding window. Once the window holds at
//! least `minimum_calls` and the failure rate or the slow-call rate reaches its threshold, it opens: calls
//! are refused at once, which gives a struggling origin room to recover instead of a queue of doomed
//! requests. After `open_for` it lets `half_open_calls` trial calls through; if they go well it closes (with
//! a clean window), otherwise it opens again.
//!
//! Every permit carries the breaker's generation, so a call that started before a transition cannot count
//! toward the next state: a slow call admitted while closed that fails after the breaker opened says nothing
//! about the half-open trial.

use super::window::{Totals, Window, WindowKind};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    pub window: WindowKind,
    /// Open at or above this share of failed calls (0 to 1).
    pub failure_rate: f64,
    /// Open at or above this share of slow calls (0 to 1); 1.0 with `slow_call_ms` large turns it off.
    pub slow_call_rate: f64,
    pub slow_call_ms: u64,
    /// No verdict on fewer calls than this: three failures out of three is not a trend.
    pub minimum_calls: u32,
    pub open_for_ms: u64,
    pub half_open_calls: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until_ms: u64 },
    HalfOpen { admitted: u32, recorded: Totals },
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen { .. } => "half_open",
        }
    }
}

/// Leave to make one call; hand it back to [`Breaker::record`] with how the call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "record how the call went, or the breaker never learns"]
pub struct Permit {
    generation: u64,
}

/// A call refused because the breaker is open, or half-open with its trial calls taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When asking again may succeed.
    pub retry_after_ms: u64,
}

/// A state change, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: &'static str,
    pub to: &'static str,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
    window: Window,
    generation: u64,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self { window: Window::new(settings.window), settings, state: State::Closed, generation: 0 }
    }

    /// The state at `now` (an open breaker whose time is up reads as half-open).
    pub fn state(&mut self, now_ms: u64) -> (State, Option<Transition>) {
        let transition = self.wake(now_ms);
        (self.state, transition)
    }

    pub fn try_acquire(&mut self, now_ms: u64) -> (Result<Permit, Refused>, Option<Transition>) {
        let transition = self.wake(now_ms);
        let permit = Permit { generation: self.generation };
        let result = match &mut self.state {
            State::Closed => Ok(permit),
            State::Open { until_ms } => Err(Refused { retry_after_ms: until_ms.saturating_sub(now_ms).max(1) }),
            State::HalfOpen { admitted, .. } if *admitted < self.settings.half_open_calls => {
                *admitted += 1;
                Ok(permit)
            }
            // The trial calls are out; their verdict comes within a call's time.
            State::HalfOpen { .. } => Err(Refused { retry_after_ms: 1000 }),
        };
        (result, transition)
    }

    /// How a permitted call went: `failed` as the caller defines failure (status classes, timeouts, connect
    /// errors), and how long it took.
    pub fn record(&mut self, permit: Permit, failed: bool, took_ms: u64, now_ms: u64) -> Option<Transition> {
        if permit.generation != self.generation {
            return None;
        }
        let slow = took_ms >= self.settings.slow_call_ms;
        let s = self.settings;
        match &mut self.state {
            State::Closed => {
                self.window.record(failed, slow, now_ms);
                let totals = self.window.totals(now_ms);
                if totals.calls >= s.minimum_calls && self.tripped(&totals) {
                    return Some(self.go(State::Open { until_ms: now_ms.saturating_add(s.open_for_ms) }));
                }
                None
            }
            State::HalfOpen { recorded, .. } => {
                recorded.calls += 1;
                recorded.failures += u32::from(failed);
                recorded.slow += u32::from(slow);
                let recorded = *recorded;
                if recorded.calls < s.half_open_calls {
                    return None;
                }
                Some(if self.tripped(&recorded) {
                    self.go(State::Open { until_ms: now_ms.saturating_add(s.open_for_ms) })
                } else {
                    self.go(State::Closed)
                })
            }
            State::Open { .. } => None,
        }
    }

    /// Hands back a permit whose call says nothing about the origin: the client's own fault (a body cut off
    /// halfway, a malformed chunk). It is neither a success nor a failure, and takes no time of the origin's,
    /// so a half-open breaker gets its trial slot back and a closed one records nothing. Otherwise any client
    /// could open the breaker for everyone by sending broken bodies.
    pub fn release(&mut self, permit: Permit) {
        if permit.generation != self.generation {
            return;
        }
        if let State::HalfOpen { admitted, .. } = &mut self.state {
            *admitted = admitted.saturating_sub(1);
        }
    }

    fn tripped(&self, t: &Totals) -> bool {
        t.failure_rate() >= self.settings.failure_rate || t.slow_rate() >= self.settings.slow_call_rate
    }

    fn wake(&mut self, now_ms: u64) -> Option<Transition> {
        match self.state {
            State::Open { until_ms } if now_ms >= until_ms => {
                Some(self.go(State::HalfOpen { admitted: 0, recorded: Totals::default() }))
            }
            _ => None,
        }
    }

    fn go(&mut self, next: State) -> Transition {
        let from = self.state.as_str();
        self.state = next;
        self.generation += 1;
        if next == State::Closed {
            self.window.clear();
        }
        Transition { from, to: next.as_str() }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            window: WindowKind::Count(10),
            failure_rate: 0.5,
            slow_call_rate: 1.0,
            slow_call_ms: 10_000,
            minimum_calls: 5,
            open_for_ms: 30_000,
            half_open_calls: 3,
        }
    }

    fn call(b: &mut Breaker, failed: bool, now: u64) -> Option<Transition> {
        let (permit, _) = b.try_acquire(now);
        b.record(permit.expect("permitted"), failed, 5, now)
    }

    #[test]
    fn opens_on_the_failure_rate_only_after_minimum_calls() {
        let mut b = Breaker::new(settings());
        for _ in 0..4 {
            assert_eq!(call(&mut b, true, 0), None, "four failures are fewer than minimum_calls");
        }
        assert_eq!(call(&mut b, true, 0), Some(Transition { from: "closed", to: "open" }));
        assert_eq!(b.try_acquire(1_000).0, Err(Refused { retry_after_ms: 29_000 }));
    }

    #[test]
    fn half_open_admits_the_trial_calls_then_closes_or_reopens() {
        let mut b = Breaker::new(settings());
        for _ in 0..5 {
            let _ = call(&mut b, true, 0);
        }
        let (p1, t) = b.try_acquire(30_000);
        assert_eq!(t, Some(Transition { from: "open", to: "half_open" }));
        let (p2, _) = b.try_acquire(30_000);
        let (p3, _) = b.try_acquire(30_000);
        assert!(b.try_acquire(30_000).0.is_err(), "only three trial calls");
        assert_eq!(b.record(p1.expect("1"), false, 5, 30_001), None);
        assert_eq!(b.record(p2.expect("2"), true, 5, 30_001), None);
        assert_eq!(b.record(p3.expect("3"), false, 5, 30_002), Some(Transition { from: "half_open", to: "closed" }));

        // Closed with a clean window: the old failures do not count again.
        assert_eq!(call(&mut b, true, 30_003), None);
        for _ in 0..3 {
            let _ = call(&mut b, true, 30_004);
        }
        assert_eq!(call(&mut b, true, 30_005), Some(Transition { from: "closed", to: "open" }));
        let (trial, _) = b.try_acquire(60_005);
        let _ = b.try_acquire(60_005);
        let _ = b.try_acquire(60_005);
        let _ = b.record(trial.expect("trial"), true, 5, 60_006);
    }

    #[test]
    fn a_released_permit_counts_for_nothing_and_gives_back_a_trial_slot() {
        let mut b = Breaker::new(settings());
        for _ in 0..100 {
            let (permit, _) = b.try_acquire(0);
            b.release(permit.expect("closed"));
        }
        assert_eq!(b.state(0).0, State::Closed, "a hundred client faults open nothing");
        for _ in 0..5 {
            let _ = call(&mut b, true, 0);
        }
        let trials: Vec<Permit> = (0..3).filter_map(|_| b.try_acquire(30_000).0.ok()).collect();
        assert_eq!(trials.len(), 3);
        assert!(b.try_acquire(30_000).0.is_err());
        b.release(trials[0]);
        assert!(b.try_acquire(30_000).0.is_ok(), "the slot came back");
    }

    #[test]
    fn slow_calls_open_it_too() {
        let mut b = Breaker::new(BreakerSettings { slow_call_rate: 0.6, slow_call_ms: 1_000, ..settings() });
        for took in [2_000, 2_000, 10, 2_000, 10] {
            let (p, _) = b.try_acquire(0);
            let _ = b.record(p.expect("permitted"), false, took, 0);
        }
        assert_eq!(b.state(0).0.as_str(), "open", "3 of 5 slow is 60%");
    }

    #[test]
    fn a_call_from_before_a_transition_does_not_count() {
        let mut b = Breaker::new(settings());
        let (old, _) = b.try_acquire(0);
        for _ in 0..5 {
            let _ = call(&mut b, true, 0);
        }
        let (trial, _) = b.try_acquire(30_000);
        assert_eq!(b.record(old.expect("old"), true, 5, 30_000), None, "from the closed generation: ignored");
        assert!(trial.is_ok());
        assert!(matches!(b.state(30_000).0, State::HalfOpen { recorded: Totals { calls: 0, .. }, .. }));
    }

    proptest! {
        /// Whatever happens, an open breaker refuses until its time is up, half-open never admits more than
        /// its trial calls, and a closed breaker never stays closed past a full window of failures.
        #[test]
        fn states_keep_their_promises(ops in proptest::collection::vec((any::<bool>(), 0u64..20_000, any::<bool>()), 1..400)) {
            let s = settings();
            let mut b = Breaker::new(s);
            let mut now = 0;
            let mut outstanding = Vec::new();
            let mut failures_in_row = 0u32;
            for (acquire, step, failed) in ops {
                now += step;
                if acquire {
                    let (before, _) = b.state(now);
                    let (result, _) = b.try_acquire(now);
                    match (before, result) {
                        (State::Open { until_ms }, r) => { prop_assert!(now < until_ms && r.is_err()); }
                        (State::HalfOpen { admitted, .. }, Ok(_)) => prop_assert!(admitted < s.half_open_calls),
                        (State::Closed, r) => prop_assert!(r.is_ok()),
                        _ => {}
                    }
                    if let Ok(p) = result { outstanding.push(p); }
                } else if let Some(p) = outstanding.pop() {
                    let was_closed = b.state(now).0 == State::Closed;
                    let _ = b.record(p, failed, 5, now);
                    if was_closed && p.generation == b.generation { failures_in_row = if failed { failures_in_row + 1 } else { 0 }; }
                    if b.state(now).0 != State::Closed { failures_in_row = 0; }
                    prop_assert!(failures_in_row < 10, "ten failures in a row and still closed");
                }
            }
        }
    }
}
