//! The circuit breaker's memory of recent calls: the last N calls, or the calls of the last T seconds.
//!
//! Both keep running totals, so reading the failure and slow-call rates is O(1) whatever the window's size;
//! the time window forgets whole one-second buckets as they age out, so a burst from a minute ago cannot
//! keep a breaker open.

/// Totals over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

impl Totals {
    fn add(&mut self, failure: bool, slow: bool) {
        self.calls += 1;
        self.failures += u32::from(failure);
        self.slow += u32::from(slow);
    }

    fn remove(&mut self, other: &Totals) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }

    pub fn failure_rate(&self) -> f64 {
        if self.calls == 0 { 0.0 } else { f64::from(self.failures) / f64::from(self.calls) }
    }

    pub fn slow_rate(&self) -> f64 {
        if self.calls == 0 { 0.0 } else { f64::from(self.slow) / f64::from(self.calls) }
    }
}

/// Which calls count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `n` seconds.
    Time(u32),
}

#[derive(Debug, Clone)]
pub struct Window {
    kind: WindowKind,
    totals: Totals,
    /// Count: one (failure, slow) per slot, used as a ring. Time: one bucket per second, used as a ring.
    slots: Vec<Totals>,
    /// Count: the next slot to write. Time: the second of the newest bucket.
    head: u64,
    filled: u32,
}

impl Window {
    pub fn new(kind: WindowKind) -> Self {
        let size = match kind {
            WindowKind::Count(n) | WindowKind::Time(n) => n.max(1) as usize,
        };
        Self { kind, totals: Totals::default(), slots: vec![Totals::default(); size], head: 0, filled: 0 }
    }

    pub fn record(&mut self, failure: bool, slow: bool, now_ms: u64) {
        match self.kind {
            WindowKind::Count(_) => {
                let i = (self.head % self.slots.len() as u64) as usize;
                if self.filled as usize == self.slots.len() {
                    let old = self.slots[i];
                    self.totals.remove(&old);
                } else {
                    self.filled += 1;
                }
                self.slots[i] = Totals::default();
                self.slots[i].add(failure, slow);
                self.head += 1;
            }
            WindowKind::Time(_) => {
                self.advance(now_ms);
                let i = (self.head % self.slots.len() as u64) as usize;
                self.slots[i].add(failure, slow);
            }
        }
        self.totals.add(failure, slow);
    }

    /// The totals as of `now_ms` (a time window forgets what has aged out).
    pub fn totals(&mut self, now_ms: u64) -> Totals {
        if let WindowKind::Time(_) = self.kind {
            self.advance(now_ms);
        }
        self.totals
    }

    pub fn clear(&mut self) {
        *self = Self::new(self.kind);
    }

    /// Moves the newest bucket to `now`'s second, emptying the buckets that fall out on the way.
    fn advance(&mut self, now_ms: u64) {
        let second = now_ms / 1000;
        if second <= self.head {
            return;
        }
        let len = self.slots.len() as u64;
        let steps = (second - self.head).min(len);
        for s in 1..=steps {
            let i = ((self.head + s) % len) as usize;
            let old = std::mem::take(&mut self.slots[i]);
            self.totals.remove(&old);
        }
        self.head = second;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_count_window_keeps_the_last_n() {
        let mut w = Window::new(WindowKind::Count(3));
        for failure in [true, true, false, false, false] {
            w.record(failure, false, 0);
        }
        assert_eq!(w.totals(0), Totals { calls: 3, failures: 0, slow: 0 });
    }

    #[test]
    fn a_time_window_forgets_whole_seconds() {
        let mut w = Window::new(WindowKind::Time(10));
        w.record(true, true, 1_000);
        w.record(false, false, 5_500);
        assert_eq!(w.totals(10_999).calls, 2);
        assert_eq!(w.totals(11_000), Totals { calls: 1, failures: 0, slow: 0 }, "second 1 aged out");
        assert_eq!(w.totals(60_000).calls, 0);
    }

    proptest! {
        /// Running totals equal a recount of the calls the window should hold, whatever the sequence.
        #[test]
        fn totals_match_a_recount(
            calls in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u64..3_000), 1..300),
            count in proptest::bool::ANY,
        ) {
            let kind = if count { WindowKind::Count(7) } else { WindowKind::Time(5) };
            let mut w = Window::new(kind);
            let mut now = 0;
            let mut log = Vec::new();
            for (failure, slow, step) in calls {
                now += step;
                w.record(failure, slow, now);
                log.push((failure, slow, now));
                let kept: Vec<_> = match kind {
                    WindowKind::Count(n) => log.iter().rev().take(n as usize).collect(),
                    WindowKind::Time(s) => log.iter().filter(|(_, _, t)| t / 1000 + u64::from(s) > now / 1000).collect(),
                };
                let expected = Totals {
                    calls: kept.len() as u32,
                    failures: kept.iter().filter(|c| c.0).count() as u32,
                    slow: kept.iter().filter(|c| c.1).count() as u32,
                };
                prop_assert_eq!(w.totals(now), expected);
            }
        }
    }
}
