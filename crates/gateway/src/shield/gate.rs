//! The bulkhead: at most `limit` requests in flight to the origin, a bounded line for the rest, and the
//! lowest priorities shed first when the line fills (seed 000 §7 Bulkhead, seed 002 Backpressure).
//!
//! The line is never unbounded: each priority may only fill its share of it (low a quarter, normal half,
//! high three quarters, critical all), so under overload low-priority requests are refused at once, and
//! quickly, while checkout still finds a place. A freed slot goes to the highest priority waiting, first
//! come first served within a priority. With an adaptive limit, every finished call moves the limit.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use spillway_config::Priority;
use spillway_core::shield::AdaptiveLimit;
use tokio::sync::oneshot;

#[derive(Debug)]
pub struct Gate {
    state: Mutex<State>,
    max_queue: u32,
    queue_timeout: Duration,
}

#[derive(Debug)]
struct State {
    in_flight: u32,
    limit: Limit,
    /// Waiting requests by priority (index = priority), oldest first.
    waiting: [VecDeque<oneshot::Sender<()>>; 4],
}

#[derive(Debug)]
enum Limit {
    Fixed(u32),
    Adaptive(AdaptiveLimit),
}

impl Limit {
    fn get(&self) -> u32 {
        match self {
            Self::Fixed(n) => *n,
            Self::Adaptive(a) => a.limit(),
        }
    }
}

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Its priority's share of the line was full.
    QueueFull,
    /// It waited `queue_timeout` without a slot coming free.
    QueueTimeout,
}

/// One request's place in flight; dropping it frees the place for the next in line.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Gate>,
    /// In flight when this one started, for the adaptive limit's sample.
    pub in_flight_at_start: u32,
}

impl Gate {
    pub fn new(fixed: u32, adaptive: Option<AdaptiveLimit>, max_queue: u32, queue_timeout: Duration) -> Arc<Self> {
        let limit = adaptive.map_or(Limit::Fixed(fixed), Limit::Adaptive);
        let state = State { in_flight: 0, limit, waiting: Default::default() };
        Arc::new(Self { state: Mutex::new(state), max_queue, queue_timeout })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn in_flight(&self) -> u32 {
        self.state().in_flight
    }

    /// Requests waiting in the line (not counting those that gave up and have yet to be skipped).
    pub fn queued(&self) -> u32 {
        let s = self.state();
        s.waiting.iter().flatten().filter(|w| !w.is_closed()).count() as u32
    }

    pub fn limit(&self) -> u32 {
        self.state().limit.get()
    }

    pub async fn acquire(self: &Arc<Self>, priority: Priority) -> Result<Slot, Shed> {
        let wait = {
            let mut s = self.state();
            let queued: usize = s.waiting.iter().map(VecDeque::len).sum();
            if queued == 0 && s.in_flight < s.limit.get() {
                s.in_flight += 1;
                return Ok(Slot { gate: self.clone(), in_flight_at_start: s.in_flight });
            }
            let share = (u64::from(self.max_queue) * (priority as u64 + 1)).div_ceil(4);
            if queued as u64 >= share {
                return Err(Shed::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            s.waiting[priority as usize].push_back(tx);
            rx
        };
        let mut wait = wait;
        tokio::select! {
            granted = &mut wait => match granted {
                Ok(()) => Ok(self.granted()),
                Err(_) => Err(Shed::QueueTimeout),
            },
            () = tokio::time::sleep(self.queue_timeout) => {
                // A slot may have been handed over just as the wait ran out: keep it rather than leak it.
                wait.close();
                match wait.try_recv() {
                    Ok(()) => Ok(self.granted()),
                    Err(_) => Err(Shed::QueueTimeout),
                }
            }
        }
    }

    fn granted(self: &Arc<Self>) -> Slot {
        Slot { gate: self.clone(), in_flight_at_start: self.state().in_flight }
    }

    /// A finished call, for the adaptive limit: its time, and whether the origin dropped it.
    pub fn sample(&self, rtt: Duration, in_flight: u32, dropped: bool) {
        let mut s = self.state();
        if let Limit::Adaptive(a) = &mut s.limit {
            a.sample(rtt.as_micros() as u64, in_flight, dropped);
        }
        Self::hand_over(&mut s);
    }

    /// Gives free slots to the waiting, highest priority first; a waiter that gave up is skipped.
    fn hand_over(s: &mut State) {
        while s.in_flight < s.limit.get() {
            let Some(next) = s.waiting.iter_mut().rev().find_map(VecDeque::pop_front) else { return };
            if next.send(()).is_ok() {
                s.in_flight += 1;
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.gate.state();
        s.in_flight -= 1;
        Gate::hand_over(&mut s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_line_is_bounded_by_priority_and_served_highest_first() {
        let gate = Gate::new(1, None, 4, Duration::from_secs(1));
        let held = gate.acquire(Priority::Normal).await.expect("the one slot");
        // Low may fill a quarter of the line (1), normal half (2), high three quarters (3).
        let low = tokio::spawn({
            let g = gate.clone();
            async move { g.acquire(Priority::Low).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert_eq!(gate.acquire(Priority::Low).await.err(), Some(Shed::QueueFull));
        let high = tokio::spawn({
            let g = gate.clone();
            async move { g.acquire(Priority::High).await.map(|slot| slot.in_flight_at_start) }
        });
        tokio::task::yield_now().await;
        assert_eq!(gate.queued(), 2, "low and high wait");
        drop(held);
        assert_eq!(high.await.expect("joined"), Ok(1), "high went before the older low");
        assert_eq!(low.await.expect("joined"), Ok(()), "then low");
        assert_eq!(gate.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_the_queue_timeout() {
        let gate = Gate::new(1, None, 4, Duration::from_millis(300));
        let _held = gate.acquire(Priority::Critical).await.expect("slot");
        assert_eq!(gate.acquire(Priority::Critical).await.err(), Some(Shed::QueueTimeout));
        assert_eq!(gate.in_flight(), 1, "the timed-out waiter holds nothing");
        assert_eq!(gate.queued(), 0, "nor does it count as waiting");
    }
}
