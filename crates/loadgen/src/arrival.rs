//! When each user arrives. Pure functions of the scenario, so a schedule is tested without a clock and a
//! rehearsal is the same crowd every time it is run.

use std::time::Duration;

use serde::Deserialize;
use spillway_config::Seconds;

/// How users arrive. Rates are users per second.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arrival {
    /// `users` arrive in the same instant: the opening second of a ticket drop.
    Burst { users: u64 },
    /// A steady stream for the whole `duration`.
    Constant { rate: f64 },
    /// The rate moves linearly from `from` to `to` over `over`, then stops.
    Ramp { from: f64, to: f64, over: Seconds },
    /// Constant rates one after another.
    Steps { steps: Vec<Step> },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub rate: f64,
    #[serde(rename = "for")]
    pub hold: Seconds,
}

impl Arrival {
    /// How long the schedule lasts by itself, or `None` when only a duration can end it.
    pub fn natural_length(&self) -> Option<Duration> {
        match self {
            Self::Burst { .. } => Some(Duration::ZERO),
            Self::Constant { .. } => None,
            Self::Ramp { over, .. } => Some(over.get()),
            Self::Steps { steps } => Some(steps.iter().map(|s| s.hold.get()).sum()),
        }
    }

    /// Checks the numbers: rates finite and not negative, at least one step. The error names the key under
    /// `arrival`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let rate_ok = |key: &str, r: f64| {
            if r.is_finite() && r >= 0.0 {
                Ok(())
            } else {
                Err((key.to_string(), format!("must be a number of users per second, at least 0 (got {r})")))
            }
        };
        match self {
            Self::Burst { users } if *users == 0 => Err(("users".into(), "must be at least 1".into())),
            Self::Burst { .. } => Ok(()),
            Self::Constant { rate } if *rate <= 0.0 => Err(("rate".into(), "must be above 0".into())),
            Self::Constant { rate } => rate_ok("rate", *rate),
            Self::Ramp { from, to, over } => {
                rate_ok("from", *from)?;
                rate_ok("to", *to)?;
                if over.get().is_zero() {
                    return Err(("over".into(), "must be longer than 0s".into()));
                }
                Ok(())
            }
            Self::Steps { steps } if steps.is_empty() => Err(("steps".into(), "needs at least one step".into())),
            Self::Steps { steps } => {
                steps.iter().enumerate().try_for_each(|(i, s)| rate_ok(&format!("steps[{i}].rate"), s.rate))
            }
        }
    }
}

/// Every user's start time from the beginning of the run, in order: at most `max_users` of them and all
/// before `duration` when one is given (a burst's users all start at 0, so a burst ignores the duration).
pub fn schedule(arrival: &Arrival, duration: Option<Duration>, max_users: u64) -> Vec<Duration> {
    let end = duration.map_or(f64::INFINITY, |d| d.as_secs_f64());
    let cap = usize::try_from(max_users).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut push = |t: f64| -> bool {
        if out.len() >= cap || (t >= end && t > 0.0) {
            return false;
        }
        out.push(Duration::from_secs_f64(t.max(0.0)));
        true
    };
    match arrival {
        Arrival::Burst { users } => {
            for _ in 0..*users {
                if !push(0.0) {
                    break;
                }
            }
        }
        Arrival::Constant { rate } => {
            if end.is_finite() {
                constant(*rate, 0.0, end, &mut push);
            }
        }
        Arrival::Ramp { from, to, over } => ramp(*from, *to, over.get().as_secs_f64(), &mut push),
        Arrival::Steps { steps } => {
            let mut start = 0.0;
            for step in steps {
                let len = step.hold.get().as_secs_f64();
                if !constant(step.rate, start, len, &mut push) {
                    break;
                }
                start += len;
            }
        }
    }
    out
}

/// Users at `start + i / rate` for as long as `len` lasts. False once `push` refuses (count or duration).
fn constant(rate: f64, start: f64, len: f64, push: &mut impl FnMut(f64) -> bool) -> bool {
    if rate <= 0.0 {
        return true;
    }
    let n = (rate * len).ceil() as u64;
    for i in 0..n {
        let t = i as f64 / rate;
        if t >= len {
            break;
        }
        if !push(start + t) {
            return false;
        }
    }
    true
}

/// The k-th user arrives when the integral of the rate reaches k: with r(t) = a + c t, that is the root of
/// c t^2 / 2 + a t - k = 0. Solving it directly keeps every start time exact, with no accumulated error.
fn ramp(a: f64, b: f64, len: f64, push: &mut impl FnMut(f64) -> bool) {
    let c = (b - a) / len;
    let total = (a + b) / 2.0 * len;
    let mut k = 0.0f64;
    while k < total {
        let t = if c.abs() < 1e-12 {
            k / a
        } else {
            let disc = a * a + 2.0 * c * k;
            if disc < 0.0 {
                break;
            }
            (-a + disc.sqrt()) / c
        };
        if !t.is_finite() || t >= len || !push(t) {
            break;
        }
        k += 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Seconds {
        Seconds::secs(s)
    }

    #[test]
    fn a_burst_starts_everyone_at_once_up_to_the_count() {
        let s = schedule(&Arrival::Burst { users: 500 }, None, 10_000);
        assert_eq!(s.len(), 500);
        assert!(s.iter().all(|t| t.is_zero()));
        assert_eq!(schedule(&Arrival::Burst { users: 500 }, None, 20).len(), 20);
    }

    #[test]
    fn a_constant_rate_spaces_users_evenly_within_the_duration() {
        let s = schedule(&Arrival::Constant { rate: 4.0 }, Some(Duration::from_secs(3)), 1000);
        assert_eq!(s.len(), 12);
        assert_eq!(s[1], Duration::from_millis(250));
        assert_eq!(s[11], Duration::from_millis(2750));
        assert!(schedule(&Arrival::Constant { rate: 4.0 }, None, 1000).is_empty(), "unbounded without a duration");
    }

    #[test]
    fn a_ramp_from_zero_releases_the_triangle_area() {
        let s = schedule(&Arrival::Ramp { from: 0.0, to: 100.0, over: secs(10) }, None, 100_000);
        // Area under 0 -> 100 users/s over 10 s is 500 users; the first arrives at 0.
        assert_eq!(s.len(), 500);
        assert!(s[0].is_zero());
        // Half the users arrive in the last 29% of the time: t = 10 * sqrt(1/2).
        let half = s[250].as_secs_f64();
        assert!((half - 10.0 * 0.5f64.sqrt()).abs() < 0.01, "{half}");
    }

    #[test]
    fn steps_follow_one_another() {
        let steps = vec![Step { rate: 2.0, hold: secs(2) }, Step { rate: 10.0, hold: secs(1) }];
        let s = schedule(&Arrival::Steps { steps }, None, 1000);
        assert_eq!(s.len(), 4 + 10);
        assert_eq!(s[4], Duration::from_secs(2));
        assert!((s[13].as_secs_f64() - 2.9).abs() < 1e-6);
    }

    #[test]
    fn validation_names_the_key() {
        let bad = Arrival::Steps { steps: vec![Step { rate: f64::NAN, hold: secs(1) }] };
        assert_eq!(bad.validate().unwrap_err().0, "steps[0].rate");
        assert_eq!(Arrival::Burst { users: 0 }.validate().unwrap_err().0, "users");
    }

    proptest! {
        #[test]
        fn schedules_are_sorted_bounded_and_match_their_area(
            a in 0.0f64..200.0, b in 0.0f64..200.0, over in 1u64..20, max in 1u64..5000, cut in 1u64..30,
        ) {
            let arrival = Arrival::Ramp { from: a, to: b, over: secs(over) };
            let unbounded = schedule(&arrival, None, u64::MAX);
            let expected = (a + b) / 2.0 * over as f64;
            prop_assert!((unbounded.len() as f64 - expected).abs() <= 1.0 + expected * 1e-9,
                "{} users for an area of {expected}", unbounded.len());
            let s = schedule(&arrival, Some(Duration::from_secs(cut)), max);
            prop_assert!(s.len() as u64 <= max);
            prop_assert!(s.windows(2).all(|w| w[0] <= w[1]));
            prop_assert!(s.iter().all(|t| *t < Duration::from_secs(cut.min(over)) || t.is_zero()));
            prop_assert_eq!(&s[..], &unbounded[..s.len()], "bounds only cut the tail");
        }

        #[test]
        fn a_constant_rate_gives_rate_times_duration(rate in 0.1f64..500.0, secs_ in 1u64..30) {
            let s = schedule(&Arrival::Constant { rate }, Some(Duration::from_secs(secs_)), u64::MAX);
            let expected = rate * secs_ as f64;
            prop_assert!((s.len() as f64 - expected).abs() <= 1.0, "{} for {expected}", s.len());
        }
    }
}
