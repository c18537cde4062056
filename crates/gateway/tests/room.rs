//! The waiting room end to end: a real origin, the real gateway and real HTTP clients, each with its own
//! cookie jar, on 127.0.0.1. The rooms run on a manual clock that the tests step, so rates and expiries are
//! checked exactly, with no sleeps.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use reqwest::StatusCode;
use serde_json::Value;
use spillway_core::token::{Claims, Keyring, Kind};
use spillway_gateway::{Clock, Handle};
use spillway_testkit::{Conf, Origin, SECRET, TOKEN, client, client_from, metric, metrics, url};

const T0: u64 = 1_800_000_000_000;

/// `rooms`, plus the `vip` room unless `rooms` defines it, behind `/sale` and `/vip`.
fn room_config(origin: &Origin, rooms: &str) -> spillway_config::Config {
    let vip = if rooms.contains("[rooms.vip]") { "" } else { VIP };
    Conf::new()
        .keys()
        .upstream("origin", origin.addr)
        .raw(rooms)
        .raw(vip)
        .route("/sale", "origin")
        .policies(&["room:sale"])
        .route("/vip", "origin")
        .policies(&["room:vip"])
        .build()
}

const VIP: &str = "[rooms.vip]\nnew_users_per_minute = 60\nbind_to_address = true\n";

async fn start(rooms: &str) -> (Handle, Clock, Origin) {
    let origin = Origin::start("origin").await;
    let clock = Clock::manual(T0);
    let gw = spillway_gateway::start_with_clock(room_config(&origin, rooms), clock.clone()).await.unwrap();
    (gw, clock, origin)
}

/// One client: its own connection pool, source address and cookie jar.
#[derive(Debug, Clone)]
struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Browser {
    fn new() -> Self {
        Self { http: client(), jar: BTreeMap::new() }
    }

    fn from(ip: [u8; 4]) -> Self {
        Self { http: client_from(ip), jar: BTreeMap::new() }
    }

    async fn send(&mut self, method: reqwest::Method, url: String, accept: &str, lang: Option<&str>) -> Answer {
        let mut req = self.http.request(method, url).header("accept", accept);
        if let Some(lang) = lang {
            req = req.header("accept-language", lang);
        }
        if !self.jar.is_empty() {
            let cookie = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            req = req.header("cookie", cookie);
        }
        let response = req.send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_string(), value.to_string());
            }
        }
        Answer { status: response.status(), headers: response.headers().clone(), body: response.text().await.unwrap() }
    }

    async fn get(&mut self, url: String) -> Answer {
        self.send(reqwest::Method::GET, url, "application/json", None).await
    }
}

fn status_url(gw: &Handle, room: &str) -> String {
    url(gw.public_addr, &format!("/_spillway/rooms/{room}/status"))
}

async fn refused(gw: &Handle, room: &str, reason: &str) -> f64 {
    let text = metrics(gw.admin_addr).await;
    metric(&text, &format!("spillway_room_tokens_refused_total{{room=\"{room}\",reason=\"{reason}\"}}")).unwrap_or(0.0)
}

async fn admin(gw: &Handle, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = client().request(method, format!("http://{}{path}", gw.admin_addr)).bearer_auth(TOKEN);
    if let Some(body) = body {
        req = req.body(body.to_string());
    }
    let response = req.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_admitted_in_arrival_order_at_the_configured_rate() {
    const CLIENTS: usize = 2_000;
    const PER_SECOND: usize = 100;
    let (gw, clock, _origin) = start("[rooms.sale]\nnew_users_per_minute = 6000\n").await;
    let sale = url(gw.public_addr, "/sale/item/1");

    // Everyone arrives in the same instant; each gets a distinct place.
    let mut joined: Vec<(u64, Browser)> = stream::iter(0..CLIENTS)
        .map(|_| {
            let sale = sale.clone();
            async move {
                let mut b = Browser::new();
                let a = b.get(sale).await;
                assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
                assert!(a.headers.contains_key("retry-after"));
                let body = a.json();
                assert_eq!(body["state"], "waiting");
                assert_eq!(body["room"], "sale");
                (body["position"].as_u64().unwrap(), b)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    joined.sort_by_key(|(p, _)| *p);
    let positions: Vec<u64> = joined.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, (1..=CLIENTS as u64).collect::<Vec<_>>(), "every place handed out once");

    let mut admitted_at: Vec<Option<usize>> = vec![None; CLIENTS];
    for second in 1..=CLIENTS / PER_SECOND {
        clock.advance(Duration::from_secs(1));
        let waiting: Vec<usize> = (0..CLIENTS).filter(|&i| admitted_at[i].is_none()).collect();
        let polled: Vec<(usize, Value, Browser)> = stream::iter(waiting)
            .map(|i| {
                let mut b = joined[i].1.clone();
                let status = status_url(&gw, "sale");
                async move {
                    let a = b.get(status).await;
                    assert_eq!(a.status, StatusCode::OK);
                    (i, a.json(), b)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        for (i, body, b) in polled {
            if body["state"] == "admitted" {
                admitted_at[i] = Some(second);
                joined[i].1 = b;
            }
        }
        let admitted: Vec<usize> = (0..CLIENTS).filter(|&i| admitted_at[i].is_some()).collect();
        // Exactly the configured rate, and exactly the earliest arrivals: zero inversions.
        assert_eq!(admitted, (0..second * PER_SECOND).collect::<Vec<_>>(), "after {second}s");
    }

    // An admitted client reaches the origin, which never sees Spillway's cookies.
    let first = &mut joined[0].1;
    let a = first.get(sale.clone()).await;
    assert_eq!(a.status, StatusCode::OK);
    let body = a.json();
    assert_eq!(body["origin"], "origin");
    assert!(!body["headers"]["cookie"].as_str().unwrap_or("").contains("spw_"), "{body}");

    let text = metrics(gw.admin_addr).await;
    assert_eq!(metric(&text, "spillway_room_admitted_total{room=\"sale\"}"), Some(CLIENTS as f64));
    gw.shutdown().await;
}

#[tokio::test]
async fn forged_expired_replayed_bound_and_other_room_tokens_count_as_absent() {
    let rooms = format!(
        "[rooms.sale]\nnew_users_per_minute = 6000\nsession_duration = \"60s\"\nsession_renewal = false\n{VIP}"
    );
    let (gw, clock, _origin) = start(&rooms).await;
    let (sale, vip) = (url(gw.public_addr, "/sale"), url(gw.public_addr, "/vip"));

    let mut alice = Browser::new();
    assert_eq!(alice.get(sale.clone()).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let ticket = alice.jar["spw_ticket_sale"].clone();
    clock.advance(Duration::from_secs(1));
    assert_eq!(alice.get(status_url(&gw, "sale")).await.json()["state"], "admitted");
    let pass = alice.jar["spw_pass_sale"].clone();
    assert!(!alice.jar.contains_key("spw_ticket_sale"), "the ticket is spent");
    assert_eq!(alice.get(sale.clone()).await.status, StatusCode::OK);

    // A pass for one room is nothing in another.
    let mut mallory = Browser::new();
    mallory.jar.insert("spw_pass_vip".into(), pass.clone());
    assert_eq!(mallory.get(vip.clone()).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused(&gw, "vip", "other_room").await, 1.0);

    // Forged: garbage, a foreign key id, the right id with the wrong secret.
    for (forgery, reason) in [
        ("garbage!".to_string(), "malformed"),
        (sign("k9", SECRET, "sale", 0), "unknown_key"),
        (sign("k1", "ffffffffffffffffffffffffffffffff", "sale", 0), "bad_signature"),
    ] {
        let mut m = Browser::new();
        m.jar.insert("spw_pass_sale".into(), forgery);
        let a = m.get(sale.clone()).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{reason}");
        assert_eq!(a.json()["state"], "waiting", "a refused token means a place in line, not an error");
        assert_eq!(refused(&gw, "sale", reason).await, 1.0, "{reason}");
    }

    // Replayed: the ticket alice spent gives its new holder a fresh place at the back, not alice's.
    let mut copycat = Browser::new();
    copycat.jar.insert("spw_ticket_sale".into(), ticket);
    let a = copycat.get(sale.clone()).await;
    assert_eq!(a.json()["state"], "waiting");
    assert_eq!(refused(&gw, "sale", "replayed").await, 1.0);

    // Expired: sixty seconds later alice's pass no longer opens the door.
    clock.advance(Duration::from_secs(61));
    let a = alice.get(sale.clone()).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused(&gw, "sale", "expired").await, 1.0);

    // Bound to an address: a ticket carried to another address is refused there.
    admin(&gw, reqwest::Method::POST, "/rooms/vip/reset", None).await;
    admin(&gw, reqwest::Method::POST, "/rooms/vip/pause", None).await;
    let mut home = Browser::from([127, 0, 0, 1]);
    home.get(vip.clone()).await;
    let mut elsewhere = Browser::from([127, 0, 0, 2]);
    elsewhere.jar.insert("spw_ticket_vip".into(), home.jar["spw_ticket_vip"].clone());
    let a = elsewhere.get(vip.clone()).await;
    assert_eq!(a.json()["position"], 2, "a new place behind the ticket's owner");
    assert_eq!(refused(&gw, "vip", "binding").await, 1.0);
    assert_eq!(home.get(vip.clone()).await.json()["position"], 1, "the owner keeps its place");
    gw.shutdown().await;
}

fn sign(key_id: &str, secret: &str, room: &str, seq: u64) -> String {
    let keys = Keyring::new([(key_id, secret.as_bytes())]).unwrap();
    let now = (T0 / 1000) as u32;
    keys.sign(&Claims {
        kind: Kind::Pass,
        room: room.into(),
        generation: 1,
        seq,
        issued: now,
        expires: now + 600,
        binding: 0,
    })
}

#[tokio::test]
async fn a_client_that_stops_polling_is_reclaimed() {
    let (gw, clock, _origin) = start("[rooms.sale]\nnew_users_per_minute = 60\nqueue_grace = \"10s\"\n").await;
    let sale = url(gw.public_addr, "/sale");
    admin(&gw, reqwest::Method::POST, "/rooms/sale/pause", None).await;
    let (mut quitter, mut stayer) = (Browser::new(), Browser::new());
    assert_eq!(quitter.get(sale.clone()).await.json()["position"], 1);
    assert_eq!(stayer.get(sale.clone()).await.json()["position"], 2);
    for _ in 0..12 {
        clock.advance(Duration::from_secs(1));
        assert_eq!(stayer.get(status_url(&gw, "sale")).await.json()["state"], "paused");
    }
    assert_eq!(stayer.get(status_url(&gw, "sale")).await.json()["position"], 1);
    let (_, room) = admin(&gw, reqwest::Method::GET, "/rooms/sale", None).await;
    assert_eq!(room["totals"]["abandoned"], 1);
    assert_eq!(quitter.get(sale.clone()).await.json()["position"], 2, "back of the line");
    gw.shutdown().await;
}

#[tokio::test]
async fn browsers_get_a_page_in_their_language_and_api_clients_get_json() {
    let (gw, _clock, _origin) = start("[rooms.sale]\nnew_users_per_minute = 60\ntitle = \"Sneaker drop\"\n").await;
    let sale = url(gw.public_addr, "/sale");
    let mut b = Browser::new();
    let a = b.send(reqwest::Method::GET, sale.clone(), "text/html,*/*;q=0.8", Some("ko-KR,ko;q=0.9")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(a.headers["cache-control"], "no-store");
    assert!(a.body.contains("<html lang=\"ko\">"), "{}", a.body);
    assert!(a.body.contains("Sneaker drop"));
    assert!(a.body.contains("내 순서"));
    assert!(a.body.contains("http-equiv=\"refresh\""));
    let a = b.send(reqwest::Method::GET, sale.clone(), "text/html", Some("en-US")).await;
    assert!(a.body.contains("Your place in line"), "{}", a.body);
    let a = b.get(sale.clone()).await;
    let body = a.json();
    assert_eq!(body["position"], 1, "the same client keeps its place whatever it asks for");
    for key in ["room", "state", "position", "eta_seconds", "refresh_after_seconds"] {
        assert!(body.get(key).is_some(), "{key} missing from {body}");
    }
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry, body["refresh_after_seconds"].as_u64().unwrap());
    let css = client().get(url(gw.public_addr, "/_spillway/assets/room.css")).send().await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_template_file_replaces_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("room.html");
    std::fs::write(&template, "<p>#{{position}} of {{waiting}} in {{room}}, {{eta}}</p>").unwrap();
    let rooms = format!("[rooms.sale]\nnew_users_per_minute = 60\npage_template = {:?}\n", template.display());
    let (gw, _clock, _origin) = start(&rooms).await;
    let mut b = Browser::new();
    let a = b.send(reqwest::Method::GET, url(gw.public_addr, "/sale"), "text/html", None).await;
    assert_eq!(a.body, "<p>#1 of 1 in sale, less than a minute</p>");
    gw.shutdown().await;
}

#[tokio::test]
async fn threshold_activation_passes_traffic_through_below_the_rate() {
    let (gw, clock, _origin) = start("[rooms.sale]\nnew_users_per_minute = 600\nactivation = \"threshold\"\n").await;
    let sale = url(gw.public_addr, "/sale");
    clock.advance(Duration::from_secs(1)); // one second of admissions: 10
    for i in 0..10 {
        let mut b = Browser::new();
        let a = b.get(sale.clone()).await;
        assert_eq!(a.status, StatusCode::OK, "client {i} walks straight in");
        assert!(b.jar.contains_key("spw_pass_sale"));
    }
    let mut eleventh = Browser::new();
    assert_eq!(eleventh.get(sale.clone()).await.status, StatusCode::SERVICE_UNAVAILABLE);
    gw.shutdown().await;
}

#[tokio::test]
async fn operators_pause_change_and_reset_live() {
    let (gw, clock, _origin) = start("[rooms.sale]\nnew_users_per_minute = 60\ntotal_active_users = 100\n").await;
    let sale = url(gw.public_addr, "/sale");
    let (status, list) = admin(&gw, reqwest::Method::GET, "/rooms", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["rooms"][0]["name"], "sale");

    let (_, room) = admin(&gw, reqwest::Method::POST, "/rooms/sale/pause", None).await;
    assert_eq!(room["state"], "paused");
    let mut b = Browser::new();
    b.get(sale.clone()).await;
    clock.advance(Duration::from_secs(5));
    assert_eq!(b.get(status_url(&gw, "sale")).await.json()["state"], "paused");
    admin(&gw, reqwest::Method::POST, "/rooms/sale/resume", None).await;

    let change = serde_json::json!({ "new_users_per_minute": 600, "total_active_users": null });
    let (status, room) = admin(&gw, reqwest::Method::PATCH, "/rooms/sale", Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(room["settings"]["new_users_per_minute"], 600);
    assert_eq!(room["settings"]["total_active_users"], Value::Null);
    let (status, err) = admin(&gw, reqwest::Method::PATCH, "/rooms/sale", Some(serde_json::json!({ "rate": 1 }))).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_body")));

    clock.advance(Duration::from_secs(1));
    assert_eq!(b.get(status_url(&gw, "sale")).await.json()["state"], "admitted");
    assert_eq!(b.get(sale.clone()).await.status, StatusCode::OK);

    let (_, room) = admin(&gw, reqwest::Method::POST, "/rooms/sale/reset", None).await;
    assert_eq!(room["generation"], 2);
    assert_eq!(b.get(sale.clone()).await.status, StatusCode::SERVICE_UNAVAILABLE, "passes from before the reset");
    assert_eq!(refused(&gw, "sale", "stale").await, 1.0);

    let (status, err) = admin(&gw, reqwest::Method::POST, "/rooms/nope/pause", None).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_room")));
    let no_token = client().get(format!("http://{}/rooms", gw.admin_addr)).send().await.unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    gw.shutdown().await;
}

#[tokio::test]
async fn leaving_gives_up_the_place() {
    let (gw, _clock, _origin) = start("[rooms.sale]\nnew_users_per_minute = 60\n").await;
    let sale = url(gw.public_addr, "/sale");
    let (mut first, mut second) = (Browser::new(), Browser::new());
    first.get(sale.clone()).await;
    assert_eq!(second.get(sale.clone()).await.json()["position"], 2);
    let leave = url(gw.public_addr, "/_spillway/rooms/sale/leave");
    let a = first.send(reqwest::Method::POST, leave.clone(), "application/json", None).await;
    assert_eq!(a.json()["had_place"], true);
    assert!(!first.jar.contains_key("spw_ticket_sale"));
    assert_eq!(second.get(status_url(&gw, "sale")).await.json()["position"], 1);
    let a = first.get(url(gw.public_addr, "/_spillway/rooms/sale/leave")).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    let a = first.get(url(gw.public_addr, "/_spillway/rooms/nope/status")).await;
    assert_eq!((a.status, a.json()["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_room")));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_reload_keeps_every_place_and_applies_the_new_settings() {
    let origin = Origin::start("origin").await;
    let clock = Clock::manual(T0);
    let rooms = |rate: u32| format!("[rooms.sale]\nnew_users_per_minute = {rate}\n");
    let gw = spillway_gateway::start_with_clock(room_config(&origin, &rooms(60)), clock.clone()).await.unwrap();
    let sale = url(gw.public_addr, "/sale");
    let mut line: Vec<Browser> = Vec::new();
    for _ in 0..5 {
        let mut b = Browser::new();
        b.get(sale.clone()).await;
        line.push(b);
    }
    admin(&gw, reqwest::Method::PATCH, "/rooms/sale", Some(serde_json::json!({ "total_active_users": 3 }))).await;
    gw.reload(room_config(&origin, &rooms(600))).await.unwrap();
    for (i, b) in line.iter_mut().enumerate() {
        assert_eq!(b.get(status_url(&gw, "sale")).await.json()["position"], i as u64 + 1, "client {i}");
    }
    let (_, room) = admin(&gw, reqwest::Method::GET, "/rooms/sale", None).await;
    assert_eq!(room["settings"]["new_users_per_minute"], 600, "the file's new rate applies");
    assert_eq!(room["settings"]["total_active_users"], 3, "the live cap survives: the file did not change it");
    gw.shutdown().await;
}
