//! Token bucket: a bucket of `capacity` tokens; a request takes one; tokens come back at the quota's rate,
//! either continuously (greedy) or the whole quota at once at the end of each period (interval), as a
//! "1000 requests, renewed every hour" plan expects.

use super::{Decision, Quota};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    /// Last refill: the time tokens were last counted (greedy) or the start of the current period (interval).
    last: u64,
}

impl TokenBucket {
    pub fn full(capacity: u64, now: u64) -> Self {
        Self { tokens: capacity as f64, last: now }
    }

    /// Tokens in the bucket at `now`, after refilling.
    pub fn tokens_at(&mut self, capacity: u64, quota: Quota, interval: bool, now: u64) -> f64 {
        let elapsed = now.saturating_sub(self.last);
        if interval {
            let periods = elapsed / quota.period_ns.max(1);
            if periods > 0 {
                self.tokens = (self.tokens + (periods * quota.limit) as f64).min(capacity as f64);
                self.last += periods * quota.period_ns;
            }
        } else {
            let added = elapsed as f64 * quota.limit as f64 / quota.period_ns as f64;
            self.tokens = (self.tokens + added).min(capacity as f64);
            self.last = self.last.max(now);
        }
        self.tokens
    }

    pub fn check(&mut self, capacity: u64, quota: Quota, interval: bool, now: u64) -> Decision {
        let tokens = self.tokens_at(capacity, quota, interval, now);
        let missing = capacity as f64 - tokens;
        if tokens >= 1.0 {
            self.tokens -= 1.0;
            let reset = self.time_for(missing + 1.0, quota, interval, now);
            return Decision::allow(self.tokens.floor() as u64, reset);
        }
        let retry = self.time_for(1.0 - tokens, quota, interval, now);
        Decision::refuse(self.time_for(missing, quota, interval, now), retry)
    }

    /// Nanoseconds until `needed` more tokens are in the bucket.
    fn time_for(&self, needed: f64, quota: Quota, interval: bool, now: u64) -> u64 {
        if needed <= 0.0 {
            return 0;
        }
        if interval {
            let periods = (needed / quota.limit.max(1) as f64).ceil() as u64;
            (self.last + periods * quota.period_ns).saturating_sub(now)
        } else {
            (needed * quota.period_ns as f64 / quota.limit.max(1) as f64).ceil() as u64
        }
    }

    pub fn undo(&mut self, capacity: u64) {
        self.tokens = (self.tokens + 1.0).min(capacity as f64);
    }
}
