//! `spillway origin`: a sample shop origin for rehearsals, examples and benchmarks.
//!
//! With no options it answers every request at once with a short text body, and is the "hello server"
//! ceiling the benchmarks measure against, so that path stays as lean as it can be. Options make it behave
//! like a real origin under a surge: a latency distribution, a cap on concurrent requests (beyond it, 503 or
//! a wait), an error rate, and a control endpoint to make it fail or slow down on command during a chaos
//! rehearsal (`/_origin/`, on its own port):
//!
//! ```text
//! GET  /_origin/state                     the behaviour now, and requests in flight
//! POST /_origin/fail                      every request gets 500 until /_origin/normal
//! POST /_origin/slow?latency=2s           every request takes this long
//! POST /_origin/normal                    back to the behaviour given on the command line
//! ```

use spillway_gateway::Entropy;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

const BODY: &[u8] = b"Hello from the Spillway sample origin\n";

/// How long a request takes before it is answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    Fixed(Duration),
    /// Uniform between the two.
    Uniform(Duration, Duration),
    /// Exponential with this mean: most requests are quick, a few are very slow, as origins are.
    Exponential(Duration),
}

impl Latency {
    pub const ZERO: Self = Self::Fixed(Duration::ZERO);

    /// `"20ms"`, `"10ms..50ms"` or `"exp:30ms"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let d = |t: &str| {
            humantime::parse_duration(t.trim()).map_err(|e| format!("{t:?}: {e} (write it like \"20ms\" or \"1s\")"))
        };
        if let Some(mean) = s.strip_prefix("exp:") {
            return Ok(Self::Exponential(d(mean)?));
        }
        if let Some((lo, hi)) = s.split_once("..") {
            let (lo, hi) = (d(lo)?, d(hi)?);
            if hi < lo {
                return Err(format!("{s:?}: the upper bound is below the lower"));
            }
            return Ok(Self::Uniform(lo, hi));
        }
        Ok(Self::Fixed(d(s)?))
    }

    fn sample(self, entropy: &Entropy) -> Duration {
        match self {
            Self::Fixed(d) => d,
            Self::Uniform(lo, hi) => lo + (hi - lo).mul_f64(entropy.f64()),
            // Inverse transform; 1 - u is in (0, 1], so the logarithm is finite.
            Self::Exponential(mean) => mean.mul_f64(-(1.0 - entropy.f64()).ln()).min(mean * 50),
        }
    }
}

/// What the origin does with a request; swapped whole by the control endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    pub latency: Latency,
    /// Share of requests answered 500, from 0 to 1.
    pub error_rate: f64,
}

impl Behaviour {
    fn plain(&self) -> bool {
        self.latency == Latency::ZERO && self.error_rate == 0.0
    }
}

/// What happens past `max_concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Overflow {
    /// Answer 503 at once, as an origin with a full worker pool does.
    Reject,
    /// Wait for a free slot, as an origin with a backlog does.
    Wait,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub log_format: spillway_config::LogFormat,
    /// Serving threads; one per core when absent.
    pub workers: Option<NonZeroUsize>,
    pub behaviour: Behaviour,
    pub max_concurrency: Option<usize>,
    pub overflow: Overflow,
}

struct Origin {
    configured: Behaviour,
    now: ArcSwap<Behaviour>,
    slots: Option<(Arc<Semaphore>, Overflow)>,
    in_flight: AtomicU64,
    served: AtomicU64,
    entropy: Entropy,
}

/// Serves with one single-threaded runtime per core, like the gateway's workers: the origin shares the cores
/// with the proxy and the load generator in a benchmark, and every microsecond it spends per request blurs
/// the difference between the proxies in front of it.
pub fn run(options: Options) -> ExitCode {
    crate::logging::init(&spillway_config::LogConfig { format: options.log_format, ..Default::default() });
    let runtime = || tokio::runtime::Builder::new_current_thread().enable_all().build();
    let main = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let listen = options.listen;
    let threads = options.workers.unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN));
    let mut listeners = match main.block_on(async { spillway_gateway::workers::bind(listen, threads) }) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let origin = Origin::new(&options);
    let first = listeners.remove(0);
    tracing::info!(listen = %first.local_addr().unwrap_or(listen), "sample origin listening");
    for listener in listeners {
        let origin = origin.clone();
        let spawned = std::thread::Builder::new().name("spillway-origin".into()).spawn(move || {
            if let Ok(rt) = runtime() {
                rt.block_on(accept(listener, origin));
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start an origin thread");
        }
    }
    main.block_on(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
            () = accept(first, origin) => ExitCode::FAILURE,
        }
    })
}

/// Serves on the calling runtime (for `spillway demo`, which runs everything in one process); the origin
/// stops when the task is aborted.
pub async fn spawn(options: &Options) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind(options.listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    Ok((addr, tokio::spawn(accept(listener, Origin::new(options)))))
}

async fn accept(listener: std::net::TcpListener, origin: Arc<Origin>) {
    let Ok(listener) = TcpListener::from_std(listener) else { return };
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let origin = origin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let origin = origin.clone();
                async move { Ok::<_, Infallible>(origin.answer(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

type Answer = Response<Full<Bytes>>;

impl Origin {
    fn new(options: &Options) -> Arc<Self> {
        Arc::new(Self {
            now: ArcSwap::from_pointee(options.behaviour.clone()),
            configured: options.behaviour.clone(),
            slots: options.max_concurrency.map(|n| (Arc::new(Semaphore::new(n)), options.overflow)),
            in_flight: AtomicU64::new(0),
            served: AtomicU64::new(0),
            entropy: Entropy::system(),
        })
    }

    async fn answer(&self, req: Request<Incoming>) -> Answer {
        if let Some(control) = req.uri().path().strip_prefix("/_origin/") {
            return self.control(req.method(), control, req.uri().query());
        }
        let behaviour = self.now.load();
        if behaviour.plain() && self.slots.is_none() {
            self.served.fetch_add(1, Ordering::Relaxed);
            return text(StatusCode::OK, BODY);
        }
        let _slot = match &self.slots {
            None => None,
            Some((slots, Overflow::Reject)) => match slots.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => return text(StatusCode::SERVICE_UNAVAILABLE, b"origin at capacity\n"),
            },
            Some((slots, Overflow::Wait)) => match slots.clone().acquire_owned().await {
                Ok(slot) => Some(slot),
                Err(_) => return text(StatusCode::SERVICE_UNAVAILABLE, b"origin shutting down\n"),
            },
        };
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let delay = behaviour.latency.sample(&self.entropy);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        if behaviour.error_rate > 0.0 && self.entropy.f64() < behaviour.error_rate {
            return text(StatusCode::INTERNAL_SERVER_ERROR, b"origin error (rehearsal)\n");
        }
        text(StatusCode::OK, BODY)
    }

    fn control(&self, method: &Method, action: &str, query: Option<&str>) -> Answer {
        let change = match (method, action) {
            (&Method::GET, "state") => None,
            (&Method::POST, "fail") => Some(Behaviour { error_rate: 1.0, ..(**self.now.load()).clone() }),
            (&Method::POST, "slow") => {
                let wanted = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("latency=")));
                match Latency::parse(wanted.unwrap_or("2s")) {
                    Ok(latency) => Some(Behaviour { latency, ..(**self.now.load()).clone() }),
                    Err(e) => {
                        return json(StatusCode::BAD_REQUEST, &serde_json::json!({ "error": "invalid", "message": e }));
                    }
                }
            }
            (&Method::POST, "normal") => Some(self.configured.clone()),
            _ => {
                let message = "GET /_origin/state, POST /_origin/fail, /_origin/slow?latency=2s, /_origin/normal";
                return json(StatusCode::NOT_FOUND, &serde_json::json!({ "error": "not_found", "message": message }));
            }
        };
        if let Some(next) = change {
            tracing::info!(action, ?next, "origin behaviour changed");
            self.now.store(Arc::new(next));
        }
        let now = self.now.load();
        json(
            StatusCode::OK,
            &serde_json::json!({
                "latency": format!("{:?}", now.latency),
                "error_rate": now.error_rate,
                "in_flight": self.in_flight.load(Ordering::Relaxed),
                "served": self.served.load(Ordering::Relaxed),
            }),
        )
    }
}

fn text(status: StatusCode, body: &'static [u8]) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    response
}

fn json(status: StatusCode, body: &serde_json::Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_parse_and_stay_in_range() {
        assert_eq!(Latency::parse("20ms"), Ok(Latency::Fixed(Duration::from_millis(20))));
        let entropy = Entropy::seeded(7);
        let uniform = Latency::parse("10ms..50ms").expect("uniform");
        for _ in 0..1000 {
            let d = uniform.sample(&entropy);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(50), "{d:?}");
        }
        let exp = Latency::parse("exp:30ms").expect("exponential");
        let mean = (0..20_000).map(|_| exp.sample(&entropy).as_secs_f64()).sum::<f64>() / 20_000.0;
        assert!((0.027..0.033).contains(&mean), "mean {mean}");
        assert!(Latency::parse("50ms..10ms").is_err());
        assert!(Latency::parse("fast").is_err());
    }
}
