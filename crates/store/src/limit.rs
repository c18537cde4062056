//! A rate limit's per-key state: one algorithm, many keys.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use spillway_core::limit::Decision;

use crate::room::StoreResult;

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

/// The keyed state of one limit. Keys arrive as 64-bit digests: the gateway never stores the raw key (an API
/// key, an address), and every backend can use the digest as its own key.
pub trait LimitStore: Send + Sync + std::fmt::Debug {
    /// Decides one request for `key` at `now_ns` and counts it if allowed.
    fn check(&self, now_ns: u64, key: u64) -> Pending<'_, StoreResult<Decision>>;
    /// Gives back a request that another limit on the same route refused.
    fn undo(&self, now_ns: u64, key: u64) -> Pending<'_, StoreResult<()>>;
    /// Forgets keys whose state has gone back to fresh; returns how many.
    fn sweep(&self, now_ns: u64) -> usize;
    /// Keys tracked now.
    fn keys(&self) -> u64;
}
