//! `room:NAME` on a route: requests without a valid pass get the waiting room instead of the origin.

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
