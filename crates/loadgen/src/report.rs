//! What a rehearsal found, as `report.json`: counts that add up (every attempt is either answered with a
//! status or failed), latency percentiles, a per-second timeline, and for a surge the waits, the fairness of
//! the order and whether the stock was oversold.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::LoadgenError;
use crate::fairness::{Fairness, fairness};
use crate::histogram::{Bucket, Latencies, Percentiles};
use crate::journey::surge::{Outcome, UserRecord};
use crate::record::{Second, Tally};
use crate::scenario::{Journey, Scenario};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: Option<String>,
    /// `requests` or `surge`.
    pub journey: &'static str,
    pub target: String,
    pub started_at_unix_ms: u64,
    pub elapsed_seconds: f64,
    pub connections: usize,
    pub http2: bool,
    pub users: Users,
    pub requests: Requests,
    pub latency_ms: Percentiles,
    /// Attempts by latency, in buckets whose bounds double from 0.1 ms.
    pub latency_buckets: Vec<Bucket>,
    pub timeline: Vec<Second>,
    /// Only for the surge journey.
    pub surge: Option<Surge>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Users {
    pub scheduled: u64,
    pub started: u64,
    pub finished: u64,
    /// Stopped by the end of `grace`.
    pub unfinished: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Requests {
    /// Attempts, retries included: `answered + failed`.
    pub sent: u64,
    /// Attempts with an HTTP answer: the sum of `by_status`.
    pub answered: u64,
    /// Attempts without one: the sum of `by_failure`.
    pub failed: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// 503 answers that were a room holding the user (in `by_status` under 503 too).
    pub held: u64,
    /// Attempts per second over the whole run.
    pub per_second: f64,
    pub by_status: BTreeMap<String, u64>,
    pub by_failure: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Surge {
    /// Users by how their journey ended; adds up to `users.started`.
    pub outcomes: BTreeMap<String, u64>,
    pub admitted: u64,
    /// Admitted without waiting (the first answer was the page itself).
    pub walked_in: u64,
    /// From joining the line to holding a pass, for the admitted users.
    pub waiting_ms: Percentiles,
    /// Admitted users by waiting time, in 20 equal buckets.
    pub waiting_buckets: Vec<Bucket>,
    /// Arrival (joining) order against admission order.
    pub fairness: Fairness,
    pub claims: Claims,
    /// Every user, in the order they were scheduled.
    pub users: Vec<UserRecord>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Claims {
    /// Users who sent a claim.
    pub attempted: u64,
    pub confirmed: u64,
    pub held: u64,
    pub waitlisted: u64,
    pub sold_out: u64,
    pub limit_reached: u64,
    pub refused: u64,
    pub errors: u64,
    /// The inventory's capacity as the server reports it after the run.
    pub capacity: Option<u64>,
    pub server_confirmed: Option<u64>,
    pub server_held: Option<u64>,
    /// Items taken (confirmed or held) beyond the capacity, by the clients' count or the server's, whichever
    /// is larger. Anything but 0 is a bug.
    pub oversold: u64,
    /// Users who were given more than one claim id. Anything but 0 is a bug (each user claims once, with one
    /// idempotency key).
    pub duplicate_users: u64,
}

/// The inventory's figures from `GET {reserve}/inventories/{id}`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ServerInventory {
    pub capacity: u64,
    #[serde(default)]
    pub confirmed: u64,
    #[serde(default)]
    pub held: u64,
}

pub(crate) struct Inputs<'a> {
    pub scenario: &'a Scenario,
    pub started_at_unix_ms: u64,
    pub elapsed: Duration,
    pub scheduled: u64,
    pub started: u64,
    pub finished: u64,
    pub unfinished: u64,
    pub tally: Tally,
    pub users: Option<Vec<UserRecord>>,
    pub inventory: Option<ServerInventory>,
}

pub(crate) fn build(i: Inputs<'_>) -> Report {
    let t = &i.tally;
    let answered: u64 = t.statuses.values().sum();
    let failed: u64 = t.failures.values().sum();
    let held = t.timeline.iter().map(|s| s.held).sum();
    let elapsed = i.elapsed.as_secs_f64();
    let (journey, target) = match &i.scenario.journey {
        Journey::Requests { url, .. } => ("requests", url.clone()),
        Journey::Surge { url, .. } => ("surge", url.clone()),
    };
    Report {
        name: i.scenario.name.clone(),
        journey,
        target,
        started_at_unix_ms: i.started_at_unix_ms,
        elapsed_seconds: elapsed,
        connections: i.scenario.connections,
        http2: i.scenario.http2,
        users: Users { scheduled: i.scheduled, started: i.started, finished: i.finished, unfinished: i.unfinished },
        requests: Requests {
            sent: answered + failed,
            answered,
            failed,
            retries: t.retries,
            held,
            per_second: if elapsed > 0.0 { (answered + failed) as f64 / elapsed } else { 0.0 },
            by_status: t.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            by_failure: t.failures.iter().map(|(k, v)| ((*k).to_string(), *v)).collect(),
        },
        latency_ms: t.latency.summary(),
        latency_buckets: t.latency.log_buckets(100),
        timeline: t.timeline.clone(),
        surge: i.users.map(|users| surge(users, i.inventory)),
    }
}

fn surge(mut users: Vec<UserRecord>, inventory: Option<ServerInventory>) -> Surge {
    users.sort_by_key(|u| u.user);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut waiting = Latencies::new();
    let mut pairs = Vec::new();
    let mut claims = Claims::default();
    let mut walked_in = 0;
    let mut owners: HashMap<u64, u64> = HashMap::new();
    for u in &users {
        *outcomes.entry(u.outcome.as_str().to_string()).or_default() += 1;
        if let (Some(joined), Some(admitted)) = (u.joined_ms, u.admitted_ms) {
            waiting.record_us(((admitted - joined).max(0.0) * 1000.0) as u64);
            pairs.push((joined, admitted));
            if u.polls == 0 {
                walked_in += 1;
            }
        }
        if u.claims.len() > 1 {
            claims.duplicate_users += 1;
        }
        for id in &u.claims {
            *owners.entry(*id).or_default() += 1;
        }
        let counter = match u.outcome {
            Outcome::Confirmed => &mut claims.confirmed,
            Outcome::Held => &mut claims.held,
            Outcome::Waitlisted => &mut claims.waitlisted,
            Outcome::SoldOut => &mut claims.sold_out,
            Outcome::LimitReached => &mut claims.limit_reached,
            Outcome::Refused => &mut claims.refused,
            Outcome::Error if u.admitted_ms.is_some() => &mut claims.errors,
            Outcome::Error | Outcome::TurnedAway | Outcome::Unfinished => continue,
        };
        *counter += 1;
    }
    // A claim id handed to two users is a duplicate too, for both of them.
    claims.duplicate_users += owners.values().filter(|n| **n > 1).copied().sum::<u64>();
    claims.attempted = claims.confirmed
        + claims.held
        + claims.waitlisted
        + claims.sold_out
        + claims.limit_reached
        + claims.refused
        + claims.errors;
    if let Some(inv) = inventory {
        claims.capacity = Some(inv.capacity);
        claims.server_confirmed = Some(inv.confirmed);
        claims.server_held = Some(inv.held);
        let taken = (claims.confirmed + claims.held).max(inv.confirmed + inv.held);
        claims.oversold = taken.saturating_sub(inv.capacity);
    }
    Surge {
        outcomes,
        admitted: pairs.len() as u64,
        walked_in,
        waiting_ms: waiting.summary(),
        waiting_buckets: waiting.linear_buckets(20),
        fairness: fairness(&pairs),
        claims,
        users,
    }
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"cannot render: {e}\"}}"))
    }

    /// Writes `report.json` and `report.html` into `dir` (created if needed). Returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf), LoadgenError> {
        let err = |path: &Path| {
            let path = path.display().to_string();
            move |source| LoadgenError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let json = dir.join("report.json");
        std::fs::write(&json, self.to_json()).map_err(err(&json))?;
        let html = dir.join("report.html");
        std::fs::write(&html, crate::html::render(self)).map_err(err(&html))?;
        Ok((json, html))
    }

    /// The final summary for a terminal, a few lines.
    pub fn summary(&self) -> String {
        let r = &self.requests;
        let l = &self.latency_ms;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} users ({} unfinished) in {:.1}s: {} requests, {:.0}/s, {} failed, {} retries, {} held by the room",
            self.users.started,
            self.users.unfinished,
            self.elapsed_seconds,
            r.sent,
            r.per_second,
            r.failed,
            r.retries,
            r.held
        );
        let statuses: Vec<String> = r.by_status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let failures: Vec<String> = r.by_failure.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            s,
            "status {}{}",
            statuses.join(", "),
            if failures.is_empty() { String::new() } else { format!("; failures {}", failures.join(", ")) }
        );
        let _ = writeln!(
            s,
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
        if let Some(g) = &self.surge {
            let w = &g.waiting_ms;
            let c = &g.claims;
            let _ = writeln!(
                s,
                "admitted {} ({} walked in); waited ms: p50 {:.0}  p99 {:.0}  max {:.0}",
                g.admitted, g.walked_in, w.p50, w.p99, w.max
            );
            let tau = g.fairness.kendall_tau.map_or("n/a".to_string(), |t| format!("{t:.4}"));
            let _ = writeln!(
                s,
                "fairness: {} inversions in {} pairs, Kendall tau {tau}",
                g.fairness.inversions, g.fairness.pairs
            );
            let capacity = c.capacity.map_or("unknown".to_string(), |c| c.to_string());
            let _ = writeln!(
                s,
                "claims: {} confirmed, {} held, {} waitlisted, {} sold out, {} limit reached, {} refused, {} errors; capacity {capacity}; oversold {}; duplicate users {}",
                c.confirmed,
                c.held,
                c.waitlisted,
                c.sold_out,
                c.limit_reached,
                c.refused,
                c.errors,
                c.oversold,
                c.duplicate_users
            );
        }
        s
    }
}
