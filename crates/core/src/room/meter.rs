//! The admission rate as measured, and the rate the wait estimate uses.
//!
//! Only seconds in which the room was saturated (someone still waiting at the end of the second) count:
//! a quiet second admits fewer clients because fewer asked, which says nothing about how fast the line moves.
//! The estimate changes only when the measurement moves by more than 10%, so a client's estimated wait does
//! not wobble upward from noise; it rises only when the rate really fell.

const WINDOW: usize = 60;
/// Saturated seconds needed before the measurement replaces the configured rate.
const MIN_SAMPLES: u32 = 10;
const HYSTERESIS: f64 = 0.10;

#[derive(Debug)]
pub struct Meter {
    /// Per second of the last minute: admissions, and whether anyone was left waiting.
    seconds: [(u32, bool); WINDOW],
    /// The second `seconds[current % WINDOW]` counts.
    current: u64,
    estimate: f64,
    configured: f64,
}

impl Meter {
    pub fn new(configured: f64, now_s: u64) -> Self {
        Self { seconds: [(0, false); WINDOW], current: now_s, estimate: configured, configured }
    }

    /// A config change starts the estimate over from the new rate.
    pub fn reconfigure(&mut self, configured: f64, now_s: u64) {
        *self = Self::new(configured, now_s);
    }

    pub fn record(&mut self, now_s: u64, admitted: u32) {
        self.roll(now_s, false);
        self.seconds[(self.current % WINDOW as u64) as usize].0 += admitted;
    }

    /// Closes the seconds before `now_s`, noting whether the room was saturated at the end of the current one.
    pub fn roll(&mut self, now_s: u64, saturated: bool) {
        if now_s > self.current {
            let gap = (now_s - self.current).min(WINDOW as u64);
            for s in 1..=gap {
                self.seconds[((self.current + s) % WINDOW as u64) as usize] = (0, false);
            }
            self.current = now_s;
            self.update_estimate();
        }
        self.seconds[(self.current % WINDOW as u64) as usize].1 |= saturated;
    }

    fn update_estimate(&mut self) {
        let (admitted, samples) = self.saturated_seconds();
        if samples < MIN_SAMPLES {
            return;
        }
        let measured = (admitted as f64 / f64::from(samples)).min(self.configured);
        if (measured - self.estimate).abs() > HYSTERESIS * self.estimate {
            self.estimate = measured;
        }
    }

    /// Admissions and count over the closed saturated seconds of the window.
    fn saturated_seconds(&self) -> (u64, u32) {
        let current = (self.current % WINDOW as u64) as usize;
        self.seconds
            .iter()
            .enumerate()
            .filter(|&(i, &(_, saturated))| i != current && saturated)
            .fold((0, 0), |(a, n), (_, &(count, _))| (a + u64::from(count), n + 1))
    }

    /// Admissions per second to divide a position by.
    pub fn estimate(&self) -> f64 {
        self.estimate
    }

    /// Admissions in the last full minute's saturated seconds, per second, for the admin view.
    pub fn measured(&self) -> Option<f64> {
        let (admitted, samples) = self.saturated_seconds();
        (samples > 0).then(|| admitted as f64 / f64::from(samples))
    }
}
