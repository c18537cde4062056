//! What a client does after a failure. Naive immediate retries multiply the load exactly when the service is
//! weakest (the second spike); exponential backoff with full jitter spreads them out. A rehearsal shows both.

use std::time::Duration;

use serde::Deserialize;
use spillway_config::Seconds;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Retry {
    /// One attempt per request.
    #[default]
    None,
    /// Up to `attempts` in all, each at once after the last failure.
    Immediate { attempts: u32 },
    /// Up to `attempts` in all; before retry k (1, 2, ...) wait a uniformly random time between 0 and
    /// min(`cap`, `base` x 2^(k-1)).
    Backoff {
        attempts: u32,
        #[serde(default = "default_base")]
        base: Seconds,
        #[serde(default = "default_cap")]
        cap: Seconds,
    },
}

fn default_base() -> Seconds {
    Seconds::millis(100)
}

fn default_cap() -> Seconds {
    Seconds::secs(10)
}

impl Retry {
    /// The wait before retry number `retry` (1 for the first retry), or `None` when no attempt is left.
    /// `unit` is a uniform draw in [0, 1), handed in so the policy is tested without randomness.
    pub fn delay(&self, retry: u32, unit: f64) -> Option<Duration> {
        match self {
            Self::None => None,
            Self::Immediate { attempts } => (retry < *attempts).then_some(Duration::ZERO),
            Self::Backoff { attempts, base, cap } => {
                if retry >= *attempts {
                    return None;
                }
                let exp = 2f64.powi(i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX).min(60));
                let ceiling = (base.get().as_secs_f64() * exp).min(cap.get().as_secs_f64());
                Some(Duration::from_secs_f64(ceiling * unit.clamp(0.0, 1.0)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_the_first_try() {
        assert_eq!(Retry::None.delay(1, 0.5), None);
        let immediate = Retry::Immediate { attempts: 3 };
        assert_eq!(immediate.delay(1, 0.5), Some(Duration::ZERO));
        assert_eq!(immediate.delay(2, 0.5), Some(Duration::ZERO));
        assert_eq!(immediate.delay(3, 0.5), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_below_it() {
        let b = Retry::Backoff { attempts: 10, base: Seconds::millis(100), cap: Seconds::secs(1) };
        assert_eq!(b.delay(1, 0.999_999).map(|d| d.as_millis()), Some(99));
        assert_eq!(b.delay(3, 0.5), Some(Duration::from_millis(200)));
        assert_eq!(b.delay(9, 0.5), Some(Duration::from_millis(500)), "capped at 1 s");
        assert_eq!(b.delay(4, 0.0), Some(Duration::ZERO), "full jitter reaches zero");
        assert_eq!(b.delay(10, 0.5), None);
    }
}
