//! Latency and waiting-time distributions. HDR histograms keep every percentile within 0.1% whatever the
//! range (a microsecond to an hour) in a fixed few hundred kilobytes, and two of them add up exactly, so each
//! shard of the runner records on its own and the report merges them.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Values in microseconds, from 1 µs to one hour, three significant digits.
#[derive(Debug, Clone)]
pub struct Latencies {
    h: Histogram<u64>,
}

const HIGHEST_US: u64 = 3_600_000_000;

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        // hdrhistogram refuses only a low bound of 0, a high bound under twice the low, or more than 5 digits;
        // these constants are none of those (and the tests construct it).
        #[allow(clippy::expect_used)]
        let h = Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid constant bounds");
        Self { h }
    }

    /// Records one value; anything beyond an hour counts as an hour.
    pub fn record_us(&mut self, us: u64) {
        self.h.saturating_record(us.clamp(1, HIGHEST_US));
    }

    pub fn merge(&mut self, other: &Self) {
        // Both have the same bounds, so adding cannot fail; saturate rather than lose the rest if it did.
        if self.h.add(&other.h).is_err() {
            for v in other.h.iter_recorded() {
                let _ = self.h.record_n(v.value_iterated_to().min(HIGHEST_US), v.count_at_value());
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// The value at percentile `p` (0..=100), in microseconds.
    pub fn percentile_us(&self, p: f64) -> u64 {
        if self.h.is_empty() { 0 } else { self.h.value_at_quantile(p / 100.0) }
    }

    pub fn summary(&self) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: self.count(),
            mean: if self.h.is_empty() { 0.0 } else { self.h.mean() / 1000.0 },
            p50: ms(self.percentile_us(50.0)),
            p90: ms(self.percentile_us(90.0)),
            p99: ms(self.percentile_us(99.0)),
            p999: ms(self.percentile_us(99.9)),
            max: ms(if self.h.is_empty() { 0 } else { self.h.max() }),
        }
    }

    /// Counts in buckets whose upper bounds double from `first_us`: the shape of the distribution, for a chart.
    pub fn log_buckets(&self, first_us: u64) -> Vec<Bucket> {
        let mut out = Vec::new();
        if self.h.is_empty() {
            return out;
        }
        let max = self.h.max();
        let mut upper = first_us.max(1);
        loop {
            out.push(Bucket { upto_ms: upper as f64 / 1000.0, count: 0 });
            if upper > max {
                break;
            }
            upper = upper.saturating_mul(2);
        }
        let (first, last) = (first_us.max(1), out.len() - 1);
        self.each_value(|v, count| {
            // Bucket i holds [first * 2^(i-1), first * 2^i); bucket 0 everything below `first`.
            let i = if v < first { 0 } else { (v / first).ilog2() as usize + 1 };
            out[i.min(last)].count += count;
        });
        out
    }

    /// Each recorded value (the middle of its recording bucket) with how often it was recorded. Charts count
    /// these, not `count_between` over ranges: a range query counts a value whose recording bucket straddles
    /// the boundary in both neighbours, so the bars would add up to more than were recorded.
    fn each_value(&self, mut f: impl FnMut(u64, u64)) {
        for v in self.h.iter_recorded() {
            f(self.h.median_equivalent(v.value_iterated_to()), v.count_at_value());
        }
    }

    /// Counts in `n` equal buckets from 0 to the maximum.
    pub fn linear_buckets(&self, n: u64) -> Vec<Bucket> {
        let mut out = Vec::new();
        if self.h.is_empty() || n == 0 {
            return out;
        }
        let width = (self.h.max() / n).max(1) + 1;
        for i in 0..n {
            out.push(Bucket { upto_ms: ((i + 1) * width) as f64 / 1000.0, count: 0 });
        }
        self.each_value(|v, count| out[(v / width).min(n - 1) as usize].count += count);
        out
    }
}

/// Milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound of the bucket, exclusive, in milliseconds.
    pub upto_ms: f64,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn percentiles_of_a_known_set() {
        let mut h = Latencies::new();
        for ms in 1..=1000u64 {
            h.record_us(ms * 1000);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500.0).abs() <= 0.5, "{s:?}");
        assert!((s.p99 - 990.0).abs() <= 1.0, "{s:?}");
        assert!((s.max - 1000.0).abs() <= 1.0, "{s:?}");
    }

    #[test]
    fn buckets_hold_every_value() {
        let mut h = Latencies::new();
        for us in [5, 90, 150, 1_000, 70_000, 3_000_000] {
            h.record_us(us);
        }
        assert_eq!(h.log_buckets(100).iter().map(|b| b.count).sum::<u64>(), 6);
        assert_eq!(h.linear_buckets(20).iter().map(|b| b.count).sum::<u64>(), 6);
        assert!(Latencies::new().log_buckets(100).is_empty());
    }

    proptest! {
        /// Every recorded value is in exactly one bar, however wide the range and whatever the boundaries.
        #[test]
        fn chart_buckets_add_up_to_what_was_recorded(
            values in prop::collection::vec(0u64..100_000_000, 1..300), n in 1u64..40, first in 1u64..5_000,
        ) {
            let mut h = Latencies::new();
            for v in &values {
                h.record_us(*v);
            }
            prop_assert_eq!(h.linear_buckets(n).iter().map(|b| b.count).sum::<u64>(), values.len() as u64);
            prop_assert_eq!(h.log_buckets(first).iter().map(|b| b.count).sum::<u64>(), values.len() as u64);
        }

        /// Recording in shards and merging gives the same histogram as recording in one place.
        #[test]
        fn merging_shards_equals_recording_once(
            values in prop::collection::vec(1u64..10_000_000, 1..500), shards in 1usize..8,
        ) {
            let mut whole = Latencies::new();
            let mut parts = vec![Latencies::new(); shards];
            for (i, v) in values.iter().enumerate() {
                whole.record_us(*v);
                parts[i % shards].record_us(*v);
            }
            let mut merged = Latencies::new();
            for p in &parts {
                merged.merge(p);
            }
            prop_assert_eq!(merged.count(), values.len() as u64);
            for p in [50.0, 90.0, 99.0, 99.9, 100.0] {
                prop_assert_eq!(merged.percentile_us(p), whole.percentile_us(p));
            }
            prop_assert_eq!(merged.summary(), whole.summary());
        }
    }
}
