//! Every promise against a hostile client: one crafted request at a time, over real sockets, against the real
//! gateway with a real origin and a real SQLite ledger. Each test is an attack that worked once.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use spillway_gateway::{Clock, Handle};
use spillway_testkit::{Conf, Origin, TOKEN, client, metric, metrics, url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T0: u64 = 1_800_000_000_000;

fn reserve_config(ledger: &Path, inventories: &str) -> spillway_config::Config {
    Conf::new().reservations(ledger).raw(inventories).reservations_route("/api").build()
}

/// Every path to `origin`, through the shield `api` with `shield`.
fn shielded(origin: &Origin, shield: &str) -> spillway_config::Config {
    Conf::new()
        .upstream("origin", origin.addr)
        .table("shields.api", shield)
        .route("/", "origin")
        .policies(&["shield:api"])
        .build()
}

/// A gateway serving the reservation API with `inventories`, on a fresh ledger (kept while the dir lives).
async fn reservations(inventories: &str) -> (tempfile::TempDir, Handle) {
    let dir = tempfile::tempdir().unwrap();
    let gw = spillway_gateway::start(reserve_config(&dir.path().join("l.db"), inventories)).await.unwrap();
    (dir, gw)
}

async fn claim(gw: &Handle, inventory: &str, body: Value) -> (StatusCode, Value) {
    let r = client().post(url(gw.public_addr, &format!("/api/inventories/{inventory}/claims"))).json(&body);
    let r = r.send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn post(gw: &Handle, path: &str, body: Value) -> (StatusCode, Value) {
    let r = client().post(url(gw.public_addr, path)).json(&body).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn inventory(gw: &Handle, id: &str) -> Value {
    client().get(url(gw.public_addr, &format!("/api/inventories/{id}"))).send().await.unwrap().json().await.unwrap()
}

/// Sends `request` as is on a fresh connection and reads until the server closes it (bounded).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A breaker that opens when half of the last 10 calls (5 at least) failed, for 30 s.
const BREAKER: &str = "window = \"10 calls\"\nminimum_calls = 5\nfailure_rate = 0.5\nopen_for = \"30s\"\n";

fn status_of(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

// === the ledger ===

#[tokio::test]
async fn a_second_server_cannot_open_the_ledger_through_a_symlink_or_a_hard_link() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.db");
    let inv = "[inventories.drop]\nstock = 10\n";
    let first = spillway_gateway::start(reserve_config(&ledger, inv)).await.unwrap();
    let symlink = dir.path().join("other-name.db");
    std::os::unix::fs::symlink(&ledger, &symlink).unwrap();
    let hard_link = dir.path().join("hard-link.db");
    std::fs::hard_link(&ledger, &hard_link).unwrap();
    for path in [&symlink, &hard_link] {
        let err = spillway_gateway::start(reserve_config(path, inv)).await.expect_err("second server refused");
        assert!(err.to_string().contains("another process has this ledger open"), "{}: {err}", path.display());
    }
    assert_eq!(claim(&first, "drop", json!({"user": "a"})).await.0, StatusCode::CREATED);
    assert_eq!(inventory(&first, "drop").await["remaining"], 9);
    first.shutdown().await;
}

// === claims ===

#[tokio::test]
async fn quantities_at_the_edge_of_u32_cannot_pass_the_per_user_limit_or_block_the_line() {
    let inv = "[inventories.drop]\nstock = 10\nper_user_limit = 5\nwaitlist = true\n";
    let (_dir, gw) = reservations(inv).await;
    assert_eq!(claim(&gw, "drop", json!({"user": "bot", "quantity": 1})).await.0, StatusCode::CREATED);
    for quantity in [u64::from(u32::MAX), u64::from(u32::MAX) - 1, 11] {
        let (status, body) = claim(&gw, "drop", json!({"user": "bot", "quantity": quantity})).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")), "{quantity}");
    }
    // Past u32 is not a number the API takes at all.
    let (status, body) = claim(&gw, "drop", json!({"user": "bot", "quantity": 4_294_967_296u64})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")));
    let (status, body) = claim(&gw, "drop", json!({"user": "bot", "quantity": 5})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("limit_reached")));
    let figures = inventory(&gw, "drop").await;
    assert_eq!((figures["remaining"].as_u64(), figures["waitlisted"].as_u64()), (Some(9), Some(0)));
    // Nobody is parked at the head of the line: an ordinary claim still goes through.
    assert_eq!(claim(&gw, "drop", json!({"user": "fan", "quantity": 4})).await.0, StatusCode::CREATED);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_seat_named_ten_times_is_invalid() {
    let inv = "[inventories.hall]\nunits = [\"S-1..10\"]\n";
    let (_dir, gw) = reservations(inv).await;
    let (status, body) = claim(&gw, "hall", json!({"user": "bot", "units": vec!["S-1"; 10]})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid")), "{body}");
    assert_eq!(inventory(&gw, "hall").await["remaining"], 10);
    let (status, body) = claim(&gw, "hall", json!({"user": "fan", "units": ["S-1", "S-2"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(inventory(&gw, "hall").await["remaining"], 8);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_newcomer_is_not_served_while_an_earlier_claim_waits() {
    let inv = "[inventories.drop]\nstock = 3\nwaitlist = true\n";
    let (_dir, gw) = reservations(inv).await;
    assert_eq!(claim(&gw, "drop", json!({"user": "a", "quantity": 2})).await.0, StatusCode::CREATED);
    let (_, c) = claim(&gw, "drop", json!({"user": "c", "quantity": 1})).await;
    let (status, b) = claim(&gw, "drop", json!({"user": "b", "quantity": 2})).await;
    assert_eq!((status, b["position"].as_u64()), (StatusCode::ACCEPTED, Some(1)));
    let c_id = c["claim"].as_u64().unwrap();
    assert_eq!(post(&gw, &format!("/api/claims/{c_id}/cancel"), json!({"user": "c"})).await.0, StatusCode::OK);
    let (status, d) = claim(&gw, "drop", json!({"user": "d", "quantity": 1})).await;
    assert_eq!(
        (status, d["status"].as_str(), d["position"].as_u64()),
        (StatusCode::ACCEPTED, Some("waitlisted"), Some(2))
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_replay_returns_what_was_stored_and_an_edited_one_is_a_conflict() {
    let inv = "[inventories.drop]\nstock = 10\nper_user_limit = 5\n";
    let (_dir, gw) = reservations(inv).await;
    let first = json!({"user": "a", "quantity": 2, "idempotency_key": "k-1"});
    let (status, stored) = claim(&gw, "drop", first.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = claim(&gw, "drop", first).await;
    assert_eq!(
        (status, again["replayed"].as_bool(), again["quantity"].as_u64()),
        (StatusCode::OK, Some(true), Some(2))
    );
    assert_eq!(again["claim"], stored["claim"]);
    let (status, body) = claim(&gw, "drop", json!({"user": "a", "quantity": 3, "idempotency_key": "k-1"})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("idempotency_conflict")), "{body}");
    assert_eq!(inventory(&gw, "drop").await["remaining"], 8);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_claim_and_cancel_churn_keeps_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let inv = "[inventories.drop]\nstock = 100\nper_user_limit = 5\n";
    let mut cfg = reserve_config(&dir.path().join("l.db"), inv);
    cfg.reservations.idempotency_retention = spillway_config::Seconds::secs(60);
    let gw = spillway_gateway::start_with_clock(cfg, clock.clone()).await.unwrap();
    let reservations = gw.runtime().reservations.clone().unwrap();
    let mut kept = Vec::new();
    for round in 0..4 {
        let n = if round == 0 { 50 } else { 500 };
        for i in 0..n {
            let (status, body) = claim(&gw, "drop", json!({"user": format!("u{}", i % 5), "quantity": 1})).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let id = body["claim"].as_u64().unwrap();
            let user = format!("u{}", i % 5);
            assert_eq!(post(&gw, &format!("/api/claims/{id}/cancel"), json!({ "user": user })).await.0, StatusCode::OK);
        }
        // Within the window every finished claim is kept, and the gauge says how many.
        let within = reservations.kept().0;
        assert!(within >= n, "{within} kept after {n} cycles");
        let gauge = metric(&metrics(gw.admin_addr).await, "spillway_reserve_claims_kept");
        assert_eq!(gauge, Some(within as f64));
        // Past the retention window, the ticker's next pass forgets every finished claim.
        clock.advance(Duration::from_secs(61));
        reservations.tick().await.unwrap();
        kept.push(reservations.kept());
    }
    assert!(kept.iter().all(|&(claims, users)| claims == 0 && users == 0), "{kept:?}");
    let text = metrics(gw.admin_addr).await;
    assert_eq!(metric(&text, "spillway_reserve_claims_kept"), Some(0.0), "{text}");
    gw.shutdown().await;
}

// === the waiting room ===

#[tokio::test]
async fn a_pass_is_refused_once_its_session_was_left() {
    let origin = Origin::start("origin").await;
    let clock = Clock::manual(T0);
    let cfg = Conf::new()
        .keys()
        .upstream("origin", origin.addr)
        .room("sale", "new_users_per_minute = 6000\ntotal_active_users = 1")
        .route("/sale", "origin")
        .policies(&["room:sale"])
        .build();
    let gw = spillway_gateway::start_with_clock(cfg, clock.clone()).await.unwrap();
    let sale = url(gw.public_addr, "/sale/");
    let get = |cookie: Option<String>| {
        let mut r = client().get(&sale).header("accept", "application/json");
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    let pass_of = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("spw_pass_sale=") && !v.contains("Max-Age=0"))
            .map(|v| v.split(';').next().unwrap().to_string())
    };
    // Five clients each get in, one at a time, and leave to let the next in, keeping their passes.
    let mut passes = Vec::new();
    for i in 0..5 {
        let mut cookie = None;
        let mut pass = None;
        for _ in 0..20 {
            let r = get(cookie.clone()).await.unwrap();
            if let Some(p) = pass_of(&r) {
                pass = Some(p);
                break;
            }
            let ticket = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with("spw_ticket_sale="))
                .map(|v| v.split(';').next().unwrap().to_string());
            cookie = ticket.or(cookie);
            clock.advance(Duration::from_millis(100));
        }
        let pass = pass.unwrap_or_else(|| panic!("client {i} admitted"));
        let leave = client()
            .post(url(gw.public_addr, "/_spillway/rooms/sale/leave"))
            .header("cookie", &pass)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(leave.status(), StatusCode::OK);
        passes.push(pass);
    }
    let before = origin.hits.load(Ordering::SeqCst);
    // All five come back together with their old passes: none goes through.
    for pass in &passes {
        let r = get(Some(pass.clone())).await.unwrap();
        let body: Value = r.json().await.unwrap();
        assert_ne!(body["state"], "admitted");
    }
    assert_eq!(origin.hits.load(Ordering::SeqCst), before, "no ended pass reached the origin");
    let refused =
        metric(&metrics(gw.admin_addr).await, "spillway_room_tokens_refused_total{room=\"sale\",reason=\"ended\"}");
    assert!(refused.unwrap_or(0.0) >= 5.0, "{refused:?}");
    gw.shutdown().await;
}

// === the request line ===

async fn room_in_front_of_sale() -> (Handle, Origin) {
    let origin = Origin::start("origin").await;
    let cfg = Conf::new()
        .keys()
        .upstream("origin", origin.addr)
        .room("sale", "new_users_per_minute = 1")
        .route("/", "origin")
        .route("/sale", "origin")
        .policies(&["room:sale"])
        .build();
    let gw = spillway_gateway::start_with_clock(cfg, Clock::manual(T0)).await.unwrap();
    // Somebody is in the line already, so everyone after waits.
    client().get(url(gw.public_addr, "/sale/")).header("accept", "application/json").send().await.unwrap();
    (gw, origin)
}

#[tokio::test]
async fn every_spelling_of_a_path_meets_its_room() {
    let (gw, origin) = room_in_front_of_sale().await;
    let before = origin.hits.load(Ordering::SeqCst);
    for path in ["/%73ale/", "//sale/", "/x/../sale/", "/./sale/", "/SALE/", "/Sale/x", "/sale/./", "/%2e/sale/"] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: shop\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        let response = raw(gw.public_addr, request.as_bytes()).await;
        assert!(response.contains("\"state\":\"waiting\""), "{path} got past the room: {response}");
    }
    assert_eq!(origin.hits.load(Ordering::SeqCst), before, "none reached the origin");
    for path in ["/%2Fsale/", "/%2fsale/", "/%5Csale/", "/sale%00/", "/sale%zz"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n");
        let response = raw(gw.public_addr, request.as_bytes()).await;
        assert_eq!(status_of(&response), 400, "{path}: {response}");
        assert!(response.contains("\"error\":\"bad_path\""), "{path}: {response}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn the_origin_sees_the_normalised_path() {
    let (gw, _origin) = room_in_front_of_sale().await;
    let request = "GET /x/..//echo/%61b%2a?q=/../1 HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n";
    let response = raw(gw.public_addr, request.as_bytes()).await;
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let seen: Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {response}"));
    assert_eq!(seen["path"], "/echo/ab%2A", "{response}");
    gw.shutdown().await;
}

#[tokio::test]
async fn ambiguous_hosts_tunnels_and_huge_targets_are_refused() {
    let (gw, origin) = room_in_front_of_sale().await;
    let before = origin.hits.load(Ordering::SeqCst);
    let two_hosts = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n";
    let no_host = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    let connect = "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n";
    for (request, status, code) in
        [(two_hosts, 400, "bad_request"), (no_host, 400, "bad_request"), (connect, 405, "method_not_allowed")]
    {
        let response = raw(gw.public_addr, request.as_bytes()).await;
        assert_eq!(status_of(&response), status, "{request:?}: {response}");
        assert!(response.contains(&format!("\"error\":\"{code}\"")), "{response}");
    }
    let long = format!("GET /{} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n", "a".repeat(9000));
    let response = raw(gw.public_addr, long.as_bytes()).await;
    assert_eq!(status_of(&response), 414, "{response}");
    assert!(response.contains("\"error\":\"uri_too_long\""), "{response}");
    assert_eq!(origin.hits.load(Ordering::SeqCst), before);
    gw.shutdown().await;
}

// === bodies ===

#[tokio::test]
async fn broken_client_bodies_are_the_clients_fault_and_never_open_the_breaker() {
    let origin = Origin::start("origin").await;
    let cfg = shielded(&origin, BREAKER);
    let gw = spillway_gateway::start_with_clock(cfg, Clock::manual(T0)).await.unwrap();
    for i in 0..15 {
        let request = if i % 2 == 0 {
            // A chunk size that is not hex.
            "POST /upload HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n".to_string()
        } else {
            // Announces 100 bytes, sends 10, then stops sending.
            "POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 100\r\n\r\n0123456789".to_string()
        };
        let mut stream = TcpStream::connect(gw.public_addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
        let response = String::from_utf8_lossy(&out);
        // A 400 naming the body, or a quiet close: never an upstream error.
        assert!(!response.contains("upstream"), "attempt {i}: {response}");
        if !response.is_empty() {
            assert_eq!(status_of(&response), 400, "attempt {i}: {response}");
        }
    }
    let ok = client().get(url(gw.public_addr, "/anything")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "the breaker stayed closed for everyone else");
    let text = metrics(gw.admin_addr).await;
    let open = metric(&text, "spillway_shield_breaker_transitions_total{shield=\"api\",scope=\"origin\",to=\"open\"}");
    assert_eq!(open.unwrap_or(0.0), 0.0, "{text}");
    gw.shutdown().await;
}

// === connections ===

#[tokio::test]
async fn idle_http2_and_admin_connections_are_closed() {
    let origin = Origin::start("origin").await;
    let cfg =
        Conf::new().server("header_read_timeout = \"1s\"").upstream("origin", origin.addr).route("/", "origin").build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    // HTTP/2 with prior knowledge: the preface and an empty SETTINGS frame, then no stream at all.
    let mut h2 = TcpStream::connect(gw.public_addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
    let mut admin = TcpStream::connect(gw.admin_addr).await.unwrap();
    for (name, stream) in [("http/2", &mut h2), ("admin", &mut admin)] {
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "{name}: an idle connection stays open");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn admin_errors_are_json_too() {
    let gw = spillway_gateway::start(Conf::new().build()).await.unwrap();
    let admin = |method: reqwest::Method, path: &str| {
        client().request(method, format!("http://{}{path}", gw.admin_addr)).bearer_auth(TOKEN).send()
    };
    for (method, path, status) in [
        (reqwest::Method::POST, "/healthz", 405),
        (reqwest::Method::DELETE, "/rooms", 405),
        (reqwest::Method::GET, "/rooms/%ff%fe", 400),
        (reqwest::Method::GET, "/nope", 404),
    ] {
        let r = admin(method.clone(), path).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        assert_eq!(r.headers()["content-type"], "application/json", "{method} {path}");
        let body: BTreeMap<String, Value> = r.json().await.unwrap();
        assert!(body.get("error").and_then(Value::as_str).is_some_and(|e| !e.is_empty()), "{method} {path}: {body:?}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn clients_that_hang_up_during_the_trial_calls_cannot_keep_the_breaker_open() {
    let origin = Origin::start("origin").await;
    let clock = Clock::manual(T0);
    let cfg = shielded(&origin, &format!("{BREAKER}half_open_calls = 2\n"));
    let gw = spillway_gateway::start_with_clock(cfg, clock.clone()).await.unwrap();
    origin.failing.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        client().get(url(gw.public_addr, "/flaky")).send().await.unwrap();
    }
    origin.failing.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(31));
    // Both trial calls go to a request the origin holds, and their clients hang up.
    for _ in 0..2 {
        let mut stream = TcpStream::connect(gw.public_addr).await.unwrap();
        stream.write_all(b"GET /hold HTTP/1.1\r\nHost: shop\r\n\r\n").await.unwrap();
        origin.arrived.notified().await;
        drop(stream);
    }
    // The gateway notices the hang-ups and hands the trial slots back: a third client is let through.
    let mut answered = None;
    for _ in 0..200 {
        let r = client().get(url(gw.public_addr, "/anything")).send().await.unwrap();
        if r.status() == StatusCode::OK {
            answered = Some(r.status());
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(answered, Some(StatusCode::OK), "the breaker stayed wedged half-open");
    gw.shutdown().await;
}
