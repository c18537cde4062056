//! The surge journey, as a JSON client of a sale: arrive at a page behind the waiting room, wait in line
//! polling the room's status as often as it says, take the pass once admitted, claim an item on the
//! reservation API with an idempotency key (so retries never claim twice), and confirm it if it is held.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use http::{HeaderValue, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::{Call, exchange};
use crate::client::Answer;
use crate::cookies::Jar;
use crate::record::{Mark, Recorder};
use crate::runner::Ctx;

/// How a user's journey ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The claim is confirmed.
    Confirmed,
    /// The claim is held and was not confirmed (`confirm = false`, or the confirmation failed).
    Held,
    /// In line for freed stock.
    Waitlisted,
    SoldOut,
    LimitReached,
    /// Another `409` refusal (`closed`, `unit_taken`).
    Refused,
    /// The room said `closed` or `full`.
    TurnedAway,
    /// No usable answer (after retries) somewhere on the way.
    Error,
    /// Still under way when the run stopped.
    Unfinished,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Held => "held",
            Self::Waitlisted => "waitlisted",
            Self::SoldOut => "sold_out",
            Self::LimitReached => "limit_reached",
            Self::Refused => "refused",
            Self::TurnedAway => "turned_away",
            Self::Error => "error",
            Self::Unfinished => "unfinished",
        }
    }
}

/// One user of a surge. Times are milliseconds from the start of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRecord {
    pub user: u64,
    pub scheduled_ms: f64,
    /// When the room first answered: the user's place in line was taken then.
    pub joined_ms: Option<f64>,
    /// The position the room gave at joining (1 = next).
    pub position: Option<u64>,
    /// When the user held a pass (or walked straight in).
    pub admitted_ms: Option<f64>,
    /// Status polls while waiting.
    pub polls: u32,
    pub outcome: Outcome,
    /// Every claim id the reservation API gave this user: more than one is a duplicate.
    pub claims: Vec<u64>,
    #[serde(skip)]
    pub(crate) waiting: bool,
}

impl UserRecord {
    pub(crate) fn new(user: u64, scheduled_ms: f64) -> Self {
        Self {
            user,
            scheduled_ms,
            joined_ms: None,
            position: None,
            admitted_ms: None,
            polls: 0,
            outcome: Outcome::Unfinished,
            claims: Vec::new(),
            waiting: false,
        }
    }
}

/// The URLs every user needs, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub arrive: Uri,
    pub status: Uri,
    pub claims: Uri,
    /// `{reserve}/claims/` to which the claim id and `/confirm` are appended.
    pub reserve: String,
    pub inventory: Uri,
    pub confirm: bool,
}

impl Plan {
    pub fn new(url: &str, room: &str, reserve: &str, inventory: &str, confirm: bool) -> Option<Self> {
        let arrive: Uri = url.parse().ok()?;
        let origin = format!("{}://{}", arrive.scheme_str()?, arrive.authority()?);
        let reserve = reserve.trim_end_matches('/').to_string();
        Some(Self {
            status: format!("{origin}/_spillway/rooms/{room}/status").parse().ok()?,
            claims: format!("{reserve}/inventories/{inventory}/claims").parse().ok()?,
            inventory: format!("{reserve}/inventories/{inventory}").parse().ok()?,
            arrive,
            reserve,
            confirm,
        })
    }
}

/// What the room says, in JSON.
#[derive(Debug, Deserialize)]
struct RoomStatus {
    state: String,
    #[serde(default)]
    position: Option<u64>,
    #[serde(default)]
    refresh_after_seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct ClaimAnswer {
    #[serde(default)]
    claim: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

pub(crate) async fn run(ctx: &Ctx, rec: &mut Recorder<'_>, plan: &Plan, user: &mut UserRecord, start: Instant) {
    let mut jar = Jar::default();
    if !admit(ctx, rec, plan, user, &mut jar, start).await {
        return;
    }
    if ctx.scenario.think_time.is_some() {
        tokio::time::sleep(ctx.scenario.think_time.map(|t| t.get()).unwrap_or_default()).await;
    }
    claim(ctx, rec, plan, user, &mut jar).await;
}

/// Arrives and waits until admitted. False when the journey ends here.
async fn admit(
    ctx: &Ctx,
    rec: &mut Recorder<'_>,
    plan: &Plan,
    user: &mut UserRecord,
    jar: &mut Jar,
    start: Instant,
) -> bool {
    let Ok(first) = exchange(ctx, rec, jar, &Call::get(plan.arrive.clone()), start).await else {
        user.outcome = Outcome::Error;
        return false;
    };
    user.joined_ms = Some(ctx.ms(Instant::now()));
    if first.status.is_success() {
        return admitted(ctx, rec, user, jar);
    }
    if !first.is_room_hold() {
        user.outcome = Outcome::Error;
        return false;
    }
    let mut status = parse_status(&first);
    user.position = status.as_ref().and_then(|s| s.position);
    user.waiting = true;
    ctx.live.waiting.fetch_add(1, Relaxed);
    let result = loop {
        match status.as_ref().map(|s| s.state.as_str()) {
            Some("admitted") => break true,
            Some("closed" | "full") => {
                user.outcome = Outcome::TurnedAway;
                break false;
            }
            Some(_) => {}
            None => {
                user.outcome = Outcome::Error;
                break false;
            }
        }
        // As the room says: it jitters the delay so that a crowd that arrived together never polls together.
        let wait = status.as_ref().and_then(|s| s.refresh_after_seconds).unwrap_or(2.0).clamp(0.05, 3600.0);
        let next = Instant::now() + Duration::from_secs_f64(wait);
        tokio::time::sleep_until(next).await;
        user.polls += 1;
        status = match exchange(ctx, rec, jar, &Call::get(plan.status.clone()), next).await {
            Ok(a) if a.status == StatusCode::OK || a.is_room_hold() => parse_status(&a),
            _ => None,
        };
    };
    user.waiting = false;
    ctx.live.waiting.fetch_sub(1, Relaxed);
    if result { admitted(ctx, rec, user, jar) } else { false }
}

fn admitted(ctx: &Ctx, rec: &mut Recorder<'_>, user: &mut UserRecord, jar: &Jar) -> bool {
    let now = Instant::now();
    user.admitted_ms = Some(ctx.ms(now));
    rec.mark(ctx.second(now), Mark::Admitted);
    ctx.live.admitted.fetch_add(1, Relaxed);
    ctx.keep_jar(jar);
    true
}

fn parse_status(a: &Answer) -> Option<RoomStatus> {
    serde_json::from_slice(&a.body).ok()
}

async fn claim(ctx: &Ctx, rec: &mut Recorder<'_>, plan: &Plan, user: &mut UserRecord, jar: &mut Jar) {
    let name = format!("spike-user-{}", user.user);
    let mut call = Call::post_json(plan.claims.clone(), &json!({ "user": name }));
    if let Ok(key) = HeaderValue::from_str(&format!("{}-{}", ctx.run_id, user.user)) {
        call.headers.insert("idempotency-key", key);
    }
    let Ok(answer) = exchange(ctx, rec, jar, &call, Instant::now()).await else {
        user.outcome = Outcome::Error;
        return;
    };
    let body: Option<ClaimAnswer> = serde_json::from_slice(&answer.body).ok();
    let Some(body) = body else {
        user.outcome = Outcome::Error;
        return;
    };
    if let Some(id) = body.claim
        && !user.claims.contains(&id)
    {
        user.claims.push(id);
    }
    user.outcome = match (answer.status.as_u16(), body.status.as_deref(), body.error.as_deref()) {
        (200 | 201, Some("confirmed"), _) => Outcome::Confirmed,
        (200 | 201, Some("held"), _) => Outcome::Held,
        (200 | 202, Some("waitlisted"), _) => Outcome::Waitlisted,
        (409, _, Some("sold_out")) => Outcome::SoldOut,
        (409, _, Some("limit_reached")) => Outcome::LimitReached,
        (409, _, _) => Outcome::Refused,
        _ => Outcome::Error,
    };
    if matches!(user.outcome, Outcome::Confirmed | Outcome::Held) {
        rec.mark(ctx.second(Instant::now()), Mark::Claimed);
        ctx.live.claimed.fetch_add(1, Relaxed);
    }
    if user.outcome == Outcome::Held
        && plan.confirm
        && let Some(id) = body.claim
    {
        confirm(ctx, rec, plan, user, jar, id, &name).await;
    }
}

async fn confirm(
    ctx: &Ctx,
    rec: &mut Recorder<'_>,
    plan: &Plan,
    user: &mut UserRecord,
    jar: &mut Jar,
    id: u64,
    name: &str,
) {
    let Ok(uri) = format!("{}/claims/{id}/confirm", plan.reserve).parse::<Uri>() else { return };
    let call = Call::post_json(uri, &json!({ "user": name }));
    if let Ok(answer) = exchange(ctx, rec, jar, &call, Instant::now()).await {
        let body: Option<ClaimAnswer> = serde_json::from_slice(&answer.body).ok();
        if answer.status == StatusCode::OK && body.and_then(|b| b.status).as_deref() == Some("confirmed") {
            user.outcome = Outcome::Confirmed;
        }
    }
}
