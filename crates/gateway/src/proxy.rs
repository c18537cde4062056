//! The reverse-proxy target: forward to an upstream, clean the headers both ways.
//!
//! ## The proxy target
//!
//! `ProxyTarget::call` prepares the request for the origin:
//!
//! - **Host.** The client's `Host` header is kept. For HTTP/2, where there is no `Host` header, it is set
//!   from `:authority`.
//! - **Hop-by-hop headers are removed** (`strip_hop_by_hop`). These are `Connection` and every header it
//!   names, plus `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`,
//!   `Trailer`, `Transfer-Encoding` and `Upgrade`. Because `Upgrade` is removed, protocol upgrades such as
//!   WebSocket are not proxied.
//! - **Forwarding headers are added** (`add_forwarding`):
//!   - the client IP is appended to `X-Forwarded-For`;
//!   - `X-Forwarded-Proto` is set to `http` or `https`;
//!   - an element `for=…;proto=…;host="…"` is appended to `Forwarded` (RFC 7239).
//!
//!   Existing values sent by the client are kept and appended to. The appended address is always the
//!   connecting address: `server.trusted_proxies` is used only by the limit policy (see `pipeline.rs`).
//! - **`X-Request-Id`** is set to the request id.
//!
//! The response from the origin has its hop-by-hop headers removed the same way. The gateway adds
//! `X-Request-Id` to every response, including error responses.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::header::HOST;
use http::{HeaderValue, Request};

use crate::body::RequestBody;
use crate::headers::{X_REQUEST_ID, strip_hop_by_hop};
use crate::pipeline::{Outcome, ProxyRequest, RequestCtx, Target};
use crate::upstream::Upstream;

#[derive(Debug)]
pub struct ProxyTarget {
    upstream: Arc<Upstream>,
}

impl ProxyTarget {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self { upstream }
    }
}

impl Target for ProxyTarget {
    fn call<'a>(&'a self, mut req: ProxyRequest, ctx: &'a RequestCtx) -> BoxFuture<'a, Outcome> {
        prepare(&mut req, ctx);
        Box::pin(async move {
            let mut response = self.upstream.forward(req).await?;
            strip_hop_by_hop(response.headers_mut());
            Ok(response)
        })
    }
}

/// The origin sees the client's Host (HTTP/2 carries it in `:authority`), no hop-by-hop headers, and who
/// really called.
fn prepare(req: &mut Request<RequestBody>, ctx: &RequestCtx) {
    let host = match req.headers().get(HOST) {
        Some(h) => Some(h.clone()),
        None => req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    let strip_room_cookies = req.extensions().get::<crate::room::StripRoomCookies>().is_some();
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    if strip_room_cookies {
        crate::room::strip_own(headers);
    }
    if let Some(host) = &host
        && !headers.contains_key(HOST)
    {
        headers.insert(HOST, host.clone());
    }
    ctx.forwarding.apply(headers, host.as_ref().and_then(|h| h.to_str().ok()));
    headers.insert(&X_REQUEST_ID, ctx.request_id.clone());
}
