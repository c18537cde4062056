//! The knobs of a room, as the model sees them: plain numbers, times in Unix seconds. The config crate reads
//! the human forms ("5m", RFC 3339 times) and the gateway converts.

/// How the next client to admit is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Queueing {
    /// First come, first served: admission in arrival order, zero inversions.
    #[default]
    Fifo,
    /// Each admission draws uniformly among the clients waiting.
    Random,
    /// Everyone goes straight through; the room only measures.
    Passthrough,
    /// Nobody new gets in (closed or sold out); holders of a valid pass carry on.
    Reject,
}

/// When the room holds clients at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// Every new client queues, even when the room could admit at once.
    #[default]
    Always,
    /// New clients walk straight in while nobody waits, the rate allows and the cap has room.
    Threshold,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Admissions per minute, released continuously.
    pub new_users_per_minute: u32,
    /// Cap on sessions admitted and not yet expired, plus admissions not yet claimed. `None`: no cap.
    pub total_active_users: Option<u32>,
    /// Seconds a pass is valid after it was issued or last renewed.
    pub session_duration: u32,
    /// Renew a pass on activity once half its life has passed.
    pub session_renewal: bool,
    /// Seconds a waiting client may go without polling before losing its place; also the time an admitted
    /// client has to come and claim its pass.
    pub queue_grace: u32,
    pub queueing: Queueing,
    pub activation: Activation,
    /// Unix seconds. Before it the room is closed (or pre-queueing, see `prequeue_from`).
    pub opens_at: Option<u64>,
    /// Unix seconds. From here to `opens_at`, arrivals join a pre-queue that is shuffled at opening.
    pub prequeue_from: Option<u64>,
    /// Unix seconds. From here on nobody new is admitted.
    pub closes_at: Option<u64>,
    /// New arrivals beyond this many waiting clients are told the room is full. `None`: no limit.
    pub max_waiting: Option<u64>,
    /// Seed for the pre-queue lottery and random queueing. `None`: drawn when the room is created (and again
    /// on reset) and recorded.
    pub seed: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            new_users_per_minute: 600,
            total_active_users: None,
            session_duration: 600,
            session_renewal: true,
            queue_grace: 60,
            queueing: Queueing::Fifo,
            activation: Activation::Always,
            opens_at: None,
            prequeue_from: None,
            closes_at: None,
            max_waiting: None,
            seed: None,
        }
    }
}

impl Settings {
    /// Admissions per second.
    pub fn rate(&self) -> f64 {
        f64::from(self.new_users_per_minute) / 60.0
    }

    /// Whether a pass expiring at `expires` is due for renewal at `now_s`: renewal is on and half its life
    /// is gone. The gateway asks this before touching the store, so most requests with a pass never do.
    pub fn renewal_due(&self, expires: u32, now_s: u64) -> bool {
        self.session_renewal && u64::from(expires).saturating_sub(now_s) * 2 <= u64::from(self.session_duration)
    }

    /// Credit that may pile up while nobody waits: one second's worth, and at least one admission. In steady
    /// state the queue drains it as fast as it accrues, so it never shows in the per-minute rate.
    pub fn burst(&self) -> f64 {
        self.rate().max(1.0)
    }
}
