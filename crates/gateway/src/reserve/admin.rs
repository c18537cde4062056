//! The reservation engine's admin API: `GET /inventories`, `GET /inventories/ID`, `POST /inventories/ID`
//! (body: the keys of `[inventories.NAME]` as JSON).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use spillway_config::InventoryConfig;

use super::{ReserveHandle, inventory_json, spec_from_config};
use crate::admin::{error, json};
use crate::server::Shared;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/inventories", get(list_inventories))
        .route("/inventories/{id}", get(show_inventory).post(create_inventory))
}

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
