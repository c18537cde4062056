//! Choosing an address: round-robin or least-connections, skipping ejected addresses.
//!
//! Sans-IO: time comes in as `now`, so ejection is tested on a manual clock. All state is atomics, so
//! picking never takes a lock on the request path.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use spillway_config::Balance;

/// Per-address health and load.
#[derive(Debug, Default)]
pub struct Health {
    in_flight: AtomicU32,
    consecutive_failures: AtomicU32,
    /// Nanoseconds since the balancer's epoch until which the address is skipped; 0 when healthy.
    ejected_until: AtomicU64,
}

#[derive(Debug)]
pub struct Balancer {
    mode: Balance,
    health: Vec<Health>,
    next: AtomicUsize,
    epoch: Instant,
    eject_after: u32,
    eject_for: Duration,
}

/// What a connect failure did to the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Counted,
    Ejected,
}

impl Balancer {
    pub fn new(mode: Balance, addresses: usize, eject_after: u32, eject_for: Duration, epoch: Instant) -> Self {
        Self {
            mode,
            health: (0..addresses).map(|_| Health::default()).collect(),
            next: AtomicUsize::new(0),
            epoch,
            eject_after: eject_after.max(1),
            eject_for,
        }
    }

    /// The address to use, skipping those in `tried` (a bitmask by index). When every untried address is
    /// ejected, they are all used anyway: sending to a maybe-dead address beats refusing everyone.
    pub fn pick(&self, now: Instant, tried: u64) -> Option<usize> {
        let n = self.health.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let order = (0..n).map(|i| (start + i) % n).filter(|&i| i >= 64 || tried & (1 << i) == 0);
        let now = self.nanos(now);
        let healthy = |&i: &usize| self.health[i].ejected_until.load(Ordering::Relaxed) <= now;
        let choose = |candidates: &mut dyn Iterator<Item = usize>| match self.mode {
            Balance::RoundRobin => candidates.next(),
            Balance::LeastConnections => candidates.min_by_key(|&i| self.health[i].in_flight.load(Ordering::Relaxed)),
        };
        choose(&mut order.clone().filter(healthy)).or_else(|| choose(&mut order.clone()))
    }

    pub fn start(&self, i: usize) {
        self.health[i].in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finish(&self, i: usize) {
        self.health[i].in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self, i: usize) -> u32 {
        self.health[i].in_flight.load(Ordering::Relaxed)
    }

    pub fn connected(&self, i: usize) {
        let h = &self.health[i];
        if h.consecutive_failures.load(Ordering::Relaxed) != 0 {
            h.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if h.ejected_until.load(Ordering::Relaxed) != 0 {
            h.ejected_until.store(0, Ordering::Relaxed);
        }
    }

    pub fn connect_failed(&self, i: usize, now: Instant) -> Failure {
        let h = &self.health[i];
        let failures = h.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.eject_after {
            return Failure::Counted;
        }
        h.consecutive_failures.store(0, Ordering::Relaxed);
        let until = self.nanos(now + self.eject_for).max(1);
        h.ejected_until.store(until, Ordering::Relaxed);
        Failure::Ejected
    }

    pub fn is_ejected(&self, i: usize, now: Instant) -> bool {
        self.health[i].ejected_until.load(Ordering::Relaxed) > self.nanos(now)
    }

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn round_robin_cycles() {
        let t0 = Instant::now();
        let b = Balancer::new(Balance::RoundRobin, 3, 1, SEC, t0);
        let picks: Vec<_> = (0..6).filter_map(|_| b.pick(t0, 0)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn ejected_address_is_skipped_until_it_expires() {
        let t0 = Instant::now();
        let b = Balancer::new(Balance::RoundRobin, 2, 2, 10 * SEC, t0);
        assert_eq!(b.connect_failed(0, t0), Failure::Counted);
        assert_eq!(b.connect_failed(0, t0), Failure::Ejected);
        assert!((0..10).all(|_| b.pick(t0 + 9 * SEC, 0) == Some(1)));
        assert!(!b.is_ejected(0, t0 + 10 * SEC));
        let later: Vec<_> = (0..4).filter_map(|_| b.pick(t0 + 10 * SEC, 0)).collect();
        assert!(later.contains(&0) && later.contains(&1));
    }

    #[test]
    fn success_resets_the_failure_count() {
        let t0 = Instant::now();
        let b = Balancer::new(Balance::RoundRobin, 1, 2, SEC, t0);
        assert_eq!(b.connect_failed(0, t0), Failure::Counted);
        b.connected(0);
        assert_eq!(b.connect_failed(0, t0), Failure::Counted);
    }

    #[test]
    fn all_ejected_still_serves() {
        let t0 = Instant::now();
        let b = Balancer::new(Balance::RoundRobin, 2, 1, SEC, t0);
        b.connect_failed(0, t0);
        b.connect_failed(1, t0);
        assert!(b.pick(t0, 0).is_some());
        assert_eq!(b.pick(t0, 0b01), Some(1));
        assert_eq!(b.pick(t0, 0b11), None);
    }

    #[test]
    fn least_connections_prefers_idle() {
        let t0 = Instant::now();
        let b = Balancer::new(Balance::LeastConnections, 3, 1, SEC, t0);
        b.start(0);
        b.start(0);
        b.start(2);
        assert!((0..5).all(|_| b.pick(t0, 0) == Some(1)));
        b.finish(0);
        b.finish(0);
        b.start(1);
        assert!((0..5).all(|_| b.pick(t0, 0) == Some(0)));
    }

    proptest! {
        /// Least-connections never picks an address busier than the least busy healthy one.
        #[test]
        fn least_connections_is_least(loads in proptest::collection::vec(0u32..5, 1..8), ejected in any::<u8>()) {
            let t0 = Instant::now();
            let b = Balancer::new(Balance::LeastConnections, loads.len(), 1, SEC, t0);
            for (i, &l) in loads.iter().enumerate() {
                (0..l).for_each(|_| b.start(i));
                if ejected & (1 << i) != 0 { b.connect_failed(i, t0); }
            }
            let healthy: Vec<usize> = (0..loads.len()).filter(|&i| ejected & (1 << i) == 0).collect();
            let pool = if healthy.is_empty() { (0..loads.len()).collect() } else { healthy };
            let min = pool.iter().map(|&i| loads[i]).min();
            let picked = b.pick(t0, 0);
            prop_assert!(picked.is_some_and(|p| pool.contains(&p) && Some(loads[p]) == min));
        }

        /// Round-robin over healthy addresses spreads evenly: over k full cycles each gets exactly k.
        #[test]
        fn round_robin_is_even(n in 1usize..8, cycles in 1usize..20) {
            let t0 = Instant::now();
            let b = Balancer::new(Balance::RoundRobin, n, 1, SEC, t0);
            let mut counts = vec![0; n];
            for _ in 0..n * cycles { if let Some(i) = b.pick(t0, 0) { counts[i] += 1; } }
            prop_assert!(counts.iter().all(|&c| c == cycles));
        }
    }
}
