//! The reservation API as a route target. Paths are relative to the route's prefix:
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/inventories` | every inventory with its figures |
//! | GET | `/inventories/{id}` | one inventory |
//! | POST | `/inventories/{id}/claims` | claim: `{user, quantity, units, hold, idempotency_key}` |
//! | GET | `/inventories/{id}/claims?user=U` | a user's claims |
//! | GET | `/claims/{claim}?user=U` | one claim, with its waitlist position |
//! | POST | `/claims/{claim}/confirm` | turn a hold into a confirmed claim |
//! | POST | `/claims/{claim}/cancel` (or DELETE `/claims/{claim}`) | give a claim up |
//! | GET | `/claims/{claim}/events?user=U` | Server-Sent Events: promotion, expiry, confirmation |
//!
//! The user is the `reservations.user_header` header when that is configured (set by the site's own
//! authentication), otherwise the `user` field or query parameter. A claim is only shown to or changed by
//! its own user; anyone else is told it does not exist.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use spillway_core::reserve::{Claim, ClaimError, ClaimRequest};

use super::{ClaimParts, ReserveHandle, claim_json, inventory_json, inventory_with_units_json};
use crate::body::{BodyTooLarge, full};
use crate::error::GatewayError;
use crate::pipeline::{Outcome, ProxyRequest, RequestCtx, Target};

/// Longest user id or idempotency key accepted; both are kept in memory and in the ledger.
const MAX_ID_BYTES: usize = 256;

#[derive(Debug)]
pub struct ReserveTarget {
    /// Absent when the config is only being checked: nothing is opened then.
    handle: Option<Arc<ReserveHandle>>,
    /// The route's prefix without a trailing slash ("" for "/").
    prefix: String,
    user_header: Option<HeaderName>,
}

impl ReserveTarget {
    pub fn new(handle: Option<Arc<ReserveHandle>>, route_path: &str, user_header: Option<&str>) -> Self {
        Self {
            handle,
            prefix: route_path.trim_end_matches('/').to_string(),
            user_header: user_header.and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
        }
    }
}

impl Target for ReserveTarget {
    fn call<'a>(&'a self, req: ProxyRequest, _ctx: &'a RequestCtx) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let handle = self.handle.as_ref().ok_or(GatewayError::ReservationsOff)?;
            let path = req.uri().path().strip_prefix(self.prefix.as_str()).unwrap_or("").to_string();
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            let method = req.method().clone();
            let call = Call { target: self, handle, req };
            let outcome = match (segments.as_slice(), method) {
                (["inventories"], Method::GET) => call.list_inventories(),
                (["inventories", id], Method::GET) => call.show_inventory(id),
                // Built from the durable decision alone, so it needs no settling (below).
                (["inventories", id, "claims"], Method::POST) => return call.claim(id).await,
                (["inventories", id, "claims"], Method::GET) => call.user_claims(id),
                (["claims", claim], Method::GET) => call.show_claim(claim),
                (["claims", claim, "confirm"], Method::POST) => call.confirm(claim).await,
                (["claims", claim, "cancel"], Method::POST) | (["claims", claim], Method::DELETE) => {
                    call.cancel(claim).await
                }
                (["claims", claim, "events"], Method::GET) => call.events(claim),
                (["inventories"] | ["inventories", _] | ["inventories", _, "claims"], _)
                | (["claims", _] | ["claims", _, "confirm" | "cancel" | "events"], _) => {
                    Err(GatewayError::MethodNotAllowed)
                }
                _ => Err(ClaimError::NotFound("endpoint").into()),
            };
            // Reads come from memory, which may run ahead of the ledger: answer only once what was read is
            // durable, so no answer shows state a crash could undo.
            if outcome.is_ok() {
                handle.settle().await?;
            }
            outcome
        })
    }
}

/// What a claim's body may say. Every field is optional: the user may come from a header, the key from
/// `Idempotency-Key`, and a claim is for one item by default. Public so that the fuzzer reads bodies exactly
/// as the API does.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    pub user: Option<String>,
    pub quantity: Option<u32>,
    #[serde(default)]
    pub units: Vec<String>,
    /// Defaults to holding when the inventory holds (the engine decides).
    pub hold: Option<bool>,
    pub idempotency_key: Option<String>,
}

impl ClaimBody {
    /// The body as the API reads it: JSON with only the fields above (an empty body reads as `{}`).
    pub fn parse(bytes: &[u8]) -> Result<Self, GatewayError> {
        parse_json(bytes)
    }

    /// The engine's request, for `user` (already chosen from the header or the body). The key comes from the
    /// header or the body, which must agree; without either a retry is a new claim.
    pub fn into_request(
        self,
        inventory: &str,
        user: String,
        header_key: Option<String>,
        entropy: &crate::clock::Entropy,
    ) -> Result<ClaimRequest, GatewayError> {
        let key = match (header_key, self.idempotency_key) {
            (Some(h), Some(b)) if h != b => {
                return Err(invalid("the Idempotency-Key header and idempotency_key field differ"));
            }
            (Some(k), _) | (None, Some(k)) => k,
            // Without a key a retry is a new claim; the per-user limit still stops it from taking twice.
            (None, None) => format!("auto-{:032x}", entropy.u128()),
        };
        check_id("idempotency_key", &key)?;
        let named = u32::try_from(self.units.len()).map_err(|_| invalid("too many units"))?;
        let quantity = self.quantity.unwrap_or(named.max(1));
        Ok(ClaimRequest {
            inventory: inventory.to_string(),
            user,
            quantity,
            units: self.units,
            hold: self.hold,
            idempotency_key: key,
        })
    }
}

/// The user field of confirm and cancel bodies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    user: Option<String>,
}

struct Call<'a> {
    target: &'a ReserveTarget,
    handle: &'a Arc<ReserveHandle>,
    req: ProxyRequest,
}

impl Call<'_> {
    fn list_inventories(&self) -> Outcome {
        let now = self.handle.now_ms();
        let all: Vec<_> = self.handle.inventories().iter().map(|(s, c)| inventory_json(s, c, now)).collect();
        Ok(json(StatusCode::OK, &serde_json::json!({ "inventories": all })))
    }

    fn show_inventory(&self, id: &str) -> Outcome {
        let (spec, counts) = self.handle.inventory(id).ok_or(ClaimError::NotFound("inventory"))?;
        let units = self.handle.units(id).unwrap_or_default();
        Ok(json(StatusCode::OK, &inventory_with_units_json(&spec, &counts, &units, self.handle.now_ms())))
    }

    async fn claim(self, inventory: &str) -> Outcome {
        let header_key = header_str(&self.req, "idempotency-key")?;
        let header_user = self.header_user()?;
        let query_user = self.query("user");
        let body: ClaimBody = read_json(self.req).await?;
        let user = pick_user(self.target, header_user, body.user.clone().or(query_user))?;
        let request = body.into_request(inventory, user, header_key, self.handle.entropy())?;
        let reply = self.handle.claim(&request).await?;
        // A retry is told what the first request was told, whatever happened to the claim since.
        let claim = ClaimParts {
            id: reply.claim,
            inventory: &request.inventory,
            user: &request.user,
            quantity: reply.quantity,
            units: &reply.units,
        };
        let status = match (reply.replayed, reply.position) {
            (true, _) => StatusCode::OK,
            (false, Some(_)) => StatusCode::ACCEPTED,
            (false, None) => StatusCode::CREATED,
        };
        let body = claim.view(reply.status, reply.position, self.handle.now_ms(), Some(reply.replayed));
        let mut response = json(status, &body);
        let location = format!("{}/claims/{}", self.target.prefix, reply.claim);
        if let Ok(v) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(LOCATION, v);
        }
        Ok(response)
    }

    fn user_claims(&self, inventory: &str) -> Outcome {
        let user = pick_user(self.target, self.header_user()?, self.query("user"))?;
        if !self.handle.has_inventory(inventory) {
            return Err(ClaimError::NotFound("inventory").into());
        }
        let now = self.handle.now_ms();
        let mine = self.handle.claims_of(inventory, &user);
        let claims: Vec<_> = mine.iter().map(|c| claim_json(c, self.handle.position(c.id), now, None)).collect();
        Ok(json(StatusCode::OK, &serde_json::json!({ "user": user, "inventory": inventory, "claims": claims })))
    }

    fn show_claim(&self, claim: &str) -> Outcome {
        let claim = self.own_claim(claim, self.query("user"))?;
        let position = self.handle.position(claim.id);
        Ok(json(StatusCode::OK, &claim_json(&claim, position, self.handle.now_ms(), None)))
    }

    async fn confirm(self, claim: &str) -> Outcome {
        let query_user = self.query("user");
        let header_user = self.header_user()?;
        let (target, handle) = (self.target, self.handle);
        let body: UserBody = read_json(self.req).await?;
        let claim = own(target, handle, claim, header_user, body.user.or(query_user))?;
        handle.confirm(claim.id).await?;
        let claim = handle.get(claim.id).ok_or(ClaimError::NotFound("claim"))?;
        Ok(json(StatusCode::OK, &claim_json(&claim, None, handle.now_ms(), None)))
    }

    async fn cancel(self, claim: &str) -> Outcome {
        let query_user = self.query("user");
        let header_user = self.header_user()?;
        let (target, handle) = (self.target, self.handle);
        let body: UserBody = read_json(self.req).await?;
        let claim = own(target, handle, claim, header_user, body.user.or(query_user))?;
        handle.cancel(claim.id).await?;
        let claim = handle.get(claim.id).ok_or(ClaimError::NotFound("claim"))?;
        Ok(json(StatusCode::OK, &claim_json(&claim, None, handle.now_ms(), None)))
    }

    fn events(&self, claim: &str) -> Outcome {
        let claim = self.own_claim(claim, self.query("user"))?;
        let changes = self.handle.watch(claim.id);
        Ok(super::sse::stream(self.handle.clone(), claim.id, changes))
    }

    fn own_claim(&self, claim: &str, other_user: Option<String>) -> Result<Claim, GatewayError> {
        own(self.target, self.handle, claim, self.header_user()?, other_user)
    }

    fn header_user(&self) -> Result<Option<String>, GatewayError> {
        let Some(name) = &self.target.user_header else { return Ok(None) };
        match self.req.headers().get(name).map(|v| v.to_str()) {
            Some(Ok(v)) if !v.is_empty() => Ok(Some(v.to_string())),
            _ => Err(GatewayError::Unauthenticated(format!("the {name} header is required"))),
        }
    }

    fn query(&self, name: &str) -> Option<String> {
        let query = self.req.uri().query()?;
        form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

/// The claim if it exists and belongs to the caller; "not found" otherwise, so ids reveal nothing.
fn own(
    target: &ReserveTarget,
    handle: &ReserveHandle,
    claim: &str,
    header_user: Option<String>,
    other_user: Option<String>,
) -> Result<Claim, GatewayError> {
    let user = pick_user(target, header_user, other_user)?;
    let id: u64 = claim.parse().map_err(|_| ClaimError::NotFound("claim"))?;
    match handle.get(id) {
        Some(c) if *c.user == *user => Ok(c),
        _ => Err(ClaimError::NotFound("claim").into()),
    }
}

/// The authenticated header wins; the client's own word is used only when no header is configured.
fn pick_user(
    target: &ReserveTarget,
    header_user: Option<String>,
    client_user: Option<String>,
) -> Result<String, GatewayError> {
    let user = if target.user_header.is_some() { header_user } else { client_user };
    let user = user.ok_or_else(|| invalid("user is required (a \"user\" field or ?user=)"))?;
    check_id("user", &user)?;
    Ok(user)
}

fn check_id(field: &str, value: &str) -> Result<(), GatewayError> {
    if value.is_empty() || value.len() > MAX_ID_BYTES {
        return Err(invalid(&format!("{field} must be 1-{MAX_ID_BYTES} bytes")));
    }
    Ok(())
}

fn header_str(req: &ProxyRequest, name: &str) -> Result<Option<String>, GatewayError> {
    match req.headers().get(name).map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v.to_string())),
        Some(Err(_)) => Err(invalid(&format!("the {name} header must be visible ASCII"))),
    }
}

/// The whole body as JSON; an empty body reads as `{}`.
async fn read_json<T: for<'de> Deserialize<'de> + Default>(req: ProxyRequest) -> Result<T, GatewayError> {
    let bytes: Bytes = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Err(match e.downcast_ref::<BodyTooLarge>() {
                Some(too_large) => GatewayError::BodyTooLarge { limit: too_large.limit },
                None => invalid("the request body could not be read"),
            });
        }
    };
    parse_json(&bytes)
}

fn parse_json<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8]) -> Result<T, GatewayError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| invalid(&format!("the body is not the JSON expected: {e}")))
}

fn invalid(message: &str) -> GatewayError {
    ClaimError::Invalid(message.to_string()).into()
}

pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<crate::body::ResponseBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{\"error\":\"internal\"}".to_vec());
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
