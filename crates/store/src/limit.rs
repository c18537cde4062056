//! A rate limit's per-key state: one algorithm, many keys.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use spillway_core::limit::Decision;

use crate::error::StoreResult;

/// A future that is usually ready at once. The in-memory backend answers without allocating; a networked one
/// boxes its round trip.
pub enum Pending<'a, T> {
    Ready(Option<T>),
    Boxed(BoxFuture<'a, T>),
}

impl<T> std::fmt::Debug for Pending<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ready(_) => "Pending::Ready",
            Self::Boxed(_) => "Pending::Boxed",
        })
    }
}

impl<T: Unpin> Future for Pending<'_, T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match &mut *self {
            Self::Ready(value) => Poll::Ready(value.take().expect("Pending::Ready polled after completion")),
            Self::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

/// The decision for a request, and which band made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The band that refused, or, when all allowed, the one closest to refusing (for the `RateLimit` header).
    pub band: usize,
    pub decision: Decision,
}

/// The keyed state of one limit, every band of it. Keys arrive as 64-bit digests: the gateway never stores
/// the raw key (an API key, an address), and every backend can use the digest as its own key.
///
/// One call decides all bands, so a networked backend can do it atomically in one round trip (one script)
/// and never leaves a request counted in one band and refused by another.
pub trait LimitStore: Send + Sync + std::fmt::Debug {
    /// Decides one request for `key` at `now_ns`: allowed only if every band allows, and then counted in
    /// every band; once the call returns, a refused request is counted in none.
    fn check(&self, now_ns: u64, key: u64) -> Pending<'_, StoreResult<Verdict>>;
    /// Forgets keys whose state has gone back to fresh; returns how many. A store whose keys expire by
    /// themselves (a TTL) has nothing to do.
    fn sweep(&self, now_ns: u64) -> usize {
        let _ = now_ns;
        0
    }
    /// Keys tracked now, where the store can tell cheaply.
    fn keys(&self) -> Option<u64> {
        None
    }
}
