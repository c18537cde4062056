//! The rooms' admin API: `GET /rooms`, `GET /rooms/NAME`, `PATCH /rooms/NAME` (`new_users_per_minute`,
//! `total_active_users`), `POST /rooms/NAME/pause`, `/resume`, `/reset`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use spillway_config::PolicyKind;
use spillway_core::room::{Phase as RoomPhase, Queueing, Snapshot};

use super::{Change, RoomHandle};
use crate::admin::{error, json};
use crate::server::Shared;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/rooms", get(list_rooms))
        .route("/rooms/{name}", get(show_room).patch(change_room))
        .route("/rooms/{name}/{action}", post(room_action))
}

fn room(shared: &Shared, name: &str) -> Option<Arc<RoomHandle>> {
    shared.runtime.load().policies.get(PolicyKind::Room, name)
}

async fn list_rooms(State(shared): State<Arc<Shared>>) -> Response {
    let runtime = shared.runtime.load_full();
    let mut rooms = Vec::new();
    for (_, room) in runtime.policies.all::<RoomHandle>(PolicyKind::Room) {
        match room.snapshot().await {
            Ok(snapshot) => rooms.push(room_json(&room, &snapshot)),
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, "room_unavailable", &e.to_string()),
        }
    }
    json(StatusCode::OK, serde_json::json!({ "rooms": rooms }))
}

async fn show_room(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let Some(room) = room(&shared, &name) else { return unknown_room(&name) };
    respond_with_room(&room).await
}

async fn change_room(State(shared): State<Arc<Shared>>, Path(name): Path<String>, body: Bytes) -> Response {
    let Some(room) = room(&shared, &name) else { return unknown_room(&name) };
    let change: Change = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_body", &format!("{e}")),
    };
    if change.new_users_per_minute == Some(0) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "new_users_per_minute: must be at least 1 (pause the room to stop admissions)",
        );
    }
    if change.total_active_users == Some(Some(0)) {
        return error(StatusCode::BAD_REQUEST, "invalid_body", "total_active_users: must be at least 1, or null");
    }
    if let Err(e) = room.change(change).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, "room_unavailable", &e.to_string());
    }
    tracing::info!(room = %name, "room settings changed through the admin API");
    respond_with_room(&room).await
}

async fn room_action(State(shared): State<Arc<Shared>>, Path((name, action)): Path<(String, String)>) -> Response {
    let Some(room) = room(&shared, &name) else { return unknown_room(&name) };
    let done = match action.as_str() {
        "pause" => room.pause().await,
        "resume" => room.resume().await,
        "reset" => room.reset().await,
        _ => return error(StatusCode::NOT_FOUND, "not_found", "room actions are pause, resume and reset"),
    };
    if let Err(e) = done {
        return error(StatusCode::SERVICE_UNAVAILABLE, "room_unavailable", &e.to_string());
    }
    tracing::info!(room = %name, action, "room action through the admin API");
    respond_with_room(&room).await
}

async fn respond_with_room(room: &RoomHandle) -> Response {
    match room.snapshot().await {
        Ok(snapshot) => json(StatusCode::OK, room_json(room, &snapshot)),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "room_unavailable", &e.to_string()),
    }
}

fn unknown_room(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, "unknown_room", &format!("no room named {name:?}"))
}

fn room_json(room: &RoomHandle, s: &Snapshot) -> serde_json::Value {
    let state = match (s.phase, s.paused, s.settings.queueing) {
        (RoomPhase::Ended, ..) => "closed",
        (RoomPhase::NotOpen, ..) => "not_open",
        (_, true, _) => "paused",
        (RoomPhase::Prequeue, ..) => "prequeue",
        (_, _, Queueing::Reject) => "rejecting",
        (_, _, Queueing::Passthrough) => "passthrough",
        _ => "open",
    };
    let settings = &s.settings;
    serde_json::json!({
        "name": &*room.name,
        "state": state,
        "generation": s.generation,
        "waiting": s.waiting,
        "active_sessions": s.active_sessions,
        "unclaimed": s.unclaimed,
        "estimated_per_minute": (s.estimated_per_minute * 10.0).round() / 10.0,
        "measured_per_minute": s.measured_per_minute.map(|r| (r * 10.0).round() / 10.0),
        "settings": {
            "new_users_per_minute": settings.new_users_per_minute,
            "queueing": format!("{:?}", settings.queueing).to_lowercase(),
            "activation": format!("{:?}", settings.activation).to_lowercase(),
            "session_renewal": settings.session_renewal,
            "total_active_users": settings.total_active_users,
            "session_duration_seconds": settings.session_duration,
            "queue_grace_seconds": settings.queue_grace,
            "opens_at": settings.opens_at,
            "prequeue_from": settings.prequeue_from,
            "closes_at": settings.closes_at,
            "max_waiting": settings.max_waiting,
        },
        "totals": {
            "joined": s.counters.joined,
            "released": s.counters.released,
            "admitted": s.counters.entered,
            "abandoned": s.counters.abandoned,
            "no_shows": s.counters.no_shows,
            "left": s.counters.left,
            "sessions_ended": s.counters.ended,
            "sessions_expired": s.counters.expired,
        },
        "seed": s.seed,
        "lottery": s.lottery.map(|l| serde_json::json!({
            "seed": l.seed, "entrants": l.entrants, "drawn_at": l.drawn_at,
        })),
        "bytes_held": s.bytes_held,
    })
}
