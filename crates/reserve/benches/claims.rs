//! Claims in process: decisions alone (the state machine), then durable claims through the SQLite ledger with
//! group commit, many concurrent claimants. Targets from the brief: >= 1,000,000 durable claims/s and
//! >= 10,000,000 rejections/s.
//!
//!     cargo bench -p spillway-reserve --bench claims
//!
//! Every request is built before its clock starts, so the figures are the engine's and the service's, not
//! the benchmark's own allocations.

use std::sync::Arc;
use std::time::Instant;

use spillway_core::reserve::{ClaimRequest, Engine, InventorySpec};
use spillway_reserve::Reservations;
use spillway_store::LedgerStats;

fn spec(n: u64) -> InventorySpec {
    InventorySpec::counted("drop", n)
}

fn req(user: u64, key: &str) -> ClaimRequest {
    ClaimRequest {
        inventory: "drop".into(),
        user: format!("u{user}"),
        quantity: 1,
        units: Vec::new(),
        hold: Some(false),
        idempotency_key: key.into(),
    }
}

/// The same requests, made on another inventory, to share among tasks.
fn on(inventory: &str, requests: &[ClaimRequest]) -> Arc<Vec<ClaimRequest>> {
    Arc::new(requests.iter().map(|r| ClaimRequest { inventory: inventory.into(), ..r.clone() }).collect())
}

/// Runs every request through `claim` and returns the rate and the slowest run of 256 consecutive decisions
/// (timed in runs so that reading the clock costs little), checking each outcome with `expect`. The slowest
/// run shows a stall: every claim waits while the engine grows a table.
fn rate(
    engine: &mut Engine,
    requests: &[ClaimRequest],
    expect: impl Fn(&Result<bool, &'static str>) -> bool,
) -> (f64, std::time::Duration) {
    let started = Instant::now();
    let mut unexpected = 0;
    let mut slowest = std::time::Duration::ZERO;
    for run in requests.chunks(256) {
        let one = Instant::now();
        for r in run {
            let outcome = engine.claim(r, 0).map(|(reply, _)| reply.replayed).map_err(|e| e.code());
            unexpected += usize::from(!expect(&outcome));
        }
        slowest = slowest.max(one.elapsed());
    }
    let rate = requests.len() as f64 / started.elapsed().as_secs_f64();
    assert_eq!(unexpected, 0, "every request gets the outcome the figure is labelled with");
    (rate, slowest)
}

/// Runs claiming tasks (each returns how many claims it got confirmed) to the end and prints the rate, with
/// the ledger's commits over the same time; `expected` claims must all be confirmed.
#[allow(clippy::print_stdout)]
async fn durable(
    label: &str,
    expected: u64,
    stats: &LedgerStats,
    tasks: impl Iterator<Item = tokio::task::JoinHandle<u64>>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let (commits_before, micros_before) = (stats.commits.load(Relaxed), stats.commit_micros.load(Relaxed));
    let started = Instant::now();
    let mut confirmed = 0;
    for t in tasks.collect::<Vec<_>>() {
        confirmed += t.await.unwrap_or(0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(confirmed, expected, "every claim is accepted");
    let commits = stats.commits.load(Relaxed) - commits_before;
    let committing = (stats.commit_micros.load(Relaxed) - micros_before) as f64 / 1e6;
    println!(
        "durable claims, {label}: {:.0}/s, {:.0} claims per commit, writer committing {:.0}% of the time",
        expected as f64 / elapsed,
        expected as f64 / commits.max(1) as f64,
        100.0 * committing / elapsed
    );
}

#[allow(clippy::print_stdout)]
fn main() {
    const N: u64 = 1_000_000;
    let accepted: Vec<ClaimRequest> = (0..N).map(|u| req(u, "k")).collect();
    let other_key: Vec<ClaimRequest> = (0..N).map(|u| req(u, "other")).collect();
    let newcomers: Vec<ClaimRequest> = (N..2 * N).map(|u| req(u, "k")).collect();

    let mut engine = Engine::default();
    let _ = engine.create_inventory(spec(N));
    for (label, requests, expected) in [
        (format!("engine decisions (accepted, not durable), {N} users"), &accepted, Ok(false)),
        ("engine rejections, sold_out".into(), &newcomers, Err("sold_out")),
        ("engine rejections, limit_reached (same user, new key)".into(), &other_key, Err("limit_reached")),
        ("engine duplicates, idempotent replay (same user, same key)".into(), &accepted, Ok(true)),
    ] {
        let (r, slowest) = rate(&mut engine, requests, |o| *o == expected);
        println!("{label}: {r:.0}/s, slowest 256 in a row {slowest:.1?}");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        let (service, stats) =
            Reservations::open(&spillway_store::Embedded::new(), &dir.path().join("ledger.db")).expect("open");
        let service = Arc::new(service);
        const DURABLE: u64 = 200_000;
        // Exactly the stock: each run sells out, and the rejections below are decided on a full drop ("drop").
        // The first append's commit latency bounds claims per second by claims in flight: hence two widths.
        for (inventory, claimants) in [("drop", 1_000u64), ("wide", 10_000)] {
            service.create_inventory(InventorySpec { id: inventory.into(), ..spec(DURABLE) }).await.expect("created");
            let requests = on(inventory, &accepted[..DURABLE as usize]);
            let label = format!("per-claim API through SQLite (fsync per commit, {claimants} concurrent tasks)");
            durable(
                &label,
                DURABLE,
                &stats,
                (0..claimants).map(|c| {
                    let (service, requests) = (service.clone(), requests.clone());
                    tokio::spawn(async move {
                        let mut confirmed = 0u64;
                        for r in requests.iter().skip(c as usize).step_by(claimants as usize) {
                            confirmed += u64::from(service.claim(r, 0).await.is_ok_and(|reply| !reply.replayed));
                        }
                        confirmed
                    })
                }),
            )
            .await;
        }

        // The batch API: a front end that gathers requests hands over many at once.
        const BATCHED: u64 = 1_000_000;
        const BATCH: usize = 1_000;
        const SUBMITTERS: usize = 4;
        service.create_inventory(InventorySpec { id: "batch".into(), ..spec(BATCHED) }).await.expect("created");
        let requests = on("batch", &accepted[..BATCHED as usize]);
        let label = format!("batch API claim_many through SQLite ({SUBMITTERS} tasks, {BATCH} claims per call)");
        durable(
            &label,
            BATCHED,
            &stats,
            (0..SUBMITTERS).map(|s| {
                let (service, requests) = (service.clone(), requests.clone());
                tokio::spawn(async move {
                    let mut confirmed = 0u64;
                    for chunk in requests.chunks(BATCH).skip(s).step_by(SUBMITTERS) {
                        let answers = service.claim_many(chunk, 0).await.expect("durable");
                        confirmed += answers.iter().filter(|a| a.as_ref().is_ok_and(|r| !r.replayed)).count() as u64;
                    }
                    confirmed
                })
            }),
        )
        .await;

        // Rejections through the service, one task, after everything before is durable: at most a second each.
        for (label, requests, code) in [
            ("sold_out", &newcomers[..], "sold_out"),
            ("limit_reached", &other_key[..DURABLE as usize], "limit_reached"),
        ] {
            let started = Instant::now();
            let mut done = 0u64;
            for r in requests.iter().cycle().take(100_000_000) {
                let outcome = service.claim(r, 0).await;
                assert!(matches!(&outcome, Err(spillway_reserve::ReserveError::Claim(e)) if e.code() == code));
                done += 1;
                if done.is_multiple_of(1024) && started.elapsed().as_secs_f64() > 1.0 {
                    break;
                }
            }
            println!(
                "service rejections, {label} (per-claim API, one task): {:.0}/s",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    });
}
