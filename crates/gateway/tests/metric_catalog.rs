//! The metrics a gateway exposes are a contract with every dashboard and alert built on them: their names and
//! types must not move when the code behind them does, and each one must be documented.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use spillway_testkit::{Conf, Origin, metrics};

/// A gateway with every kind of policy and the reservation engine, so that every family is registered.
async fn everything() -> (tempfile::TempDir, spillway_gateway::Handle, Origin) {
    let origin = Origin::start("origin").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = Conf::new()
        .keys()
        .upstream("origin", origin.addr)
        .room("sale", "new_users_per_minute = 60")
        .table("limits.api", "rate = \"10/s\"")
        .table("shields.api", "max_concurrency = 10")
        .table("caches.c", "")
        .reservations(&dir.path().join("ledger.db"))
        .table("inventories.drop", "stock = 5")
        .route("/sale", "origin")
        .policies(&["room:sale", "limit:api", "shield:api", "cache:c"])
        .reservations_route("/api")
        .build();
    (dir, spillway_gateway::start(cfg).await.unwrap(), origin)
}

/// `name type` for every family in an OpenMetrics exposition.
fn families(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(str::to_string).collect()
}

/// The names a query uses: counters end in `_total` and infos in `_info` in the samples.
fn sample_name(family: &str) -> String {
    let (name, kind) = family.split_once(' ').unwrap();
    match kind {
        "counter" => format!("{name}_total"),
        "info" => format!("{name}_info"),
        _ => name.to_string(),
    }
}

#[tokio::test]
async fn the_exposed_families_are_exactly_the_catalog() {
    let (_dir, gw, _origin) = everything().await;
    let exposed = families(&metrics(gw.admin_addr).await);
    let catalog: BTreeSet<String> =
        include_str!("metric_names.txt").lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
    let added: Vec<_> = exposed.difference(&catalog).collect();
    let gone: Vec<_> = catalog.difference(&exposed).collect();
    assert!(
        added.is_empty() && gone.is_empty(),
        "metric families changed (a rename breaks every dashboard): new {added:?}, gone {gone:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn every_exposed_metric_is_documented_and_every_documented_one_exists() {
    let (_dir, gw, _origin) = everything().await;
    let exposed: BTreeSet<String> = families(&metrics(gw.admin_addr).await).iter().map(|f| sample_name(f)).collect();
    // Each documented metric is a table row starting with its name in backticks.
    let doc = include_str!("../../../docs/METRICS.md");
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `spillway_"))
        .filter_map(|l| l.split('`').next())
        .map(|n| format!("spillway_{n}"))
        .collect();
    let undocumented: Vec<_> = exposed.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&exposed).collect();
    assert!(undocumented.is_empty(), "exposed but not in docs/METRICS.md: {undocumented:?}");
    assert!(missing.is_empty(), "in docs/METRICS.md but not exposed: {missing:?}");
    gw.shutdown().await;
}
