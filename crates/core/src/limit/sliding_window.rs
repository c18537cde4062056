//! Sliding windows: the limit holds over any window of the period's length, not just aligned ones.
//!
//! [`SlidingWindow`] keeps this window's count and the previous one's, and weighs the previous count by how
//! much of it the sliding window still covers: two counters, an approximation that assumes the previous
//! window's requests were spread evenly. [`SlidingLog`] keeps every timestamp in the window: exact, but its
//! memory grows with the limit, so it is for small limits (a login form's 5 per 15 minutes).

use std::collections::VecDeque;

use super::{Decision, Quota};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlidingWindow {
    pub start: u64,
    current: u64,
    previous: u64,
}

impl SlidingWindow {
    fn roll(&mut self, period: u64, now: u64) {
        let start = now - now % period;
        if start == self.start {
            return;
        }
        self.previous = if start == self.start + period { self.current } else { 0 };
        self.current = 0;
        self.start = start;
    }

    /// Requests counted in the window ending at `now`.
    fn weighted(&self, period: u64, now: u64) -> f64 {
        let into = (now - self.start) as f64 / period as f64;
        self.previous as f64 * (1.0 - into) + self.current as f64
    }

    pub fn check(&mut self, quota: Quota, now: u64) -> Decision {
        let period = quota.period_ns.max(1);
        self.roll(period, now);
        let count = self.weighted(period, now);
        if count + 1.0 > quota.limit as f64 {
            // Wait until enough of the previous window has slid out, or for the next window if it is this one's
            // own requests that fill the limit.
            let retry = if self.previous > 0 && (self.current as f64) < quota.limit as f64 {
                let excess = count + 1.0 - quota.limit as f64;
                (excess / self.previous as f64 * period as f64).ceil() as u64
            } else {
                self.start + period - now
            };
            return Decision::refuse(self.start + period - now + period, retry);
        }
        self.current += 1;
        let remaining = (quota.limit as f64 - count - 1.0).floor().max(0.0) as u64;
        Decision::allow(remaining, self.start + period - now + period)
    }

    pub fn undo(&mut self) {
        self.current = self.current.saturating_sub(1);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlidingLog {
    times: VecDeque<u64>,
}

impl SlidingLog {
    pub fn check(&mut self, quota: Quota, now: u64) -> Decision {
        while self.times.front().is_some_and(|&t| t + quota.period_ns <= now) {
            self.times.pop_front();
        }
        let reset = |times: &VecDeque<u64>| times.back().map_or(0, |&t| t + quota.period_ns - now);
        if self.times.len() as u64 >= quota.limit {
            let oldest = self.times.front().copied().unwrap_or(now);
            return Decision::refuse(reset(&self.times), oldest + quota.period_ns - now);
        }
        self.times.push_back(now);
        Decision::allow(quota.limit - self.times.len() as u64, reset(&self.times))
    }

    pub fn undo(&mut self, now: u64) {
        if self.times.back() == Some(&now) {
            self.times.pop_back();
        }
    }

    pub fn newest(&self) -> Option<u64> {
        self.times.back().copied()
    }
}
