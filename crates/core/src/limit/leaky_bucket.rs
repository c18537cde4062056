//! Leaky bucket as a shaper: requests leave at an even pace, one per interval. A request arriving while the
//! bucket is busy waits its turn (the decision says how long); when `capacity` requests are already waiting
//! it is refused. The origin sees a steady stream however bursty the clients are.

use super::{Decision, Quota};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeakyBucket {
    /// When the next request may leave.
    pub next_free: u64,
}

impl LeakyBucket {
    pub fn check(&mut self, capacity: u64, quota: Quota, now: u64) -> Decision {
        let t = quota.interval_ns();
        let start = self.next_free.max(now);
        let delay = start - now;
        // Requests already waiting ahead of this one.
        let queued = delay.div_ceil(t);
        if queued >= capacity.max(1) {
            return Decision::refuse(delay, delay - (capacity.max(1) - 1) * t);
        }
        self.next_free = start + t;
        let remaining = capacity.max(1) - 1 - queued;
        Decision { allowed: true, remaining, reset_ns: self.next_free - now, retry_after_ns: 0, delay_ns: delay }
    }

    pub fn undo(&mut self, quota: Quota) {
        self.next_free = self.next_free.saturating_sub(quota.interval_ns());
    }
}
