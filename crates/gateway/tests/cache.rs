//! The stampede-proof cache end to end: a real origin that can stall or fail on command, the real gateway,
//! real clients on 127.0.0.1; freshness on a manual clock.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use spillway_gateway::{Clock, Handle};
use spillway_testkit::{Conf, Origin, client, metric, metrics, url};

const T0: u64 = 1_800_000_000_000;

async fn start(cache: &str, clock: Clock) -> (Handle, Origin) {
    let origin = Origin::start("origin").await;
    let cfg = Conf::new()
        .upstream("origin", origin.addr)
        .table("caches.c", cache)
        .route("/", "origin")
        .policies(&["cache:c"])
        .build();
    (spillway_gateway::start_with_clock(cfg, clock).await.unwrap(), origin)
}

fn x_cache(r: &reqwest::Response) -> String {
    r.headers().get("x-cache").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

async fn cache_metric(gw: &Handle, name: &str) -> f64 {
    metric(&metrics(gw.admin_addr).await, &format!("spillway_{name}{{cache=\"c\"}}")).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_gets_on_a_cold_key_make_one_origin_fetch() {
    let (gw, origin) = start("ttl = \"60s\"\ncoalesce_wait = \"120s\"\n", Clock::system()).await;
    // 50 HTTP/2 connections with 200 streams each: 10,000 requests in flight at once.
    let clients: Vec<reqwest::Client> =
        (0..50).map(|_| reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().unwrap()).collect();
    let target = url(gw.public_addr, "/gated");
    let requests = futures_util::stream::iter(0..10_000)
        .map(move |i| {
            let (http, target) = (clients[i % 50].clone(), target.clone());
            async move {
                let r = http.get(target).send().await.unwrap();
                (r.status(), x_cache(&r))
            }
        })
        .buffer_unordered(10_000);
    let answers = tokio::spawn(requests.collect::<Vec<_>>());
    // Everyone but the one fetching waits for its fetch; only then does the origin answer.
    while cache_metric(&gw, "cache_waiting").await < 9_999.0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(origin.in_flight.load(Ordering::SeqCst), 1);
    origin.gate.add_permits(1);
    let answers = answers.await.unwrap();
    assert_eq!(answers.len(), 10_000);
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK));
    assert_eq!(answers.iter().filter(|(_, x)| x == "MISS").count(), 1);
    assert_eq!(origin.hits.load(Ordering::SeqCst), 1, "exactly one origin fetch");
    assert_eq!(cache_metric(&gw, "cache_origin_fetches_total").await, 1.0);
    assert_eq!(cache_metric(&gw, "cache_coalesced_total").await, 9_999.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn stale_is_served_while_one_request_revalidates_and_when_the_origin_fails() {
    let clock = Clock::manual(T0);
    let cache = "ttl = \"10s\"\nttl_jitter = 0.0\nstale_while_revalidate = \"5s\"\nstale_if_error = \"60s\"\nxfetch_beta = 0.0\n";
    let (gw, origin) = start(cache, clock.clone()).await;
    let http = client();
    let get = |path: &'static str| {
        let (http, u) = (http.clone(), url(gw.public_addr, path));
        async move { http.get(u).send().await.unwrap() }
    };

    origin.gate.add_permits(1);
    let first = get("/gated").await;
    assert_eq!((first.status(), x_cache(&first)), (StatusCode::OK, "MISS".into()));
    clock.advance(Duration::from_secs(3));
    let hit = get("/gated").await;
    assert_eq!((x_cache(&hit), hit.headers()["age"].to_str().unwrap()), ("HIT".into(), "3"));

    // Stale: the first request revalidates (and waits for the origin), the others get the stale entry.
    clock.advance(Duration::from_secs(9));
    let revalidating = tokio::spawn(get("/gated"));
    while origin.in_flight.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let meanwhile = get("/gated").await;
    assert_eq!((meanwhile.status(), x_cache(&meanwhile)), (StatusCode::OK, "STALE".into()));
    origin.gate.add_permits(1);
    let fresh = revalidating.await.unwrap();
    assert_eq!((x_cache(&fresh), fresh.headers()["age"].to_str().unwrap()), ("MISS".into(), "0"));
    assert_eq!(origin.hits.load(Ordering::SeqCst), 2);

    // The origin fails after freshness and stale-while-revalidate: stale-if-error covers it.
    assert_eq!(x_cache(&get("/flaky").await), "MISS");
    origin.failing.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(30));
    let covered = get("/flaky").await;
    assert_eq!((covered.status(), x_cache(&covered)), (StatusCode::OK, "STALE".into()));
    clock.advance(Duration::from_secs(60));
    assert_eq!(get("/flaky").await.status(), StatusCode::INTERNAL_SERVER_ERROR, "past stale-if-error");
    gw.shutdown().await;
}

#[tokio::test]
async fn memory_stays_within_its_bound_under_ten_times_the_data() {
    let (gw, _origin) =
        start("ttl = \"60s\"\nmax_memory = \"64KiB\"\nmax_object = \"8KiB\"\n", Clock::manual(T0)).await;
    let http = client();
    for i in 0..160 {
        // 160 distinct 4 KiB responses: 640 KiB offered to a 64 KiB cache.
        let r = http.get(url(gw.public_addr, &format!("/download/4096?i={i}"))).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), 4096);
        let held = cache_metric(&gw, "cache_bytes").await;
        assert!(held <= 65_536.0, "{held} bytes held");
    }
    let big = http.get(url(gw.public_addr, "/download/100000")).send().await.unwrap();
    assert_eq!((x_cache(&big), big.bytes().await.unwrap().len()), ("MISS".into(), 100_000), "too big: passed through");
    gw.shutdown().await;
}

#[tokio::test]
async fn only_shareable_gets_are_cached() {
    let (gw, origin) = start("ttl = \"60s\"\n", Clock::manual(T0)).await;
    let http = client();
    let u = url(gw.public_addr, "/item");
    assert_eq!(x_cache(&http.get(&u).send().await.unwrap()), "MISS");
    assert_eq!(x_cache(&http.get(&u).send().await.unwrap()), "HIT");
    let head = http.head(&u).send().await.unwrap();
    assert_eq!((x_cache(&head), head.content_length()), ("HIT".into(), Some(0)), "HEAD from the GET entry");
    assert_eq!(x_cache(&http.post(&u).send().await.unwrap()), "BYPASS");
    assert_eq!(x_cache(&http.get(&u).bearer_auth("t").send().await.unwrap()), "BYPASS");
    let other = http.get(&u).header("accept-encoding", "br").send().await.unwrap();
    assert_eq!(x_cache(&other), "MISS", "accept-encoding is part of the key");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 4);
    gw.shutdown().await;
}
