//! `spillway spike` against the real thing: a real origin, the real gateway with a waiting room and a
//! reservation inventory with holds, all on 127.0.0.1, started in-process. The tests check what must hold
//! whatever the timing: the counts add up, nothing is oversold or duplicated, and the reports are complete.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use spillway_loadgen::{Scenario, Spike};
use spillway_testkit::{Conf, Origin};

/// A sale: 100 admissions a second into `/sale`, and `stock` items behind the same room on `/api`.
async fn sale(ledger: &std::path::Path, stock: u64) -> (spillway_gateway::Handle, Origin) {
    let origin = Origin::start("shop").await;
    let cfg = Conf::new()
        .keys()
        .upstream("shop", origin.addr)
        .room("sale", "new_users_per_minute = 6000")
        .reservations(ledger)
        .table("inventories.drop", &format!("stock = {stock}\nper_user_limit = 1\nhold = \"5m\""))
        .route("/sale", "shop")
        .policies(&["room:sale"])
        .reservations_route("/api")
        .policies(&["room:sale"])
        .build();
    (spillway_gateway::start(cfg).await.unwrap(), origin)
}

fn sum(v: &Value) -> u64 {
    v.as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum()
}

/// Checks that `html` is well formed (every tag closed, in order) and returns the JSON embedded in it.
fn check_html(html: &str) -> Value {
    let (before, rest) = html.split_once("<script type=\"application/json\" id=\"report-data\">").unwrap();
    let (json, after) = rest.split_once("</script>").unwrap();
    let mut open: Vec<String> = Vec::new();
    let markup = format!("{before}{after}");
    let mut s = markup.as_str();
    while let Some(i) = s.find('<') {
        let end = s[i..].find('>').unwrap() + i;
        let tag = &s[i + 1..end];
        s = &s[end + 1..];
        if tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(name), "closing {name}");
        } else {
            let name = tag.split_whitespace().next().unwrap().to_string();
            if name != "html" && name != "head" && name != "body" || !open.contains(&name) {
                open.push(name);
            }
        }
    }
    assert!(open.is_empty(), "unclosed: {open:?}");
    serde_json::from_str(&json.replace("<\\/", "</")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_through_the_room_sells_the_stock_exactly_once() {
    const USERS: u64 = 150;
    const STOCK: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let (gw, _origin) = sale(&dir.path().join("ledger.db"), STOCK).await;
    let base = format!("http://{}", gw.public_addr);
    let scenario = Scenario::parse(&format!(
        r#"
name = "test drop"
connections = 32
grace = "5m"
[arrival]
kind = "burst"
users = {USERS}
[retry]
policy = "backoff"
attempts = 3
base = "10ms"
[journey]
kind = "surge"
url = "{base}/sale/item/1"
room = "sale"
reserve = "{base}/api"
inventory = "drop"
"#
    ))
    .unwrap();
    let spike = Spike::new(scenario).unwrap();
    let live = spike.live();
    let report = spike.run().await.unwrap();

    // Every user is accounted for, and every attempt is either answered or failed.
    let snapshot = live.snapshot();
    assert_eq!((snapshot.users_started, snapshot.users_done, snapshot.waiting), (USERS, USERS, 0));
    let out = dir.path().join("out");
    let (json_path, html_path) = report.write(&out).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(json_path).unwrap()).unwrap();
    assert_eq!(json["users"]["started"], USERS);
    assert_eq!(json["users"]["unfinished"], 0);
    let requests = &json["requests"];
    assert_eq!(sum(&requests["by_status"]), requests["answered"].as_u64().unwrap());
    assert_eq!(sum(&requests["by_failure"]), requests["failed"].as_u64().unwrap());
    assert_eq!(
        requests["answered"].as_u64().unwrap() + requests["failed"].as_u64().unwrap(),
        requests["sent"].as_u64().unwrap()
    );
    let timeline = json["timeline"].as_array().unwrap();
    let column = |k: &str| timeline.iter().map(|s| s[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(column("sent"), requests["sent"].as_u64().unwrap());
    assert_eq!(column("ok") + column("held") + column("errors"), requests["sent"].as_u64().unwrap());
    assert_eq!(column("held"), requests["held"].as_u64().unwrap());
    assert!(column("held") >= 1, "a burst into an always-queueing room waits");
    assert_eq!(json["latency_ms"]["count"], requests["sent"]);

    let surge = &json["surge"];
    assert_eq!(sum(&surge["outcomes"]), USERS);
    assert_eq!(surge["users"].as_array().unwrap().len() as u64, USERS);
    assert_eq!(column("admitted"), surge["admitted"].as_u64().unwrap());
    let claims = &surge["claims"];
    assert_eq!(claims["oversold"], 0);
    assert_eq!(claims["duplicate_users"], 0);
    assert_eq!(claims["capacity"], STOCK);
    // Nothing failed on loopback, so everyone got in, claimed, and exactly the stock was confirmed.
    assert_eq!(surge["admitted"], USERS);
    assert_eq!(claims["attempted"], USERS);
    assert_eq!(claims["confirmed"], STOCK);
    assert_eq!(claims["server_confirmed"], STOCK);
    assert_eq!(claims["sold_out"], USERS - STOCK);
    assert_eq!(column("claims"), STOCK);
    assert_eq!(surge["fairness"]["users"], USERS);
    let waiting = surge["waiting_buckets"].as_array().unwrap();
    assert_eq!(waiting.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), USERS);

    // The page is well formed, has the three charts with their data, and embeds the same report.
    let html = std::fs::read_to_string(html_path).unwrap();
    let embedded = check_html(&html);
    assert_eq!(embedded, json);
    for id in ["timeline", "latency", "waiting"] {
        assert!(html.contains(&format!("<svg id=\"{id}\"")), "chart {id}");
    }
    assert!(html.contains(&format!("data-series=\"sent\" data-values=\"{}", timeline[0]["sent"])));
    let bars: u64 = html
        .split("<svg id=\"waiting\"")
        .nth(1)
        .unwrap()
        .split("</svg>")
        .next()
        .unwrap()
        .split("data-count=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(bars, USERS);
    assert!(!html.contains(" src=") && !html.contains("<link") && !html.contains("url("), "no external assets");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_loop_counts_every_attempt() {
    let origin = Origin::start("hello").await;
    let scenario = Scenario::parse(&format!(
        r#"
connections = 4
http2 = {}
[arrival]
kind = "steps"
steps = [{{ rate = 200, for = "100ms" }}, {{ rate = 100, for = "100ms" }}]
[journey]
kind = "requests"
url = "http://{}/anything"
method = "POST"
body = "hi"
headers = {{ x-test = "1" }}
requests_per_user = 3
"#,
        false, origin.addr
    ))
    .unwrap();
    // On two event-loop threads of the load generator's own.
    let report = Spike::new(scenario).unwrap().threads(2).run().await.unwrap();
    // 200/s for 0.1 s and 100/s for 0.1 s: 20 + 10 users, 3 requests each.
    assert_eq!(report.users.started, 30);
    assert_eq!(report.requests.sent, 90);
    assert_eq!(report.requests.by_status.get("200"), Some(&90));
    assert_eq!(report.latency_ms.count, 90);
    assert!(report.surge.is_none());
    assert!(report.summary().contains("90 requests"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_and_a_dead_target_with_retries() {
    let origin = Origin::start("h2").await;
    let scenario = |url: String, http2: bool, retry: &str| {
        Scenario::parse(&format!(
            "connections = 8\nhttp2 = {http2}\ntimeout = \"5s\"\n{retry}\n[arrival]\nkind = \"burst\"\nusers = 20\n[journey]\nkind = \"requests\"\nurl = \"{url}\"\n"
        ))
        .unwrap()
    };
    let report = Spike::new(scenario(format!("http://{}/", origin.addr), true, "")).unwrap().run().await.unwrap();
    assert_eq!(report.requests.by_status.get("200"), Some(&20));

    // Nothing listens: every attempt fails to connect, and each user tries three times.
    let dead = spillway_testkit::dead_address().await;
    let retry = "[retry]\npolicy = \"immediate\"\nattempts = 3";
    let report = Spike::new(scenario(format!("http://{dead}/"), false, retry)).unwrap().run().await.unwrap();
    assert_eq!((report.requests.sent, report.requests.failed, report.requests.retries), (60, 60, 40));
    assert_eq!(report.requests.by_failure.get("connect"), Some(&60));
    assert_eq!(report.timeline.iter().map(|s| s.errors).sum::<u64>(), 60);
}
