//! The one place where a failed request becomes an HTTP response.
//!
//! Every error carries a stable `error` code that clients may match on, and is rendered as JSON for API
//! clients or as a small HTML page for browsers.
//!
//! ## Errors to responses, in one place
//!
//! Every failure on the request path is a `GatewayError`. `into_response` renders it in one of two formats:
//!
//! - **JSON** (the default): `{"error": CODE, "message": TEXT}` with `Content-Type: application/json`.
//! - **A small HTML page**: used when any `Accept` header contains `text/html`, as browsers send.
//!
//! Messages never include internal addresses or error chains. Those go to the logs: `handle` logs every 5xx
//! `GatewayError` at `warn` level with the request id.
//!
//! The `error` codes are stable and part of the public contract:
//!
//! | Code | HTTP status | When |
//! |---|---|---|
//! | `no_route` | 404 Not Found | No route matches the host and path. |
//! | `headers_too_large` | 431 Request Header Fields Too Large | Request line and headers exceed `server.max_header_bytes`. |
//! | `body_too_large` | 413 Payload Too Large | Body exceeds `server.max_body_bytes`, announced or while streaming. |
//! | `upstream_unavailable` | 502 Bad Gateway | The upstream could not be reached, or the exchange failed. |
//! | `upstream_timeout` | 504 Gateway Timeout | No response headers within `request_timeout`, or the connect timed out. |
//! | `unknown_room` | 404 Not Found | A reserved endpoint names a room that is not configured. |
//! | `method_not_allowed` | 405 Method Not Allowed | A reserved endpoint with the wrong method, such as `POST …/status`. |
//! | `room_unavailable` | 503 Service Unavailable | The room's store could not answer (`StoreError`). The message is only "the waiting room is briefly unavailable". Only with `on_store_error = "closed"` (the default); a pass already given stays good. |
//! | `limit_unavailable` | 503 Service Unavailable | A limit's store could not answer, and the limit has `on_store_error = "closed"` (the default). The message is only "rate limiting is briefly unavailable". |
//! | `rate_limited` | 429 Too Many Requests | A band of a `limit:NAME` policy refused the request (action `reject`, or `throttle` when `max_wait` is not enough). The message is `rate limit NAME exceeded; retry after N s`. The response also has `Retry-After: N`, the refusal's wait in whole seconds, rounded up and at least 1, and the `RateLimit-Policy` and `RateLimit` headers. |
//! | `denied` | 403 Forbidden | The client address is in a limit's `deny` list. The message is "requests from this address are not accepted". |
//!
//! A request held by a waiting room is not an error: its `503` is the room's own answer (see `pipeline.rs`). A `429` is
//! rendered from `GatewayError::RateLimited` by the limit policy itself and returned as an ordinary response,
//! so that it can carry the `RateLimit` headers. `denied` goes through the usual error path in `handle`.
//!
//! The admin listener has codes of its own in the same JSON shape: `unauthorized` (401) and `not_found`
//! (404), and for the room API `unknown_room` (404), `invalid_body` (400) and `room_unavailable` (503). A
//! known admin path called with a method it does not serve gets axum's bare `405` with an `Allow` header and
//! no body.

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::body::{ResponseBody, full};

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no route matches this host and path")]
    NoRoute,
    #[error("request headers exceed {limit} bytes")]
    HeadersTooLarge { limit: u64 },
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("upstream {upstream} is unavailable: {reason}")]
    UpstreamUnavailable { upstream: String, reason: String },
    #[error("upstream {upstream} did not answer within {}", humantime::format_duration(*.timeout))]
    UpstreamTimeout { upstream: String, timeout: Duration },
    #[error("no waiting room named {0:?}")]
    UnknownRoom(String),
    #[error("method not allowed here")]
    MethodNotAllowed,
    #[error("waiting room state is unavailable: {0}")]
    RoomUnavailable(#[from] spillway_store::StoreError),
    #[error("rate limit state is unavailable: {0}")]
    LimitUnavailable(spillway_store::StoreError),
    #[error("rate limit {limit} exceeded; retry after {} s", retry_after_secs(*.retry_after))]
    RateLimited { limit: String, retry_after: Duration },
    #[error("requests from this address are not accepted")]
    Denied,
    #[error(transparent)]
    Reserve(#[from] spillway_reserve::ReserveError),
    #[error("the reservation engine is not running in this process")]
    ReservationsOff,
    #[error("{0}")]
    Unauthenticated(String),
    #[error("the circuit breaker for {scope} is open; retry after {} s", retry_after_secs(*.retry_after))]
    CircuitOpen { scope: String, retry_after: Duration },
    #[error("the origin is overloaded; retry after {} s", retry_after_secs(*.retry_after))]
    Overloaded { retry_after: Duration },
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    BadPath(#[from] spillway_core::path::PathError),
    #[error("the request target exceeds {limit} bytes")]
    UriTooLong { limit: usize },
    /// The client's request body broke off or was malformed: its fault, never counted against an upstream.
    #[error("the request body could not be read: {0}")]
    ClientBody(String),
}

impl From<spillway_core::reserve::ClaimError> for GatewayError {
    fn from(e: spillway_core::reserve::ClaimError) -> Self {
        Self::Reserve(e.into())
    }
}

/// The reservation contract's statuses: a claim that lost to the state of the stock is a conflict (409), a
/// hold that ran out is gone (410), and a ledger that cannot write makes the engine unavailable (503).
fn reserve_status(e: &spillway_reserve::ReserveError) -> StatusCode {
    use spillway_core::reserve::ClaimError as C;
    match e {
        spillway_reserve::ReserveError::Ledger(_) => StatusCode::SERVICE_UNAVAILABLE,
        spillway_reserve::ReserveError::Claim(c) => match c {
            C::SoldOut | C::LimitReached(_) | C::UnitTaken(_) | C::Closed | C::IdempotencyConflict(_) => {
                StatusCode::CONFLICT
            }
            C::Invalid(_) => StatusCode::BAD_REQUEST,
            C::NotFound(_) => StatusCode::NOT_FOUND,
            C::HoldExpired => StatusCode::GONE,
        },
    }
}

/// `Retry-After` is whole seconds; round up so a client that obeys it is not refused again.
fn retry_after_secs(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000_000).max(1) as u64
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UpstreamUnavailable { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::UnknownRoom(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RoomUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::LimitUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Denied => StatusCode::FORBIDDEN,
            Self::Reserve(e) => reserve_status(e),
            Self::ReservationsOff => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::CircuitOpen { .. } | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequest(_) | Self::BadPath(_) | Self::ClientBody(_) => StatusCode::BAD_REQUEST,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
        }
    }

    /// The request itself was at fault (its body, its framing), so the call says nothing about the upstream:
    /// no breaker, adaptive limit or ejection may count it.
    pub fn is_client_fault(&self) -> bool {
        matches!(self, Self::ClientBody(_) | Self::BodyTooLarge { .. } | Self::BadRequest(_) | Self::BadPath(_))
    }

    /// Stable machine-readable code; part of the public contract.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::UpstreamUnavailable { .. } => "upstream_unavailable",
            Self::UpstreamTimeout { .. } => "upstream_timeout",
            Self::UnknownRoom(_) => "unknown_room",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RoomUnavailable(_) => "room_unavailable",
            Self::RateLimited { .. } => "rate_limited",
            Self::LimitUnavailable(_) => "limit_unavailable",
            Self::Denied => "denied",
            Self::Reserve(spillway_reserve::ReserveError::Claim(c)) => c.code(),
            Self::Reserve(spillway_reserve::ReserveError::Ledger(_)) => "ledger_unavailable",
            Self::ReservationsOff => "reservations_unavailable",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Overloaded { .. } => "overloaded",
            Self::BadRequest(_) => "bad_request",
            Self::BadPath(_) => "bad_path",
            Self::UriTooLong { .. } => "uri_too_long",
            Self::ClientBody(_) => "bad_request_body",
        }
    }

    /// What the client is told: no internal addresses or error chains, which belong in the logs.
    pub fn public_message(&self) -> String {
        match self {
            Self::UpstreamUnavailable { upstream, .. } => {
                format!("upstream {upstream} is unavailable")
            }
            Self::RoomUnavailable(_) => "the waiting room is briefly unavailable".to_string(),
            Self::LimitUnavailable(_) => "rate limiting is briefly unavailable".to_string(),
            Self::Reserve(spillway_reserve::ReserveError::Ledger(_)) => {
                "the reservation ledger cannot write; retry later with the same idempotency key".to_string()
            }
            other => other.to_string(),
        }
    }

    pub fn into_response(self, accept: Accept) -> Response<ResponseBody> {
        let status = self.status();
        let message = self.public_message();
        let (content_type, body) = match accept {
            Accept::Html => ("text/html; charset=utf-8", html_page(status, &message)),
            Accept::Json => {
                // Borrowed fields, not a `json!` value: in a sold-out storm nearly every answer is one of these.
                #[derive(serde::Serialize)]
                struct Body<'a> {
                    error: &'a str,
                    message: &'a str,
                }
                let body = serde_json::to_string(&Body { error: self.code(), message: &message });
                ("application/json", body.unwrap_or_else(|_| r#"{"error":"internal"}"#.to_string()))
            }
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Self::RateLimited { retry_after, .. }
        | Self::CircuitOpen { retry_after, .. }
        | Self::Overloaded { retry_after } = &self
        {
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after_secs(*retry_after)));
        }
        response
    }
}

/// What kind of error body the client can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Json,
    Html,
}

impl Accept {
    /// Browsers announce `text/html`; everything else (curl, apps, SDKs) gets JSON.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let html = headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"));
        if html { Self::Html } else { Self::Json }
    }
}

fn html_page(status: StatusCode, message: &str) -> String {
    let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>{title}</title></head>\n<body style=\"font-family:system-ui,sans-serif;\
         max-width:40rem;margin:4rem auto;padding:0 1rem\"><h1>{title}</h1><p>{}</p>\
         <p>Please try again in a moment.</p></body></html>\n",
        escape(message)
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
