//! `spillway origin`: a tiny HTTP/1.1 origin that answers every request with a short text body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = b"Hello from the Spillway sample origin\n";

/// Serves with one single-threaded runtime per core, like the gateway's workers: the origin shares the cores
/// with the proxy and the load generator in a benchmark, and every microsecond it spends per request blurs
/// the difference between the proxies in front of it.
pub fn run(listen: SocketAddr) -> ExitCode {
    crate::logging::init(&spillway_config::LogConfig::default());
    let runtime = || tokio::runtime::Builder::new_current_thread().enable_all().build();
    let main = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    let mut listeners = match main.block_on(async { spillway_gateway::workers::bind(listen, threads) }) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let first = listeners.remove(0);
    tracing::info!(listen = %first.local_addr().unwrap_or(listen), "sample origin listening");
    for listener in listeners {
        let spawned = std::thread::Builder::new().name("spillway-origin".into()).spawn(move || {
            if let Ok(rt) = runtime() {
                rt.block_on(accept(listener));
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start an origin thread");
        }
    }
    main.block_on(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
            () = accept(first) => ExitCode::FAILURE,
        }
    })
}

async fn accept(listener: std::net::TcpListener) {
    let Ok(listener) = TcpListener::from_std(listener) else { return };
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(answer));
            let _ = conn.await;
        });
    }
}

async fn answer(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    Ok(response)
}
