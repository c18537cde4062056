//! Admin listener, metrics, reload and graceful shutdown of a real gateway.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use spillway_testkit::{Conf, Origin, TOKEN, client, metric, metrics, url};

fn one_route(origin: &Origin) -> spillway_config::Config {
    Conf::new().upstream("a", origin.addr).route("/", "a").raw("name = \"site\"").build()
}

/// Everything to origin `b`, for a reload.
fn to_b(b: &Origin) -> spillway_config::Config {
    Conf::new().upstream("b", b.addr).route("/", "b").build()
}

#[tokio::test]
async fn admin_requires_the_bearer_token_except_healthz() {
    let origin = Origin::start("a").await;
    let gw = spillway_gateway::start(one_route(&origin)).await.unwrap();
    let http = client();
    let admin = |path: &str| format!("http://{}{path}", gw.admin_addr);

    let health = http.get(admin("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    for path in ["/metrics", "/readyz"] {
        let missing = http.get(admin(path)).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED, "{path} without a token");
        assert!(missing.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        assert_eq!(missing.json::<Value>().await.unwrap()["error"], "unauthorized");

        let wrong = http.get(admin(path)).bearer_auth("not-the-token").send().await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path} with a wrong token");
        let prefix = http.get(admin(path)).bearer_auth(&TOKEN[..TOKEN.len() - 1]).send().await.unwrap();
        assert_eq!(prefix.status(), StatusCode::UNAUTHORIZED, "{path} with a prefix of the token");

        let right = http.get(admin(path)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(right.status(), StatusCode::OK, "{path} with the token");
    }
    let ready: Value = http.get(admin("/readyz")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    gw.shutdown().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_class_and_watch_the_pool() {
    let origin = Origin::start("a").await;
    let gw = spillway_gateway::start(one_route(&origin)).await.unwrap();
    let http = client();
    for _ in 0..3 {
        assert_eq!(http.get(url(gw.public_addr, "/x")).send().await.unwrap().status(), StatusCode::OK);
    }
    let m = metrics(gw.admin_addr).await;
    let labels = "{route=\"site\",status_class=\"2xx\"}";
    assert_eq!(metric(&m, &format!("spillway_http_requests_total{labels}")), Some(3.0), "{m}");
    assert_eq!(metric(&m, &format!("spillway_http_request_duration_seconds_count{labels}")), Some(3.0));
    let addr = format!("{{upstream=\"a\",address=\"{}\"}}", origin.addr);
    assert_eq!(
        metric(&m, &format!("spillway_upstream_connections{addr}")),
        Some(1.0),
        "one pooled keep-alive connection"
    );
    assert_eq!(metric(&m, &format!("spillway_upstream_in_flight{addr}")), Some(0.0));
    assert!(m.contains("spillway_build_info{version=\""));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_bad_reload_keeps_the_running_config_and_a_good_one_applies() {
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let gw = spillway_gateway::start(one_route(&a)).await.unwrap();
    let http = client();
    let origin_of = |resp: reqwest::Response| async move { resp.json::<Value>().await.unwrap()["origin"].clone() };

    // Valid TOML that cannot be built: the certificate file does not exist.
    let bad = Conf::new()
        .table("server.tls", "cert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"")
        .upstream("b", b.addr)
        .route("/", "b")
        .build();
    let err = gw.reload(bad).await.unwrap_err().to_string();
    assert!(err.starts_with("server.tls.cert: "), "{err}");
    assert_eq!(origin_of(http.get(url(gw.public_addr, "/")).send().await.unwrap()).await, "a");

    gw.reload(to_b(&b)).await.unwrap();
    assert_eq!(origin_of(http.get(url(gw.public_addr, "/")).send().await.unwrap()).await, "b");

    let m = metrics(gw.admin_addr).await;
    assert_eq!(metric(&m, "spillway_config_reloads_total{outcome=\"rejected\"}"), Some(1.0));
    assert_eq!(metric(&m, "spillway_config_reloads_total{outcome=\"applied\"}"), Some(1.0));
    gw.shutdown().await;
}

#[tokio::test]
async fn an_unchanged_upstream_keeps_its_pool_across_a_reload() {
    let a = Origin::start("a").await;
    let gw = spillway_gateway::start(one_route(&a)).await.unwrap();
    let before = gw.runtime().upstream("a").unwrap().clone();
    gw.reload(one_route(&a)).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&before, gw.runtime().upstream("a").unwrap()));
    gw.shutdown().await;
}

#[tokio::test]
async fn in_flight_requests_finish_during_shutdown() {
    let origin = Origin::start("a").await;
    let gw = spillway_gateway::start(one_route(&origin)).await.unwrap();
    let (public, admin) = (gw.public_addr, gw.admin_addr);
    let held = tokio::spawn(client().get(format!("http://{public}/hold")).send());
    origin.arrived.notified().await;

    let mut shutdown = Box::pin(gw.shutdown());
    // Poll once: that marks the gateway draining and stops the accept loop; the held request keeps it open.
    tokio::select! { biased; _ = &mut shutdown => panic!("shutdown finished with a request in flight"), () = std::future::ready(()) => {} }
    let ready = client().get(format!("http://{admin}/readyz")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "draining");

    origin.release.notify_one();
    let resp = held.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "released");
    assert!(shutdown.await.clean);
    assert!(tokio::net::TcpStream::connect(public).await.is_err(), "still accepting after shutdown");
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_after_the_grace_period() {
    let origin = Origin::start("a").await;
    let cfg = Conf::new()
        .server("shutdown_grace = \"5s\"")
        .upstream("a", origin.addr)
        .raw("request_timeout = \"1h\"")
        .route("/", "a")
        .build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let held = tokio::spawn(client().get(url(gw.public_addr, "/hold")).send());
    origin.arrived.notified().await;
    assert!(!gw.shutdown().await.clean);
    assert!(held.await.unwrap().is_err(), "the held request was cut off");
}

#[tokio::test]
async fn worker_threads_proxy_reload_and_drain() {
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let workers = spillway_gateway::Workers::Threads(std::num::NonZeroUsize::new(2).unwrap());
    let gw = spillway_gateway::start_with(one_route(&a), workers).await.unwrap();
    let (public, admin) = (gw.public_addr, gw.admin_addr);
    // The workers' SO_REUSEPORT sockets do not let a second gateway share the port.
    let mut second = one_route(&a);
    second.server.listen = public;
    let err = spillway_gateway::start_with(second, workers).await.unwrap_err().to_string();
    assert!(err.starts_with(&format!("server.listen: cannot listen on {public}")), "{err}");

    let origin_of = |resp: reqwest::Response| async move { resp.json::<Value>().await.unwrap()["origin"].clone() };
    // A fresh connection each time, so the kernel spreads them over both workers' sockets.
    let fresh = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().unwrap();
    for _ in 0..8 {
        assert_eq!(origin_of(fresh.get(format!("http://{public}/x")).send().await.unwrap()).await, "a");
    }
    let m = metrics(admin).await;
    let requests = metric(&m, "spillway_http_requests_total{route=\"site\",status_class=\"2xx\"}");
    assert_eq!(requests, Some(8.0), "{m}");
    let pooled = metric(&m, &format!("spillway_upstream_connections{{upstream=\"a\",address=\"{}\"}}", a.addr));
    assert!(pooled.is_some_and(|n| (1.0..=2.0).contains(&n)), "one pooled connection per worker at most: {m}");

    gw.reload(to_b(&b)).await.unwrap();
    for _ in 0..4 {
        assert_eq!(origin_of(fresh.get(format!("http://{public}/")).send().await.unwrap()).await, "b");
    }

    let held = tokio::spawn(client().get(format!("http://{public}/hold")).send());
    b.arrived.notified().await;
    let mut shutdown = Box::pin(gw.shutdown());
    tokio::select! { biased; _ = &mut shutdown => panic!("shutdown finished with a request in flight"), () = std::future::ready(()) => {} }
    b.release.notify_one();
    assert_eq!(held.await.unwrap().unwrap().text().await.unwrap(), "released");
    assert!(shutdown.await.clean);
    assert!(tokio::net::TcpStream::connect(public).await.is_err(), "still accepting after shutdown");
}
