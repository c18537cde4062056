//! Rate limits end to end: a real origin, the real gateway and a real client on 127.0.0.1, on a manual
//! clock (or paused tokio time for throttling), so every count is exact.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use spillway_gateway::{Clock, Handle};
use spillway_testkit::{Conf, Origin, client, client_from, metric, metrics, url};

const T0: u64 = 1_800_000_000_000;

async fn start(limits: &str, server: &str, clock: Clock) -> (Handle, Origin) {
    let origin = Origin::start("origin").await;
    let cfg = Conf::new()
        .server(server)
        .upstream("origin", origin.addr)
        .raw(limits)
        .route("/api", "origin")
        .policies(&["limit:api"])
        .build();
    let gw = spillway_gateway::start_with_clock(cfg, clock).await.unwrap();
    (gw, origin)
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

async fn outcome(gw: &Handle, outcome: &str) -> f64 {
    let text = metrics(gw.admin_addr).await;
    metric(&text, &format!("spillway_limit_requests_total{{limit=\"api\",outcome=\"{outcome}\"}}")).unwrap_or(0.0)
}

#[tokio::test]
async fn headers_follow_the_policy_and_retry_after_is_enough() {
    let clock = Clock::manual(T0);
    let (gw, _o) = start("[limits.api]\nrate = \"5/s\"\nburst = 5\n", "", clock.clone()).await;
    let http = client();
    let api = url(gw.public_addr, "/api/items");
    for remaining in (0..5).rev() {
        let r = http.get(&api).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "ratelimit-policy"), "\"api\";q=5;w=1");
        let state = header(&r, "ratelimit");
        assert!(state.starts_with(&format!("\"api\";r={remaining};t=")), "{state}");
    }
    let r = http.get(&api).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert_eq!(retry, 1, "one interval of 200 ms, rounded up to whole seconds");
    assert!(header(&r, "ratelimit").starts_with("\"api\";r=0;"));
    assert_eq!(header(&r, "ratelimit-policy"), "\"api\";q=5;w=1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");

    clock.advance(Duration::from_secs(retry));
    assert_eq!(http.get(&api).send().await.unwrap().status(), StatusCode::OK, "after Retry-After it passes");
    assert_eq!(outcome(&gw, "limited").await, 1.0);
    assert_eq!(outcome(&gw, "allowed").await, 6.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn every_band_must_pass_and_a_refusal_costs_the_others_nothing() {
    let clock = Clock::manual(T0);
    let limits = r#"
[limits.api]
[[limits.api.bands]]
name = "burst"
rate = "10/s"
burst = 10
[[limits.api.bands]]
name = "hourly"
algorithm = "fixed_window"
rate = "3/h"
"#;
    let (gw, _o) = start(limits, "", clock.clone()).await;
    let http = client();
    let api = url(gw.public_addr, "/api");
    for _ in 0..3 {
        let r = http.get(&api).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "ratelimit-policy"), "\"burst\";q=10;w=1, \"hourly\";q=3;w=3600");
    }
    let r = http.get(&api).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&r, "ratelimit").starts_with("\"hourly\";r=0;"), "{}", header(&r, "ratelimit"));
    // The next hour: the burst band has all but the three counted requests left, as if the refusals never
    // happened.
    clock.advance(Duration::from_secs(3600));
    let r = http.get(&api).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "ratelimit").starts_with("\"hourly\";r=2;"), "{}", header(&r, "ratelimit"));
    gw.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn throttle_holds_requests_instead_of_refusing_them() {
    let limits = "[limits.api]\nrate = \"1/s\"\naction = \"throttle\"\nmax_wait = \"2500ms\"\n";
    let (gw, _o) = start(limits, "", Clock::system()).await;
    let http = client();
    let api = url(gw.public_addr, "/api");
    let started = tokio::time::Instant::now();
    for i in 0..3 {
        let r = http.get(&api).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "request {i} is held, not refused");
    }
    let held = started.elapsed();
    assert!(held >= Duration::from_secs(2), "three requests at 1/s take two seconds of (paused) time: {held:?}");
    // A burst the wait cannot absorb: the fourth and later queue behind each other; the ones that would wait
    // past max_wait are refused.
    let burst: Vec<StatusCode> = futures_util::future::join_all((0..5).map(|_| http.get(&api).send()))
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    assert!(burst.contains(&StatusCode::OK));
    assert!(burst.contains(&StatusCode::TOO_MANY_REQUESTS), "{burst:?}");
    assert!(outcome(&gw, "throttled").await >= 2.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn shadow_mode_never_blocks_but_counts() {
    let (gw, _o) = start("[limits.api]\nrate = \"1/m\"\naction = \"shadow\"\n", "", Clock::manual(T0)).await;
    let http = client();
    for _ in 0..10 {
        let r = http.get(url(gw.public_addr, "/api")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(outcome(&gw, "allowed").await, 1.0);
    assert_eq!(outcome(&gw, "shadow_limited").await, 9.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn forwarded_addresses_count_only_through_trusted_proxies() {
    let limits = "[limits.api]\nrate = \"1/m\"\n";
    // Trusting 127.0.0.1: the address it forwards is the client.
    let (gw, _o) = start(limits, "trusted_proxies = [\"127.0.0.1\"]", Clock::manual(T0)).await;
    let http = client();
    let api = url(gw.public_addr, "/api");
    let get = |xff: &'static str| http.get(&api).header("x-forwarded-for", xff).send();
    assert_eq!(get("203.0.113.1").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("203.0.113.2").await.unwrap().status(), StatusCode::OK, "another client, its own budget");
    assert_eq!(get("203.0.113.1").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    // Spoofing an extra hop in front does not help: the rightmost untrusted address is still the client.
    assert_eq!(get("198.51.100.9, 203.0.113.1").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    gw.shutdown().await;

    // Trusting nobody: the header is ignored and every request counts against the peer.
    let (gw, _o) = start(limits, "", Clock::manual(T0)).await;
    let api = url(gw.public_addr, "/api");
    let r1 = http.get(&api).header("x-forwarded-for", "203.0.113.1").send().await.unwrap();
    let r2 = http.get(&api).header("x-forwarded-for", "203.0.113.2").send().await.unwrap();
    assert_eq!((r1.status(), r2.status()), (StatusCode::OK, StatusCode::TOO_MANY_REQUESTS));
    gw.shutdown().await;
}

#[tokio::test]
async fn allow_and_deny_lists() {
    let limits = "[limits.api]\nrate = \"1/m\"\nallow = [\"127.0.0.3\"]\ndeny = [\"127.0.0.2/32\"]\n";
    let (gw, _o) = start(limits, "", Clock::manual(T0)).await;
    let api = url(gw.public_addr, "/api");
    let denied = client_from([127, 0, 0, 2]).get(&api).send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert_eq!(denied.json::<Value>().await.unwrap()["error"], "denied");
    let exempt = client_from([127, 0, 0, 3]);
    for _ in 0..5 {
        assert_eq!(exempt.get(&api).send().await.unwrap().status(), StatusCode::OK);
    }
    let other = client_from([127, 0, 0, 4]);
    assert_eq!(other.get(&api).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(other.get(&api).send().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    gw.shutdown().await;
}

#[tokio::test]
async fn api_keys_have_their_own_budgets() {
    let limits = "[limits.api]\nrate = \"2/m\"\nkey = \"header:X-API-Key\"\n";
    let (gw, _o) = start(limits, "", Clock::manual(T0)).await;
    let http = client();
    let api = url(gw.public_addr, "/api");
    let get = |k: &'static str| http.get(&api).header("x-api-key", k).send();
    assert_eq!(get("alice").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("bob").await.unwrap().status(), StatusCode::OK, "per key, not per address");
    assert_eq!(get("alice").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS, "a GCRA burst of 1");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_limit_behind_a_room_counts_each_admitted_user_by_pass() {
    let origin = Origin::start("origin").await;
    let clock = Clock::manual(T0);
    let cfg = Conf::new()
        .keys()
        .upstream("origin", origin.addr)
        .room("sale", "new_users_per_minute = 6000\nactivation = \"threshold\"")
        .table("limits.per_user", "key = \"pass:sale\"\nrate = \"1/m\"")
        .route("/api", "origin")
        .policies(&["room:sale", "limit:per_user"])
        .build();
    let gw = spillway_gateway::start_with_clock(cfg, clock.clone()).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let api = url(gw.public_addr, "/api");
    let http = client();
    let mut passes = Vec::new();
    for _ in 0..2 {
        let r = http.get(&api).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "threshold: straight in, and the limit's first request");
        let cookie = header(&r, "set-cookie");
        passes.push(cookie.split(';').next().unwrap().to_string());
    }
    for pass in &passes {
        let r = http.get(&api).header("cookie", pass).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "each user has their own budget of one");
    }
    gw.shutdown().await;
}
