//! The per-route chain of policies in front of a target.
//!
//! A policy sees the request, and may answer it itself (a waiting-room page, a 429, a cached response) or
//! pass it on with [`Next::run`] and look at or change what comes back. The target at the end answers for
//! real: the reverse proxy today, the reservation engine later. Each policy knows nothing of the others, so
//! adding one touches no other.
//!
//! ## The pipeline
//!
//! Each route has a `Pipeline`: an ordered list of policies followed by one target.
//!
//! - **`Policy`** has a `call(req, ctx, next)` method. A policy can answer the request itself (a
//!   waiting-room page, a 429, a cached response). Or it can call `next.run(req, ctx)` to pass the request
//!   on, and then inspect or change the response coming back. Policies run in order on the way in and unwind
//!   in reverse on the way out.
//! - **`Next`** is "the rest of the pipeline": the remaining policies, then the target.
//! - **`Target`** answers for real. Today the only target is the reverse proxy (`ProxyTarget`).
//! - **`RequestCtx`** carries what the gateway knows beyond the request itself: client IP (the connecting
//!   address; only the limit policy looks further, through `server.trusted_proxies`), scheme (`http` or
//!   `https`), request id, route name and the error format.
//!
//! Policies and targets return `Result<Response, GatewayError>`. Errors are rendered in one place
//! (see `error.rs`).
//!
//! Each kind of policy is a module implementing `component::PolicyModule` (its metrics, its build, its
//! policy on a route, its admin routes), and each configured section becomes a `component::Component` with
//! the hooks the central loops call (tick, publish, apply, health). `runtime.rs` builds every kind in
//! `PolicyKind::ALL` order and asks the kind's module for the policy each `kind:name` on a route names; see
//! `component.rs` and "Adding a policy" in `docs/ARCHITECTURE.md`.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response};

use crate::body::{RequestBody, ResponseBody};
use crate::error::{Accept, GatewayError};
use crate::headers::Forwarding;

pub type ProxyRequest = Request<RequestBody>;
pub type ProxyResponse = Response<ResponseBody>;
pub type Outcome = Result<ProxyResponse, GatewayError>;

/// What the gateway knows about a request beyond the request itself.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub client_ip: IpAddr,
    /// `"http"` or `"https"`, as the client connected.
    pub scheme: &'static str,
    pub request_id: HeaderValue,
    pub route: Arc<str>,
    pub accept: Accept,
    /// This hop's forwarding headers, rendered once for the client's connection.
    pub forwarding: Arc<Forwarding>,
}

/// One step of a route's pipeline.
pub trait Policy: Send + Sync + fmt::Debug {
    fn call<'a>(&'a self, req: ProxyRequest, ctx: &'a RequestCtx, next: Next<'a>) -> BoxFuture<'a, Outcome>;
}

/// Where a route's requests end up.
pub trait Target: Send + Sync + fmt::Debug {
    fn call<'a>(&'a self, req: ProxyRequest, ctx: &'a RequestCtx) -> BoxFuture<'a, Outcome>;
}

/// The rest of the pipeline after the current policy.
#[derive(Debug, Clone, Copy)]
pub struct Next<'a> {
    policies: &'a [Arc<dyn Policy>],
    target: &'a dyn Target,
}

impl<'a> Next<'a> {
    pub fn run(self, req: ProxyRequest, ctx: &'a RequestCtx) -> BoxFuture<'a, Outcome> {
        match self.policies.split_first() {
            Some((policy, rest)) => policy.call(req, ctx, Next { policies: rest, target: self.target }),
            None => self.target.call(req, ctx),
        }
    }
}

/// Policies in order, then the target.
#[derive(Debug, Clone)]
pub struct Pipeline {
    policies: Vec<Arc<dyn Policy>>,
    target: Arc<dyn Target>,
}

impl Pipeline {
    pub fn new(policies: Vec<Arc<dyn Policy>>, target: Arc<dyn Target>) -> Self {
        Self { policies, target }
    }

    pub fn run<'a>(&'a self, req: ProxyRequest, ctx: &'a RequestCtx) -> BoxFuture<'a, Outcome> {
        Next { policies: &self.policies, target: &*self.target }.run(req, ctx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::body::{empty, full};
    use http::StatusCode;

    /// Records the order it ran in, optionally answers, and tags the response on the way back.
    #[derive(Debug)]
    struct Tag {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        answer: bool,
    }

    impl Policy for Tag {
        fn call<'a>(&'a self, req: ProxyRequest, ctx: &'a RequestCtx, next: Next<'a>) -> BoxFuture<'a, Outcome> {
            Box::pin(async move {
                self.log.lock().map(|mut l| l.push(format!("in:{}", self.name))).ok();
                if self.answer {
                    let mut r = Response::new(full("blocked"));
                    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                    return Ok(r);
                }
                let mut resp = next.run(req, ctx).await?;
                resp.headers_mut().append("x-tags", HeaderValue::from_static(self.name));
                self.log.lock().map(|mut l| l.push(format!("out:{}", self.name))).ok();
                Ok(resp)
            })
        }
    }

    #[derive(Debug)]
    struct Origin(Arc<Mutex<Vec<String>>>);

    impl Target for Origin {
        fn call<'a>(&'a self, _req: ProxyRequest, _ctx: &'a RequestCtx) -> BoxFuture<'a, Outcome> {
            self.0.lock().map(|mut l| l.push("target".into())).ok();
            Box::pin(async { Ok(Response::new(empty())) })
        }
    }

    fn ctx() -> RequestCtx {
        RequestCtx {
            client_ip: IpAddr::from([127, 0, 0, 1]),
            scheme: "http",
            request_id: HeaderValue::from_static("t"),
            route: Arc::from("r"),
            accept: Accept::Json,
            forwarding: Arc::new(Forwarding::new(IpAddr::from([127, 0, 0, 1]), "http")),
        }
    }

    fn pipeline(answer_at: Option<usize>, log: &Arc<Mutex<Vec<String>>>) -> Pipeline {
        let policies = ["a", "b", "c"]
            .into_iter()
            .enumerate()
            .map(|(i, name)| Arc::new(Tag { name, log: log.clone(), answer: answer_at == Some(i) }) as Arc<dyn Policy>)
            .collect();
        Pipeline::new(policies, Arc::new(Origin(log.clone())))
    }

    #[tokio::test]
    async fn policies_run_in_order_and_unwind_in_reverse() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let ctx = ctx();
        let resp = pipeline(None, &log).run(Request::new(RequestBody::empty()), &ctx).await.expect("ok");
        let tags: Vec<_> = resp.headers().get_all("x-tags").iter().map(|v| v.to_str().unwrap_or("")).collect();
        assert_eq!(tags, ["c", "b", "a"]);
        assert_eq!(*log.lock().expect("lock"), ["in:a", "in:b", "in:c", "target", "out:c", "out:b", "out:a"]);
    }

    #[tokio::test]
    async fn a_policy_can_answer_without_the_target() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let ctx = ctx();
        let resp = pipeline(Some(1), &log).run(Request::new(RequestBody::empty()), &ctx).await.expect("ok");
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(*log.lock().expect("lock"), ["in:a", "in:b", "out:a"]);
        assert_eq!(resp.headers()["x-tags"], "a");
    }
}
