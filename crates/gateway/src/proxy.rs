//! The reverse-proxy target: forward to an upstream, clean the headers both ways.

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
