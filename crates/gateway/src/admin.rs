//! The admin listener: metrics, health, readiness, and (later) the admin API. Bearer token required for
//! everything but `/healthz`, which a liveness probe must reach without credentials.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::lifecycle::Phase;
use crate::server::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn_with_state(shared.clone(), require_token));
    Router::new().route("/healthz", get(healthz)).merge(protected).fallback(not_found).with_state(shared)
}

async fn healthz() -> Response {
    json(StatusCode::OK, serde_json::json!({ "status": "alive" }))
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let phase = shared.lifecycle.phase();
    let status = if phase == Phase::Ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json(status, serde_json::json!({ "status": phase.as_str() }))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
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
