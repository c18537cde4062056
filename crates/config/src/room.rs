use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Seconds, Timestamp};

/// A virtual waiting room. Every key is described, with worked examples, in docs/WAITING_ROOM.md.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoomConfig {
    /// Admissions per minute, released continuously (600 means one every 100 ms, not 600 at once).
    pub new_users_per_minute: u32,
    /// Cap on sessions admitted at once. A session ends when its pass expires or its holder leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_active_users: Option<u32>,
    /// How long an admission pass lasts.
    #[serde(default = "defaults::session_duration")]
    pub session_duration: Seconds,
    /// Extend the pass while its holder keeps using it.
    #[serde(default = "defaults::yes")]
    pub session_renewal: bool,
    /// A waiting client that stops polling loses its place after this.
    #[serde(default = "defaults::queue_grace")]
    pub queue_grace: Seconds,
    #[serde(default)]
    pub queueing: Queueing,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<Timestamp>,
    /// Arrivals from here until `opens_at` are shuffled into a random order at opening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prequeue_from: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<Timestamp>,
    /// Newcomers beyond this many waiting clients are told the room is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_waiting: Option<u64>,
    /// Fixes the seed of the pre-queue lottery and of random queueing; otherwise one is drawn and recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Tie tickets and passes to the client's address, so they cannot be passed around.
    #[serde(default)]
    pub bind_to_address: bool,
    /// Shown on the waiting page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// An HTML file to use instead of the built-in page, relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_template: Option<PathBuf>,
    /// When the room's store cannot answer: `closed` (503, the default) or `open` (let the request through).
    #[serde(default)]
    pub on_store_error: crate::OnStoreError,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Queueing {
    #[default]
    Fifo,
    Random,
    Passthrough,
    Reject,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Always,
    Threshold,
}

mod defaults {
    use crate::Seconds;

    pub fn session_duration() -> Seconds {
        Seconds::secs(600)
    }
    pub fn queue_grace() -> Seconds {
        Seconds::secs(60)
    }
    pub fn yes() -> bool {
        true
    }
}
