//! One client connection, on either listener: served by hyper, and closed once it has been idle too long.
//!
//! hyper's HTTP/1 `header_read_timeout` bounds a connection that sends no request, but HTTP/2 has no such
//! bound: a client can open connections, answer our keep-alive pings and never open a stream, each holding a
//! socket and its buffers for ever. So every connection counts its requests in flight (until the response
//! body is done, so a long stream is not idle) and is closed once none has been open for `idle`. Accept
//! failures (usually the file-descriptor limit) are logged at most once per [`ACCEPT_LOG_EVERY`], with how
//! many there were: at the limit, one line per refused accept would itself be an outage.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// At most one "accept failed" line this often.
pub const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Accepts on `listener` until `stop`, giving each connection to `serve` in a task of its own, then lets them
/// finish within `grace()` (read at the stop, so a reload's value counts); true if every one did. A failed
/// accept (usually the file-descriptor limit) backs off 20 ms instead of spinning, calls `failed`, and is
/// logged at most once per [`ACCEPT_LOG_EVERY`].
pub async fn accept_until<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    grace: impl FnOnce() -> Duration,
    name: &'static str,
    failed: impl Fn(),
    mut serve: F,
) -> bool
where
    F: FnMut(TcpStream, std::net::SocketAddr, Watcher) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    // Owned so that connections still open after the grace period can be cut off.
    let mut connections = tokio::task::JoinSet::new();
    let mut log = AcceptLog::default();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            biased;
            _ = async { stop.wait_for(|stopped| *stopped).await.map(drop) } => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve(stream, peer, graceful.watcher()));
                }
                Err(e) => {
                    failed();
                    if let Some(failures) = log.failed(Instant::now()) {
                        tracing::warn!(listener = name, error = %e, failures, "accept failed; new connections wait in the backlog");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    let grace = grace();
    let open = graceful.count();
    tokio::select! {
        () = graceful.shutdown() => true,
        () = tokio::time::sleep(grace) => {
            tracing::warn!(listener = name, connections = open, grace = %humantime::format_duration(grace), "grace period over; closing connections with requests in flight");
            connections.abort_all();
            false
        }
    }
}

/// Serves `io` with `handler` until the client is done, the server drains, or nothing has been in flight for
/// `idle`.
pub async fn serve<I, F, Fut, B>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    idle: Duration,
    peer: std::net::SocketAddr,
    handler: F,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity::new());
    let counted = activity.clone();
    let service = service_fn(move |req| {
        let guard = InFlight::start(&counted);
        let response = handler(req);
        async move { Ok::<_, std::convert::Infallible>(response.await.map(|body| Counted { body, _guard: guard })) }
    });
    let connection = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
    tokio::pin!(connection);
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(activity.idle_deadline(idle)) => {
                if activity.is_idle(idle) {
                    tracing::debug!(%peer, idle = %humantime::format_duration(idle), "closing an idle connection");
                    return;
                }
            }
        }
    }
}

/// Requests in flight on one connection, and when the last one finished.
#[derive(Debug)]
struct Activity {
    started: Instant,
    open: AtomicUsize,
    /// Milliseconds from `started` to the last time a request finished (or the connection opened).
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { started: Instant::now(), open: AtomicUsize::new(0), last_ms: AtomicU64::new(0) }
    }

    /// When the connection would be idle if nothing starts: `idle` after the last request ended, or, while
    /// one is in flight, `idle` from now (checked again then).
    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.open.load(Ordering::Acquire) > 0 {
            return Instant::now() + idle;
        }
        self.last_end() + idle
    }

    fn last_end(&self) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Acquire))
    }

    fn is_idle(&self, idle: Duration) -> bool {
        self.open.load(Ordering::Acquire) == 0 && Instant::now() >= self.last_end() + idle
    }
}

/// One request in flight; it ends when its response body is dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.open.fetch_add(1, Ordering::AcqRel);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = u64::try_from(a.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.last_ms.fetch_max(ms, Ordering::AcqRel);
        a.open.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is done.
    struct Counted<B> {
        #[pin]
        body: B,
        _guard: InFlight,
    }
}

impl<B: Body> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Says when to log a failed accept: the first at once, then at most one line per [`ACCEPT_LOG_EVERY`],
/// carrying how many failed since the last line.
#[derive(Debug, Default)]
pub struct AcceptLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl AcceptLog {
    /// `Some(n)` when a line should be written now, `n` failures since the last one (this one included).
    pub fn failed(&mut self, now: Instant) -> Option<u64> {
        self.suppressed += 1;
        if self.last.is_some_and(|last| now < last + ACCEPT_LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_storm_of_failed_accepts_writes_one_line_per_period() {
        let mut log = AcceptLog::default();
        let start = Instant::now();
        let mut lines = Vec::new();
        // 50 failures a second for 30 seconds, as the accept loop's back-off allows.
        for i in 0..1500u64 {
            if let Some(n) = log.failed(start + Duration::from_millis(i * 20)) {
                lines.push(n);
            }
        }
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], 1, "the first is told at once");
        assert_eq!(lines.iter().sum::<u64>() + 499, 1500, "every failure is counted in a line, or still pending");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_with_nothing_in_flight_for_the_whole_period() {
        let a = Arc::new(Activity::new());
        let idle = Duration::from_secs(10);
        assert!(!a.is_idle(idle));
        let held = InFlight::start(&a);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!a.is_idle(idle), "a long response is not idle");
        drop(held);
        assert!(!a.is_idle(idle), "the period starts when the last request ends");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(a.is_idle(idle));
    }
}
