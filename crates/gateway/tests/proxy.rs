//! The reverse proxy end to end: real origin, real gateway, real client, all on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use spillway_testkit::{Conf, Origin, client, dead_address, metric, metrics, url};

#[tokio::test]
async fn routes_by_host_then_longest_prefix() {
    let (a, b, c) = (Origin::start("a").await, Origin::start("b").await, Origin::start("c").await);
    let cfg = Conf::new()
        .upstream("a", a.addr)
        .upstream("b", b.addr)
        .upstream("c", c.addr)
        .route("/", "a")
        .route("/api", "b")
        .route("/", "c")
        .raw("host = \"shop.test\"")
        .route("/api/v2", "a")
        .raw("host = \"shop.test\"")
        .build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let http = client();
    for (host, path, want) in [
        (None, "/", "a"),
        (None, "/api/items", "b"),
        (None, "/apix", "a"),
        (Some("shop.test"), "/api/v1", "c"),
        (Some("SHOP.test:8080"), "/api/v2/x", "a"),
        (Some("other.test"), "/api", "b"),
    ] {
        let mut req = http.get(url(gw.public_addr, path));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        assert_eq!(body["origin"], want, "{host:?} {path}");
        assert_eq!(body["path"], path);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn no_route_is_a_json_404() {
    let origin = Origin::start("a").await;
    let cfg = Conf::new().upstream("a", origin.addr).route("/only", "a").build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let resp = client().get(url(gw.public_addr, "/elsewhere")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "no_route");
    gw.shutdown().await;
}

#[tokio::test]
async fn strips_hop_by_hop_and_adds_forwarding_headers() {
    let origin = Origin::start("a").await;
    let cfg = Conf::new().upstream("a", origin.addr).route("/", "a").build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let resp = client()
        .get(url(gw.public_addr, "/echo"))
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-keep-me", "1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-origin-hop").is_none(), "response hop-by-hop header leaked");
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let body: Value = resp.json().await.unwrap();
    let h = &body["headers"];
    for gone in ["x-drop-me", "keep-alive", "proxy-authorization", "te"] {
        assert!(h.get(gone).is_none(), "{gone} reached the origin: {h}");
    }
    assert_eq!(h["x-keep-me"], "1");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["forwarded"], format!("for=127.0.0.1;proto=http;host=\"{}\"", gw.public_addr));
    assert_eq!(h["x-request-id"], "req-42");
    assert_eq!(h["host"], gw.public_addr.to_string(), "the client's Host is kept");

    // Without an incoming id the gateway makes one and gives the same one to both sides.
    let resp = client().get(url(gw.public_addr, "/echo")).send().await.unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(body["headers"]["x-request-id"], id.as_str());
    gw.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn slow_origin_gets_a_504_on_paused_time() {
    let origin = Origin::start("a").await;
    let cfg = Conf::new()
        .upstream("a", origin.addr)
        .raw("connect_timeout = \"5s\"\nrequest_timeout = \"2s\"")
        .route("/", "a")
        .build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let resp = client().get(url(gw.public_addr, "/slow")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "upstream_timeout");
    assert_eq!(body["message"], "upstream a did not answer within 2s");
    gw.shutdown().await;
}

#[tokio::test]
async fn dead_address_is_a_502_in_the_format_the_client_reads() {
    let cfg = Conf::new().upstream("gone", dead_address().await).route("/", "gone").build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let resp = client().get(url(gw.public_addr, "/")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "upstream_unavailable");
    assert!(!body["message"].as_str().unwrap().contains("127.0.0.1"), "internal address leaked: {body}");

    let resp = client().get(url(gw.public_addr, "/")).header("accept", "text/html,*/*").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(resp.text().await.unwrap().contains("502 Bad Gateway"));
    gw.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn dead_address_is_ejected_and_retried_after_eject_for() {
    let live = Origin::start("live").await;
    let dead = dead_address().await;
    let pair = format!("[upstreams.pair]\naddresses = [\"{dead}\", \"{}\"]\neject_for = \"10s\"", live.addr);
    let cfg = Conf::new().raw(&pair).route("/", "pair").build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let http = client();
    let failures = format!("spillway_upstream_connect_failures_total{{upstream=\"pair\",address=\"{dead}\"}}");
    let ejections = format!("spillway_upstream_ejections_total{{upstream=\"pair\",address=\"{dead}\"}}");

    // Round-robin starts at the dead address: that GET fails to connect, is replayed on the live one.
    for _ in 0..6 {
        let resp = http.get(url(gw.public_addr, "/")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert!(gw.runtime().upstream("pair").unwrap().is_ejected(0));
    let m = metrics(gw.admin_addr).await;
    assert_eq!(metric(&m, &failures), Some(1.0), "ejected address was tried again:\n{m}");
    assert_eq!(metric(&m, &ejections), Some(1.0));

    // A request with a body cannot be replayed: if it lands on the dead address it is a 502.
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(!gw.runtime().upstream("pair").unwrap().is_ejected(0));
    // A fresh client: the gateway closed the old keep-alive connections while time jumped.
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(http.post(url(gw.public_addr, "/upload")).body("payload").send().await.unwrap().status());
    }
    assert!(statuses.contains(&StatusCode::BAD_GATEWAY) && statuses.contains(&StatusCode::OK), "{statuses:?}");
    assert_eq!(metric(&metrics(gw.admin_addr).await, &ejections), Some(2.0));
    gw.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_whether_announced_or_streamed() {
    let origin = Origin::start("a").await;
    let cfg = Conf::new().server("max_body_bytes = \"1KiB\"").upstream("a", origin.addr).route("/", "a").build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let http = client();

    let ok = http.post(url(gw.public_addr, "/upload")).body(vec![0u8; 1024]).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "1024");

    let announced = http.post(url(gw.public_addr, "/upload")).body(vec![0u8; 1025]).send().await.unwrap();
    assert_eq!(announced.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(announced.json::<Value>().await.unwrap()["error"], "body_too_large");

    // Chunked: no Content-Length, so the limit is found while streaming.
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(vec![0u8; 800]), Ok(vec![0u8; 800])]);
    let streamed =
        http.post(url(gw.public_addr, "/upload")).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    gw.shutdown().await;
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let origin = Origin::start("a").await;
    let cfg = Conf::new().server("max_header_bytes = \"4KiB\"").upstream("a", origin.addr).route("/", "a").build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let http = client();
    let fits = http.get(url(gw.public_addr, "/")).header("x-big", "v".repeat(3000)).send().await.unwrap();
    assert_eq!(fits.status(), StatusCode::OK);
    let too_big = http.get(url(gw.public_addr, "/")).header("x-big", "v".repeat(5000)).send().await.unwrap();
    assert_eq!(too_big.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(too_big.json::<Value>().await.unwrap()["error"], "headers_too_large");
    // Far past the limit hyper itself refuses while parsing, still with 431.
    let huge = http.get(url(gw.public_addr, "/")).header("x-big", "v".repeat(64 * 1024)).send().await.unwrap();
    assert_eq!(huge.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    gw.shutdown().await;
}

#[tokio::test]
async fn h2c_with_prior_knowledge() {
    let origin = Origin::start("a").await;
    let cfg = Conf::new().upstream("a", origin.addr).route("/", "a").build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let h2 = reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().unwrap();
    let resp = h2.get(url(gw.public_addr, "/h2")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["host"], gw.public_addr.to_string(), "HTTP/2 :authority becomes Host");
    gw.shutdown().await;
}

/// An origin that closes every connection right after its answer, without saying so in a header: the
/// pooled connection is dead by the next request, which must still get through.
#[tokio::test]
async fn a_pooled_connection_the_origin_closed_is_not_used() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let mut read = 0;
            while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
            drop(stream);
        }
    });
    let cfg = Conf::new().upstream("a", addr).route("/", "a").build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let http = client();
    for i in 0..5 {
        let resp = http.get(url(gw.public_addr, "/")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
        assert_eq!(resp.text().await.unwrap(), "ok");
        // Let the gateway see the close, as it would between two real requests.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.shutdown().await;
}
