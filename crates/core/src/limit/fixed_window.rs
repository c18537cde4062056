//! Fixed window: count requests per aligned period (every minute on the minute, every day at 00:00 UTC).
//! The cheapest and the easiest to explain on an invoice, but a client can spend a window's quota at its
//! very end and the next window's at its very start: up to twice the limit across a boundary.

use super::{Decision, Quota};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedWindow {
    pub start: u64,
    count: u64,
}

impl FixedWindow {
    pub fn check(&mut self, quota: Quota, now: u64) -> Decision {
        let period = quota.period_ns.max(1);
        let start = now - now % period;
        if start != self.start {
            self.start = start;
            self.count = 0;
        }
        let reset = start + period - now;
        if self.count >= quota.limit {
            return Decision::refuse(reset, reset);
        }
        self.count += 1;
        Decision::allow(quota.limit - self.count, reset)
    }

    pub fn undo(&mut self) {
        self.count = self.count.saturating_sub(1);
    }
}
