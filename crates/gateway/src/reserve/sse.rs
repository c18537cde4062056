//! A claim's Server-Sent Events stream: its state now, then again whenever it changes (a waitlisted claim
//! promoted, a hold confirmed, cancelled or expired), until it reaches an end state.
//!
//! Each event carries the whole claim, so a client that reconnects needs no replay: the first event after
//! reconnecting is the truth. A waitlisted claim's position moves when people ahead leave, which is not an
//! event of this claim, so the stream also rechecks it every few seconds.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use spillway_core::reserve::ClaimStatus;
use tokio::sync::watch;

use super::{ReserveHandle, claim_json};
use crate::body::BoxError;
use crate::pipeline::ProxyResponse;

/// How often a waiting claim's position is rechecked; each stream also sends a comment every third time, so
/// proxies in between do not close an idle connection.
const RECHECK: Duration = Duration::from_secs(5);

struct State {
    handle: Arc<ReserveHandle>,
    claim: u64,
    changes: watch::Receiver<u64>,
    last: Option<String>,
    quiet_checks: u32,
    done: bool,
}

pub fn stream(handle: Arc<ReserveHandle>, claim: u64, changes: watch::Receiver<u64>) -> ProxyResponse {
    let state = State { handle, claim, changes, last: None, quiet_checks: 0, done: false };
    let events = futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            let c = s.handle.get(s.claim)?;
            let data = serde_json::to_string(&claim_json(&c, s.handle.position(c.id), s.handle.now_ms(), None)).ok()?;
            if s.last.as_deref() != Some(data.as_str()) {
                // Only durable state is told (see ReserveHandle::settle); a failed ledger ends the stream.
                s.handle.settle().await.ok()?;
                s.done = !matches!(c.status, ClaimStatus::Waitlisted | ClaimStatus::Held { .. });
                let frame = Frame::data(Bytes::from(format!("event: claim\ndata: {data}\n\n")));
                s.last = Some(data);
                return Some((Ok::<_, BoxError>(frame), s));
            }
            tokio::select! {
                changed = s.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = tokio::time::sleep(RECHECK) => {
                    s.quiet_checks += 1;
                    if s.quiet_checks % 3 == 0 {
                        return Some((Ok(Frame::data(Bytes::from_static(b": keep-alive\n\n"))), s));
                    }
                }
            }
        }
    });
    let mut response = Response::new(StreamBody::new(events).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
