//! Bodies are streamed frame by frame in both directions; nothing here ever holds a whole body.
//!
//! ## Body streaming and limits
//!
//! Bodies are streamed frame by frame in both directions. Neither the request body nor the response body is
//! ever held in full.
//!
//! - **Request body.** `RequestBody` counts the bytes as they stream to the origin. When they pass
//!   `max_body_bytes`, it fails the stream with `BodyTooLarge`, which `upstream/mod.rs` finds in the error
//!   chain and turns into `413`. So a chunked upload without `Content-Length` cannot slip past the limit.
//! - **Response body.** `ResponseBody` is a boxed body type, so a response can come from the origin, a
//!   generated page or (later) a cache without the pipeline caring which. The origin's response body keeps
//!   the address's in-flight count raised until it ends, which is what `least_connections` balances on.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every policy and target answers with. Boxed so a response can come from the origin, a cache or a
/// generated page without the pipeline caring which.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn empty() -> ResponseBody {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A client's request body with the configured size limit enforced while it streams, so a chunked upload
/// without Content-Length cannot slip past `max_body_bytes`.
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    /// A body read whole beforehand (to be sent more than once), sent as one frame.
    buffered: Option<Bytes>,
    remaining: u64,
    limit: u64,
}

/// Raised mid-stream when a body passes the limit; found again in the upstream error chain to answer 413.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds {limit} bytes")]
pub struct BodyTooLarge {
    pub limit: u64,
}

/// The client's body failed while it streamed (cut off, a malformed chunk): found again in the upstream error
/// chain, so that it is answered as the client's fault (400) and never counted against the upstream.
#[derive(Debug, thiserror::Error)]
#[error("the client's request body failed: {0}")]
pub struct ClientBodyError(#[source] pub hyper::Error);

impl RequestBody {
    pub fn new(inner: Incoming, limit: u64) -> Self {
        let inner = if inner.is_end_stream() { None } else { Some(inner) };
        Self { inner, buffered: None, remaining: limit, limit }
    }

    pub fn empty() -> Self {
        Self { inner: None, buffered: None, remaining: 0, limit: 0 }
    }

    /// A body already read, for a request that may be sent again (a retry).
    pub fn buffered(bytes: Bytes) -> Self {
        let buffered = (!bytes.is_empty()).then_some(bytes);
        Self { inner: None, buffered, remaining: 0, limit: 0 }
    }

    /// True when there is nothing to send, so the request can be replayed against another address.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none() && self.buffered.is_none()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(bytes) = this.buffered.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.inner = None;
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit: this.limit }))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.inner = None;
                Poll::Ready(Some(Err(Box::new(ClientBodyError(e)))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.buffered.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.buffered {
            Some(bytes) => SizeHint::with_exact(bytes.len() as u64),
            None => self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint),
        }
    }
}
