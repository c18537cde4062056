//! Endpoints under `/_spillway/` that every route answers, ahead of routing: a client's status in a room,
//! leaving a room, and the waiting page's assets. They never reach an origin.
//!
//! - `GET /_spillway/rooms/NAME/status`: the JSON status, and the pass when it is the client's turn;
//! - `POST /_spillway/rooms/NAME/leave`: gives up the place or ends the session;
//! - `GET /_spillway/assets/room.css`: the built-in page's stylesheet.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Response, StatusCode};
use spillway_core::room::{State, Status};

use super::{Gate, RoomHandle, Visitor, page};
use crate::body::{ResponseBody, full};
use crate::component::{Caller, Components};
use crate::error::{Accept, GatewayError};

/// Whether `rest` (the path after `/_spillway/`) is one of the rooms' endpoints.
pub fn serves(rest: &str) -> bool {
    rest == "assets/room.css" || rest.starts_with("rooms/")
}

pub async fn handle(rooms: &Components, caller: Caller<'_>) -> Result<Response<ResponseBody>, GatewayError> {
    let (rest, method, accept) = (caller.rest, caller.method, caller.accept);
    let visitor = Visitor { headers: caller.headers, client_ip: caller.client_ip, secure: caller.secure };
    if rest == "assets/room.css" {
        let mut response = text(StatusCode::OK, "text/css; charset=utf-8", page::STYLESHEET.to_string());
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
        return Ok(response);
    }
    let Some((name, action)) = rest.strip_prefix("rooms/").and_then(|r| r.split_once('/')) else {
        return Err(GatewayError::NoRoute);
    };
    let room = rooms
        .get::<RoomHandle>(spillway_config::PolicyKind::Room, name)
        .ok_or_else(|| GatewayError::UnknownRoom(name.to_string()))?;
    match (method, action) {
        (&Method::GET, "status") => status(&room, visitor).await,
        (&Method::POST, "leave") => leave(&room, visitor, accept).await,
        (_, "status" | "leave") => Err(GatewayError::MethodNotAllowed),
        _ => Err(GatewayError::NoRoute),
    }
}

/// Always 200 with the JSON status: polling the status is not an error, whatever the answer.
async fn status(room: &RoomHandle, visitor: Visitor<'_>) -> Result<Response<ResponseBody>, GatewayError> {
    let (status, set) = match room.gate(visitor).await? {
        Gate::Held(status, set) => (status, set),
        Gate::Through(set) => {
            let admitted = Status {
                state: State::Admitted,
                position: None,
                eta_seconds: Some(0),
                progress: Some(1.0),
                waiting: 0,
                opens_in: None,
            };
            (admitted, set)
        }
    };
    let refresh = room.refresh_after(&status);
    let mut response = text(StatusCode::OK, "application/json", room.status_json(&status, refresh));
    let h = response.headers_mut();
    h.insert(RETRY_AFTER, HeaderValue::from(refresh));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.extend(set);
    Ok(response)
}

async fn leave(
    room: &RoomHandle,
    visitor: Visitor<'_>,
    accept: Accept,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (left, set) = room.leave(visitor).await?;
    let mut response = match accept {
        Accept::Json => text(
            StatusCode::OK,
            "application/json",
            serde_json::json!({ "room": &*room.name, "state": "left", "had_place": left }).to_string(),
        ),
        Accept::Html => {
            text(StatusCode::OK, "text/html; charset=utf-8", leave_page(page::Lang::negotiate(visitor.headers)))
        }
    };
    response.headers_mut().extend(set);
    Ok(response)
}

fn leave_page(lang: page::Lang) -> String {
    let (title, body) = match lang {
        page::Lang::En => ("You left the line", "Your place has been given up. Come back any time to join again."),
        page::Lang::Ko => ("대기열에서 나왔습니다", "순서를 포기했습니다. 언제든 다시 들어오실 수 있습니다."),
    };
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/_spillway/assets/room.css\"></head>\
         <body><main><h1>{title}</h1><p>{body}</p></main></body></html>\n"
    )
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
