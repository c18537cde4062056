//! The admin listener: metrics, health and readiness, plus each component's own admin API (rooms in
//! `room/admin.rs`, inventories in `reserve/admin.rs`), all behind a bearer token except `/healthz`, which a
//! liveness probe must reach without credentials.
//!
//! ## Admin listener
//!
//! The admin listener is a separate axum server (HTTP/1.1) on `server.admin_listen`:
//!
//! | Path | Token | Answer |
//! |---|---|---|
//! | `/healthz` | not needed | `200 {"status":"alive"}`, for liveness probes; `503 {"status":"ledger_failed","error":…}` once the reservation ledger has stopped writing, since only a restart helps then. |
//! | `/readyz` | required | `200 {"status":"ready"}` when ready; `503` with `"starting"`, `"draining"` or `"ledger_failed"` otherwise. |
//! | `/metrics` | required | The metrics above, as `application/openmetrics-text`. Every room publishes its figures first. |
//! | `GET /rooms` | required | `{"rooms": [...]}`: every room of the current Runtime with its live figures. |
//! | `GET /rooms/NAME` | required | One room. |
//! | `PATCH /rooms/NAME` | required | A JSON body with `new_users_per_minute` and/or `total_active_users` (`null` removes the cap). Other fields, and `0` for either, get `400` `invalid_body`. Applied at once (`RoomHandle::change`). |
//! | `POST /rooms/NAME/pause`, `/resume`, `/reset` | required | Pause admissions, resume them, or empty the room and bump its generation so every earlier ticket and pass stops counting. Any other action gets `404` `not_found`. |
//! | anything else | not needed | `404 {"error":"not_found",…}` |
//!
//! The other room endpoints answer with that room's JSON (the fields are listed in `docs/WAITING_ROOM.md`).
//! A name that is not configured gets `404` `unknown_room`, and a store that cannot answer `503`
//! `room_unavailable`.
//! Live changes are kept as overrides in the `RoomHandle`, on top of the file's settings, and pushed to the
//! store with `RoomStore::configure`; `lifecycle.rs` says how they survive a reload.
//!
//! The token is sent as `Authorization: Bearer TOKEN` and compared in constant time. A missing or wrong token
//! gets `401` with `WWW-Authenticate: Bearer realm="spillway-admin"`. The expected token is read from the
//! current Runtime on every request, so a reload changes it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use spillway_config::PolicyKind;

use crate::component::module;
use crate::lifecycle::Phase;
use crate::server::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    let mut protected = Router::new().route("/metrics", get(metrics)).route("/readyz", get(readyz));
    for kind in PolicyKind::ALL {
        protected = protected.merge(module(kind).admin());
    }
    let protected = protected
        .merge(crate::reserve::admin::routes())
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

/// The answer both health checks give once a component has failed in a way only a restart mends (the
/// reservation ledger stopped writing).
fn ledger_failed(shared: &Shared) -> Option<Response> {
    let error = shared.runtime.load().components().find_map(|c| c.failure())?;
    Some(json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "status": "ledger_failed", "error": error })))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    // Every component publishes at scrape time too, so a scrape never shows a second-old figure.
    let runtime = shared.runtime.load_full();
    for component in runtime.components() {
        component.publish().await;
    }
    let mut response = shared.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
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

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, serde_json::json!({ "error": code, "message": message }))
}

pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

/// Compares without an early exit, so response timing does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
