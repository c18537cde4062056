//! What a room or a limit does when its store cannot answer.

use serde::{Deserialize, Serialize};

/// `on_store_error`: the store behind a room or a limit is unreachable or too slow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Refuse with `503` and a `Retry-After`: nobody gets past a room or a limit that cannot count them. The
    /// default, because a room exists to protect an origin that would fall over without it.
    #[default]
    Closed,
    /// Let the request through undecided: for a limit whose job is fairness rather than protection, or a
    /// room in front of an origin that can take the surge for the length of an outage.
    Open,
}
