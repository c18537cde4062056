//! What a room and a limit do when their store cannot answer, driven by the embedded backend's fault switch
//! over real sockets: `on_store_error = "closed"` (the default) refuses with 503, `"open"` lets the request
//! through, and a pass already given stays good through the outage.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use spillway_gateway::{Clock, Handle, Start};
use spillway_store::memory::Faults;
use spillway_store::{Embedded, ErrorKind};
use spillway_testkit::{Conf, Origin, client, url};

/// A room that lets clients straight in while it has room, so one request shows whether it got through.
const ROOM: &str = "[rooms.sale]\nnew_users_per_minute = 60\nactivation = \"threshold\"\ntotal_active_users = 100\n";

async fn start(policies: &[&str], sections: &str) -> (Handle, Origin, Faults) {
    start_on(policies, sections, Clock::system()).await
}

async fn start_on(policies: &[&str], sections: &str, clock: Clock) -> (Handle, Origin, Faults) {
    let origin = Origin::start("origin").await;
    let cfg = Conf::new()
        .keys()
        .upstream("origin", origin.addr)
        .raw(sections)
        .route("/", "origin")
        .policies(policies)
        .build();
    let faults = Faults::default();
    let backend = Arc::new(Embedded::with_faults(faults.clone()));
    let gw = spillway_gateway::start_with_options(cfg, Start { backend, clock, ..Start::default() }).await.unwrap();
    (gw, origin, faults)
}

async fn get(gw: &Handle, http: &reqwest::Client) -> (StatusCode, Value) {
    let r = http.get(url(gw.public_addr, "/item")).header("accept", "application/json").send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_room_fails_closed_by_default_and_open_when_told() {
    for (setting, through) in [("", false), ("on_store_error = \"closed\"", false), ("on_store_error = \"open\"", true)]
    {
        let clock = Clock::manual(1_800_000_000_000);
        let (gw, origin, faults) = start_on(&["room:sale"], &format!("{ROOM}{setting}"), clock.clone()).await;
        // Credit for one admission a second: with nobody waiting, the next client walks straight in.
        clock.advance(Duration::from_secs(2));
        faults.set(Some(ErrorKind::Unavailable));
        let (status, body) = get(&gw, &client()).await;
        if through {
            assert_eq!(status, StatusCode::OK, "{setting}: through while the store is down");
            assert_eq!(origin.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{setting}");
            assert_eq!(body["error"], "room_unavailable", "{setting}");
            assert_eq!(origin.hits.load(std::sync::atomic::Ordering::SeqCst), 0, "nobody past a closed room");
        }
        faults.set(None);
        clock.advance(Duration::from_secs(2));
        assert_eq!(get(&gw, &client()).await.0, StatusCode::OK, "{setting}: the room works again");
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn a_pass_already_given_survives_an_outage() {
    let clock = Clock::manual(1_800_000_000_000);
    let room = format!("{ROOM}session_duration = \"10m\"\nsession_renewal = true\n");
    let (gw, origin, faults) = start_on(&["room:sale"], &room, clock.clone()).await;
    clock.advance(Duration::from_secs(2));
    let first = client().get(url(gw.public_addr, "/item")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK, "admitted");
    let pass = first.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    // Past half the session, every request asks the store to renew the pass; the store is down.
    clock.advance(Duration::from_secs(6 * 60));
    faults.set(Some(ErrorKind::Timeout));
    let again = client().get(url(gw.public_addr, "/item")).header("cookie", &pass).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK, "the pass holds while the store is down");
    assert_eq!(origin.hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    // A client without a pass is not let in meanwhile: the room is closed on store errors.
    assert_eq!(get(&gw, &client()).await.0, StatusCode::SERVICE_UNAVAILABLE);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_limit_fails_closed_by_default_and_open_when_told() {
    for (setting, through) in [("", false), ("on_store_error = \"open\"", true)] {
        let (gw, origin, faults) = start(&["limit:api"], &format!("[limits.api]\nrate = \"5/s\"\n{setting}")).await;
        faults.set(Some(ErrorKind::Unavailable));
        let (status, body) = get(&gw, &client()).await;
        if through {
            assert_eq!(status, StatusCode::OK, "{setting}");
            assert_eq!(origin.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{setting}");
            assert_eq!(body["error"], "limit_unavailable");
            assert_eq!(origin.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        }
        faults.set(None);
        assert_eq!(get(&gw, &client()).await.0, StatusCode::OK);
        gw.shutdown().await;
    }
}
