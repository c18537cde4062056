//! A real origin and a real gateway on 127.0.0.1:0, and a real HTTP client, for the integration tests.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

mod config;
mod process;
pub use config::{Conf, SECRET, config};
pub use process::Spillway;
use tokio::sync::Notify;

type OriginBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A test origin. Paths:
/// - `/hold`: tells `arrived`, waits for `release`, then answers;
/// - `/slow`: answers after an hour (of tokio time);
/// - `/upload`: reads the whole body and answers with its length;
/// - `/download/<n>`: streams `n` bytes in 64 KiB chunks;
/// - `/gated`: waits for a permit from `gate` (none at first), then answers;
/// - `/flaky`: answers 500 while `failing` is set, else like any other path;
/// - anything else: JSON with the origin's name, the path and the request headers.
///
/// Every request counts in `hits`; `in_flight` and `max_in_flight` say how many it served at once.
#[derive(Debug, Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    pub arrived: Arc<Notify>,
    pub release: Arc<Notify>,
    pub gate: Arc<tokio::sync::Semaphore>,
    pub failing: Arc<AtomicBool>,
    pub hits: Arc<AtomicU64>,
    pub in_flight: Arc<AtomicU64>,
    pub max_in_flight: Arc<AtomicU64>,
}

impl Origin {
    pub async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let origin = Self {
            addr,
            arrived: Arc::new(Notify::new()),
            release: Arc::new(Notify::new()),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            failing: Arc::new(AtomicBool::new(false)),
            hits: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::new(AtomicU64::new(0)),
            max_in_flight: Arc::new(AtomicU64::new(0)),
        };
        let o = origin.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let o = o.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(name, o.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        origin
    }
}

async fn answer(
    name: &'static str,
    origin: Origin,
    req: Request<Incoming>,
) -> Result<Response<OriginBody>, Infallible> {
    origin.hits.fetch_add(1, Ordering::SeqCst);
    let now = origin.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    origin.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let response = serve(name, &origin, req).await;
    origin.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn serve(
    name: &'static str,
    origin: &Origin,
    req: Request<Incoming>,
) -> Result<Response<OriginBody>, Infallible> {
    let path = req.uri().path().to_string();
    let full = |s: String| Full::new(Bytes::from(s)).boxed();
    let body = match path.as_str() {
        "/hold" => {
            origin.arrived.notify_one();
            origin.release.notified().await;
            full("released".into())
        }
        "/gated" => {
            origin.gate.acquire().await.unwrap().forget();
            full("gated".into())
        }
        "/flaky" if origin.failing.load(Ordering::SeqCst) => {
            return Ok(Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(full("failing".into()))
                .unwrap());
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            full("slow".into())
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => {
                        return Ok(Response::builder()
                            .status(StatusCode::BAD_REQUEST)
                            .body(full("aborted".into()))
                            .unwrap());
                    }
                }
            }
            full(n.to_string())
        }
        p if p.starts_with("/download/") => {
            let total: usize = p["/download/".len()..].parse().unwrap_or(0);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let frames = futures_util::stream::iter((0..total.div_ceil(chunk.len())).map(move |i| {
                let len = chunk.len().min(total - i * chunk.len());
                Ok::<_, Infallible>(Frame::data(chunk.slice(..len)))
            }));
            StreamBody::new(frames).boxed()
        }
        _ => {
            let headers: BTreeMap<String, String> =
                req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
            full(serde_json::json!({ "origin": name, "path": path, "headers": headers }).to_string())
        }
    };
    let mut response = Response::new(body);
    // A hop-by-hop header the gateway must not pass on to the client.
    response.headers_mut().insert("connection", "x-origin-hop".parse().unwrap());
    response.headers_mut().insert("x-origin-hop", "secret".parse().unwrap());
    Ok(response)
}

/// The admin token of every test config.
pub const TOKEN: &str = "test-admin-token";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A client whose connections come from `ip` (any 127.x.y.z works on loopback), to test per-address rules.
pub fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().no_proxy().local_address(std::net::IpAddr::from(ip)).build().unwrap()
}

pub fn url(public: SocketAddr, path: &str) -> String {
    format!("http://{public}{path}")
}

/// The admin listener's `/metrics` text.
pub async fn metrics(admin: SocketAddr) -> String {
    client().get(format!("http://{admin}/metrics")).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap()
}

/// The value of the first metric line starting with `prefix`.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// An address with nothing listening: bound, then closed.
pub async fn dead_address() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}
