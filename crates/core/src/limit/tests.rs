//! Every algorithm on a manual clock: exact sequences, bursts, boundaries, long-run rates, and GCRA against a
//! plain token-bucket reference.

use proptest::prelude::*;

use super::*;

const S: u64 = NANOS_PER_SEC;
const MS: u64 = 1_000_000;

/// Runs `algorithm` over request times (ns) and returns which were allowed.
fn run(algorithm: Algorithm, times: &[u64]) -> Vec<bool> {
    let mut state = State::new(&algorithm, times.first().copied().unwrap_or(0));
    times.iter().map(|&t| state.check(&algorithm, t).allowed).collect()
}

fn allowed(algorithm: Algorithm, times: &[u64]) -> usize {
    run(algorithm, times).into_iter().filter(|&a| a).count()
}

#[test]
fn gcra_exact_sequence() {
    // 10/s with a burst of 3: three at once, then one every 100 ms.
    let a = Algorithm::Gcra { quota: Quota::per_second(10), burst: 3 };
    let mut s = State::new(&a, 0);
    let d: Vec<Decision> = (0..4).map(|_| s.check(&a, 0)).collect();
    assert_eq!(d.iter().map(|d| d.allowed).collect::<Vec<_>>(), [true, true, true, false]);
    assert_eq!(d.iter().map(|d| d.remaining).collect::<Vec<_>>(), [2, 1, 0, 0]);
    assert_eq!(d[3].retry_after_ns, 100 * MS);
    assert_eq!(d[2].reset_ns, 300 * MS, "the burst is whole again after 3 intervals");
    assert!(!s.check(&a, 99 * MS).allowed);
    assert!(s.check(&a, 100 * MS).allowed);
    assert!(!s.check(&a, 150 * MS).allowed);
    assert!(s.check(&a, 200 * MS).allowed);
}

#[test]
fn token_bucket_greedy_and_interval() {
    let greedy = Algorithm::TokenBucket { capacity: 2, quota: Quota::per_second(2), interval: false };
    assert_eq!(run(greedy, &[0, 0, 0, 500 * MS, 500 * MS, 1000 * MS]), [true, true, false, true, false, true]);

    // 5 per second, renewed all at once on the second.
    let interval = Algorithm::TokenBucket { capacity: 5, quota: Quota::per_second(5), interval: true };
    let mut s = State::new(&interval, 0);
    for _ in 0..5 {
        assert!(s.check(&interval, 10 * MS).allowed);
    }
    let refused = s.check(&interval, 900 * MS);
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after_ns, 100 * MS, "the refill comes at the period's end");
    assert!(!s.check(&interval, 999 * MS).allowed, "no partial refill");
    for _ in 0..5 {
        assert!(s.check(&interval, S).allowed);
    }
}

#[test]
fn leaky_bucket_delays_then_refuses() {
    // Leaves at 10/s; up to 3 may wait.
    let a = Algorithm::LeakyBucket { capacity: 3, quota: Quota::per_second(10) };
    let mut s = State::new(&a, 0);
    let delays: Vec<Option<u64>> =
        (0..4).map(|_| Some(s.check(&a, 0)).filter(|d| d.allowed).map(|d| d.delay_ns / MS)).collect();
    assert_eq!(delays, [Some(0), Some(100), Some(200), None]);
    let later = s.check(&a, 250 * MS);
    assert_eq!((later.allowed, later.delay_ns), (true, 50 * MS));
}

#[test]
fn fixed_window_boundary_allows_twice_the_limit() {
    let a = Algorithm::FixedWindow { quota: Quota { limit: 3, period_ns: 60 * S } };
    let mut s = State::new(&a, 0);
    let mut at = |t| s.check(&a, t);
    for _ in 0..3 {
        assert!(at(59 * S).allowed);
    }
    let refused = at(59 * S + 500 * MS);
    assert_eq!((refused.allowed, refused.retry_after_ns), (false, 500 * MS));
    for _ in 0..3 {
        assert!(at(60 * S).allowed, "a new window: six within one second across the boundary");
    }
    assert!(!at(60 * S).allowed);
}

#[test]
fn sliding_window_smooths_the_boundary() {
    let quota = Quota { limit: 4, period_ns: 60 * S };
    let a = Algorithm::SlidingWindow { quota, exact: false };
    let mut s = State::new(&a, 0);
    for _ in 0..4 {
        assert!(s.check(&a, 59 * S).allowed);
    }
    // At 75 s the window still holds 3/4 of the previous window's 4 requests: 3, so one more fits.
    assert!(s.check(&a, 75 * S).allowed);
    let refused = s.check(&a, 75 * S);
    assert!(!refused.allowed);
    // The previous window's weight must fall by 1 request = 1/4 of a window = 15 s.
    assert_eq!(refused.retry_after_ns, 15 * S);
    assert!(s.check(&a, 90 * S).allowed);
}

#[test]
fn sliding_log_is_exact() {
    let a = Algorithm::SlidingWindow { quota: Quota { limit: 3, period_ns: 10 * S }, exact: true };
    let mut s = State::new(&a, 0);
    for t in [0, 4, 8] {
        assert!(s.check(&a, t * S).allowed);
    }
    let refused = s.check(&a, 9 * S);
    assert_eq!((refused.allowed, refused.retry_after_ns), (false, S), "the request at 0 s leaves at 10 s");
    assert!(s.check(&a, 10 * S).allowed);
    assert!(!s.check(&a, 13 * S).allowed);
    assert!(s.check(&a, 14 * S).allowed);
}

#[test]
fn undo_gives_the_quota_back() {
    for a in [
        Algorithm::Gcra { quota: Quota::per_second(1), burst: 1 },
        Algorithm::TokenBucket { capacity: 1, quota: Quota::per_second(1), interval: false },
        Algorithm::LeakyBucket { capacity: 1, quota: Quota::per_second(1) },
        Algorithm::FixedWindow { quota: Quota::per_second(1) },
        Algorithm::SlidingWindow { quota: Quota::per_second(1), exact: false },
        Algorithm::SlidingWindow { quota: Quota::per_second(1), exact: true },
    ] {
        let mut s = State::new(&a, 0);
        assert!(s.check(&a, 0).allowed, "{a:?}");
        s.undo(&a, 0);
        assert!(s.check(&a, 0).allowed, "{a:?}: the undone request cost nothing");
        assert!(!s.check(&a, 0).allowed, "{a:?}");
    }
}

#[test]
fn idle_keys_can_be_forgotten() {
    let a = Algorithm::Gcra { quota: Quota::per_second(10), burst: 5 };
    let mut s = State::new(&a, 0);
    s.check(&a, 0);
    assert!(!s.idle(&a, 50 * MS));
    assert!(s.idle(&a, 100 * MS));
}

#[test]
fn states_are_small() {
    assert!(std::mem::size_of::<State>() <= 40, "{} bytes", std::mem::size_of::<State>());
}

/// The reference: a token bucket in exact integers, tokens counted in nanoseconds of credit.
fn reference(quota: Quota, burst: u64, times: &[u64]) -> Vec<bool> {
    let t = quota.interval_ns();
    let capacity = burst.max(1) * t;
    let (mut level, mut last) = (capacity, times.first().copied().unwrap_or(0));
    times
        .iter()
        .map(|&now| {
            level = (level + (now - last)).min(capacity);
            last = now;
            if level >= t {
                level -= t;
                true
            } else {
                false
            }
        })
        .collect()
}

fn arrivals(gaps: &[u64]) -> Vec<u64> {
    gaps.iter()
        .scan(0u64, |t, g| {
            *t += g;
            Some(*t)
        })
        .collect()
}

proptest! {
    #[test]
    fn gcra_matches_the_reference(
        gaps in proptest::collection::vec(0u64..300 * MS, 1..300),
        limit in 1u64..100,
        burst in 1u64..20,
    ) {
        let quota = Quota::per_second(limit);
        let times = arrivals(&gaps);
        prop_assert_eq!(run(Algorithm::Gcra { quota, burst }, &times), reference(quota, burst, &times));
    }

    /// Over a long run of dense traffic (a request at least every half interval) the continuous algorithms
    /// admit exactly the rate: never more than the rate plus the burst, never less than the rate.
    #[test]
    fn long_run_rate_is_accurate(
        per_mille in proptest::collection::vec(0u64..500, 500..3_000),
        limit in 1u64..1_000,
        burst in 2u64..10,
    ) {
        let quota = Quota::per_second(limit);
        let gaps: Vec<u64> = per_mille.iter().map(|g| g * quota.interval_ns() / 1000).collect();
        let times = arrivals(&gaps);
        let span = *times.last().unwrap_or(&0) - times[0];
        let ideal = span as f64 / quota.interval_ns() as f64;
        for a in [
            Algorithm::Gcra { quota, burst },
            Algorithm::TokenBucket { capacity: burst, quota, interval: false },
        ] {
            let n = allowed(a, &times) as f64;
            prop_assert!(n <= ideal + burst as f64 + 1.0, "{:?}: {} allowed, ideal {:.1}", a, n, ideal);
            prop_assert!(n >= ideal - 1.0, "{:?}: only {} allowed, ideal {:.1}", a, n, ideal);
        }
    }

    /// Any window of the period's length holds at most the limit with the exact log, and at most twice the
    /// limit with the fixed window.
    #[test]
    fn windows_hold_their_limits(
        gaps in proptest::collection::vec(0u64..500 * MS, 1..400),
        limit in 1u64..10,
    ) {
        let quota = Quota { limit, period_ns: 5 * S };
        let times = arrivals(&gaps);
        for (a, factor) in [
            (Algorithm::SlidingWindow { quota, exact: true }, 1),
            (Algorithm::FixedWindow { quota }, 2),
        ] {
            let passed: Vec<u64> =
                times.iter().zip(run(a, &times)).filter(|(_, ok)| *ok).map(|(&t, _)| t).collect();
            for (i, &t) in passed.iter().enumerate() {
                let in_window = passed[i..].iter().take_while(|&&u| u < t + quota.period_ns).count() as u64;
                prop_assert!(in_window <= factor * limit, "{:?}: {} in the window from {}", a, in_window, t);
            }
        }
    }
}
