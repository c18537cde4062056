//! Probabilistic early recomputation ("XFetch", Vattani, Chierichetti and Lowenstein, VLDB 2015).
//!
//! A hot key that expires at one instant sends every request of that instant to the origin (the stampede
//! of seed 000 §3). Instead, each request before expiry recomputes early with a probability that rises as
//! expiry nears and as the value is slower to compute: one request, usually, refreshes it just before it
//! would have expired, and the others keep getting the cached value.

/// Whether this request should refresh the value now: `now - delta·beta·ln(u) ≥ expiry`, where `delta` is how
/// long the last recomputation took, `beta` ≥ 0 tunes eagerness (1 is the paper's default; 0 turns it off)
/// and `u` is a uniform draw from (0, 1].
pub fn should_refresh(now_ms: u64, expiry_ms: u64, delta_ms: u64, beta: f64, unit: f64) -> bool {
    let u = unit.clamp(f64::MIN_POSITIVE, 1.0);
    let early = -(delta_ms as f64) * beta * u.ln();
    now_ms as f64 + early >= expiry_ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_early_long_before_expiry_and_always_at_it() {
        assert!(!should_refresh(0, 60_000, 100, 1.0, 0.5));
        assert!(should_refresh(60_000, 60_000, 100, 1.0, 1.0));
        assert!(!should_refresh(59_999, 60_000, 100, 0.0, 0.000_001), "beta 0 turns it off");
    }

    #[test]
    fn the_chance_rises_toward_expiry() {
        // With delta 1 s and beta 1, P(refresh) at t seconds before expiry is e^(-t).
        let draws: Vec<f64> = (1..=10_000).map(|i| f64::from(i) / 10_000.0).collect();
        let share = |before_ms: u64| {
            draws.iter().filter(|u| should_refresh(100_000 - before_ms, 100_000, 1_000, 1.0, **u)).count() as f64
                / draws.len() as f64
        };
        assert!((share(1_000) - (-1.0f64).exp()).abs() < 0.01);
        assert!((share(3_000) - (-3.0f64).exp()).abs() < 0.01);
        assert!(share(100) > share(1_000) && share(1_000) > share(3_000));
    }
}
