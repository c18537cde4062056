//! Rate-limit state in this process: a sharded map from key digest to algorithm state.
//!
//! Memory is bounded two ways. Keys whose state has gone back to fresh are swept (they would decide exactly
//! as a new key does, so forgetting them changes nothing). And a shard that is full even after a sweep evicts
//! an arbitrary key to make room: that key starts over with a full quota, which errs towards letting a
//! request through rather than refusing a client the limiter has never seen.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use spillway_core::limit::{Algorithm, Decision, State};

use crate::error::StoreResult;
use crate::limit::{LimitStore, Pending, Verdict};
use crate::memory::Faults;

const SHARDS: usize = 64;

/// Keys are already uniform 64-bit digests; hashing them again would only cost time.
#[derive(Debug, Default, Clone, Copy)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, State, BuildHasherDefault<Identity>>;

/// One band's table: one algorithm, every key. Shared by the limiters of successive configs while the band's
/// algorithm and the limit's key bound stay the same, so a reload keeps every key's count.
#[derive(Debug)]
pub struct MemoryBand {
    pub(crate) algorithm: Algorithm,
    pub(crate) max_keys: usize,
    shards: Box<[Mutex<Shard>]>,
    max_per_shard: usize,
    keys: AtomicU64,
}

impl MemoryBand {
    pub fn new(algorithm: Algorithm, max_keys: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self { algorithm, max_keys, shards, max_per_shard: max_keys.div_ceil(SHARDS).max(1), keys: AtomicU64::new(0) }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        // The top bits pick the shard; the map uses all of them.
        let i = (key >> 58) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The decision, in process. What the trait method wraps, and what benchmarks call.
    pub fn check_now(&self, now_ns: u64, key: u64) -> Decision {
        let mut shard = self.shard(key);
        if let Some(state) = shard.get_mut(&key) {
            return state.check(&self.algorithm, now_ns);
        }
        if shard.len() >= self.max_per_shard {
            let before = shard.len();
            shard.retain(|_, s| !s.idle(&self.algorithm, now_ns));
            if shard.len() >= self.max_per_shard {
                let victim = shard.keys().next().copied();
                if let Some(victim) = victim {
                    shard.remove(&victim);
                }
            }
            self.keys.fetch_sub((before - shard.len()) as u64, Ordering::Relaxed);
        }
        let mut state = State::new(&self.algorithm, now_ns);
        let decision = state.check(&self.algorithm, now_ns);
        shard.insert(key, state);
        self.keys.fetch_add(1, Ordering::Relaxed);
        decision
    }
}

impl MemoryBand {
    pub fn undo_now(&self, now_ns: u64, key: u64) {
        if let Some(state) = self.shard(key).get_mut(&key) {
            state.undo(&self.algorithm, now_ns);
        }
    }

    /// Forgets keys whose state has gone back to fresh; returns how many.
    pub fn sweep(&self, now_ns: u64) -> usize {
        let mut swept = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = shard.len();
            shard.retain(|_, s| !s.idle(&self.algorithm, now_ns));
            swept += before - shard.len();
        }
        self.keys.fetch_sub(swept as u64, Ordering::Relaxed);
        swept
    }

    pub fn keys(&self) -> u64 {
        self.keys.load(Ordering::Relaxed)
    }
}

/// A limit's bands in this process. A request is decided against all of them under no shared lock: each band
/// counts it, and when a later band refuses, the earlier ones give it back at once, so a refused request
/// costs nothing once its call returns. For the moment in between, a concurrent request for the same key may
/// see the count about to be given back, and be refused by it: the limiter errs toward refusing, never
/// toward letting more through than every band allows.
#[derive(Debug)]
pub struct MemoryLimiter {
    bands: Vec<std::sync::Arc<MemoryBand>>,
    faults: Faults,
}

impl MemoryLimiter {
    pub fn new(bands: Vec<std::sync::Arc<MemoryBand>>, faults: Faults) -> Self {
        Self { bands, faults }
    }

    pub fn bands(&self) -> &[std::sync::Arc<MemoryBand>] {
        &self.bands
    }

    /// The verdict, in process: the refusing band's decision, or else the one closest to refusing.
    pub fn check_now(&self, now_ns: u64, key: u64) -> Verdict {
        let mut closest: Option<Verdict> = None;
        for (i, band) in self.bands.iter().enumerate() {
            let decision = band.check_now(now_ns, key);
            if !decision.allowed {
                for earlier in &self.bands[..i] {
                    earlier.undo_now(now_ns, key);
                }
                return Verdict { band: i, decision };
            }
            if closest
                .is_none_or(|c| decision.remaining < c.decision.remaining || decision.delay_ns > c.decision.delay_ns)
            {
                closest = Some(Verdict { band: i, decision });
            }
        }
        closest.unwrap_or(Verdict { band: 0, decision: Decision::allow(u64::MAX, 0) })
    }
}

impl LimitStore for MemoryLimiter {
    fn check(&self, now_ns: u64, key: u64) -> Pending<'_, StoreResult<Verdict>> {
        if let Some(e) = self.faults.fail("limit check") {
            return Pending::Ready(Some(Err(e)));
        }
        Pending::Ready(Some(Ok(self.check_now(now_ns, key))))
    }

    fn sweep(&self, now_ns: u64) -> usize {
        self.bands.iter().map(|b| b.sweep(now_ns)).sum()
    }

    fn keys(&self) -> Option<u64> {
        Some(self.bands.iter().map(|b| b.keys()).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_core::limit::Quota;

    const S: u64 = 1_000_000_000;

    fn limiter(max_keys: usize) -> MemoryBand {
        MemoryBand::new(Algorithm::Gcra { quota: Quota::per_second(1), burst: 1 }, max_keys)
    }

    #[test]
    fn keys_are_independent() {
        let l = limiter(1000);
        assert!(l.check_now(0, 1).allowed);
        assert!(!l.check_now(0, 1).allowed);
        assert!(l.check_now(0, 2).allowed);
        assert_eq!(l.keys(), 2);
    }

    #[test]
    fn idle_keys_are_swept_and_memory_stays_bounded() {
        let l = limiter(SHARDS * 10);
        for k in 0..10_000u64 {
            l.check_now(0, k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        assert!(l.keys() <= (SHARDS * 10) as u64, "bounded: {}", l.keys());
        let tracked = l.keys();
        assert_eq!(l.sweep(S / 2) as u64, 0, "nobody is fresh yet");
        assert_eq!(l.sweep(2 * S) as u64, tracked);
        assert_eq!(l.keys(), 0, "every key is fresh again after its interval");
    }

    #[test]
    fn undo_returns_the_request() {
        let l = limiter(10);
        assert!(l.check_now(0, 7).allowed);
        l.undo_now(0, 7);
        assert!(l.check_now(0, 7).allowed);
    }

    #[test]
    fn a_refusing_band_gives_back_what_the_earlier_ones_counted() {
        use std::sync::Arc;
        let per_second = Arc::new(MemoryBand::new(Algorithm::FixedWindow { quota: Quota::per_second(10) }, 10));
        let tight = Arc::new(MemoryBand::new(Algorithm::FixedWindow { quota: Quota::per_second(1) }, 10));
        let l = MemoryLimiter::new(vec![per_second.clone(), tight], Faults::default());
        assert!(l.check_now(0, 7).decision.allowed);
        for _ in 0..5 {
            let refused = l.check_now(0, 7);
            assert!(!refused.decision.allowed);
            assert_eq!(refused.band, 1, "the second band refused");
        }
        // Only the allowed request counts in the first band: nine are left of its ten.
        assert_eq!(per_second.check_now(0, 7).remaining, 8);
    }
}
