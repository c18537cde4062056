//! The promises checked after every step, each against the truth (the shared store's model, the ledger,
//! every answer a client was given), never against what a node believes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use spillway_core::room::Snapshot;

use crate::client::Client;

/// What the checks have seen so far.
#[derive(Debug, Default)]
pub struct Truth {
    /// Every claim id each idempotency key was answered with.
    pub by_key: BTreeMap<String, BTreeSet<u64>>,
    /// Every confirmed claim id, by the user the client really is.
    pub confirmed: BTreeMap<String, BTreeSet<u64>>,
    /// Requests each client got past its limit, by second of the store's clock.
    pub passed: BTreeMap<(IpAddr, u64), u64>,
    /// The room's released total at each step, to measure admissions over any minute.
    pub released: Vec<(u64, u64)>,
}

/// The room's figures the checks need.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    pub per_minute: u64,
    pub cap: u64,
    /// How long a pass lasts, in steps: a client let through holds a session that long.
    pub session_steps: u64,
    pub steps_per_minute: u64,
}

/// Nothing oversold, one claim per user and per key.
pub fn reservations(truth: &Truth, stock: u64, per_user: usize) -> Result<(), String> {
    let sold: usize = truth.confirmed.values().map(BTreeSet::len).sum();
    if sold as u64 > stock {
        return Err(format!("oversold: {sold} confirmed of {stock}"));
    }
    if let Some((user, claims)) = truth.confirmed.iter().find(|(_, c)| c.len() > per_user) {
        return Err(format!("per-user limit broken: {user} holds claims {claims:?}, limit {per_user}"));
    }
    if let Some((key, ids)) = truth.by_key.iter().find(|(_, ids)| ids.len() > 1) {
        return Err(format!("idempotency broken: key {key} answered with claims {ids:?}"));
    }
    Ok(())
}

/// The active cap, and admissions over every minute within the rate (plus the one second of credit the
/// room may bank), across all nodes together.
pub fn room(truth: &Truth, snapshot: &Snapshot, room: Room, now_ms: u64) -> Result<(), String> {
    let active = snapshot.active_sessions + snapshot.unclaimed;
    if active > room.cap {
        return Err(format!(
            "active cap broken: {} sessions + {} unclaimed > {}",
            snapshot.active_sessions, snapshot.unclaimed, room.cap
        ));
    }
    let released = snapshot.counters.released;
    let a_minute_ago = now_ms.saturating_sub(60_000);
    let before = truth.released.iter().rev().find(|(t, _)| *t <= a_minute_ago).map_or(0, |(_, r)| *r);
    let burst = (room.per_minute / 60).max(1);
    if released.saturating_sub(before) > room.per_minute + burst {
        return Err(format!(
            "admissions over the rate: {} released in the minute to {now_ms}, rate {}/min",
            released - before,
            room.per_minute
        ));
    }
    Ok(())
}

/// The same two promises from the clients' side, not the model's: how many distinct clients got past the room
/// in any minute, and in any one pass's lifetime (each holds a session that long; none renews).
pub fn room_as_seen(clients: &[Client], room: Room, step: u64) -> Result<(), String> {
    let through_since = |steps: u64| {
        let from = step.saturating_sub(steps.saturating_sub(1));
        clients.iter().filter(|c| c.through_at.is_some_and(|t| t >= from)).count() as u64
    };
    let burst = (room.per_minute / 60).max(1);
    let in_a_minute = through_since(room.steps_per_minute);
    if in_a_minute > room.per_minute + burst {
        return Err(format!(
            "{in_a_minute} clients let through in the minute to step {step}, rate {}/min",
            room.per_minute
        ));
    }
    let holding = through_since(room.session_steps);
    if holding > room.cap {
        return Err(format!("{holding} clients let through within one session's length, cap {}", room.cap));
    }
    Ok(())
}

/// Nobody the checks follow was let in while one who joined before them still waits: in join order, the
/// steps at which they got through never go down.
pub fn fifo(clients: &[Client]) -> Result<(), String> {
    let mut followed: Vec<&Client> = clients.iter().filter(|c| !c.disturbed && c.joined.is_some()).collect();
    followed.sort_by_key(|c| c.joined);
    // From the back: the earliest step at which anyone who joined later got through.
    let mut earliest_later: Option<&Client> = None;
    for early in followed.iter().rev() {
        if let Some(late) = earliest_later
            && let Some(t) = late.through_at
            && early.through_at.is_none_or(|e| e > t)
        {
            return Err(format!(
                "FIFO inversion: {} (joined {:?}) let in at step {t} while {} (joined {:?}) still waited",
                late.user, late.joined, early.user, early.joined
            ));
        }
        if early.through_at.is_some()
            && earliest_later.is_none_or(|l| early.through_at < l.through_at.or(Some(u64::MAX)))
        {
            earliest_later = Some(early);
        }
    }
    Ok(())
}

/// Each client's rate limit holds across all nodes: a fixed window of `per_second` on the store's clock.
pub fn limits(truth: &Truth, per_second: u64) -> Result<(), String> {
    match truth.passed.iter().find(|(_, n)| **n > per_second) {
        Some(((ip, second), n)) => Err(format!("rate limit broken: {ip} passed {n} times in second {second}")),
        None => Ok(()),
    }
}
