//! The admin listener: metrics, health, readiness, and the admin API for rooms. Bearer token required for
//! everything but `/healthz`, which a liveness probe must reach without credentials.
//!
//! Rooms: `GET /rooms`, `GET /rooms/NAME`, `PATCH /rooms/NAME` (`new_users_per_minute`,
//! `total_active_users`), `POST /rooms/NAME/pause`, `/resume`, `/reset`.
//!
//! Inventories: `GET /inventories`, `GET /inventories/ID`, `POST /inventories/ID` (body: the keys of
//! `[inventories.NAME]` as JSON).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use spillway_config::InventoryConfig;
use spillway_core::room::{Phase as RoomPhase, Queueing, Snapshot};

use crate::lifecycle::Phase;
use crate::reserve::{ReserveHandle, inventory_json, spec_from_config};
use crate::room::{Change, RoomHandle};
use crate::server::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route("/rooms", get(list_rooms))
        .route("/rooms/{name}", get(show_room).patch(change_room))
        .route("/rooms/{name}/{action}", post(room_action))
        .route("/inventories", get(list_inventories))
        .route("/inventories/{id}", get(show_inventory).post(create_inventory))
        .layer(middleware::from_fn_with_state(shared.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .fallback(not_found)
        .layer(middleware::map_response(json_errors))
        .with_state(shared)
}

/// Serves the admin listener until `stop`, with the public listener's bounds on slow and idle clients: a
/// header read timeout, and an idle connection closed after as long.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, stop: tokio::sync::watch::Receiver<bool>) {
    let timeout = shared.runtime.load().config.server.header_read_timeout.get();
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(timeout).keep_alive(true);
    let builder = builder.http1_only();
    let app = router(shared);
    // Admin calls are short: whatever is still open a second after the stop is cut off.
    let grace = || std::time::Duration::from_secs(1);
    crate::conn::accept_until(
        listener,
        stop,
        grace,
        "admin",
        || {},
        |stream, peer, watcher| {
            let (builder, app) = (builder.clone(), app.clone());
            // The router is a cheap handle: each request calls its own copy.
            let handler = move |req: hyper::Request<hyper::body::Incoming>| {
                let mut app = app.clone();
                async move {
                    let Ok(response) = tower_service::Service::call(&mut app, req).await;
                    response
                }
            };
            async move { crate::conn::serve(stream, &builder, watcher, timeout, peer, handler).await }
        },
    )
    .await;
}

/// Every error answer in the JSON shape, including those the router makes itself (405 for a known path
/// with another method, 400 for a path it cannot decode, 413 for a body too large), which come bare.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    let message = status.canonical_reason().unwrap_or("error").to_ascii_lowercase();
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Alive unless the ledger has stopped: then only a restart helps (it rebuilds the state from what is really
/// on disk), so a liveness probe should fail and the supervisor restart the process.
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    ledger_failed(&shared).unwrap_or_else(|| json(StatusCode::OK, serde_json::json!({ "status": "alive" })))
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(failed) = ledger_failed(&shared) {
        return failed;
    }
    let phase = shared.lifecycle.phase();
    let status = if phase == Phase::Ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json(status, serde_json::json!({ "status": phase.as_str() }))
}

/// The answer both health checks give once the reservation ledger has stopped writing.
fn ledger_failed(shared: &Shared) -> Option<Response> {
    let error = shared.runtime.load().reservations.as_ref().and_then(|r| r.ledger_failure())?;
    Some(json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "status": "ledger_failed", "error": error })))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    // Rooms publish their figures at scrape time too, so a scrape never shows a second-old line.
    for room in shared.runtime.load_full().rooms.values() {
        if let Err(e) = room.tick(true).await {
            tracing::warn!(room = %room.name, error = %e, "cannot read the room's figures");
        }
    }
    let runtime = shared.runtime.load_full();
    if let Some(reservations) = &runtime.reservations {
        reservations.publish();
    }
    for shield in runtime.shields.values() {
        shield.publish();
    }
    for cache in runtime.caches.values() {
        cache.publish();
    }
    let mut response = shared.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

// === rooms ===

async fn list_rooms(State(shared): State<Arc<Shared>>) -> Response {
    let runtime = shared.runtime.load_full();
    let mut rooms = Vec::new();
    for room in runtime.rooms.values() {
        match room.snapshot().await {
            Ok(snapshot) => rooms.push(room_json(room, &snapshot)),
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, "room_unavailable", &e.to_string()),
        }
    }
    json(StatusCode::OK, serde_json::json!({ "rooms": rooms }))
}

async fn show_room(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let runtime = shared.runtime.load_full();
    let Some(room) = runtime.rooms.get(&name) else { return unknown_room(&name) };
    respond_with_room(room).await
}

async fn change_room(State(shared): State<Arc<Shared>>, Path(name): Path<String>, body: Bytes) -> Response {
    let runtime = shared.runtime.load_full();
    let Some(room) = runtime.rooms.get(&name) else { return unknown_room(&name) };
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
    respond_with_room(room).await
}

async fn room_action(State(shared): State<Arc<Shared>>, Path((name, action)): Path<(String, String)>) -> Response {
    let runtime = shared.runtime.load_full();
    let Some(room) = runtime.rooms.get(&name) else { return unknown_room(&name) };
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
    respond_with_room(room).await
}

// === inventories ===

fn reservations(shared: &Shared) -> Option<Arc<ReserveHandle>> {
    shared.runtime.load().reservations.clone()
}

fn reservations_off() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "reservations_unavailable",
        "the reservation engine is off: add a route with target = \"reservations\" or an [inventories.NAME]",
    )
}

async fn list_inventories(State(shared): State<Arc<Shared>>) -> Response {
    let Some(r) = reservations(&shared) else { return reservations_off() };
    let now = r.now_ms();
    let all: Vec<_> = r.inventories().iter().map(|(spec, counts)| inventory_json(spec, counts, now)).collect();
    json(StatusCode::OK, serde_json::json!({ "inventories": all, "ledger": r.ledger_path().display().to_string() }))
}

async fn show_inventory(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Some(r) = reservations(&shared) else { return reservations_off() };
    match r.inventory(&id) {
        Some((spec, counts)) => json(StatusCode::OK, inventory_json(&spec, &counts, r.now_ms())),
        None => error(StatusCode::NOT_FOUND, "not_found", &format!("no inventory named {id:?}")),
    }
}

/// The body is `[inventories.NAME]`'s keys as JSON: `{"stock": 1000, "per_user_limit": 1}`.
async fn create_inventory(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(r) = reservations(&shared) else { return reservations_off() };
    let config: InventoryConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_body", &e.to_string()),
    };
    let spec = match spec_from_config(&id, &config) {
        Ok(spec) => spec,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_body", &e),
    };
    if r.inventory(&id).is_some() {
        return error(StatusCode::CONFLICT, "inventory_exists", &format!("inventory {id:?} exists"));
    }
    if let Err(e) = r.create_inventory(spec).await {
        let e = crate::GatewayError::from(e);
        return error(e.status(), e.code(), &e.public_message());
    }
    tracing::info!(inventory = %id, "inventory created through the admin API");
    match r.inventory(&id) {
        Some((spec, counts)) => json(StatusCode::CREATED, inventory_json(&spec, &counts, r.now_ms())),
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the inventory vanished"),
    }
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
        },
        "seed": s.seed,
        "lottery": s.lottery.map(|l| serde_json::json!({
            "seed": l.seed, "entrants": l.entrants, "drawn_at": l.drawn_at,
        })),
        "bytes_held": s.bytes_held,
    })
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
}

async fn require_token(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let runtime = shared.runtime.load();
    let expected = runtime.config.server.admin_token.as_ref().map(|t| t.expose().as_bytes());
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::as_bytes);
    match (expected, given) {
        (Some(expected), Some(given)) if constant_time_eq(expected, given) => next.run(request).await,
        (_, None) => unauthorized("missing bearer token"),
        _ => unauthorized("wrong bearer token"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"spillway-admin\""));
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, serde_json::json!({ "error": code, "message": message }))
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

/// Compares without an early exit, so response timing does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
