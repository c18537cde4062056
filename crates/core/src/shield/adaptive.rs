//! An adaptive concurrency limit that finds the origin's capacity by itself (seed 002, backpressure).
//!
//! Little's law says concurrency = throughput × latency: while the origin keeps up, more requests in
//! flight mean more throughput at the same latency; past its capacity, more in flight only means longer
//! queues and higher latency. Both algorithms here watch that signal and move the limit accordingly:
//!
//! - **AIMD**: additive increase while calls succeed with the limit actually in use, multiplicative decrease
//!   on a drop (a timeout, a 503, a refused connection). Simple and robust; it reacts to errors only.
//! - **Gradient**: compares the recent latency with the lowest seen (the origin's latency without a queue);
//!   when recent calls are slower the ratio (the gradient) falls below 1 and so does the limit, before any
//!   error occurs. A little headroom (√limit) lets the limit probe upward while latency holds, and the
//!   lowest latency is allowed to creep up slowly, so an origin that became slower for good is accepted.

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AdaptiveKind {
    Aimd {
        /// Multiplied into the limit on a drop.
        backoff: f64,
    },
    Gradient {
        /// Weight of a new sample in the limit (0 to 1): lower is steadier.
        smoothing: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveSettings {
    pub kind: AdaptiveKind,
    pub initial: u32,
    pub min: u32,
    pub max: u32,
}

#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    settings: AdaptiveSettings,
    limit: f64,
    /// The lowest latency seen, creeping up by 0.001% a sample, in microseconds.
    min_rtt: f64,
    /// Recent latency (an exponential average over ~10 samples).
    short_rtt: f64,
}

impl AdaptiveLimit {
    pub fn new(settings: AdaptiveSettings) -> Self {
        let limit = f64::from(settings.initial.clamp(settings.min, settings.max));
        Self { settings, limit, min_rtt: 0.0, short_rtt: 0.0 }
    }

    pub fn limit(&self) -> u32 {
        self.limit as u32
    }

    /// One finished call: how long it took, how many were in flight when it started, and whether it was
    /// dropped (timed out, refused, answered "overloaded").
    pub fn sample(&mut self, rtt_micros: u64, in_flight: u32, dropped: bool) {
        let (min, max) = (f64::from(self.settings.min), f64::from(self.settings.max));
        match self.settings.kind {
            AdaptiveKind::Aimd { backoff } => {
                if dropped {
                    self.limit *= backoff;
                } else if f64::from(in_flight) * 2.0 >= self.limit {
                    // Only grow when the limit is really in use: an idle origin proves nothing.
                    self.limit += 1.0 / self.limit.max(1.0) * 4.0;
                }
            }
            AdaptiveKind::Gradient { smoothing } => {
                let rtt = rtt_micros.max(1) as f64;
                if self.min_rtt == 0.0 {
                    self.short_rtt = rtt;
                }
                self.min_rtt = if self.min_rtt == 0.0 || rtt < self.min_rtt { rtt } else { self.min_rtt * 1.000_01 };
                self.short_rtt += (rtt - self.short_rtt) / 10.0;
                let gradient = (self.min_rtt / self.short_rtt).clamp(0.5, 1.0);
                let gradient = if dropped { 0.5 } else { gradient };
                let target = self.limit * gradient + self.limit.sqrt();
                self.limit = self.limit * (1.0 - smoothing) + target * smoothing;
            }
        }
        self.limit = self.limit.clamp(min, max);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An origin that serves `capacity` at once in `base` µs; beyond that, requests queue (Little's law) and
    /// time out past `timeout` µs.
    fn origin_rtt(in_flight: u32, capacity: u32, base: u64) -> u64 {
        if in_flight <= capacity { base } else { base * u64::from(in_flight) / u64::from(capacity) }
    }

    fn converge(kind: AdaptiveKind, capacity: u32) -> u32 {
        let mut l = AdaptiveLimit::new(AdaptiveSettings { kind, initial: 10, min: 1, max: 1000 });
        let mut limits = Vec::new();
        for _ in 0..20_000 {
            let in_flight = l.limit();
            let rtt = origin_rtt(in_flight, capacity, 10_000);
            let dropped = rtt > 30_000;
            l.sample(rtt, in_flight, dropped);
            limits.push(l.limit());
        }
        limits[limits.len() - 2000..].iter().sum::<u32>() / 2000
    }

    #[test]
    fn both_find_an_origin_of_capacity_fifty() {
        let aimd = converge(AdaptiveKind::Aimd { backoff: 0.9 }, 50);
        assert!((45..=160).contains(&aimd), "aimd settled at {aimd}; it only backs off on drops (at 3x)");
        let gradient = converge(AdaptiveKind::Gradient { smoothing: 0.2 }, 50);
        assert!((45..=80).contains(&gradient), "gradient settled at {gradient}, near capacity + its square root");
    }

    proptest! {
        #[test]
        fn the_limit_stays_within_its_bounds(samples in proptest::collection::vec((1u64..10_000_000, 0u32..2000, any::<bool>()), 1..500), aimd in any::<bool>()) {
            let kind = if aimd { AdaptiveKind::Aimd { backoff: 0.7 } } else { AdaptiveKind::Gradient { smoothing: 0.5 } };
            let mut l = AdaptiveLimit::new(AdaptiveSettings { kind, initial: 20, min: 5, max: 200 });
            for (rtt, in_flight, dropped) in samples {
                l.sample(rtt, in_flight, dropped);
                prop_assert!((5..=200).contains(&l.limit()));
            }
        }
    }
}
