//! Starting, serving, reloading and draining the gateway.
//!
//! ## Accept
//!
//! `spillway serve` serves the public listener from worker threads (`workers.rs`): one single-threaded
//! tokio runtime per core (or `--workers N`), each accepting on its own socket bound to `server.listen` with
//! `SO_REUSEPORT`, so the kernel spreads connections over them and each worker serves its connections start to
//! end without cross-thread wake-ups. The admin listener, the ticker, reloads and the access-log writer stay on
//! the main runtime. Embedders and tests that pause time use `Workers::Caller`: everything on the calling
//! runtime.
//!
//! In each worker, `serve_public` accepts TCP connections and spawns one task per connection. If
//! `accept` fails (usually because the process is out of file descriptors), the loop waits 20 ms and tries
//! again, counts the failure (`spillway_accept_failures_total`) and logs at most one line per 10 s with the
//! count (`conn.rs`: at the limit, a line per refused connection would itself be an outage).
//!
//! Every connection, on both listeners, is served by `conn::serve`, which counts the requests in flight on it
//! (until each response body is done, so a long stream is busy, not idle) and closes the connection once none has
//! been in flight for `server.header_read_timeout`. hyper bounds an HTTP/1 connection that sends no request; this
//! bounds HTTP/2 connections that open no stream, which would otherwise live as long as they answer pings. The
//! admin listener is served the same way (axum's router as the service), with the same header timeout.
//!
//! For each connection, `serve_connection`:
//!
//! 1. sets `TCP_NODELAY`;
//! 2. takes the TLS acceptor and the connection settings from the Runtime current at that moment;
//! 3. if TLS is configured, performs the handshake within `server.header_read_timeout`.
//!
//! The TLS acceptor is built in `tls.rs` with rustls. It uses the ring provider, TLS 1.2 and 1.3, and no
//! client certificates. ALPN offers `h2` and `http/1.1`, or only `http/1.1` when `server.http2 = false`.
//!
//! The connection is then served by hyper-util's auto builder (`hyper_util::server::conn::auto`). The auto
//! builder detects the protocol on the connection: HTTP/1.1, or HTTP/2. HTTP/2 arrives either through ALPN
//! `h2` with TLS, or as plaintext h2c with prior knowledge. With `server.http2 = false` it is HTTP/1.1 only.
//!
//! The builder is configured in `runtime.rs` (`connection_builder`):
//!
//! - **HTTP/1.1:** keep-alive, hyper's header read timeout set to `server.header_read_timeout`, and a read
//!   buffer of twice `max_header_bytes` (at least 9 KiB). Requests larger than that buffer are answered by
//!   hyper itself with a bare `431`.
//! - **HTTP/2:** a maximum header list size of twice `max_header_bytes`, and a keep-alive ping every 30
//!   seconds.
//!
//! ## Global limits
//!
//! Once a route is chosen, `route()` applies the server-wide limits:
//!
//! - If the request line and headers, measured by `head_size` in `headers.rs`, exceed
//!   `server.max_header_bytes`, the answer is `431` (`headers_too_large`).
//! - If `Content-Length` announces more than `server.max_body_bytes`, the answer is `413` (`body_too_large`).
//!
//! The limits are the same for every route. Because they are checked after routing, a rejected request is
//! counted under its route in the metrics, and a request that matches no route gets `404` whatever its size.
//! The reserved endpoints (see `router.rs`) are answered before these limits are checked.
//!
//! The body is then wrapped in a `RequestBody` that enforces the same limit while streaming (see `body.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::HOST;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use spillway_config::{Config, ConfigError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::access_log::{self, AccessLog};
use crate::body::{RequestBody, ResponseBody};
use crate::clock::{Clock, Entropy};
use crate::component::{Caller, RESERVED_PREFIX, TICK};
use crate::error::{Accept, GatewayError};
use crate::headers::{Forwarding, X_REQUEST_ID, head_size, request_id};
use crate::lifecycle::{Lifecycle, Phase};
use crate::metrics::Metrics;
use crate::pipeline::RequestCtx;
use crate::runtime::{Runtime, Services};
use crate::workers::{self, Workers};

/// State shared by every connection and the admin listener.
#[derive(Debug)]
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    /// What every config version is built with: metrics, time, entropy, the backend.
    pub services: Services,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub lifecycle: Lifecycle,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{key}: cannot listen on {addr}: {source}")]
    Bind { key: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("log.access_log: cannot open: {0}")]
    AccessLog(std::io::Error),
    #[error("{0}")]
    Component(#[from] GatewayError),
}

/// A running gateway.
#[derive(Debug)]
pub struct Handle {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    shared: Arc<Shared>,
    stop_public: watch::Sender<bool>,
    stop_admin: watch::Sender<bool>,
    public: JoinHandle<bool>,
    admin: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

/// How the drain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Every in-flight request finished before the grace period ran out.
    pub clean: bool,
}

/// How to start a gateway beyond its config: where it serves, and the time, randomness and backend it runs
/// on. The defaults are production's (the calling runtime, the system clock and entropy, the embedded
/// backend); tests and the simulation replace them.
#[derive(Debug)]
pub struct Start {
    pub workers: Workers,
    pub clock: Clock,
    pub entropy: Entropy,
    pub backend: Arc<dyn spillway_store::Backend>,
}

impl Default for Start {
    fn default() -> Self {
        Self {
            workers: Workers::Caller,
            clock: Clock::system(),
            entropy: Entropy::system(),
            backend: Arc::new(spillway_store::Embedded::new()),
        }
    }
}

/// Binds both listeners and starts serving on the calling runtime. `/readyz` turns ready only once both
/// accept connections.
pub async fn start(config: Config) -> Result<Handle, StartError> {
    start_with_options(config, Start::default()).await
}

/// [`start`], with the public listener served by `workers`. The admin listener, reloads and the access log
/// writer stay on the calling runtime.
pub async fn start_with(config: Config, workers: Workers) -> Result<Handle, StartError> {
    start_with_options(config, Start { workers, ..Start::default() }).await
}

/// [`start`], with the rooms, limits and tokens on the given clock (tests use a manual one).
pub async fn start_with_clock(config: Config, clock: Clock) -> Result<Handle, StartError> {
    start_with_options(config, Start { clock, ..Start::default() }).await
}

pub async fn start_with_options(config: Config, start: Start) -> Result<Handle, StartError> {
    let Start { workers, clock, entropy, backend } = start;
    let metrics = Metrics::new();
    let access_log = open_access_log(&config, &metrics).await?;
    let (listen, admin_listen) = (config.server.listen, config.server.admin_listen);
    let services = Services { metrics: metrics.clone(), clock: clock.clone(), entropy, backend };
    let runtime = Runtime::build(config, &services, None, access_log, true)?;
    runtime.apply().await?;
    let shared = Arc::new(Shared {
        runtime: ArcSwap::from_pointee(runtime),
        services,
        clock,
        metrics,
        lifecycle: Lifecycle::default(),
    });

    let admin_listener = TcpListener::bind(admin_listen).await.map_err(|source| StartError::Bind {
        key: "server.admin_listen",
        addr: admin_listen,
        source,
    })?;
    let bind_error = |source| StartError::Bind { key: "server.listen", addr: listen, source };
    let (public_addr, public_listeners) = match workers {
        Workers::Caller => {
            let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
            (listener.local_addr().map_err(bind_error)?, Listeners::Caller(listener))
        }
        Workers::Threads(n) => {
            let listeners = workers::bind(listen, n).map_err(bind_error)?;
            (listeners[0].local_addr().map_err(bind_error)?, Listeners::Threads(listeners))
        }
    };
    let admin_addr = admin_listener.local_addr().map_err(|source| StartError::Bind {
        key: "server.admin_listen",
        addr: admin_listen,
        source,
    })?;

    let (stop_public, stop) = watch::channel(false);
    let public = match public_listeners {
        Listeners::Caller(listener) => tokio::spawn(serve_public(listener, shared.clone(), stop)),
        Listeners::Threads(listeners) => workers::spawn(listeners, &shared, &stop).map_err(bind_error)?,
    };
    let (stop_admin, admin_stop) = watch::channel(false);
    let admin = tokio::spawn(crate::admin::serve(admin_listener, shared.clone(), admin_stop));
    let ticker = tokio::spawn(tick(shared.clone()));
    shared.lifecycle.set(Phase::Ready);
    tracing::info!(public = %public_addr, admin = %admin_addr, version = env!("CARGO_PKG_VERSION"), "listening");
    Ok(Handle { public_addr, admin_addr, shared, stop_public, stop_admin, public, admin, ticker })
}

/// Lets time pass in every component: rooms release places on schedule even when nobody happens to poll,
/// expired holds go back (within a tick of their expiry), idle rate-limit keys are forgotten.
async fn tick(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        interval.tick().await;
        let runtime = shared.runtime.load_full();
        for component in runtime.components() {
            component.tick(n).await;
        }
    }
}

/// The public listener's sockets, bound before serving starts so that a taken port fails `start`.
enum Listeners {
    Caller(TcpListener),
    Threads(Vec<std::net::TcpListener>),
}

async fn open_access_log(config: &Config, metrics: &Metrics) -> Result<AccessLog, StartError> {
    AccessLog::open(&config.log.access_log, metrics.access_log_dropped.clone()).await.map_err(StartError::AccessLog)
}

// === impl Handle ===

impl Handle {
    /// Applies a new config if it builds; otherwise the running config stays and the error says why.
    pub async fn reload(&self, config: Config) -> Result<(), StartError> {
        let result = self.try_reload(config).await;
        self.shared.metrics.reload(result.is_ok());
        result
    }

    async fn try_reload(&self, config: Config) -> Result<(), StartError> {
        let current = self.shared.runtime.load_full();
        for (key, old, new) in [
            ("server.listen", current.config.server.listen, config.server.listen),
            ("server.admin_listen", current.config.server.admin_listen, config.server.admin_listen),
        ] {
            if old != new {
                tracing::warn!(key, old = %old, new = %new, "listen addresses change only on restart; keeping the old one");
            }
        }
        if current.config.log.format != config.log.format || current.config.log.level != config.log.level {
            tracing::warn!("log.format and log.level change only on restart");
        }
        // Reopening the access log on every reload lets logrotate move the file and send SIGHUP.
        let access_log = open_access_log(&config, &self.shared.metrics).await?;
        let next = Runtime::build(config, &self.shared.services, Some(&current), access_log, true)?;
        next.apply().await?;
        self.shared.runtime.store(Arc::new(next));
        Ok(())
    }

    /// Counts a reload that failed before it reached [`Handle::reload`] (for example, an unreadable file).
    pub fn record_rejected_reload(&self) {
        self.shared.metrics.reload(false);
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.shared.runtime.load_full()
    }

    pub fn phase(&self) -> Phase {
        self.shared.lifecycle.phase()
    }

    /// Stops accepting, lets in-flight requests finish within `server.shutdown_grace`, then stops the admin
    /// listener, which keeps answering (`/readyz`: draining) until the public side is done.
    pub async fn shutdown(self) -> Drained {
        self.shared.lifecycle.set(Phase::Draining);
        tracing::info!("draining");
        let _ = self.stop_public.send(true);
        let clean = self.public.await.unwrap_or(false);
        let _ = self.stop_admin.send(true);
        let _ = self.admin.await;
        self.ticker.abort();
        let _ = self.ticker.await;
        // The ledger is let go of now, not whenever the last task holding the runtime is dropped: a gateway
        // started again in this process (or a test's restart) finds it free.
        if let Some(reservations) = self.shared.runtime.load_full().reservations.clone() {
            let _ = tokio::task::spawn_blocking(move || reservations.close()).await;
        }
        tracing::info!(clean, "stopped");
        Drained { clean }
    }
}

// === serving ===

/// Accepts until told to stop, then drains within `server.shutdown_grace`; true if every connection finished.
pub(crate) async fn serve_public(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) -> bool {
    let config = shared.clone();
    let grace = move || config.runtime.load().config.server.shutdown_grace.get();
    let metrics = shared.metrics.clone();
    let failed = move || metrics.accept_failed();
    crate::conn::accept_until(listener, stop, grace, "public", failed, |stream, peer, watcher| {
        serve_connection(stream, peer, shared.clone(), watcher)
    })
    .await
}

/// What every request on one client connection shares.
#[derive(Debug)]
struct Conn {
    peer: SocketAddr,
    scheme: &'static str,
    forwarding: Arc<Forwarding>,
}

impl Conn {
    fn new(peer: SocketAddr, scheme: &'static str) -> Arc<Self> {
        Arc::new(Self { peer, scheme, forwarding: Arc::new(Forwarding::new(peer.ip(), scheme)) })
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, watcher: Watcher) {
    let _open = shared.metrics.connection_opened();
    let _ = stream.set_nodelay(true);
    let (tls, builder, handshake_timeout) = {
        let runtime = shared.runtime.load();
        (runtime.tls.clone(), runtime.connections.clone(), runtime.config.server.header_read_timeout.get())
    };
    match tls {
        None => serve_io(stream, Conn::new(peer, "http"), shared, &builder, watcher).await,
        Some(tls) => match tokio::time::timeout(handshake_timeout, tls.0.accept(stream)).await {
            Ok(Ok(stream)) => serve_io(stream, Conn::new(peer, "https"), shared, &builder, watcher).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
    }
}

async fn serve_io<I>(
    io: I,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    // HTTP/2 has no header timeout of its own: a connection with nothing in flight for as long as a client
    // may take to send its headers is closed, as HTTP/1's would be.
    let idle = shared.runtime.load().config.server.header_read_timeout.get();
    let handler = move |req| {
        let (shared, conn) = (shared.clone(), conn.clone());
        async move { handle(&shared, &conn, req).await }
    };
    crate::conn::serve(io, builder, watcher, idle, peer, handler).await;
}

/// One request, start to end: limits, routing, the route's pipeline, then metrics and the access log.
async fn handle(shared: &Shared, conn: &Conn, req: Request<Incoming>) -> Response<ResponseBody> {
    let started = Instant::now();
    let runtime = shared.runtime.load_full();
    let accept = Accept::from_headers(req.headers());
    let request_id = request_id(req.headers(), &shared.services.entropy);
    let logged = runtime
        .access_log
        .enabled()
        .then(|| (req.method().clone(), req.uri().clone(), host(&req).map(str::to_string), req.version()));

    let (route_name, outcome) = route(&runtime, conn, req, accept, request_id.clone()).await;
    let mut response = outcome.unwrap_or_else(|e| {
        if e.status().is_server_error() {
            tracing::warn!(request_id = ?request_id, error = %e, "request failed");
        }
        e.into_response(accept)
    });
    response.headers_mut().insert(&X_REQUEST_ID, request_id.clone());

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if let Some(route) = &route_name {
        route.1.observe(status, elapsed.as_secs_f64());
    }
    if let Some((method, uri, host, version)) = logged {
        runtime.access_log.record(&access_log::Entry {
            ts: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            client: conn.peer.ip(),
            method: method.as_str(),
            host: host.as_deref().unwrap_or(""),
            path: uri.path(),
            version: version_str(version),
            status,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            route: route_name.as_ref().map_or("", |r| &r.0),
            request_id: request_id.to_str().unwrap_or(""),
        });
    }
    response
}

type RouteLabel = (Arc<str>, crate::metrics::RouteMetrics);

async fn route(
    runtime: &Runtime,
    conn: &Conn,
    req: Request<Incoming>,
    accept: Accept,
    request_id: http::HeaderValue,
) -> (Option<RouteLabel>, Result<Response<ResponseBody>, GatewayError>) {
    let limits = &runtime.config.server;
    let mut req = req;
    if let Err(e) = check_request_line(&mut req) {
        return (None, Err(e));
    }
    if let Some(rest) = req.uri().path().strip_prefix(RESERVED_PREFIX) {
        let caller = Caller {
            method: req.method(),
            rest,
            headers: req.headers(),
            client_ip: conn.peer.ip(),
            secure: conn.scheme == "https",
            accept,
        };
        return (None, runtime.policies.reserved(caller).await);
    }
    let Some(route) = runtime.route(host(&req), req.uri().path()) else {
        return (None, Err(GatewayError::NoRoute));
    };
    let label = Some((route.name.clone(), route.metrics.clone()));
    let max_header = limits.max_header_bytes.get();
    if head_size(req.uri(), req.headers()) > max_header {
        return (label, Err(GatewayError::HeadersTooLarge { limit: max_header }));
    }
    let max_body = limits.max_body_bytes.get();
    let announced = req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|len| len > max_body) {
        return (label, Err(GatewayError::BodyTooLarge { limit: max_body }));
    }
    let ctx = RequestCtx {
        client_ip: conn.peer.ip(),
        scheme: conn.scheme,
        request_id,
        route: route.name.clone(),
        accept,
        forwarding: conn.forwarding.clone(),
    };
    let req = req.map(|body| RequestBody::new(body, max_body));
    (label, route.pipeline.run(req, &ctx).await)
}

/// Longest request target (path and query) accepted, as nginx's default header buffer allows.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// What must hold before a request is routed: one host, a method that names a resource, a target of a sane
/// length, and a path in its one normal form ([`spillway_core::path`]), which replaces the one sent so that
/// the origin sees the path the routing saw.
fn check_request_line(req: &mut Request<Incoming>) -> Result<(), GatewayError> {
    if req.method() == http::Method::CONNECT {
        return Err(GatewayError::MethodNotAllowed);
    }
    // Two `Host` headers let the gateway and the origin each pick a different one.
    match req.headers().get_all(HOST).iter().count() {
        0 if req.uri().host().is_none() => return Err(GatewayError::BadRequest("the request has no Host".into())),
        0 | 1 => {}
        _ => return Err(GatewayError::BadRequest("the request has more than one Host header".into())),
    }
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(GatewayError::UriTooLong { limit: MAX_URI_BYTES });
    }
    let path = req.uri().path();
    let normal = match spillway_core::path::normalize(path).map_err(GatewayError::BadPath)? {
        std::borrow::Cow::Borrowed(_) => return Ok(()),
        std::borrow::Cow::Owned(normal) => normal,
    };
    let target = match req.uri().query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query =
        Some(target.parse().map_err(|_| GatewayError::BadRequest("the normalised path is not a valid URI".into()))?);
    *req.uri_mut() =
        http::Uri::from_parts(parts).map_err(|_| GatewayError::BadRequest("the request target is not valid".into()))?;
    Ok(())
}

/// HTTP/1.1 sends `Host`; HTTP/2 sends `:authority`, which hyper puts in the URI.
fn host(req: &Request<Incoming>) -> Option<&str> {
    req.headers().get(HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().host())
}

fn version_str(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}
