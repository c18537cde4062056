//! GCRA, the generic cell rate algorithm: one timestamp per key, the theoretical arrival time (TAT) of the
//! next request at an even pace. A request is allowed if it is not more than the burst tolerance early.
//!
//! Equivalent to a token bucket refilled continuously, but exact in integers and 8 bytes a key.

use super::{Decision, Quota};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gcra {
    pub tat: u64,
}

impl Gcra {
    pub fn check(&mut self, quota: Quota, burst: u64, now: u64) -> Decision {
        let t = quota.interval_ns();
        // Delay variation tolerance: how early a request may be and still pass.
        let tau = t * burst.max(1).saturating_sub(1);
        let tat = self.tat.max(now);
        if tat - now > tau {
            let retry = tat - now - tau;
            return Decision::refuse(tat - now, retry);
        }
        self.tat = tat + t;
        let ahead = self.tat - now;
        let remaining = (tau + t).saturating_sub(ahead) / t;
        Decision::allow(remaining, ahead)
    }

    pub fn undo(&mut self, quota: Quota) {
        self.tat = self.tat.saturating_sub(quota.interval_ns());
    }
}
