//! The real `spillway` binary as a user runs it: signals, reloads, exit codes, memory while streaming.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::process::Command;

use futures_util::StreamExt;
use serde_json::Value;
use spillway_testkit::{Conf, Origin, Spillway, client};

const BIN: &str = env!("CARGO_BIN_EXE_spillway");

/// What every test's file has: bodies up to 64 MiB and JSON logs, which [`Spillway`] reads.
fn base() -> Conf {
    Conf::new().server("max_body_bytes = \"64MiB\"").json_logs()
}

/// Everything to `origin`, as the upstream `upstream`.
fn route_to(origin: &Origin, upstream: &str) -> Conf {
    base().upstream(upstream, origin.addr).route("/", upstream)
}

#[test]
fn check_prints_effective_settings_or_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spillway.toml");
    base().upstream("shop", "127.0.0.1:3000").route("/", "shopp").write(&path);
    let out = Command::new(BIN).args(["check", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r#"routes[0].upstream: no upstream named "shopp"; did you mean "shop"?"#), "{stderr}");

    base().upstream("shop", "127.0.0.1:3000").route("/", "shop").write(&path);
    let out = Command::new(BIN).args(["check", "--config"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("request_timeout = \"30s\"") && stdout.contains("admin_token = \"<redacted>\""),
        "{stdout}"
    );

    let missing = Command::new(BIN).args(["check", "--config", "/nonexistent/spillway.toml"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));

    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_request_finish_and_exits_zero() {
    let origin = Origin::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spillway.toml");
    route_to(&origin, "a").write(&path);
    let mut gw = Spillway::serve(BIN, &path).await;

    let held = tokio::spawn(client().get(gw.url("/hold")).send());
    origin.arrived.notified().await;
    gw.signal("TERM");
    gw.log("draining").await;
    origin.release.notify_one();
    let resp = held.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "released");
    assert!(gw.log("stopped").await["clean"].as_bool().unwrap());
    assert!(gw.wait().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_good_file_and_keeps_the_running_config_on_a_bad_one() {
    let (a, b) = (Origin::start("a").await, Origin::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spillway.toml");
    route_to(&a, "a").write(&path);
    let mut gw = Spillway::serve(BIN, &path).await;
    let http = client();
    let origin_of = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap()["origin"].clone() }
    };
    assert_eq!(origin_of(gw.url("/")).await, "a");

    let text = std::fs::read_to_string(&path).unwrap().replace("upstream = \"a\"", "upstream = \"shopp\"");
    std::fs::write(&path, text).unwrap();
    gw.signal("HUP");
    let rejected = gw.log("reload rejected; keeping the running config").await;
    assert!(
        rejected["error"].as_str().unwrap().contains(r#"routes[0].upstream: no upstream named "shopp""#),
        "{rejected}"
    );
    assert_eq!(origin_of(gw.url("/")).await, "a");

    route_to(&b, "b").write(&path);
    gw.signal("HUP");
    gw.log("reload applied").await;
    assert_eq!(origin_of(gw.url("/")).await, "b");

    let m = spillway_testkit::metrics(gw.admin).await;
    assert_eq!(spillway_testkit::metric(&m, "spillway_config_reloads_total{outcome=\"rejected\"}"), Some(1.0), "{m}");
    gw.signal("TERM");
    assert!(gw.wait().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_stream_through_both_ways_in_little_memory() {
    const SIZE: usize = 50 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let origin = Origin::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spillway.toml");
    route_to(&origin, "a").write(&path);
    let gw = Spillway::serve(BIN, &path).await;
    let http = client();
    let before = gw.peak_rss_bytes();

    let chunks = futures_util::stream::iter((0..SIZE / CHUNK).map(|_| Ok::<_, std::io::Error>(vec![7u8; CHUNK])));
    let up = http.post(gw.url("/upload")).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(up.status(), 200);
    assert_eq!(up.text().await.unwrap(), SIZE.to_string());

    let down = http.get(gw.url(&format!("/download/{SIZE}"))).send().await.unwrap();
    assert_eq!(down.status(), 200);
    let mut received = 0;
    let mut body = down.bytes_stream();
    while let Some(chunk) = body.next().await {
        received += chunk.unwrap().len();
    }
    assert_eq!(received, SIZE);

    let peak = gw.peak_rss_bytes();
    eprintln!("gateway peak RSS: {} KiB before, {} KiB after 2 x 50 MiB", before / 1024, peak / 1024);
    assert!(peak - before < 8 * 1024 * 1024, "peak RSS grew by {} KiB while streaming", (peak - before) / 1024);
    assert!(peak < 32 * 1024 * 1024, "peak RSS {} KiB", peak / 1024);
}

#[tokio::test]
async fn the_sample_origin_fails_slows_and_saturates_on_command() {
    let origin = Spillway::origin(BIN, &["--max-concurrency", "1", "--overflow", "reject"]).await;
    let http = client();
    let base = format!("http://{}", origin.public);
    assert_eq!(http.get(format!("{base}/shop")).send().await.unwrap().status(), 200);

    let failed = http.post(format!("{base}/_origin/fail")).send().await.unwrap();
    assert_eq!(failed.json::<Value>().await.unwrap()["error_rate"], 1.0);
    assert_eq!(http.get(format!("{base}/shop")).send().await.unwrap().status(), 500);

    // Slow enough that a second request arrives while the first holds the only slot.
    http.post(format!("{base}/_origin/normal")).send().await.unwrap();
    let slow = http.post(format!("{base}/_origin/slow?latency=30s")).send().await.unwrap();
    assert!(slow.json::<Value>().await.unwrap()["latency"].as_str().unwrap().contains("30s"));
    let first = tokio::spawn({
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(format!("{base}/shop")).send().await.map(|r| r.status()) }
    });
    loop {
        let state: Value = http.get(format!("{base}/_origin/state")).send().await.unwrap().json().await.unwrap();
        if state["in_flight"] == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(http.get(format!("{base}/shop")).send().await.unwrap().status(), 503, "the only slot is taken");
    first.abort();
    let bad = http.post(format!("{base}/_origin/slow?latency=soon")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_at_many_times_the_origins_capacity() {
    // The origin holds every request until the end: its capacity is what the shield lets through, 20 in flight
    // and 40 in line (a normal-priority route may fill half of the line of 80). 200 clients keep asking;
    // everything beyond those 60 is shed at once, never queued, so 30,000 refused requests cost no more memory
    // than 3,000 did.
    let origin = Origin::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spillway.toml");
    // The breaker is kept out of it: held for seconds, every call would count as slow and open it.
    base()
        .upstream("a", origin.addr)
        .table("shields.s", "max_concurrency = 20\nmax_queue = 80\nqueue_timeout = \"60s\"\nminimum_calls = 1000000")
        .route("/", "a")
        .policies(&["shield:s"])
        .write(&path);
    let gw = Spillway::serve(BIN, &path).await;
    let http = client();
    let held: Vec<_> = (0..60)
        .map(|_| {
            let (http, url) = (http.clone(), gw.url("/gated"));
            tokio::spawn(async move {
                let r = http.get(url).send().await.unwrap();
                (r.status(), r.text().await.unwrap())
            })
        })
        .collect();
    // Every held request in flight or in line before the overload starts, as the gateway itself reports it.
    let queued = "spillway_shield_queued{shield=\"s\"}";
    while origin.max_in_flight.load(std::sync::atomic::Ordering::SeqCst) < 20
        || spillway_testkit::metric(&spillway_testkit::metrics(gw.admin).await, queued) != Some(40.0)
    {
        tokio::task::yield_now().await;
    }
    let shed = |n: usize| {
        let http = http.clone();
        let url = gw.url("/gated");
        async move {
            let answers: Vec<_> = futures_util::stream::iter(0..n)
                .map(|_| {
                    let (http, url) = (http.clone(), url.clone());
                    async move { http.get(url).send().await.unwrap().status() }
                })
                .buffer_unordered(200)
                .collect()
                .await;
            assert!(answers.iter().all(|s| *s == 503), "with the line full, everything else is shed");
        }
    };
    shed(3_000).await;
    let after_some = gw.peak_rss_bytes();
    shed(30_000).await;
    let after_many = gw.peak_rss_bytes();
    eprintln!("gateway peak RSS: {} KiB after 3,000 shed, {} KiB after 33,000", after_some / 1024, after_many / 1024);
    assert!(after_many - after_some < 4 * 1024 * 1024, "memory grew with the overload");
    assert_eq!(origin.max_in_flight.load(std::sync::atomic::Ordering::SeqCst), 20, "the bulkhead's cap");
    origin.gate.add_permits(60);
    for h in held {
        let (status, body) = h.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_file_descriptor_limit_accept_failures_are_logged_once_per_period() {
    // The gateway runs with 64 file descriptors; 150 idle connections take them all, and the rest wait in the
    // kernel's backlog while every accept fails. One line for the first failure, then one per 10 s with the
    // count: a line per refused accept would itself be an outage.
    let origin = Origin::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spillway.toml");
    // Idle connections would otherwise be closed (and their descriptors freed) after the default 10 s.
    route_to(&origin, "a").server("header_read_timeout = \"5m\"").write(&path);
    let script = "ulimit -n 64 && exec \"$0\" serve --workers 1 --config \"$1\"";
    let (mut gw, listening) = Spillway::start("sh", &["-c", script, BIN, path.to_str().unwrap()], "listening").await;
    let public: std::net::SocketAddr = listening["public"].as_str().unwrap().parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(tokio::net::TcpStream::connect(public).await.unwrap());
    }
    let first = gw.log("accept failed; new connections wait in the backlog").await;
    assert_eq!(first["failures"], 1, "{first}");
    let second = gw.log("accept failed; new connections wait in the backlog").await;
    let counted = second["failures"].as_u64().unwrap();
    assert!(counted >= 50, "one line for many failures, not one each: {second}");
    // Once connections close, the backlog is served again.
    drop(held);
    let r = client().get(format!("http://{public}/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
