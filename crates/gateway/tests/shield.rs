//! The origin shield end to end: a real origin made to fail or stall on command, the real gateway, real
//! clients on 127.0.0.1; the breaker's time on a manual clock.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use reqwest::StatusCode;
use serde_json::Value;
use spillway_gateway::{Clock, Handle};
use spillway_testkit::{Conf, Origin, client, metric, metrics, url};

const T0: u64 = 1_800_000_000_000;

async fn start(shield: &str, clock: Clock) -> (Handle, Origin) {
    let origin = Origin::start("origin").await;
    let cfg = Conf::new()
        .upstream("origin", origin.addr)
        .table("shields.api", shield)
        .route("/", "origin")
        .policies(&["shield:api"])
        .route("/low", "origin")
        .policies(&["shield:api"])
        .raw("priority = \"low\"")
        .build();
    (spillway_gateway::start_with_clock(cfg, clock).await.unwrap(), origin)
}

async fn get(path: &str, gw: &Handle) -> (StatusCode, Option<String>, String) {
    let r = client().get(url(gw.public_addr, path)).send().await.unwrap();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (r.status(), retry, r.text().await.unwrap())
}

#[tokio::test]
async fn the_breaker_opens_on_failures_and_recovers_through_half_open() {
    let clock = Clock::manual(T0);
    let shield =
        "window = \"10 calls\"\nminimum_calls = 5\nfailure_rate = 0.5\nopen_for = \"30s\"\nhalf_open_calls = 2\n";
    let (gw, origin) = start(shield, clock.clone()).await;
    origin.failing.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(get("/flaky", &gw).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let (status, retry_after, body) = get("/flaky", &gw).await;
    assert_eq!((status, retry_after.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("30")));
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "circuit_open");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 5, "an open breaker spares the origin");

    origin.failing.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(30));
    assert_eq!(get("/flaky", &gw).await.0, StatusCode::OK, "a trial call");
    assert_eq!(get("/flaky", &gw).await.0, StatusCode::OK, "the second trial closes it");
    assert_eq!(get("/flaky", &gw).await.0, StatusCode::OK);

    let text = metrics(gw.admin_addr).await;
    let moved = |to: &str| {
        metric(
            &text,
            &format!("spillway_shield_breaker_transitions_total{{shield=\"api\",scope=\"origin\",to=\"{to}\"}}"),
        )
    };
    assert_eq!((moved("open"), moved("half_open"), moved("closed")), (Some(1.0), Some(1.0), Some(1.0)));
    assert_eq!(metric(&text, "spillway_shield_breaker_state{shield=\"api\",scope=\"origin\"}"), Some(0.0));
    assert_eq!(metric(&text, "spillway_shield_refused_total{shield=\"api\",reason=\"circuit_open\"}"), Some(1.0));
    gw.shutdown().await;
}

#[tokio::test]
async fn retries_stay_within_the_budget_and_only_for_what_can_be_replayed() {
    let shield = "retries = 3\nretry_backoff = \"1ms\"\nretry_budget = 0.1\nminimum_calls = 100000\n";
    let (gw, origin) = start(shield, Clock::manual(T0)).await;
    origin.failing.store(true, Ordering::SeqCst);
    for _ in 0..100 {
        assert_eq!(get("/flaky", &gw).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let hits = origin.hits.load(Ordering::SeqCst);
    // 100 first attempts, then retries up to 10% of them plus the floor of one a second over 10 s.
    assert!((101..=120).contains(&hits), "{hits} calls reached the origin for 100 requests");

    origin.hits.store(0, Ordering::SeqCst);
    let r = client().post(url(gw.public_addr, "/flaky")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(origin.hits.load(Ordering::SeqCst), 1, "a POST without an idempotency key is never retried");
    let text = metrics(gw.admin_addr).await;
    assert!(
        metric(&text, "spillway_shield_retries_total{shield=\"api\",reason=\"budget_exhausted\"}").unwrap() >= 80.0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_failing_get_is_tried_once_plus_its_retries() {
    let shield = "retries = 2\nretry_backoff = \"1ms\"\nminimum_calls = 100000\n";
    let (gw, origin) = start(shield, Clock::manual(T0)).await;
    origin.failing.store(true, Ordering::SeqCst);
    let r = client().get(url(gw.public_addr, "/flaky")).send().await.unwrap();
    assert_eq!((r.status(), origin.hits.load(Ordering::SeqCst)), (StatusCode::INTERNAL_SERVER_ERROR, 3));
    // A POST with an idempotency key is retried too, its body kept to be sent again.
    let r = client()
        .post(url(gw.public_addr, "/flaky"))
        .header("idempotency-key", "order-7")
        .body("{\"sku\":42}")
        .send()
        .await
        .unwrap();
    assert_eq!((r.status(), origin.hits.load(Ordering::SeqCst)), (StatusCode::INTERNAL_SERVER_ERROR, 6));
    // Its body reaches the origin whole on the first try (the origin counts what it received).
    origin.failing.store(false, Ordering::SeqCst);
    let r = client()
        .post(url(gw.public_addr, "/upload"))
        .header("idempotency-key", "k")
        .body("12345")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "5");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_bulkhead_caps_the_origin_and_sheds_low_priority_first() {
    let shield = "max_concurrency = 2\nmax_queue = 4\nqueue_timeout = \"60s\"\n";
    let (gw, origin) = start(shield, Clock::manual(T0)).await;
    let http = client();
    let send = |path: &'static str| {
        let (http, u) = (http.clone(), url(gw.public_addr, path));
        async move {
            let r = http.get(u).send().await.unwrap();
            (path, r.status(), r.text().await.unwrap())
        }
    };
    // Two go in and two normal ones wait (half the line); the other two normal ones are shed at once.
    let mut pending: FuturesUnordered<_> = FuturesUnordered::new();
    for _ in 0..6 {
        pending.push(send("/gated"));
    }
    let mut shed = 0;
    while shed < 2 {
        let (path, status, body) = pending.next().await.unwrap();
        assert_eq!((path, status), ("/gated", StatusCode::SERVICE_UNAVAILABLE), "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "overloaded");
        shed += 1;
    }
    // With the line half full, low priority may not wait at all: its quarter is taken.
    let mut low: FuturesUnordered<_> = (0..3).map(|_| send("/low/gated")).collect();
    while let Some((_, status, body)) = low.next().await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    origin.gate.add_permits(4);
    while let Some((_, status, _)) = pending.next().await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(origin.max_in_flight.load(Ordering::SeqCst), 2, "never more than the bulkhead lets through");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 4);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_open_breaker_answers_with_the_fallback() {
    let shield = "minimum_calls = 1\nfailure_rate = 1.0\n\
                  fallback = { status = 200, content_type = \"application/json\", body = '{\"items\":[],\"degraded\":true}' }\n";
    let (gw, origin) = start(shield, Clock::manual(T0)).await;
    origin.failing.store(true, Ordering::SeqCst);
    let (status, _, body) = get("/flaky", &gw).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "{\"items\":[],\"degraded\":true}"), "the failure itself");
    let (status, _, body) = get("/flaky", &gw).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "{\"items\":[],\"degraded\":true}"), "and the open breaker");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 1);
    gw.shutdown().await;
}
