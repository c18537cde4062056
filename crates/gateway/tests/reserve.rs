//! The reservation API end to end: the real gateway with a real SQLite ledger, real clients on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use spillway_gateway::{Clock, Handle};
use spillway_testkit::{Conf, TOKEN, client, metric, metrics, url};

const T0: u64 = 1_800_000_000_000;

/// The reservation API on `/api`, `extra` in its `[reservations]` table.
fn reserve_config(ledger: &Path, inventories: &str, extra: &str) -> spillway_config::Config {
    Conf::new().reservations(ledger).raw(extra).raw(inventories).reservations_route("/api").build()
}

async fn start(ledger: &Path, inventories: &str, clock: Clock) -> Handle {
    spillway_gateway::start_with_clock(reserve_config(ledger, inventories, ""), clock).await.unwrap()
}

async fn post(gw: &Handle, path: &str, body: Value) -> (StatusCode, Value) {
    let r = client().post(url(gw.public_addr, path)).json(&body).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn get(gw: &Handle, path: &str) -> (StatusCode, Value) {
    let r = client().get(url(gw.public_addr, path)).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_items_five_thousand_users_three_tries_each() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.db");
    let gw = start(&ledger, "[inventories.drop]\nstock = 1000\nper_user_limit = 1\n", Clock::system()).await;
    let http = client();
    let claim_url = url(gw.public_addr, "/api/inventories/drop/claims");

    // Each user clicks, retries the same request (a timeout, say), then clicks again with a fresh key.
    let tries = (0..5000).flat_map(|u| {
        [(u, "first"), (u, "first"), (u, "second")].map(|(u, key)| (format!("user-{u}"), format!("{u}-{key}")))
    });
    let answers: Vec<(String, String, StatusCode, Value)> = futures_util::stream::iter(tries)
        .map(|(user, key)| {
            let (http, claim_url) = (http.clone(), claim_url.clone());
            async move {
                let r = http
                    .post(&claim_url)
                    .header("idempotency-key", &key)
                    .json(&json!({ "user": user }))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                (user, key, status, r.json::<Value>().await.unwrap())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    let mut confirmed: HashMap<String, u64> = HashMap::new();
    let mut by_key: HashMap<String, Value> = HashMap::new();
    for (user, key, status, body) in &answers {
        match status.as_u16() {
            201 => {
                assert_eq!(body["status"], "confirmed");
                let id = body["claim"].as_u64().unwrap();
                assert!(confirmed.insert(user.clone(), id).is_none(), "{user} confirmed twice");
            }
            200 => assert_eq!(body["replayed"], true, "only a retry is answered 200"),
            409 => assert!(body["error"] == "sold_out" || body["error"] == "limit_reached", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
        // The same key always gets the same answer.
        let outcome = body.get("claim").cloned().unwrap_or_else(|| body["error"].clone());
        if let Some(first) = by_key.insert(key.clone(), outcome.clone()) {
            assert_eq!(first, outcome, "key {key} answered differently");
        }
    }
    assert_eq!(confirmed.len(), 1000, "exactly the stock is sold");
    let (_, inv) = get(&gw, "/api/inventories/drop").await;
    assert_eq!((inv["remaining"].as_u64(), inv["confirmed"].as_u64()), (Some(0), Some(1000)));

    // After a restart every acknowledged claim is there, and nothing else.
    gw.shutdown().await;
    let gw = start(&ledger, "[inventories.drop]\nstock = 1000\nper_user_limit = 1\n", Clock::system()).await;
    let (_, inv) = get(&gw, "/api/inventories/drop").await;
    assert_eq!(inv["confirmed"], 1000);
    for (user, id) in confirmed.iter().take(50) {
        let (status, claim) = get(&gw, &format!("/api/claims/{id}?user={user}")).await;
        assert_eq!((status, &claim["status"], &claim["user"]), (StatusCode::OK, &json!("confirmed"), &json!(user)));
    }
    let (status, body) =
        post(&gw, "/api/inventories/drop/claims", json!({ "user": "late", "idempotency_key": "k" })).await;
    assert_eq!((status, &body["error"]), (StatusCode::CONFLICT, &json!("sold_out")));
    gw.shutdown().await;
}

/// Reads SSE events (their `data` JSON) from a streaming response.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return Some(serde_json::from_str(data).unwrap());
                }
                continue;
            }
            let chunk = self.response.chunk().await.unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn a_hold_expires_once_and_the_line_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let seats = "[inventories.show]\nunits = [\"A-1..2\"]\nhold = \"60s\"\nwaitlist = true\nper_user_limit = 2\n\
                 [inventories.show.attributes]\n\"A-2\" = { section = \"floor\", price = \"99000\" }\n";
    let gw = start(&dir.path().join("ledger.db"), seats, clock.clone()).await;

    let (status, a) = post(&gw, "/api/inventories/show/claims", json!({ "user": "ann", "units": ["A-2"] })).await;
    assert_eq!((status, &a["status"], &a["units"]), (StatusCode::CREATED, &json!("held"), &json!(["A-2"])));
    assert_eq!(a["expires_in_seconds"], 60);
    let (_, map) = get(&gw, "/api/inventories/show").await;
    assert_eq!(
        map["units"],
        json!([{ "name": "A-1", "free": true }, { "name": "A-2", "free": false, "attributes": { "price": "99000", "section": "floor" } }]),
        "the seat map"
    );
    let (status, taken) = post(&gw, "/api/inventories/show/claims", json!({ "user": "bob", "units": ["A-2"] })).await;
    assert_eq!((status, &taken["error"]), (StatusCode::CONFLICT, &json!("unit_taken")));
    let (_, b) = post(&gw, "/api/inventories/show/claims", json!({ "user": "bob" })).await;
    assert_eq!((&b["status"], &b["units"]), (&json!("held"), &json!(["A-1"])), "best available");
    let (status, c) = post(&gw, "/api/inventories/show/claims", json!({ "user": "cat" })).await;
    assert_eq!((status, &c["status"], &c["position"]), (StatusCode::ACCEPTED, &json!("waitlisted"), &json!(1)));

    let cat = c["claim"].as_u64().unwrap();
    let response =
        client().get(url(gw.public_addr, &format!("/api/claims/{cat}/events?user=cat"))).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = Events { response, buffer: String::new() };
    assert_eq!(events.next().await.unwrap()["status"], "waitlisted");

    // Bob confirms in time; Ann's hold runs out and her seat goes to Cat, who is told.
    let bob = b["claim"].as_u64().unwrap();
    let (status, confirmed) = post(&gw, &format!("/api/claims/{bob}/confirm"), json!({ "user": "bob" })).await;
    assert_eq!((status, &confirmed["status"]), (StatusCode::OK, &json!("confirmed")));
    clock.advance(Duration::from_secs(61));
    let promoted = events.next().await.unwrap();
    assert_eq!((&promoted["status"], &promoted["units"]), (&json!("held"), &json!(["A-2"])));
    let ann = a["claim"].as_u64().unwrap();
    let (status, late) = post(&gw, &format!("/api/claims/{ann}/confirm"), json!({ "user": "ann" })).await;
    assert_eq!((status, &late["error"]), (StatusCode::GONE, &json!("hold_expired")));
    let (_, ann_now) = get(&gw, &format!("/api/claims/{ann}?user=ann")).await;
    assert_eq!(ann_now["status"], "expired");

    let (status, _) = post(&gw, &format!("/api/claims/{cat}/confirm"), json!({ "user": "cat" })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events.next().await.unwrap()["status"], "confirmed");
    assert!(events.next().await.is_none(), "the stream ends once the claim is settled");

    let (_, inv) = get(&gw, "/api/inventories/show").await;
    assert_eq!(
        (inv["remaining"].as_u64(), inv["held"].as_u64(), inv["confirmed"].as_u64()),
        (Some(0), Some(0), Some(2))
    );
    let text = metrics(gw.admin_addr).await;
    let count = |outcome: &str| {
        metric(&text, &format!("spillway_reserve_claims_total{{inventory=\"show\",outcome=\"{outcome}\"}}"))
    };
    assert_eq!((count("held"), count("waitlisted"), count("unit_taken")), (Some(2.0), Some(1.0), Some(1.0)));
    assert_eq!(metric(&text, "spillway_reserve_remaining{inventory=\"show\"}"), Some(0.0));
    let commits = metric(&text, "spillway_reserve_ledger_commits_total").unwrap();
    assert!(commits >= 1.0);
    // Every commit is in both distributions, and the batch sizes add up to what the commits made durable.
    assert_eq!(metric(&text, "spillway_reserve_ledger_commit_duration_seconds_count"), Some(commits));
    assert_eq!(metric(&text, "spillway_reserve_ledger_commit_batch_size_count"), Some(commits));
    assert_eq!(
        metric(&text, "spillway_reserve_ledger_commit_batch_size_sum"),
        metric(&text, "spillway_reserve_ledger_appends_total")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_their_error_code_and_claims_stay_private() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let inventories = "[inventories.coupons]\nstock = 5\nper_user_limit = 1\n\
                       [inventories.later]\nstock = 5\nopens_at = \"2030-01-01T00:00:00Z\"\n";
    let gw = start(&dir.path().join("ledger.db"), inventories, clock).await;
    let claims = "/api/inventories/coupons/claims";

    let (status, body) = post(&gw, "/api/inventories/nope/claims", json!({ "user": "u" })).await;
    assert_eq!((status, &body["error"]), (StatusCode::NOT_FOUND, &json!("not_found")));
    let (status, body) = post(&gw, "/api/inventories/later/claims", json!({ "user": "u" })).await;
    assert_eq!((status, &body["error"]), (StatusCode::CONFLICT, &json!("closed")));
    let (status, body) = post(&gw, claims, json!({ "user": "u", "colour": "red" })).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("invalid")));
    let (status, body) = post(&gw, claims, json!({})).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("invalid")), "no user");
    let (status, body) = post(&gw, claims, json!({ "user": "u", "hold": true })).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("invalid")), "this inventory does not hold");
    let r = client().post(url(gw.public_addr, claims)).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = client().put(url(gw.public_addr, claims)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let (status, body) = get(&gw, "/api/elsewhere").await;
    assert_eq!((status, &body["error"]), (StatusCode::NOT_FOUND, &json!("not_found")));

    let (_, mine) = post(&gw, claims, json!({ "user": "u", "idempotency_key": "k1" })).await;
    let id = mine["claim"].as_u64().unwrap();
    let (status, _) = get(&gw, &format!("/api/claims/{id}?user=someone-else")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's claim does not exist for them");
    let (status, _) = post(&gw, &format!("/api/claims/{id}/cancel"), json!({ "user": "someone-else" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = get(&gw, "/api/inventories/coupons/claims?user=u").await;
    assert_eq!((status, list["claims"].as_array().unwrap().len()), (StatusCode::OK, 1));
    let (status, again) = post(&gw, claims, json!({ "user": "u", "idempotency_key": "k2" })).await;
    assert_eq!((status, &again["error"]), (StatusCode::CONFLICT, &json!("limit_reached")));
    let (status, cancelled) = post(&gw, &format!("/api/claims/{id}/cancel"), json!({ "user": "u" })).await;
    assert_eq!((status, &cancelled["status"]), (StatusCode::OK, &json!("cancelled")));
    let (status, _) = post(&gw, claims, json!({ "user": "u", "idempotency_key": "k3" })).await;
    assert_eq!(status, StatusCode::CREATED, "a cancelled claim frees the user's limit");
    let (status, _) = post(&gw, "/api/inventories/nope/claims", json!({ "user": "u", "hold": false })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(&gw, "/api/inventories/nope/claims", json!({ "user": "u", "quantity": 0 })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no such inventory comes before what is wrong with the claim");
    let text = metrics(gw.admin_addr).await;
    let unknown = "spillway_reserve_claims_total{inventory=\"_unknown\",outcome=\"not_found\"}";
    assert_eq!(metric(&text, unknown), Some(3.0), "every claim on \"nope\", whatever else it said");
    assert!(!text.contains("inventory=\"nope\""), "a name nobody configured never becomes a label");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_user_comes_from_the_configured_header_only() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = reserve_config(
        &dir.path().join("ledger.db"),
        "[inventories.coupons]\nstock = 5\nper_user_limit = 1\n",
        "user_header = \"x-user-id\"",
    );
    let gw = spillway_gateway::start_with_clock(cfg, Clock::manual(T0)).await.unwrap();
    let claims = url(gw.public_addr, "/api/inventories/coupons/claims");
    let r = client().post(&claims).json(&json!({ "user": "mallory" })).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r =
        client().post(&claims).header("x-user-id", "alice").json(&json!({ "user": "mallory" })).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"], "alice", "the header wins over the body");
    gw.shutdown().await;
}

#[tokio::test]
async fn inventories_are_created_and_read_on_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&dir.path().join("ledger.db"), "", Clock::manual(T0)).await;
    let admin = |path: &str| format!("http://{}{path}", gw.admin_addr);
    let body = json!({ "units": ["R1..3"], "per_user_limit": 1, "hold": "5m", "waitlist": true });
    let r = client().post(admin("/inventories/lab")).bearer_auth(TOKEN).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(
        (&created["capacity"], &created["hold_seconds"], &created["kind"]),
        (&json!(3), &json!(300), &json!("units"))
    );
    let r = client().post(admin("/inventories/lab")).bearer_auth(TOKEN).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = client()
        .post(admin("/inventories/bad"))
        .bearer_auth(TOKEN)
        .json(&json!({ "stock": 1, "units": ["x"] }))
        .send()
        .await
        .unwrap();
    let error: Value = r.json().await.unwrap();
    assert!(error["message"].as_str().unwrap().contains("inventories.bad.units"), "{error}");
    let r = client().post(admin("/inventories/x")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (status, public) = get(&gw, "/api/inventories").await;
    assert_eq!((status, public["inventories"][0]["id"].as_str()), (StatusCode::OK, Some("lab")));
    gw.shutdown().await;
}

/// A ledger that cannot write stops, and says so where operators look: the claim gets a 503 to retry, the
/// health checks fail (only a restart, which rebuilds the state from the disk, can help) and a gauge drops.
#[tokio::test]
async fn a_ledger_that_stops_writing_fails_the_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.db");
    let gw = start(&ledger, "[inventories.drop]\nstock = 10\n", Clock::manual(T0)).await;
    let admin = |path: &str| client().get(url(gw.admin_addr, path)).bearer_auth(TOKEN).send();
    let (status, _) = post(&gw, "/api/inventories/drop/claims", json!({ "user": "ann" })).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(admin("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(metric(&metrics(gw.admin_addr).await, "spillway_reserve_ledger_up"), Some(1.0));

    // A real write failure: the table the ledger writes to is gone.
    rusqlite::Connection::open(&ledger).unwrap().execute_batch("DROP TABLE batches;").unwrap();
    let (status, body) = post(&gw, "/api/inventories/drop/claims", json!({ "user": "bob" })).await;
    assert_eq!((status, &body["error"]), (StatusCode::SERVICE_UNAVAILABLE, &json!("ledger_unavailable")));
    for path in ["/healthz", "/readyz"] {
        let r = admin(path).await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "ledger_failed", "{path}");
        assert!(body["error"].as_str().unwrap().contains("no such table"), "{path}: {body}");
    }
    assert_eq!(metric(&metrics(gw.admin_addr).await, "spillway_reserve_ledger_up"), Some(0.0));
    let (status, _) = post(&gw, "/api/inventories/drop/claims", json!({ "user": "cat" })).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "nothing more is decided");
    gw.shutdown().await;
}
