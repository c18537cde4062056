//! What happened, in the order it happened: the ledger's records.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::InventorySpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ClaimStatus {
    Confirmed,
    /// Reserved until `expires` (Unix ms): confirm before then or the stock goes back.
    Held {
        expires: u64,
    },
    Waitlisted,
    Cancelled,
    Expired,
}

impl ClaimStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Held { .. } => "held",
            Self::Waitlisted => "waitlisted",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    pub fn expires(&self) -> Option<u64> {
        match self {
            Self::Held { expires } => Some(*expires),
            _ => None,
        }
    }

    /// Holds stock (or a place in line) for its user.
    pub fn active(&self) -> bool {
        matches!(self, Self::Confirmed | Self::Held { .. } | Self::Waitlisted)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    InventoryCreated(InventorySpec),
    /// A claim was accepted: confirmed, held, or waitlisted. `units` are the units it got (or asked for, when
    /// waitlisted). The names are shared with the engine's own records, so a claim's strings are allocated
    /// once, not once for the log and again for the state.
    Claimed {
        claim: u64,
        inventory: Arc<str>,
        user: Arc<str>,
        quantity: u32,
        units: Vec<String>,
        key: Arc<str>,
        status: ClaimStatus,
        at: u64,
    },
    Confirmed {
        claim: u64,
        at: u64,
    },
    Cancelled {
        claim: u64,
        at: u64,
    },
    /// A hold ran out; its stock went back.
    Expired {
        claim: u64,
        at: u64,
    },
    /// Claims that finished (cancelled or expired) before `before` (Unix ms) are forgotten, with their
    /// idempotency keys: the end of their retention window.
    Compacted {
        before: u64,
    },
    /// A waitlisted claim got freed stock.
    Promoted {
        claim: u64,
        units: Vec<String>,
        status: ClaimStatus,
        at: u64,
    },
}
