//! What a user does once it arrives, and the one place its requests go out: `exchange`, which applies the
//! retry policy, keeps the cookies and records every attempt with its latency measured from when the user
//! meant to send it, so a slow service cannot hide its slowness by slowing the load down.

pub(crate) mod requests;
pub(crate) mod surge;

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use tokio::time::Instant;

use crate::client::{Answer, Failure};
use crate::cookies::Jar;
use crate::record::{Recorder, Sample};
use crate::runner::Ctx;

/// One logical request, which may take several attempts.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    pub uri: Uri,
    pub body: Bytes,
    pub headers: HeaderMap,
    /// `host:port`, the key of the HTTP/1.1 connections to use.
    pub key: String,
    /// The path and query, with `Host` in `headers`: what HTTP/1.1 sends. Prepared once, not per request.
    origin_form: Uri,
}

impl Call {
    pub fn new(method: Method, uri: Uri, body: Bytes, mut headers: HeaderMap) -> Self {
        let authority = uri.authority().map_or("", |a| a.as_str());
        let key = if uri.port().is_some() { authority.to_string() } else { format!("{authority}:80") };
        if !headers.contains_key(http::header::HOST)
            && let Ok(host) = HeaderValue::from_str(authority)
        {
            headers.insert(http::header::HOST, host);
        }
        let origin_form =
            uri.path_and_query().and_then(|pq| pq.as_str().parse().ok()).unwrap_or_else(|| Uri::from_static("/"));
        Self { method, uri, body, headers, key, origin_form }
    }

    pub fn get(uri: Uri) -> Self {
        Self::new(Method::GET, uri, Bytes::new(), json_headers())
    }

    pub fn post_json(uri: Uri, body: &serde_json::Value) -> Self {
        let mut headers = json_headers();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Self::new(Method::POST, uri, Bytes::from(body.to_string()), headers)
    }

    pub(crate) fn request(&self, jar: &Jar, http2: bool) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = if http2 { self.uri.clone() } else { self.origin_form.clone() };
        *req.headers_mut() = self.headers.clone();
        if http2 {
            req.headers_mut().remove(http::header::HOST);
        }
        if let Some(cookie) = jar.header().and_then(|c| HeaderValue::from_str(&c).ok()) {
            req.headers_mut().insert(http::header::COOKIE, cookie);
        }
        req
    }
}

/// API clients ask for JSON: the room then answers with its status instead of the waiting page.
fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::ACCEPT, HeaderValue::from_static("application/json"));
    h
}

/// Whether an answer is worth another attempt: no answer, or a 5xx that is not a room holding the user.
pub(crate) fn failed(answer: &Result<Answer, Failure>) -> bool {
    match answer {
        Ok(a) => a.status.is_server_error() && !a.is_room_hold(),
        Err(_) => true,
    }
}

/// Sends `call` with the scenario's retry policy, from `intended` on. Returns the last attempt's result.
pub(crate) async fn exchange(
    ctx: &Ctx,
    rec: &mut Recorder<'_>,
    jar: &mut Jar,
    call: &Call,
    mut intended: Instant,
) -> Result<Answer, Failure> {
    let mut attempt = 0u32;
    loop {
        let sent_sec = ctx.second(Instant::now());
        ctx.live.sent.fetch_add(1, Relaxed);
        let result = ctx.http.send(&call.key, call.request(jar, ctx.scenario.http2)).await;
        let done = Instant::now();
        if let Ok(a) = &result {
            jar.store(&a.headers);
        }
        let bad = failed(&result);
        if bad {
            ctx.live.errors.fetch_add(1, Relaxed);
        }
        rec.sample(Sample {
            sent_sec,
            done_sec: ctx.second(done),
            latency_us: u64::try_from(done.saturating_duration_since(intended).as_micros()).unwrap_or(u64::MAX),
            result: result.as_ref().map(|a| a.status.as_u16()).map_err(|f| *f),
            held: result.as_ref().is_ok_and(Answer::is_room_hold),
            retry: attempt > 0,
        });
        attempt += 1;
        if !bad {
            return result;
        }
        let Some(delay) = ctx.scenario.retry.delay(attempt, ctx.random()) else { return result };
        intended = done + delay;
        if intended >= ctx.hard_stop {
            return result;
        }
        tokio::time::sleep_until(intended).await;
    }
}
