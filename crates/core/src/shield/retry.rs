//! Retries that cannot turn an outage into a flood (seed 000 §7, Retry + Exponential Backoff).
//!
//! A retry budget allows retries up to a share of recent requests (plus a small floor so a quiet service can
//! still retry): when everything fails, the retries stop at that share instead of multiplying the load by the
//! attempt count. The backoff is exponential with full jitter, so the clients that failed together do not
//! come back together.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// Retries allowed per request seen, over the window (0.2 = one retry per five requests).
    pub ratio: f64,
    /// Retries allowed per second however few requests there are.
    pub min_per_second: u32,
    pub window_secs: u32,
}

/// Requests and retries per second over the last `window_secs` seconds.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    settings: BudgetSettings,
    /// (second, requests, retries), oldest first.
    seconds: VecDeque<(u64, u64, u64)>,
    requests: u64,
    retries: u64,
}

impl RetryBudget {
    pub fn new(settings: BudgetSettings) -> Self {
        Self { settings, seconds: VecDeque::new(), requests: 0, retries: 0 }
    }

    /// A first attempt (not a retry) was made.
    pub fn request(&mut self, now_ms: u64) {
        self.bucket(now_ms).1 += 1;
        self.requests += 1;
    }

    /// Whether a retry may be made now; if so, it is counted.
    pub fn try_retry(&mut self, now_ms: u64) -> bool {
        self.bucket(now_ms);
        let s = self.settings;
        let allowed = self.requests as f64 * s.ratio + f64::from(s.min_per_second) * f64::from(s.window_secs);
        if (self.retries as f64) < allowed.floor() {
            self.bucket(now_ms).2 += 1;
            self.retries += 1;
            true
        } else {
            false
        }
    }

    fn bucket(&mut self, now_ms: u64) -> &mut (u64, u64, u64) {
        let second = now_ms / 1000;
        let oldest = second.saturating_sub(u64::from(self.settings.window_secs.max(1)) - 1);
        while self.seconds.front().is_some_and(|b| b.0 < oldest) {
            if let Some((_, requests, retries)) = self.seconds.pop_front() {
                self.requests -= requests;
                self.retries -= retries;
            }
        }
        if self.seconds.back().is_none_or(|b| b.0 < second) {
            self.seconds.push_back((second, 0, 0));
        }
        let last = self.seconds.len() - 1;
        &mut self.seconds[last]
    }
}

/// Exponential backoff with full jitter: a delay drawn uniformly from zero to `base × 2^attempt`, capped.
/// `unit` is a uniform draw from [0, 1), handed in so this stays deterministic under test.
pub fn backoff_ms(attempt: u32, base_ms: u64, cap_ms: u64, unit: f64) -> u64 {
    let ceiling = base_ms.saturating_mul(1u64 << attempt.min(32)).min(cap_ms);
    (ceiling as f64 * unit.clamp(0.0, 1.0)) as u64
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn retries_stop_at_the_share_of_requests() {
        let mut b = RetryBudget::new(BudgetSettings { ratio: 0.2, min_per_second: 0, window_secs: 10 });
        for _ in 0..100 {
            b.request(0);
        }
        let allowed = (0..100).filter(|_| b.try_retry(0)).count();
        assert_eq!(allowed, 20);
        // Ten seconds later the window has forgotten them all.
        assert!(!b.try_retry(10_000));
    }

    #[test]
    fn a_quiet_service_still_gets_its_floor() {
        let mut b = RetryBudget::new(BudgetSettings { ratio: 0.1, min_per_second: 1, window_secs: 5 });
        assert_eq!((0..10).filter(|_| b.try_retry(0)).count(), 5);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(0, 100, 10_000, 0.999_999), 99);
        assert_eq!(backoff_ms(3, 100, 10_000, 0.5), 400);
        assert_eq!(backoff_ms(40, 100, 10_000, 0.5), 5_000);
    }

    proptest! {
        /// Whenever a retry is allowed, the retries of the window (a recount from the log) are within
        /// ratio × the window's requests + the floor: an outage cannot multiply the load.
        #[test]
        fn retries_never_exceed_the_budget(ops in proptest::collection::vec((any::<bool>(), 0u64..700), 1..2000)) {
            let s = BudgetSettings { ratio: 0.25, min_per_second: 2, window_secs: 3 };
            let mut b = RetryBudget::new(s);
            let mut now = 0;
            let mut log: Vec<(u64, bool)> = Vec::new();
            for (retry, step) in ops {
                now += step;
                if !retry {
                    b.request(now);
                    log.push((now, false));
                    continue;
                }
                if !b.try_retry(now) {
                    continue;
                }
                log.push((now, true));
                let oldest = (now / 1000).saturating_sub(2);
                let (retries, requests) = log
                    .iter()
                    .filter(|(t, _)| t / 1000 >= oldest)
                    .fold((0u64, 0u64), |(r, q), (_, is_retry)| if *is_retry { (r + 1, q) } else { (r, q + 1) });
                prop_assert!(retries as f64 <= requests as f64 * 0.25 + 6.0, "{retries} retries for {requests} requests");
            }
        }
    }
}
