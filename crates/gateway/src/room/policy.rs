//! `room:NAME` on a route: requests without a valid pass get the waiting room instead of the origin.
//!
//! ## The room policy
//!
//! `"room:NAME"` becomes a `RoomPolicy` holding the room's `RoomHandle`. Its decision is
//! `RoomHandle::gate`, which reads two cookies per room, `spw_pass_NAME` and `spw_ticket_NAME`:
//!
//! 1. **Pass.** If the request carries a pass, it is verified with the signing keys alone
//!    (`Keyring::verify` in `crates/core/src/token.rs`: signature, kind, room, expiry, address binding), then
//!    its generation is compared with the room's generation, which the handle caches. No store lookup is
//!    needed to decide. If the pass is valid, `RoomStore::renew` is called with the session and its expiry;
//!    the model answers with a new expiry only when `session_renewal` is on and half the pass's life has gone,
//!    and then a re-signed pass is set. The request goes through. A pass that fails verification is counted
//!    in `spillway_room_tokens_refused_total` with its reason, its cookie is cleared, and the request carries
//!    on as if it had none.
//! 2. **Ticket.** Otherwise a ticket, if present, is verified the same way. A refused ticket is counted and
//!    treated as absent.
//! 3. **Visit.** `RoomStore::visit(now, ticket)` asks the model. The model may refuse a ticket whose place is
//!    gone (`replayed`) or that predates a reset (`stale`); that is counted too, and the client is placed as a
//!    newcomer. The visit's `Outcome` is one of:
//!    - `Admit`: sign a pass for the new session, set it (with `Max-Age` until its expiry), clear the ticket
//!      cookie, and let the request through;
//!    - `PassThrough` (`queueing = "passthrough"`): let the request through without a pass;
//!    - `Hold` with a ticket number: if the ticket presented names that same place and has more than half
//!      its lifetime left, keep it; otherwise sign a new one valid for twice `queue_grace` (at least 60 s)
//!      and set it. Then record the estimated wait (if there is one) in
//!      `spillway_room_estimated_wait_seconds` and hold the request;
//!    - `Hold` without a ticket (closed, full): clear the ticket cookie if one was presented, and hold the
//!      request.
//!
//! What happens next:
//!
//! - **Through.** The policy removes Spillway's own cookies (`spw_ticket_*`, `spw_pass_*`) from the request's
//!   `Cookie` headers, calls `next.run`, and appends its `Set-Cookie` headers to the origin's response.
//! - **Held.** `RoomHandle::held_response` answers `503` with `Retry-After`, `Cache-Control: no-store` and the
//!   cookies. The body is the status JSON, or for browsers (`error.rs`'s `Accept` rule) the waiting page from
//!   `room/page.rs`, in Korean or English by `Accept-Language`, or the room's `page_template` if it has one.
//!   `Retry-After` comes from `RoomHandle::refresh_after`: for a waiting client, a quarter of the estimated
//!   wait, kept between 2 seconds and a third of `queue_grace`; for a paused room 10 seconds (at most a third
//!   of `queue_grace`); for a closed or full room 30 seconds. Every value gets ±25% random jitter.
//!
//! Cookies are set with `Path=/; HttpOnly; SameSite=Lax`, plus `Secure` when the client connected over TLS.
//! A held `503` is an ordinary response, not a `GatewayError`: it is counted under its route as `5xx` and not
//! logged as a failure. If the store cannot answer, `on_store_error` decides: `closed` (the default) fails
//! with `room_unavailable` (`503`, see `error.rs`), `open` lets the request through; a request with a valid pass
//! whose renewal the store cannot answer goes through either way.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{Gate, RoomHandle, Visitor, cookies};
use crate::pipeline::{Next, Outcome, Policy, ProxyRequest, RequestCtx};

#[derive(Debug)]
pub struct RoomPolicy {
    room: Arc<RoomHandle>,
}

impl RoomPolicy {
    pub fn new(room: Arc<RoomHandle>) -> Self {
        Self { room }
    }
}

impl Policy for RoomPolicy {
    fn call<'a>(&'a self, mut req: ProxyRequest, ctx: &'a RequestCtx, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let visitor = Visitor { headers: req.headers(), client_ip: ctx.client_ip, secure: ctx.scheme == "https" };
            match self.room.gate(visitor).await? {
                Gate::Held(status, set) => {
                    let mut response = self.room.held_response(&status, ctx.accept, req.headers());
                    response.headers_mut().extend(set);
                    Ok(response)
                }
                Gate::Through(set) => {
                    // Later policies may still need the pass (a limit keyed by it); the proxy takes the
                    // cookies out just before the request leaves for the origin.
                    req.extensions_mut().insert(cookies::StripRoomCookies);
                    // A pass issued just now rides on this request too, so policies after the room (a limit
                    // keyed by the pass) see the user it admitted.
                    cookies::carry_new_pass(&set, req.headers_mut());
                    let mut response = next.run(req, ctx).await?;
                    for value in set.get_all(http::header::SET_COOKIE) {
                        response.headers_mut().append(http::header::SET_COOKIE, value.clone());
                    }
                    Ok(response)
                }
            }
        })
    }
}
