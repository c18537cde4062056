//! Crash safety of the reservation engine: the real `spillway serve` process is killed with SIGKILL while
//! concurrent clients claim, then restarted on the same ledger, again and again.
//!
//! After every restart: every claim that was acknowledged is there, unchanged; the claims the ledger holds
//! are exactly the acknowledged ones plus those whose answer the kill cut off (each of those is retried with
//! its idempotency key, which must return the original claim if it was committed, and never a second one);
//! nothing is oversold; no user holds two claims. `SPILLWAY_CRASH_CYCLES` runs more cycles than the suite's
//! 20 (`bench/crash.sh` runs 100).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use spillway_testkit::{Conf, Spillway, client};
use tokio::sync::Notify;

const BIN: &str = env!("CARGO_BIN_EXE_spillway");
/// Stock per cycle: the drop sells out about three quarters of the way through, so kills land both while
/// claims are being granted and after the stock is gone.
const STOCK_PER_CYCLE: u64 = 50;
/// Claimants at once; each sends its next claim as soon as the last is answered.
const CLAIMANTS: usize = 16;

fn write_config(path: &Path, ledger: &Path, stock: u64) {
    Conf::new()
        .json_logs()
        .reservations(ledger)
        .table("inventories.drop", &format!("stock = {stock}\nper_user_limit = 1"))
        .reservations_route("/api")
        .write(path);
}

/// What the clients were told, across every cycle.
#[derive(Default)]
struct Ledgerbook {
    /// user → claim id, for every acknowledged claim.
    acked: HashMap<u64, u64>,
    /// Users told `sold_out`: they must hold nothing.
    sold_out: Vec<u64>,
    /// Users whose request was cut off by the kill: outcome unknown until retried.
    unknown: Vec<u64>,
    /// How many requests the kills cut off in all, and how many of those had been committed.
    cut_off: u64,
    cut_off_committed: u64,
}

impl Ledgerbook {
    fn record(&mut self, user: u64, status: StatusCode, body: &Value) {
        match status.as_u16() {
            200 | 201 => {
                let id = body["claim"].as_u64().unwrap();
                if let Some(before) = self.acked.insert(user, id) {
                    assert_eq!(before, id, "user {user} was acknowledged two different claims");
                }
            }
            409 if body["error"] == "sold_out" => self.sold_out.push(user),
            other => panic!("user {user}: unexpected {other} {body}"),
        }
    }
}

async fn claim(http: &reqwest::Client, gw: &str, user: u64) -> reqwest::Result<(StatusCode, Value)> {
    let r = http
        .post(format!("{gw}/api/inventories/drop/claims"))
        .header("idempotency-key", format!("key-{user}"))
        .json(&json!({ "user": format!("u{user}") }))
        .send()
        .await?;
    let status = r.status();
    Ok((status, r.json().await?))
}

/// Resolves the cut-off claims, then checks the ledger against everything the clients were told.
async fn verify(gw: &Spillway, book: &Mutex<Ledgerbook>, http: &reqwest::Client, stock: u64) {
    let base = format!("http://{}", gw.public);
    let unknown = std::mem::take(&mut book.lock().unwrap().unknown);
    for user in unknown {
        let (status, body) = claim(http, &base, user).await.unwrap();
        let mut book = book.lock().unwrap();
        book.cut_off += 1;
        if body["replayed"] == true {
            book.cut_off_committed += 1;
        }
        book.record(user, status, &body);
    }
    let inventory: Value = http.get(format!("{base}/api/inventories/drop")).send().await.unwrap().json().await.unwrap();
    let confirmed = inventory["confirmed"].as_u64().unwrap();
    let (sample, sold_out) = {
        let book = book.lock().unwrap();
        assert!(confirmed <= stock, "oversold: {confirmed} of {stock}");
        assert_eq!(confirmed, book.acked.len() as u64, "the ledger holds exactly the acknowledged claims");
        let sample: Vec<(u64, u64)> = book.acked.iter().filter(|(u, _)| *u % 17 == 0).map(|(u, c)| (*u, *c)).collect();
        (sample, book.sold_out.iter().rev().take(20).copied().collect::<Vec<u64>>())
    };
    // A sample of acknowledged claims, read back: same id, same user, still confirmed.
    for (user, id) in sample {
        let c: Value =
            http.get(format!("{base}/api/claims/{id}?user=u{user}")).send().await.unwrap().json().await.unwrap();
        assert_eq!((&c["status"], &c["user"]), (&json!("confirmed"), &json!(format!("u{user}"))), "claim {id}");
    }
    for user in sold_out {
        let list: Value = http
            .get(format!("{base}/api/inventories/drop/claims?user=u{user}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["claims"].as_array().unwrap().len(), 0, "u{user} was told sold_out but holds a claim");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_concurrent_claims_loses_and_duplicates_nothing() {
    let cycles: u64 = std::env::var("SPILLWAY_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("spillway.toml");
    let stock = cycles * STOCK_PER_CYCLE;
    write_config(&config, &dir.path().join("ledger.db"), stock);
    let book = Arc::new(Mutex::new(Ledgerbook::default()));
    let next_user = Arc::new(AtomicU64::new(0));
    let http = client();

    for cycle in 0..cycles {
        let gw = Spillway::serve(BIN, &config).await;
        verify(&gw, &book, &http, stock).await;

        // Kill after a different number of answers each cycle, so the kill lands at many points of a commit.
        let kill_after = 20 + (cycle * 37) % 90;
        let answers = Arc::new(AtomicU64::new(0));
        let enough = Arc::new(Notify::new());
        let base = format!("http://{}", gw.public);
        let claimants: Vec<_> = (0..CLAIMANTS)
            .map(|_| {
                let (http, base, book, next_user) = (http.clone(), base.clone(), book.clone(), next_user.clone());
                let (answers, enough) = (answers.clone(), enough.clone());
                tokio::spawn(async move {
                    loop {
                        let user = next_user.fetch_add(1, Ordering::SeqCst);
                        match claim(&http, &base, user).await {
                            Ok((status, body)) => {
                                book.lock().unwrap().record(user, status, &body);
                                if answers.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                                    enough.notify_one();
                                }
                            }
                            Err(_) => {
                                book.lock().unwrap().unknown.push(user);
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        enough.notified().await;
        gw.kill();
        for c in claimants {
            c.await.unwrap();
        }
    }
    let gw = Spillway::serve(BIN, &config).await;
    verify(&gw, &book, &http, stock).await;
    let book = book.lock().unwrap();
    eprintln!(
        "{cycles} SIGKILL cycles: {} claims acknowledged, {} told sold out, {} users in all; {} requests cut \
         off by a kill, {} of them committed before it (their retry got the original claim)",
        book.acked.len(),
        book.sold_out.len(),
        next_user.load(Ordering::SeqCst),
        book.cut_off,
        book.cut_off_committed,
    );
    if cycles >= 10 {
        assert_eq!(book.acked.len() as u64, stock, "the drop sold out across the crashes, exactly");
    }
}

#[tokio::test]
async fn a_second_server_on_the_same_ledger_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("spillway.toml");
    write_config(&config, &dir.path().join("ledger.db"), 10);
    let first = Spillway::serve(BIN, &config).await;
    // Its own listeners (port 0), the same ledger: it would decide on its own copy of the stock.
    let second = std::process::Command::new(BIN).arg("serve").arg("--config").arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second server started on a ledger in use");
    assert!(stderr.contains("another process has this ledger open"), "{stderr}");
    // The first one is untouched, and once it is gone (killed: the lock dies with the process) a restart works.
    let (status, _) = claim(&client(), &format!("http://{}", first.public), 1).await.unwrap();
    assert_eq!(status, 201);
    first.kill();
    let again = Spillway::serve(BIN, &config).await;
    again.kill();
}
